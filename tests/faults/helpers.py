"""A fault rig of real processes: Mosquitto, InfluxDB, ``python -m cloud ingest`` and
``python -m edge_agent run`` with a ``synthetic`` source (a predictable stream).

Judged only by public behaviour: what the agent committed (its outbox's ``device_seq``
table and persisted drop counters) against what InfluxDB holds (``count(distinct(seq))``
per device). No test reaches into product internals.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import yaml

from hinode import services
from tests.support import waiting
from tests.support.agent_proc import AgentProcess, write_site_config

REPO = Path(__file__).resolve().parents[2]
SITE = "plant-f"
AGENT = "edge-f1"


def wait_until(predicate, what: str, timeout: float = 30.0, interval: float = 0.1, context=lambda: ""):
    return waiting.wait_until(predicate, what, timeout, interval, context)


class IngestProcess:
    """``python -m cloud ingest --config FILE`` as its own process (so it can be SIGKILLed)."""

    def __init__(self, config_path: Path, log_path: Path):
        self.config_path, self.log_path = config_path, log_path
        self.proc: subprocess.Popen | None = None
        self._mark = 0

    def start(self, wait_subscribed: bool = True) -> "IngestProcess":
        self._mark = len(self.log_text())
        log = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen([sys.executable, "-m", "cloud", "ingest", "--config", str(self.config_path)],
                                         cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                                         env={**os.environ, "PYTHONUNBUFFERED": "1"})
        finally:
            log.close()
        if wait_subscribed:
            self.wait_log("subscribed to", 20)
        return self

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_since_start(self) -> str:
        return self.log_text()[self._mark:]

    def wait_log(self, text: str, timeout: float) -> None:
        def seen():
            if self.proc.poll() is not None:
                raise AssertionError(f"ingest exited {self.proc.returncode}:\n{self.log_since_start()[-2000:]}")
            return text in self.log_since_start()
        wait_until(seen, f"ingest log line {text!r}", timeout, context=lambda: "\n" + self.log_since_start()[-1500:])

    @property
    def pid(self) -> int:
        return self.proc.pid

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)

    def stop(self) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(5)


class FaultRig:
    """Broker + InfluxDB + one ingest process + agents; every process stopped in ``close``."""

    def __init__(self, tmp: Path, ingest_client_id: str = "hinode-ingest-faults"):
        self.tmp = tmp
        self.broker = services.mosquitto(tmp / "mosquitto")
        self.influx = services.influxdb(tmp / "influxdb")
        self.cloud_config = tmp / "cloud.yaml"
        self.ingest_client_id = ingest_client_id
        self.ingest: IngestProcess | None = None
        self.agents: list[AgentProcess] = []
        self._ingests: list[IngestProcess] = []

    def start(self) -> "FaultRig":
        self.broker.start()
        self.influx.start()
        self.cloud_config.write_text(yaml.safe_dump({
            "mqtt": {"host": "127.0.0.1", "port": self.broker.port, "client_id": self.ingest_client_id,
                     "keepalive_s": 5},
            "influx": {"url": self.influx.url, "database": "hinode", "timeout_s": 2},
            "ingest": {"batch_max_ms": 50, "retry_initial_s": 0.1, "retry_max_s": 0.5,
                       "metrics_listen": "127.0.0.1:0"},    # any free port: several ingests may run at once
        }))
        self.ingest = self.new_ingest()
        return self

    def new_ingest(self, wait_subscribed: bool = True) -> IngestProcess:
        ingest = IngestProcess(self.cloud_config, self.tmp / "ingest.log").start(wait_subscribed)
        self._ingests.append(ingest)
        return ingest

    def agent(self, devices: int = 3, interval_s: float = 0.05, metrics: int = 5, **overrides) -> AgentProcess:
        """An agent streaming ``devices`` synthetic meters, one envelope per device per interval."""
        source = {"type": "synthetic", "name": "synth", "interval_s": interval_s, "metrics": metrics,
                  "kind": "meter", "devices": [{"id": f"synth-{i:02d}"} for i in range(1, devices + 1)]}
        path = write_site_config(self.tmp / f"site-{len(self.agents)}.yaml", self.broker.port, [source],
                                 site=SITE, agent=AGENT, **overrides)
        agent = AgentProcess(path).start()
        self.agents.append(agent)
        return agent

    def restart_agent(self, agent: AgentProcess) -> AgentProcess:
        again = AgentProcess(agent.config_path).start()
        self.agents.append(again)
        return again

    def close(self) -> None:
        for agent in self.agents:
            agent.stop()
        for ingest in self._ingests:
            ingest.stop()
        self.influx.stop()
        self.broker.stop()

    # ------------------------------------------------------------ reading back

    def stored(self) -> dict[str, tuple[int, int, int]]:
        """device -> (distinct seq stored, min seq, max seq) across the meter and agent measurements."""
        try:
            result = self.influx.query('SELECT count(distinct("seq")) AS n, min("seq") AS lo, max("seq") AS hi '
                                       'FROM "meter", "agent" GROUP BY "device"', db="hinode")["results"][0]
        except OSError:
            return {}
        out = {}
        for series in result.get("series", []):
            n, lo, hi = series["values"][0][1:4]
            out[series["tags"]["device"]] = (n, lo, hi)
        return out

    def stored_total(self) -> int:
        # A just-restarted InfluxDB can answer a count with null: "nothing known yet", not zero.
        counts = [n for n, _, _ in self.stored().values()]
        if any(n is None for n in counts):
            raise ValueError("InfluxDB answered a null count (still starting)")
        return sum(counts)


def account(rig: FaultRig, agent: AgentProcess) -> dict:
    """Sequence accounting from the agent's outbox (produced, dropped) and InfluxDB (received)."""
    produced = agent.committed_seqs()
    dropped_envelopes, _ = agent.dropped()
    stored = rig.stored()
    received = sum(stored.get(d, (0, 0, 0))[0] for d in produced)
    outside = {d: s for d, s in stored.items() if d not in produced or s[1] < 1 or s[2] > produced[d]}
    return {"produced": sum(produced.values()), "received": received, "dropped": dropped_envelopes,
            "devices": len(produced), "outside": outside, "outbox_depth": agent.outbox_depth(),
            "per_device": {d: (stored.get(d, (0,))[0], seq) for d, seq in produced.items()}}


