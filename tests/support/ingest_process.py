"""``python -m cloud ingest`` as its own process, for tests of what reaches InfluxDB through it.

Its /metrics listens on any free port: the default 127.0.0.1:9109 is one per host, so two of these on
the two CI workers at once made the second exit ("every ingest needs its own port") and its test wait
60 s for data that never came (test_the_vehicles_reach_influxdb_through_the_ingest_..., in CI).
"""

from __future__ import annotations

import sys
from pathlib import Path

from hinode.services import ManagedProcess


def spawn_ingest(broker, influx, directory: Path) -> ManagedProcess:
    """Started, not waited for: it has no port of its own to wait on; publishers wait for its heartbeat."""
    config = directory / "ingest.yaml"
    config.write_text('ingest: {metrics_listen: "127.0.0.1:0"}\n')
    proc = ManagedProcess("ingest", [sys.executable, "-m", "cloud", "ingest", "--config", str(config),
                                     "--mqtt-port", str(broker.port), "--influx-url", influx.url],
                          directory / "ingest.log", None, env={"PYTHONUNBUFFERED": "1"})
    proc.spawn()
    return proc


def log_tail(proc: ManagedProcess, chars: int = 3000) -> str:
    """For a wait's failure message: what the ingest said (or that it exited)."""
    state = "running" if proc.process is not None and proc.process.poll() is None else "EXITED"
    text = proc.log_path.read_text(errors="replace")[-chars:] if proc.log_path.exists() else "(no log)"
    return f"\ningest ({state}) log:\n{text}"
