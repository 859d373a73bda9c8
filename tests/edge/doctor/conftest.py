"""Doctor tests: coroutine tests run on a fresh event loop; a null-modem that honours line settings.

The simulator's pseudo-terminal cable relays bytes whatever baud rate or parity each end set
(a pty has no line speed). A real RS-485 line garbles frames when the two ends disagree, so
``line_settings_matter`` swaps in a cable that drops the bytes while the client's speed or
parity differs from the simulator's: a wrong baud rate then looks like silence, as on a bus.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import termios

import pytest

from simulators.modbus import server as modbus_server
from simulators.modbus.nullmodem import PtyNullModem


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem):
    if not inspect.iscoroutinefunction(pyfuncitem.obj) or pyfuncitem.get_closest_marker("anyio"):
        return None
    kwargs = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
    asyncio.run(pyfuncitem.obj(**kwargs))
    return True


def _line(fd: int) -> tuple[int, int]:
    iflag, oflag, cflag, lflag, ispeed, ospeed, cc = termios.tcgetattr(fd)
    return ospeed, cflag & (termios.PARENB | termios.PARODD | termios.CSIZE | termios.CSTOPB)


class LineSettingsNullModem(PtyNullModem):
    def __init__(self) -> None:
        super().__init__()
        self.bytes_dropped = 0

    def _pump(self, source: int, target: int) -> None:
        _, server_slave, _, client_slave = self._fds
        if _line(server_slave) == _line(client_slave):
            return super()._pump(source, target)
        try:
            self.bytes_dropped += len(os.read(source, 4096))
        except OSError:                  # nothing to read (BlockingIOError) or the cable is closing
            pass


@pytest.fixture
def line_settings_matter(monkeypatch):
    """The RTU simulator gets a cable that garbles (drops) bytes while the two ends' settings differ."""
    modems: list[LineSettingsNullModem] = []

    def make() -> LineSettingsNullModem:
        modems.append(LineSettingsNullModem())
        return modems[-1]

    monkeypatch.setattr(modbus_server, "PtyNullModem", make)
    return modems
