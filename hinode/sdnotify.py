"""systemd's notify protocol: tell the service manager we are ready, and keep its watchdog fed.

Under a unit with ``Type=notify`` systemd waits for ``READY=1`` before it counts the service as
started; with ``WatchdogSec=`` it kills and restarts a process that stops sending ``WATCHDOG=1``
(``Restart=on-failure`` covers a crash, the watchdog covers a hang). The protocol is one datagram to
the unix socket named by ``$NOTIFY_SOCKET`` (an ``@`` prefix means the abstract namespace), so it is
written here (a dozen lines) rather than taken as a dependency. Outside systemd (no ``$NOTIFY_SOCKET``)
every call does nothing.

The watchdog is fed from the event loop it guards (:meth:`SystemdNotifier.watchdog`): a loop blocked
by a hung call stops feeding it, which is what makes systemd restart the process.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket

log = logging.getLogger(__name__)


class SystemdNotifier:
    def __init__(self, environ: dict[str, str] | None = None):
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET", "")
        self.address = "\0" + address[1:] if address.startswith("@") else address
        watchdog_usec = env.get("WATCHDOG_USEC", "")
        watchdog_pid = env.get("WATCHDOG_PID", "")
        # WATCHDOG_PID names the process meant to feed it (a child started by us must not)
        ours = not watchdog_pid or watchdog_pid == str(os.getpid())
        self.watchdog_s = int(watchdog_usec) / 1e6 if watchdog_usec.isdigit() and ours else None

    @property
    def enabled(self) -> bool:
        return bool(self.address)

    def notify(self, *lines: str) -> bool:
        """Send ``KEY=value`` lines; False (logged once per call) when there is no socket or it refuses."""
        if not self.address:
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto("\n".join(lines).encode(), self.address)
            return True
        except OSError as exc:
            log.warning("systemd notify socket %r refused %s: %s", self.address, lines, exc)
            return False

    def ready(self, status: str = "") -> bool:
        return self.notify("READY=1", *([f"STATUS={status}"] if status else []))

    def stopping(self) -> bool:
        return self.notify("STOPPING=1")

    async def watchdog(self) -> None:
        """Feed the watchdog at half its period until cancelled (returns at once when there is none)."""
        if self.watchdog_s is None or not self.address:
            return
        interval = max(self.watchdog_s / 2, 0.05)
        while True:
            self.notify("WATCHDOG=1")
            await asyncio.sleep(interval)
