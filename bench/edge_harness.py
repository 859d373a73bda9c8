"""What the edge benchmarks share: processes started and stopped by pid, /proc sampling,
a raw MQTT capture, and a site config for our agent.

Used by ``bench/edge_vs_tbgw.py`` and ``bench/drain.py``; not a test helper.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as mqtt
import yaml
from paho.mqtt.enums import CallbackAPIVersion

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from hinode.services import free_port, port_open  # noqa: E402

PYTHON = sys.executable
CLK_TCK = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------- processes

class Proc:
    """One child process, its output in a log file; stopped by its pid only."""

    def __init__(self, name: str, argv: list[str], log_path: Path, cwd: Path | None = None, env: dict | None = None):
        self.name = name
        with open(log_path, "ab") as log:
            self.popen = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=cwd,
                                          env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})
        self.log_path = log_path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def wait_port(self, port: int, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"{self.name} exited {self.popen.returncode}: "
                                   f"{self.log_path.read_text(errors='replace')[-2000:]}")
            if port_open("127.0.0.1", port):
                return
            time.sleep(0.05)
        raise RuntimeError(f"{self.name} not listening on {port} after {timeout}s")

    def stop(self, grace: float = 15.0) -> int | None:
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(grace)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        return self.popen.returncode


def mosquitto(run_dir: Path, port: int) -> Proc:
    """A private broker: loopback, set_tcp_nodelay, no persistence, unlimited queues."""
    conf = run_dir / "mosquitto.conf"
    conf.write_text("\n".join([
        f"listener {port} 127.0.0.1", "allow_anonymous true", "set_tcp_nodelay true",
        "persistence false", "max_queued_messages 0", "max_inflight_messages 100",
        "log_dest stdout", "log_type error", "log_type warning"]) + "\n")
    broker = Proc("mosquitto", ["mosquitto", "-c", str(conf)], run_dir / "mosquitto.log")
    broker.wait_port(port)
    return broker


# ---------------------------------------------------------------- /proc sampling

def cpu_seconds(pid: int) -> float:
    """utime + stime + cutime + cstime of a process, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15]) / CLK_TCK


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy (all cores; /proc/stat minus idle and iowait)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / CLK_TCK


def status_kb(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


@dataclass
class Sampler:
    """CPU and RSS of one pid, sampled once a second over a window."""

    pid: int
    others: dict[str, int] = field(default_factory=dict)     # name -> pid, CPU only (simulator, broker)
    other_cpu: dict[str, float] = field(default_factory=dict)
    machine_busy: float = 0.0
    rss_mb: list[float] = field(default_factory=list)
    cpu_start: float = 0.0
    cpu_end: float = 0.0
    t_start: float = 0.0
    t_end: float = 0.0
    hwm_mb: float = 0.0

    def run(self, seconds: float, every: float = 1.0) -> "Sampler":
        self.t_start, self.cpu_start = time.time(), cpu_seconds(self.pid)
        busy0, others0 = machine_busy_seconds(), {n: cpu_seconds(p) for n, p in self.others.items()}
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.rss_mb.append(status_kb(self.pid, "VmRSS") / 1024)
            time.sleep(min(every, max(0.0, deadline - time.monotonic())))
        self.t_end, self.cpu_end = time.time(), cpu_seconds(self.pid)
        per_min = 60 / (self.t_end - self.t_start)
        self.machine_busy = (machine_busy_seconds() - busy0) * per_min
        self.other_cpu = {n: (cpu_seconds(p) - others0[n]) * per_min for n, p in self.others.items()}
        self.rss_mb.append(status_kb(self.pid, "VmRSS") / 1024)
        self.hwm_mb = status_kb(self.pid, "VmHWM") / 1024
        return self

    @property
    def cpu_s_per_min(self) -> float:
        return (self.cpu_end - self.cpu_start) / (self.t_end - self.t_start) * 60

    @property
    def rss_median(self) -> float:
        values = sorted(self.rss_mb)
        return values[len(values) // 2]

    @property
    def rss_slope_mb_per_min(self) -> float:
        """Least-squares slope of RSS over the window (one sample per second)."""
        n = len(self.rss_mb)
        if n < 3:
            return 0.0
        mean_x, mean_y = (n - 1) / 2, sum(self.rss_mb) / n
        num = sum((i - mean_x) * (y - mean_y) for i, y in enumerate(self.rss_mb))
        den = sum((i - mean_x) ** 2 for i in range(n))
        return num / den * 60


# ---------------------------------------------------------------- MQTT capture

class Capture:
    """Records (receive time, topic, payload) of everything on ``topics``; parsing comes later.

    Also answers the ThingsBoard ``getSessionLimits`` RPC as a ThingsBoard server with no
    rate limits would (the gateway publishes nothing until it gets that reply).
    """

    TB_LIMITS = b'{"maxPayloadSize":65536,"maxInflightMessages":100,"rateLimits":{},"gatewayRateLimits":{}}'

    def __init__(self, port: int, topics: list[str], answer_thingsboard: bool = False):
        self.messages: list[tuple[float, str, bytes]] = []
        self.answer_thingsboard = answer_thingsboard
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-capture-{uuid.uuid4().hex[:6]}")
        self.client.max_inflight_messages_set(1000)
        subs = [(t, 1) for t in topics] + ([("v1/devices/me/rpc/request/+", 1)] if answer_thingsboard else [])
        self._subscribed = threading.Event()
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(subs)
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        if not self._subscribed.wait(10):
            raise RuntimeError("capture could not subscribe")

    def _on_message(self, client, userdata, msg) -> None:
        if self.answer_thingsboard and msg.topic.startswith("v1/devices/me/rpc/request/"):
            request_id = msg.topic.rsplit("/", 1)[1]
            reply = self.TB_LIMITS if b"getSessionLimits" in msg.payload else b'{"error":"unsupported"}'
            client.publish(f"v1/devices/me/rpc/response/{request_id}", reply, qos=1)
            return
        self.messages.append((time.time(), msg.topic, msg.payload))

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


# ---------------------------------------------------------------- our agent

def write_agent_config(run_dir: Path, broker_port: int, sources: list[dict], **overrides) -> Path:
    """A site config for ``python -m edge_agent run``: durable outbox on, /metrics on."""
    config = {
        "site": "bench", "agent": "edge-01",
        "mqtt": {"host": "127.0.0.1", "port": broker_port, "reconnect_min_s": 0.2, "reconnect_max_s": 1.0,
                 # No cloud ingest in this benchmark: a plain subscriber consumes the telemetry.
                 "wait_for_ingest": False},
        "queue": {"path": str(run_dir / "outbox.db")},
        "metrics": {"listen": f"127.0.0.1:{free_port()}"},
        "profile_dirs": [str(ROOT / "bench" / "profiles")],
        "sources": sources,
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key].update(value)
        else:
            config[key] = value
    path = run_dir / "site.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def start_agent(run_dir: Path, config_path: Path) -> Proc:
    return Proc("edge-agent", [PYTHON, "-m", "edge_agent", "run", "--config", str(config_path)],
                run_dir / "agent.log", cwd=ROOT)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
