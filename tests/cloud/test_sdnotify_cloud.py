"""``cloud ingest`` and ``cloud serve`` under a Type=notify unit: READY=1 once running, the watchdog fed
while they run, STOPPING=1 on SIGTERM. A bound unix datagram socket stands in for systemd (none runs
here); the protocol itself is tested in tests/edge/test_sdnotify.py."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from hinode.services import free_port
from tests.edge.test_sdnotify import manager_socket, messages  # noqa: F401  (a fixture)

pytestmark = pytest.mark.timeout(90)


@pytest.mark.parametrize("command", ["ingest", "serve"])
def test_cloud_processes_say_ready_feed_the_watchdog_and_say_stopping(command, manager_socket, broker, influx,
                                                                       tmp_path):
    path, sock = manager_socket
    argv = [sys.executable, "-m", "cloud", command, "--mqtt-port", str(broker.port), "--influx-url", influx.url]
    if command == "serve":
        argv += ["--port", str(free_port())]
    else:
        (tmp_path / "cloud.yaml").write_text("ingest: {metrics_listen: null}\n")
        argv += ["--config", str(tmp_path / "cloud.yaml")]
    env = {**os.environ, "NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "400000", "PYTHONUNBUFFERED": "1",
           "HINODE_STATE_DIR": str(tmp_path / "state")}
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        received = messages(sock, lambda r: r.count("WATCHDOG=1") >= 3, timeout=60)
        # (serve feeds the watchdog from its loop while its services start, so READY may come later)
        received += messages(sock, lambda r: any(m.startswith("READY=1") for m in received + r), timeout=30)
        assert sum(m.startswith("READY=1") for m in received) == 1, received
        proc.send_signal(signal.SIGTERM)
        messages(sock, lambda r: "STOPPING=1" in r, timeout=30)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        output = proc.stdout.read() if proc.stdout else ""
    assert "Traceback" not in output, output[-3000:]
