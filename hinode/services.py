"""Private Mosquitto and InfluxDB processes in a data directory.

Used by ``hinode up`` and by the test fixtures: never the system services, always
on loopback, always ``set_tcp_nodelay true`` (without it a QoS 1 stream stalls on
Nagle + delayed ACK: ~580 msg/s instead of ~27,000 on this kind of machine).
"""

from __future__ import annotations

import getpass
import os
import random
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path


class ServiceError(RuntimeError):
    pass


_ISSUED_PORTS: set[int] = set()
_LOWEST_PORT = 20000


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


PORT_RANGE_ENV = "HINODE_PORT_RANGE"


def port_range() -> tuple[int, int]:
    """[low, high) for free_port: below the ephemeral range, or ``$HINODE_PORT_RANGE`` ("low-high").

    The tests give each xdist worker its own slice (tests/conftest.py), so a port one worker picked
    and has not bound yet is never picked by the other; the child processes inherit it.
    """
    spec = os.environ.get(PORT_RANGE_ENV)
    if not spec:
        return _LOWEST_PORT, _ephemeral_low()
    try:
        low, high = (int(part) for part in spec.split("-"))
    except ValueError:
        low = high = 0
    if not 1024 <= low < high <= 65536:
        raise ValueError(f"{PORT_RANGE_ENV}={spec!r}: expected low-high, e.g. 20000-26000 (1024 <= low < high <= 65536)")
    return low, high


def free_port() -> int:
    """A free loopback port for a service we start, chosen BELOW the kernel's ephemeral range.

    Port 0 would give an ephemeral port, the range outgoing connections use: another process's
    connection could take it between this check and the service's bind ("address already in
    use" in a CI run). Ports are not handed out twice by one process.
    """
    low, high = port_range()
    if high - low >= 1000:
        for _ in range(200):
            port = random.randrange(low, high)
            if port in _ISSUED_PORTS:
                continue
            with socket.socket() as sock:
                try:
                    sock.bind(("127.0.0.1", port))
                except OSError:
                    continue
            _ISSUED_PORTS.add(port)
            return port
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def find_binary(name: str, extra: tuple[str, ...] = ("/usr/sbin", "/usr/bin")) -> str:
    found = shutil.which(name) or next((f"{d}/{name}" for d in extra if os.access(f"{d}/{name}", os.X_OK)), None)
    if not found:
        raise ServiceError(f"{name} not found: install Debian's package ({'mosquitto' if name == 'mosquitto' else 'influxdb'})")
    return found


@dataclass
class ManagedProcess:
    name: str
    argv: list[str]
    log_path: Path
    port: int
    host: str = "127.0.0.1"
    process: subprocess.Popen | None = None
    env: dict = field(default_factory=dict)

    def spawn(self) -> None:
        """Start the process without waiting for it (its output is appended to ``log_path``)."""
        log = open(self.log_path, "ab")
        try:
            self.process = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT,
                                            env={**os.environ, **self.env}, start_new_session=True)
        finally:
            log.close()

    def start(self, timeout: float = 20.0) -> None:
        if self.process and self.process.poll() is None:
            return
        self.spawn()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServiceError(f"{self.name} exited with {self.process.returncode}; log: {self.log_path}\n"
                                   + self.log_path.read_text(errors="replace")[-2000:])
            if self.ready():
                return
            time.sleep(0.05)
        self.stop()
        raise ServiceError(f"{self.name} did not start within {timeout}s; log: {self.log_path}")

    def ready(self) -> bool:
        return port_open(self.host, self.port)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
        if not self.process or self.process.poll() is not None:
            return
        self.process.send_signal(sig)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
        # Wait until the port is really free, so a restart can bind it again.
        deadline = time.monotonic() + 5
        while port_open(self.host, self.port) and time.monotonic() < deadline:
            time.sleep(0.05)

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    @property
    def running(self) -> bool:
        return bool(self.process and self.process.poll() is None)

    def exit_reason(self) -> str:
        """How the process ended, e.g. "exited with code 3" or "was killed by SIGKILL"."""
        code = self.process.poll() if self.process else None
        if code is None:
            return "is running"
        if code < 0:
            try:
                return f"was killed by {signal.Signals(-code).name}"
            except ValueError:
                return f"was killed by signal {-code}"
        return f"exited with code {code}"


