"""The central system the simulator's OCPP tests of both versions talk to: a small server on the
real ``ocpp`` library that records every request it gets.

A test module subclasses :class:`CentralSystem` with its version's subprotocol and link class
(:class:`RecordingLink` mixed into that version's ``ChargePoint``, with the answers).
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from types import ModuleType

import websockets
from ocpp.routing import on

from simulators.ocpp import ChargerFleet
from tests.support.waiting import wait_until

# Simulated time runs 60x: a 10 s meter interval is 1/6 s, the 120 s phase-switch pause 2 s.
FAST_FLEET = {"time_scale": 60, "meter_interval_s": 10, "ramp_s": 5, "switch_delay_s": 120, "commute": False}


async def eventually(predicate, what: str, timeout: float = 10.0):
    """tests/support/waiting.wait_until in a worker thread, so the event loop keeps serving both peers."""
    return await asyncio.to_thread(wait_until, predicate, what, timeout)


def now_text() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def fast_fleet(url: str, version: str, **options) -> ChargerFleet:
    """One simulated charger of ``version`` on fast simulated time (``options`` override)."""
    return ChargerFleet(url, chargers=1, version=version, **{**FAST_FLEET, **options})


class RecordingLink:
    """The central system's side of one charger: logs each request as
    (charger id, action, payload, connection number) before it is answered, and gives the answers
    that are worded alike in both versions; a subclass sets ``results`` to its version's
    ``ocpp`` call_result module and answers the rest."""

    results: ModuleType

    def __init__(self, charger_id, ws, central: CentralSystem):
        super().__init__(charger_id, ws)
        self.central = central

    async def _handle_call(self, msg):
        self.central.log.append((self.id, msg.action, msg.payload, self.central.connection_number))
        return await super()._handle_call(msg)

    @on("BootNotification")
    def on_boot(self, **_):
        return self.results.BootNotification(current_time=now_text(), interval=self.central.heartbeat_s,
                                             status=self.central.boot_status)

    @on("Heartbeat")
    def on_heartbeat(self, **_):
        return self.results.Heartbeat(current_time=now_text())

    @on("StatusNotification")
    def on_status(self, **_):
        return self.results.StatusNotification()

    @on("MeterValues")
    def on_meter_values(self, **_):
        return self.results.MeterValues()


class CentralSystem:
    subprotocol = ""
    link_class: type = RecordingLink

    def __init__(self, port: int, heartbeat_s: int = 30, boot_status: str = "Accepted"):
        self.port = port
        self.heartbeat_s = heartbeat_s
        self.boot_status = boot_status
        self.log: list[tuple[str, str, dict, int]] = []
        self.links: dict[str, RecordingLink] = {}
        self.connection_number = 0          # counts start()s: which run of the server a request reached
        self._server = None

    async def start(self, **serve_options) -> None:
        self.connection_number += 1
        self._server = await websockets.serve(self._on_connect, "127.0.0.1", self.port,
                                              subprotocols=[self.subprotocol], **serve_options)

    async def stop(self) -> None:
        self._server.close()
        await self._server.wait_closed()

    async def _on_connect(self, ws) -> None:
        if ws.subprotocol is None:
            await ws.close()
            return
        link = self.link_class(ws.request.path.strip("/").split("/")[-1], ws, self)
        self.links[link.id] = link
        try:
            await link.start()
        except websockets.exceptions.ConnectionClosed:
            pass

    def of(self, action: str) -> list[dict]:
        return [payload for _, name, payload, _ in self.log if name == action]
