"""The main command, as a user runs it: ``hinode up`` starts its own broker, InfluxDB, cloud,
simulators and agent in a data directory, prints the board URL and a status line with every
device online, stops cleanly on Ctrl-C, and a second run reuses the data and the ports."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from hinode.services import free_port

pytestmark = pytest.mark.timeout(240)

REPO = Path(__file__).resolve().parents[2]
METERS = {"--modbus-meters": 2, "--sunspec-meters": 1, "--opcua-meters": 1}
STATUS = re.compile(r"devices online (\d+)/(\d+) \| missing readings (\d+)")


class Up:
    def __init__(self, data_dir: Path, api_port: int):
        argv = [sys.executable, "-m", "hinode", "up", "--data-dir", str(data_dir), "--api-port", str(api_port)]
        for option, count in METERS.items():
            argv += [option, str(count)]
        self.proc = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, predicate, what: str, timeout: float):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in reversed(self.lines):
                found = predicate(line)
                if found:
                    return found
            if self.proc.poll() is not None:
                break
            time.sleep(0.5)
        raise AssertionError(f"hinode up: no {what} within {timeout}s; output:\n" + "\n".join(self.lines[-30:]))

    def interrupt(self) -> int:
        self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(60)
        finally:
            self._reader.join(5)


def all_online(line: str):
    match = STATUS.search(line)
    if match and int(match[1]) == int(match[2]) == sum(METERS.values()) and "readings/s" in line:
        return match
    return None


def api_seqs(api_port: int) -> dict[str, int]:
    with urllib.request.urlopen(f"http://127.0.0.1:{api_port}/api/devices", timeout=5) as resp:
        devices = json.load(resp)
    devices = devices.get("devices", devices) if isinstance(devices, dict) else devices
    return {d["device"]: d for d in devices if d.get("kind") != "agent"}


def test_hinode_up_runs_the_whole_pipeline_stops_on_ctrl_c_and_reuses_its_data(tmp_path):
    data_dir, api_port = tmp_path / "data", free_port()
    first = Up(data_dir, api_port)
    try:
        first.wait_for(lambda line: f"board  http://127.0.0.1:{api_port}/" in line, "board URL", 120)
        first.wait_for(all_online, "status line with every device online", 90)
        devices = api_seqs(api_port)
        assert len(devices) == sum(METERS.values())
    finally:
        code = first.interrupt()
    assert code == 0, "\n".join(first.lines[-30:])
    assert any("hinode: stopped; data kept in" in line for line in first.lines)
    ports = json.loads((data_dir / "ports.json").read_text())
    assert (data_dir / "logs").is_dir()

    second = Up(data_dir, api_port)
    try:
        second.wait_for(all_online, "every device online on the second run", 150)
        assert json.loads((data_dir / "ports.json").read_text()) == ports, "a second run keeps the ports"
        # seq continues across the restart, and what was queued at the stop is delivered
        second.wait_for(lambda line: all_online(line) and all_online(line)[3] == "0",
                        "no missing readings after the restart on the same data", 60)
    finally:
        code = second.interrupt()
    assert code == 0, "\n".join(second.lines[-30:])
