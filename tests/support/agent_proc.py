"""Run a real edge agent as a subprocess (so tests can SIGKILL it) from a generated site config."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import yaml

from hinode.services import free_port


def write_site_config(path: Path, broker_port: int, sources: list[dict], site: str = "factory-a",
                      agent: str = "edge-01", **overrides) -> Path:
    config = {
        "site": site, "agent": agent,
        "mqtt": {"host": "127.0.0.1", "port": broker_port, "reconnect_min_s": 0.2, "reconnect_max_s": 1.0,
                 "ingest_timeout_s": 3.0},
        "queue": {"path": str(path.parent / f"{agent}-queue.db"), "commit_interval_ms": 50},
        "metrics": {"listen": f"127.0.0.1:{free_port()}"},
        "health_interval_s": 1.0,
        "sources": sources,
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key].update(value)
        else:
            config[key] = value
    path.write_text(yaml.safe_dump(config))
    return path


class AgentProcess:
    def __init__(self, config_path: Path):
        self.config_path = Path(config_path)
        self.config = yaml.safe_load(self.config_path.read_text())
        self.log_path = self.config_path.with_suffix(".log")
        self.proc: subprocess.Popen | None = None

    def start(self) -> "AgentProcess":
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "edge_agent", "run", "--config", str(self.config_path)],
                                     stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        log.close()
        self.wait_metrics()
        return self

    @property
    def metrics_url(self) -> str:
        return f"http://{self.config['metrics']['listen']}/metrics"

    def wait_metrics(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"agent exited {self.proc.returncode}: {self.log_path.read_text()[-3000:]}")
            try:
                urllib.request.urlopen(self.metrics_url, timeout=1).read()
                return
            except OSError:
                time.sleep(0.1)
        raise AssertionError("agent /metrics never came up")

    def metrics(self) -> dict[str, float]:
        text = urllib.request.urlopen(self.metrics_url, timeout=5).read().decode()
        out = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                out[name] = float(value)
        return out

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                return self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                return self.proc.wait(5)
        return self.proc.returncode if self.proc else 0

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def committed_seqs(self) -> dict[str, int]:
        """Highest sequence number the agent committed per device (read from its outbox)."""
        db = sqlite3.connect(self.config["queue"]["path"])
        try:
            return dict(db.execute("SELECT device, seq FROM device_seq"))
        finally:
            db.close()

    def outbox_depth(self) -> int:
        db = sqlite3.connect(self.config["queue"]["path"])
        try:
            return db.execute("SELECT count(*) FROM outbox").fetchone()[0]
        finally:
            db.close()

    def dropped(self) -> tuple[int, int]:
        db = sqlite3.connect(self.config["queue"]["path"])
        try:
            counters = dict(db.execute("SELECT name, value FROM counters"))
            return counters.get("dropped_envelopes", 0), counters.get("dropped_readings", 0)
        finally:
            db.close()
