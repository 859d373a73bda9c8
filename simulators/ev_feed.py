"""The EV chargers' total power, told to the PV site simulator by another process over UDP on loopback.

The charge point simulators run in their own process. Whenever their total charging
power changes (and at least every few seconds while charging) they send one datagram:
the total in watts as ASCII text, e.g. ``b"7400"`` or ``b"11040.5"``::

    from simulators.ev_feed import send_ev_power
    send_ev_power(7400.0, port=15030)                # or from a shell:
    # echo 7400 > /dev/udp/127.0.0.1/15030

A value is believed for ``stale_after_s`` (30 s by default): if the sender stops (its
process ended) the site's EV power falls back to 0 instead of holding the last value
forever. Datagrams that are not a finite number >= 0 are counted in ``rejected`` and
ignored. UDP needs no connection, so either side can start first or restart.
"""

from __future__ import annotations

import asyncio
import math
import socket
import time
from collections.abc import Callable


def send_ev_power(watts: float, port: int, host: str = "127.0.0.1") -> None:
    """Tell the site simulator listening on ``host:port`` the chargers' total power now."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(f"{float(watts):.1f}".encode(), (host, port))


class EvPowerFeed(asyncio.DatagramProtocol):
    """``await feed.start()``; ``feed()`` is the latest total in W (0 when none or stale)."""

    def __init__(self, port: int = 0, host: str = "127.0.0.1", stale_after_s: float = 30.0,
                 clock: Callable[[], float] = time.monotonic):
        if stale_after_s <= 0:
            raise ValueError(f"stale_after_s must be > 0, got {stale_after_s}")
        self.host, self.requested_port, self.stale_after_s, self.clock = host, port, stale_after_s, clock
        self.port: int | None = None
        self.received = 0
        self.rejected = 0
        self._watts = 0.0
        self._at: float | None = None
        self._transport: asyncio.DatagramTransport | None = None

    def set(self, watts: float) -> None:
        self._watts, self._at = float(watts), self.clock()

    def __call__(self) -> float:
        if self._at is None or self.clock() - self._at > self.stale_after_s:
            return 0.0
        return self._watts

    def datagram_received(self, data: bytes, addr) -> None:
        try:
            watts = float(data.decode("ascii").strip())
        except (UnicodeDecodeError, ValueError):
            watts = math.nan
        if not math.isfinite(watts) or watts < 0:
            self.rejected += 1
            return
        self.received += 1
        self.set(watts)

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._transport, _ = await loop.create_datagram_endpoint(lambda: self, local_addr=(self.host, self.requested_port))
        self.port = self._transport.get_extra_info("sockname")[1]

    async def stop(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None