@dataclass
class ClientProcess(ManagedProcess):
    """A process that listens on no port of its own (charge points dialling a central system):
    ready once it has printed its banner line, with no port for a restart to find taken."""

    port: int = 0

    def ready(self) -> bool:
        return self.running and self.log_path.exists() and self.log_path.stat().st_size > self._log_start

    def spawn(self) -> None:
        self._log_start = self.log_path.stat().st_size if self.log_path.exists() else 0
        super().spawn()


def mosquitto(data_dir: Path, port: int | None = None, extra_config: str = "",
              persistence: bool = True, listener_config=None) -> ManagedProcess:
    """A private broker; persistence keeps the ingest's queued session across restarts.

    ``listener_config(port) -> str`` replaces the plain anonymous loopback listener, e.g. with
    the TLS listener, password file and ACL from ``hinode.security`` (see ``secure_mosquitto``).
    """
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    conf = data_dir / "mosquitto.conf"
    listener = (listener_config(port).splitlines() if listener_config is not None
                else [f"listener {port} 127.0.0.1", "allow_anonymous true"])
    lines = [
        *listener,
        "set_tcp_nodelay true",
        # The ingest's persistent session must not lose messages while InfluxDB is down:
        # mosquitto's default (1000 queued messages) would silently drop the rest.
        "max_queued_messages 0",
        "max_inflight_messages 100",
        "max_packet_size 1049600",
        # Started as root, mosquitto drops to user "mosquitto" and then cannot write its
        # persistence file into our data directory: stay the user that owns it.
        f"user {getpass.getuser()}",
        f"persistence {'true' if persistence else 'false'}",
        f"persistence_location {data_dir}/",
        "autosave_interval 5",
        "log_type error",
        "log_type warning",
        "log_dest stdout",
    ]
    if extra_config:
        lines.append(extra_config)
    conf.write_text("\n".join(lines) + "\n")
    return ManagedProcess("mosquitto", [find_binary("mosquitto"), "-c", str(conf)],
                          data_dir / "mosquitto.log", port)


def secure_mosquitto(data_dir: Path, bundle, port: int | None = None, persistence: bool = True) -> ManagedProcess:
    """A private broker with only a TLS listener on loopback, no anonymous access, and the
    password file and ACL of a ``hinode.security.bundle.Bundle`` (made by ``python -m hinode.security mqtt``)."""
    return mosquitto(data_dir, port, persistence=persistence,
                     listener_config=lambda p: bundle.broker_config(port=p, bind="127.0.0.1"))


@dataclass
class InfluxProcess(ManagedProcess):
    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://{self.host}:{self.port}/ping", timeout=0.5) as resp:
                return resp.status == 204
        except (OSError, urllib.error.URLError):
            return False

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def query(self, q: str, db: str | None = None) -> dict:
        """Run InfluxQL; returns the decoded JSON (for tests and the status line)."""
        import json
        params = {"q": q, "epoch": "ms"}
        if db:
            params["db"] = db
        data = urllib.parse.urlencode(params).encode()
        with urllib.request.urlopen(f"{self.url}/query", data=data, timeout=10) as resp:
            return json.loads(resp.read())


def influxdb(data_dir: Path, port: int | None = None) -> InfluxProcess:
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    rpc_port = free_port()
    conf = data_dir / "influxdb.conf"
    conf.write_text(f"""reporting-disabled = true
bind-address = "127.0.0.1:{rpc_port}"
[meta]
  dir = "{data_dir}/meta"
  logging-enabled = false
[data]
  dir = "{data_dir}/data"
  wal-dir = "{data_dir}/wal"
  query-log-enabled = false
  cache-snapshot-write-cold-duration = "1m"
  index-version = "inmem"
[coordinator]
  log-queries-after = "0s"
[monitor]
  store-enabled = false
[http]
  enabled = true
  bind-address = "127.0.0.1:{port}"
  log-enabled = false
  max-body-size = 0
[logging]
  level = "warn"
  suppress-logo = true
[continuous_queries]
  enabled = false
""")
    return InfluxProcess("influxd", [find_binary("influxd"), "-config", str(conf)],
                         data_dir / "influxdb.log", port)