def missing_seqs(rig: FaultRig, agent: AgentProcess, most: int = 5) -> dict[str, list[int]]:
    """device -> the first seqs the agent committed that InfluxDB does not hold (for a failure message)."""
    out = {}
    for device, produced in agent.committed_seqs().items():
        result = rig.influx.query(f'SELECT "seq" FROM "meter", "agent" WHERE "device" = \'{device}\'',
                                  db="hinode")["results"][0]
        stored = {row[1] for series in result.get("series", []) for row in series["values"]}
        missing = sorted(set(range(1, produced + 1)) - stored)
        if missing:
            out[device] = missing[:most]
    return out


def stop_and_account(rig: FaultRig, agent: AgentProcess, *, may_drop: bool = False, timeout: float = 30.0) -> dict:
    """SIGTERM the agent (it drains its outbox), then wait until received + dropped == produced.

    ``may_drop`` is set only by a test that deliberately pushes the outbox past its size
    bound; everywhere else a single dropped envelope fails the test.
    """
    assert agent.stop() == 0, f"agent did not stop cleanly:\n{agent.log_path.read_text()[-2000:]}"
    expected_devices = {f"synth-{i:02d}" for i in range(1, 100)}

    def balanced():
        acc = account(rig, agent)
        return acc if acc["received"] + acc["dropped"] == acc["produced"] else None

    acc = wait_until(balanced, "received + dropped == produced", timeout,
                     context=lambda: f"\naccounting: {account(rig, agent)}\nmissing seqs: {missing_seqs(rig, agent)}"
                     f"\nagent log tail:\n{agent.log_path.read_text(errors='replace')[-2500:]}\ningest log tail:\n"
                     + (rig.ingest.log_since_start()[-1500:] if rig.ingest else ""))
    assert acc["outbox_depth"] == 0, acc
    assert acc["outside"] == {}, f"stored seqs outside 1..produced or from unknown devices: {acc['outside']}"
    assert AGENT in acc["per_device"] and any(d in expected_devices for d in acc["per_device"]), acc
    print(f"accounting: produced {acc['produced']} = received {acc['received']} + dropped {acc['dropped']} "
          f"over {acc['devices']} devices")
    if not may_drop:
        assert acc["dropped"] == 0, f"dropped without reaching the outbox bound: {acc}"
    return acc

