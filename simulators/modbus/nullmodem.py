"""A virtual null-modem cable made of two pseudo-terminals, relayed in asyncio.

The RTU server opens ``server_port`` and a serial client opens ``client_port`` (both
``/dev/pts/N`` paths, usable by pyserial like a USB RS-485 adapter). Bytes written on
one side come out on the other. Pure Python: no socat.

This process keeps its own descriptor of each terminal open, so reading a master
never fails with EIO while a client is disconnected and the cable survives clients
that close and reopen their port. Bytes nobody reads are dropped when the kernel
buffer is full, as on a real line with no listener.
"""

from __future__ import annotations

import asyncio
import os
import tty


class PtyNullModem:
    def __init__(self) -> None:
        self._fds: list[int] = []
        self._masters: tuple[int, int] | None = None
        self.server_port = ""
        self.client_port = ""
        self.bytes_relayed = 0

    def open(self) -> None:
        """Create both terminals and start relaying on the running event loop."""
        loop = asyncio.get_running_loop()
        master_a, slave_a = os.openpty()
        master_b, slave_b = os.openpty()
        self._fds = [master_a, slave_a, master_b, slave_b]
        for slave in (slave_a, slave_b):
            tty.setraw(slave)          # no echo or line editing before a client configures the port
        for master in (master_a, master_b):
            os.set_blocking(master, False)
        self.server_port, self.client_port = os.ttyname(slave_a), os.ttyname(slave_b)
        self._masters = (master_a, master_b)
        loop.add_reader(master_a, self._pump, master_a, master_b)
        loop.add_reader(master_b, self._pump, master_b, master_a)

    def _pump(self, source: int, target: int) -> None:
        try:
            data = os.read(source, 4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            return
        view = memoryview(data)
        while view:
            try:
                written = os.write(target, view)
            except (BlockingIOError, OSError):
                return
            self.bytes_relayed += written
            view = view[written:]

    def close(self) -> None:
        if self._masters is not None:
            loop = asyncio.get_running_loop()
            for master in self._masters:
                loop.remove_reader(master)
            self._masters = None
        for fd in self._fds:
            try:
                os.close(fd)
            except OSError:
                pass
        self._fds = []
