"""The whole pipeline as real processes: Mosquitto, InfluxDB, ``python -m cloud serve``,
``python -m simulators ...`` and ``python -m edge_agent run`` — what a user runs."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import yaml

from hinode import services
from hinode.services import ManagedProcess, free_port
from tests.support.agent_proc import AgentProcess, write_site_config
from tests.support.waiting import wait_until


class Simulator:
    """A simulator subprocess; ``banner`` is the line it prints (port, pts path)."""

    def __init__(self, args: list[str], log_dir: Path):
        self.log = open(log_dir / f"sim-{args[0]}-{time.monotonic_ns()}.log", "w")
        self.proc = subprocess.Popen([sys.executable, "-m", "simulators", *args], stdout=subprocess.PIPE,
                                     stderr=self.log, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.banner = self.proc.stdout.readline()
        if not self.banner:
            raise AssertionError(f"simulator {args} printed nothing; see {self.log.name}")

    @property
    def tcp_port(self) -> int:
        return int(re.search(r"127\.0\.0\.1:(\d+)", self.banner).group(1))

    @property
    def pts(self) -> str:
        return re.search(r"(/dev/pts/\d+)", self.banner).group(1)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(15)
        self.log.close()


class Pipeline:
    def __init__(self, tmp_path: Path, cloud_config: dict | None = None):
        """``cloud_config``: a cloud.yaml (e.g. its ``domains:`` sections) the cloud is started with."""
        self.tmp = tmp_path
        self.broker = services.mosquitto(tmp_path / "mosquitto")
        self.influx = services.influxdb(tmp_path / "influxdb")
        self.api_port = free_port()
        config_args = []
        if cloud_config is not None:
            (tmp_path / "cloud.yaml").write_text(yaml.safe_dump(cloud_config, sort_keys=False))
            config_args = ["--config", str(tmp_path / "cloud.yaml")]
        self.cloud = ManagedProcess(
            "cloud", [sys.executable, "-m", "cloud", "serve", *config_args, "--mqtt-port", str(self.broker.port),
                      "--influx-url", self.influx.url, "--port", str(self.api_port)],
            tmp_path / "cloud.log", self.api_port, env={"PYTHONUNBUFFERED": "1"})
        self.sims: list[Simulator] = []
        self.agents: list[AgentProcess] = []

    def start(self) -> "Pipeline":
        self.broker.start()
        self.influx.start()
        self.cloud.start(timeout=60)
        self.wait(lambda: self.api("/readyz", ok_only=True), "cloud ready", timeout=60)
        return self

    def simulator(self, *args: str) -> Simulator:
        sim = Simulator(list(args), self.tmp)
        self.sims.append(sim)
        return sim

    def agent(self, sources: list[dict], **overrides) -> AgentProcess:
        overrides.setdefault("site", "plant-1")
        config = write_site_config(self.tmp / f"site-{len(self.agents)}.yaml", self.broker.port, sources, **overrides)
        agent = AgentProcess(config).start()
        self.agents.append(agent)
        return agent

    def stop(self) -> None:
        for agent in self.agents:
            agent.stop()
        for sim in self.sims:
            sim.stop()
        for proc in (self.cloud, self.influx, self.broker):
            proc.stop()

    # ---------------------------------------------------------------- reading back

    def api(self, path: str, ok_only: bool = False):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.api_port}{path}", timeout=5) as resp:
                body = resp.read()
                return True if ok_only else json.loads(body)
        except OSError:
            if ok_only:
                return False
            raise

    def post(self, path: str, body: dict) -> tuple[int, dict]:
        """(HTTP status, JSON answer) of a POST to the cloud API; an error status is an answer too."""
        request = urllib.request.Request(f"http://127.0.0.1:{self.api_port}{path}", data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"}, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=10) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    def query(self, q: str) -> list[dict]:
        """InfluxQL rows as dicts (tags merged in)."""
        result = self.influx.query(q, db="hinode")["results"][0]
        rows = []
        for series in result.get("series", []):
            for values in series["values"]:
                row = dict(zip(series["columns"], values))
                row.update(series.get("tags", {}))
                rows.append(row)
        return rows

    def seq_accounting(self, measurement: str = "meter") -> dict[str, tuple[int, int, int]]:
        """device -> (distinct seq stored, min seq, max seq), straight from InfluxDB."""
        rows = self.query(f'SELECT count(distinct("seq")) AS n, min("seq") AS lo, max("seq") AS hi '
                          f'FROM "{measurement}" GROUP BY "device"')
        return {r["device"]: (r["n"], r["lo"], r["hi"]) for r in rows}

    def wait(self, predicate, what: str, timeout: float = 30.0):
        """The predicate's first truthy answer; one not ready yet (null count, KeyError, ...) is not yet."""
        return wait_until(predicate, what, timeout=timeout, interval=0.2, context=lambda: (
            "; cloud log tail:\n" + self.cloud.log_path.read_text(errors="replace")[-1500:]))

    def devices(self) -> dict[str, dict]:
        data = self.api("/api/devices")
        items = data.get("devices", data) if isinstance(data, dict) else data
        return {d["device"]: d for d in items}
