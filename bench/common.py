"""Shared helpers for the scripts in ``bench/`` (no benchmark here).

Public API (keep it small; other bench scripts import it)::

    REPO                                   # repository root (bench scripts run from a fresh clone)
    private_services(workdir) -> ctx       # yields (broker, influx): private Mosquitto + InfluxDB 1.x
    start_ingest(workdir, name, broker, influx, *, database, share_group, **ingest) -> Popen
                                           # ``python -m cloud ingest`` as its own process
    wait_for_heartbeats(broker_port, client_ids, timeout)   # until every ingest is subscribed
    stop_process(proc)                     # SIGTERM, then SIGKILL after a grace period
    influx_scalar(influx_url, database, query) -> int | float | None
    CpuMeter({name: pid}) .stop(exited={name: seconds}) -> {name: cpu seconds}, machine busy
    exited_cpu_seconds(proc) -> float      # wait for a child and return its user+system CPU
    percentile(sorted_values, fraction) -> float
    ratio_line(name, value, reference, target) -> str   # the final "ratio" line every script prints

CPU is read from ``/proc`` (no psutil): ``/proc/<pid>/stat`` utime+stime for running
processes, ``os.wait4`` rusage for children that exited, ``/proc/stat`` for the whole
machine, so a figure can say what else was using the cores at the same time.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from hinode import contract, services  # noqa: E402

_TICK = os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def private_services(workdir: Path | None = None):
    """A private Mosquitto (``set_tcp_nodelay true``) and InfluxDB on free loopback ports."""
    with contextlib.ExitStack() as stack:
        if workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="hinode-bench-")))
        broker = services.mosquitto(workdir / "mosquitto")
        influx = services.influxdb(workdir / "influxdb")
        broker.start()
        stack.callback(broker.stop)
        influx.start()
        stack.callback(influx.stop)
        yield broker, influx


def start_ingest(workdir: Path, name: str, broker, influx, *, database: str, share_group: str = "hinode-ingest",
                 log_level: str = "WARNING", **ingest) -> subprocess.Popen:
    """One ``python -m cloud ingest`` process with its own client id (= ``name``)."""
    config = {
        "mqtt": {"host": "127.0.0.1", "port": broker.port, "client_id": name, "share_group": share_group,
                 "session_expiry_s": 0},
        "influx": {"url": influx.url, "database": database},
        "ingest": {"metrics_listen": None, **ingest},    # several ingests per run: no /metrics port each
    }
    path = Path(workdir) / f"{name}.json"   # JSON is valid YAML
    path.write_text(json.dumps(config))
    log = open(Path(workdir) / f"{name}.log", "ab")
    try:
        return subprocess.Popen([sys.executable, "-m", "cloud", "ingest", "--config", str(path),
                                 "--log-level", log_level], cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    finally:
        log.close()


def wait_for_heartbeats(broker_port: int, client_ids: list[str], timeout: float = 20.0) -> None:
    """Return once every named ingest has sent a heartbeat (it does so once subscribed)."""
    import paho.mqtt.client as mqtt

    heard: set[str] = set()
    done = threading.Event()

    def on_message(client, userdata, msg) -> None:
        heard.add(json.loads(msg.payload)["ingest"])
        if heard >= set(client_ids):
            done.set()

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-hb-{uuid.uuid4().hex[:6]}",
                         protocol=mqtt.MQTTv5)
    client.on_message = on_message
    client.on_connect = lambda c, *a: c.subscribe(contract.INGEST_HEARTBEAT_TOPIC, qos=0)
    client.connect("127.0.0.1", broker_port)
    client.loop_start()
    try:
        if not done.wait(timeout):
            raise RuntimeError(f"ingest(s) not subscribed within {timeout}s: heard {sorted(heard)} of {client_ids}")
    finally:
        client.disconnect()
        client.loop_stop()


def stop_process(proc: subprocess.Popen, timeout: float = 15.0) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def influx_scalar(influx_url: str, database: str, query: str):
    """The first value of the first row of an InfluxQL query (None when there is no row)."""
    data = urllib.parse.urlencode({"q": query, "db": database, "epoch": "ms"}).encode()
    with urllib.request.urlopen(f"{influx_url}/query", data=data, timeout=30) as resp:
        body = json.loads(resp.read())
    series = body["results"][0].get("series")
    return series[0]["values"][0][1] if series else None


def process_cpu_seconds(pid: int) -> float:
    """user + system CPU of a running process (its threads included)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def exited_cpu_seconds(proc: subprocess.Popen, timeout: float = 120.0) -> float:
    """Wait for a child process and return the CPU seconds it used (from wait4's rusage)."""
    deadline = time.monotonic() + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return usage.ru_utime + usage.ru_stime
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"{proc.args[0]} did not finish within {timeout}s")
        time.sleep(0.005)


def _machine_jiffies() -> tuple[int, int]:
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + values[4]   # idle + iowait
    return sum(values[:8]) - idle, sum(values[:8])


class CpuMeter:
    """CPU seconds per named process over a window, and how busy the whole machine was."""

    def __init__(self, pids: dict[str, int]):
        self.pids = pids
        self.started = time.monotonic()
        self._start = {name: process_cpu_seconds(pid) for name, pid in pids.items()}
        self._machine = _machine_jiffies()

    def stop(self, exited: dict[str, float] | None = None) -> dict:
        """``exited``: CPU seconds of processes that ran only inside the window (from wait4)."""
        wall = time.monotonic() - self.started
        busy, total = _machine_jiffies()
        cpu = {name: process_cpu_seconds(pid) - self._start[name] for name, pid in self.pids.items()}
        cpu.update(exited or {})
        machine_busy = (busy - self._machine[0]) / _TICK
        return {"wall_s": wall, "cpu_s": cpu, "machine_busy_s": machine_busy,
                "other_s": max(0.0, machine_busy - sum(cpu.values())), "cores": os.cpu_count()}


def format_cpu(report: dict) -> str:
    """``broker 45% ingest 98% ... other 12% | machine 190% of 200%`` (percent of one core)."""
    wall = report["wall_s"] or 1e-9
    parts = [f"{name} {100 * sec / wall:.0f}%" for name, sec in report["cpu_s"].items()]
    parts.append(f"other {100 * report['other_s'] / wall:.0f}%")
    return " ".join(parts) + f" | machine {100 * report['machine_busy_s'] / wall:.0f}% of {100 * report['cores']}%"


def percentile(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(fraction * (len(sorted_values) - 1))))
    return sorted_values[index]


def ratio_line(name: str, value: float, reference: float, target: str) -> str:
    ratio = value / reference if reference else float("nan")
    return f"ratio {name}: {ratio:.2f} (target {target})"
