"""``hinode up`` supervises its children: the broker, InfluxDB and the cloud (API + in-process
ingest) each SIGKILLed in turn come back on the same ports and data, every device comes back
online, nothing is missing, the status line counts the restarts and Ctrl-C still exits 0; a
service that cannot be brought back makes ``hinode up`` exit non-zero naming it."""

from __future__ import annotations

import errno
import json
import math
import os
import signal
import socket
import time
import urllib.request

import pytest

from hinode.services import free_port
from tests.e2e.up_process import DEVICE_COUNT, Up, all_online, wait_until
from tests.support.prometheus_checks import check_exposition, value

pytestmark = pytest.mark.timeout(300)

METER_COUNT = DEVICE_COUNT
EDGE_SITE = "hitachi-omika"      # the live edge agent's site; the green-city SME sites publish on their own
# (name in hinode's messages, a piece of the child's command line)
VICTIMS = [("mosquitto", "mosquitto -c"), ("influxdb", "influxd -config"), ("cloud", "-m cloud serve")]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:      # a zombie is not alive: its parent has not reaped it yet
        return (open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]) != "Z"
    except OSError:
        return False


def every_device_reporting_since(up: Up, since_ms: int):
    """Every meter online in /api/devices with data stamped after ``since_ms``, else None."""
    devices = [d for d in up.api("/api/devices")["devices"] if d.get("kind") != "agent" and d.get("site") == EDGE_SITE]
    fresh = [d for d in devices if d.get("online") and (d.get("last_seen") or 0) > since_ms]
    return devices if len(devices) == len(fresh) == METER_COUNT else None


def test_broker_influxdb_and_ingest_killed_in_turn_come_back_and_nothing_is_missing(tmp_path):
    data_dir, api_port = tmp_path / "data", free_port()
    up = Up(data_dir, api_port)
    try:
        up.wait_for(lambda line: f"board  http://127.0.0.1:{api_port}/" in line, "board URL", 120)
        up.wait_for(all_online, "status line with every device online", 90)
        started_ms = int(time.time() * 1000)
        meters = {d["device"] for d in up.api("/api/devices")["devices"]
                  if d.get("kind") != "agent" and d.get("site") == EDGE_SITE}
        assert len(meters) == METER_COUNT

        for name, needle in VICTIMS:
            pid = up.child(needle)
            os.kill(pid, signal.SIGKILL)
            killed_ms = int(time.time() * 1000)
            up.wait_for(lambda line: f"hinode: {name} is running again (restart 1)" in line,
                        f"{name} restarted", 90)
            new_pid = up.child(needle)
            assert new_pid != pid
            wait_until(lambda: every_device_reporting_since(up, killed_ms),
                       f"every device online again with fresh data after killing {name}", 90)

        restarts = "restarts: mosquitto 1, influxdb 1, cloud 1"
        up.wait_for(lambda line: restarts in line and "readings/s" in line, f"status line with {restarts!r}", 30)
        metrics_port = json.loads((data_dir / "ports.json").read_text())["up_metrics"]
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as resp:
            families = check_exposition(resp.read().decode())
        for name, _ in VICTIMS:
            assert value(families, "hinode_up_service_restarts_total", service=name) == 1
        assert value(families, "hinode_up_service_restarts_total", service="edge-agent") == 0

        # Nothing lost over the whole test window: the broker's persistence, InfluxDB's data and
        # the agent's outbox carried every envelope through the three kills.
        last = {}

        def nothing_missing():
            elapsed_s = time.time() - started_ms / 1000
            report = up.api(f"/api/completeness?window={math.ceil(elapsed_s) + 10}s")
            last["report"] = report
            devices = report["devices"]       # the meters and the agent's own health envelopes
            reported = [d for d in devices if d["device"] in meters and d.get("site") == EDGE_SITE]
            # one envelope per polled meter and second (--poll 1): the window reaches back before the
            # first kill; chargers send on their own schedule (meter values every 10 s, status changes)
            polled = [d for d in reported if d["device"].startswith(("meter-", "sunspec-meter-", "opcua-meter-"))]
            return (len(reported) == METER_COUNT and all(d["missing"] == 0 for d in devices)
                    and all(d["received"] >= elapsed_s for d in polled))

        try:
            wait_until(nothing_missing, "no missing envelope for any device", 60)
        except AssertionError:
            raise AssertionError(f"completeness: {last.get('report')}\n{up.output()}") from None
        assert (data_dir / "mosquitto" / "mosquitto.db").exists(), "the broker's persistence file"
        children = up.children()
    finally:
        code = up.interrupt()
    assert code == 0, up.output()
    assert any("hinode: stopped; data kept in" in line for line in up.lines)
    assert not [pid for pid in children if _alive(pid)], "every child stopped"


def _occupy(port: int) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen()
    return sock


def test_a_broker_that_cannot_come_back_makes_hinode_up_exit_non_zero_naming_it(tmp_path):
    """Another program takes the broker's port after a crash: every restart fails, and after
    five failures within a minute hinode up stops everything and exits 1 naming mosquitto."""
    data_dir, api_port = tmp_path / "data", free_port()
    up = Up(data_dir, api_port)
    squatter = None
    try:
        up.wait_for(lambda line: f"board  http://127.0.0.1:{api_port}/" in line, "board URL", 120)
        children = up.children()
        port = int(next(line for line in (data_dir / "mosquitto" / "mosquitto.conf").read_text().splitlines()
                        if line.startswith("listener")).split()[1])

        def kill_broker_and_take_its_port():
            nonlocal squatter
            broker = [pid for pid, cmd in up.children().items() if "mosquitto -c" in cmd]
            for pid in broker:
                os.kill(pid, signal.SIGKILL)
            try:
                squatter = _occupy(port)
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:
                    raise
                return None     # not released yet, or restarted before us: kill it again
            return squatter

        wait_until(kill_broker_and_take_its_port, "the broker's port taken by another program", 30, interval=0.02)
        code = up.proc.wait(90)
    finally:
        if up.proc.poll() is None:
            up.interrupt()
        if squatter is not None:
            squatter.close()
    up._reader.join(5)
    assert code == 1, up.output()
    assert any("mosquitto failed 5 times within 60 s" in line and "giving up" in line for line in up.lines), up.output()
    assert any(f"port {port} is taken by another program" in line for line in up.lines), up.output()
    assert any("hinode: stopped; data kept in" in line for line in up.lines)
    assert not [pid for pid in children if _alive(pid)], "every child stopped"
