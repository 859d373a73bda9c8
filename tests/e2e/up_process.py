"""``hinode up`` run as a user runs it, for the end-to-end tests: its output collected line by
line, its child processes found by their command lines, the cloud API read directly."""

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

from hinode.services import free_port
from tests.support import waiting

REPO = Path(__file__).resolve().parents[2]
METERS = {"--modbus-meters": 2, "--sunspec-meters": 1, "--opcua-meters": 1, "--chargers": 2}
# Chargers come with the PV site's inverter and grid meter and the site controller (kind site).
DEVICE_COUNT = sum(METERS.values()) + (3 if METERS["--chargers"] else 0)
STATUS = re.compile(r"devices online (\d+)/(\d+) \| missing readings (\d+)")


def claim_free_ports(data_dir: Path, api_port: int) -> None:
    """A new data directory gets free ports in its ports.json, which hinode up reuses: two runs in parallel
    test workers would otherwise both see a preferred port (18830, ...) free before either binds it."""
    from hinode.up import DEFAULT_PORTS
    path = data_dir / "ports.json"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({**{name: free_port() for name in DEFAULT_PORTS}, "api": api_port}))


class Up:
    def __init__(self, data_dir: Path, api_port: int):
        claim_free_ports(data_dir, api_port)
        argv = [sys.executable, "-m", "hinode", "up", "--data-dir", str(data_dir), "--api-port", str(api_port)]
        for option, count in METERS.items():
            argv += [option, str(count)]
        self.api_port = api_port
        self.data_dir = data_dir
        self.proc = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def output(self, last: int = 40) -> str:
        return "\n".join(self.lines[-last:])

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
        raise AssertionError(f"hinode up: no {what} within {timeout}s; output:\n" + self.output(30))

    def interrupt(self) -> int:
        self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(60)
        finally:
            self._reader.join(5)

    def children(self) -> dict[int, str]:
        """pid -> command line of every running child of this ``hinode up``."""
        found = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
                ppid = int(stat.rsplit(")", 1)[1].split()[1])
                if ppid == self.proc.pid:
                    found[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
            except (OSError, ValueError, IndexError):
                continue
        return found

    def child(self, needle: str) -> int:
        """The pid of the one child whose command line contains ``needle``."""
        matches = [pid for pid, cmdline in self.children().items() if needle in cmdline]
        assert len(matches) == 1, f"children matching {needle!r}: {matches} of {self.children()}"
        return matches[0]

    @property
    def token(self) -> str:
        """hinode up's own API token (the API runs with authentication; up writes it to the data directory)."""
        return (self.data_dir / "up-token").read_text().strip()

    def api(self, path: str, token: str | None = None):
        request = urllib.request.Request(f"http://127.0.0.1:{self.api_port}{path}",
                                         headers={"Authorization": f"Bearer {token or self.token}"})
        with urllib.request.urlopen(request, timeout=5) as resp:
            return json.load(resp)


def all_online(line: str):
    match = STATUS.search(line)
    if match and int(match[1]) == int(match[2]) == DEVICE_COUNT and "readings/s" in line:
        return match
    return None


def api_seqs(api_port: int, token: str) -> dict[str, dict]:
    request = urllib.request.Request(f"http://127.0.0.1:{api_port}/api/devices",
                                     headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=5) as resp:
        devices = json.load(resp)
    devices = devices.get("devices", devices) if isinstance(devices, dict) else devices
    return {d["device"]: d for d in devices if d.get("kind") != "agent"}


def wait_until(condition, what: str, timeout: float, interval: float = 0.5):
    """Poll ``condition()`` until it returns something true; an answer that is not ready yet (a
    service restarting, a null count, a device not listed yet) counts as not yet."""
    return waiting.wait_until(condition, what, timeout=timeout, interval=interval)
