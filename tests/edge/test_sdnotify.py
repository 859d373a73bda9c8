"""systemd's notify protocol, against a real unix datagram socket standing in for the service manager
(no systemd runs here): the agent says READY=1 once it runs, feeds the watchdog from its event loop,
and says STOPPING=1 on SIGTERM; a loop that stops turning stops feeding it."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from hinode.sdnotify import SystemdNotifier
from tests.support.agent_proc import write_site_config

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def manager_socket(tmp_path):
    """A bound datagram socket, as systemd binds $NOTIFY_SOCKET."""
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(0.2)
    yield path, sock
    sock.close()


def messages(sock, until, timeout: float = 20.0) -> list[str]:
    """Datagrams received until ``until(received)`` is true."""
    received: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not until(received):
        try:
            received.append(sock.recv(4096).decode())
        except TimeoutError:
            continue
    assert until(received), f"not within {timeout}s; received {received}"
    return received


def test_outside_systemd_every_call_does_nothing():
    notifier = SystemdNotifier({})
    assert not notifier.enabled and not notifier.ready() and notifier.watchdog_s is None
    asyncio.run(asyncio.wait_for(notifier.watchdog(), 1))     # returns at once


def test_ready_and_the_watchdog_reach_the_socket_and_an_abstract_address_works(manager_socket):
    path, sock = manager_socket
    notifier = SystemdNotifier({"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "100000"})
    assert notifier.ready("2 sources") and notifier.watchdog_s == 0.1
    assert messages(sock, lambda r: len(r) >= 1) == ["READY=1\nSTATUS=2 sources"]

    abstract = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    abstract.bind(f"\0hinode-test-{os.getpid()}")
    abstract.settimeout(0.2)
    try:
        assert SystemdNotifier({"NOTIFY_SOCKET": f"@hinode-test-{os.getpid()}"}).stopping()
        assert messages(abstract, lambda r: len(r) >= 1) == ["STOPPING=1"]
    finally:
        abstract.close()


def test_the_watchdog_is_fed_only_while_the_loop_turns(manager_socket):
    path, sock = manager_socket
    notifier = SystemdNotifier({"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "100000"})

    async def turning_then_blocked():
        feeder = asyncio.create_task(notifier.watchdog())
        await asyncio.sleep(0.5)             # the loop turns: the watchdog is fed
        time.sleep(1.0)                      # a hung call: the loop does not turn
        feeder.cancel()

    started = time.monotonic()
    asyncio.run(turning_then_blocked())
    sock.settimeout(0.05)
    stamps = []
    while True:
        try:
            assert sock.recv(64) == b"WATCHDOG=1"
            stamps.append(time.monotonic() - started)
        except TimeoutError:
            break
    assert 5 <= len(stamps) <= 13, stamps       # ~every 50 ms for 0.5 s, then nothing during the hang


def test_a_child_named_by_watchdog_pid_is_not_the_feeder(manager_socket):
    path, _ = manager_socket
    assert SystemdNotifier({"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "100000",
                            "WATCHDOG_PID": str(os.getpid() + 1)}).watchdog_s is None


def test_the_agent_process_says_ready_feeds_the_watchdog_and_says_stopping(manager_socket, broker, tmp_path):
    path, sock = manager_socket
    config = write_site_config(tmp_path / "site.yaml", broker.port, [
        {"type": "synthetic", "name": "sim", "devices": [{"id": "m1"}], "interval_s": 0.5}])
    env = {**os.environ, "NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "400000", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "edge_agent", "run", "--config", str(config)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        received = messages(sock, lambda r: r.count("WATCHDOG=1") >= 3)
        assert received[0].startswith("READY=1\nSTATUS=1 sources"), received
        proc.send_signal(signal.SIGTERM)
        messages(sock, lambda r: "STOPPING=1" in r)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
