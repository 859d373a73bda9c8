"""Both ends of an OCPP 2.0.1 link for the v201 tests, over real websockets on loopback.

* :class:`Csms` serves :class:`edge_agent.sources.ocpp.v201.Connection` (the code under test)
  with a :class:`RecordingEvents` in place of the source.
* :class:`StationPeer` is the charging station: the real ``ocpp.v201.ChargePoint`` with handlers
  for what a CSMS asks of it, a small device model, and a record of every frame it received.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter, defaultdict
from datetime import datetime, timezone

from ocpp.routing import on
from ocpp.v201 import ChargePoint, call, call_result
from ocpp.v201.datatypes import ChargingStationType
from ocpp.v201.enums import Action
from websockets.asyncio.client import connect
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed

from edge_agent.sources.ocpp.model import BootInfo, BootSettings, Sample, TransactionStart, TransactionStop
from edge_agent.sources.ocpp.v201 import Connection
from tests.support.waiting import wait_until

SUBPROTOCOL = "ocpp2.0.1"
FAST = BootSettings(heartbeat_interval_s=60, meter_value_interval_s=15, response_timeout_s=2.0)


async def eventually(predicate, what: str, timeout: float = 5.0):
    """``wait_until`` off the event loop, so the peers keep talking while it polls."""
    return await asyncio.to_thread(wait_until, predicate, what, timeout)


def iso(ms: int) -> str:
    moment = datetime.fromtimestamp(ms / 1000, timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def ms(text: str) -> int:
    return round(datetime.fromisoformat(text).timestamp() * 1000)


class RecordingEvents:
    """The source's side of :class:`ChargerEvents`: records every call, accepts known tags."""

    def __init__(self, known_tags=("04A1B2C3",)):
        self.known_tags = set(known_tags)
        self.boots: list[BootInfo] = []
        self.statuses: list[tuple[int, str, str, int]] = []
        self.samples: list[tuple[int, str | None, Sample]] = []
        self.authorized: list[str] = []
        self.started: list[TransactionStart] = []
        self.ended: list[TransactionStop] = []
        self.protocol_errors: Counter[str] = Counter()
        self.ready: list = []

    def on_boot(self, info):
        self.boots.append(info)

    def on_status(self, connector, status, error_code, ts_ms):
        self.statuses.append((connector, status, error_code, ts_ms))

    def on_samples(self, connector, transaction_id, samples):
        self.samples.extend((connector, transaction_id, sample) for sample in samples)

    def authorize(self, id_tag):
        self.authorized.append(id_tag)
        return id_tag in self.known_tags

    def on_transaction_started(self, start):
        self.started.append(start)

    def on_transaction_ended(self, stop):
        self.ended.append(stop)

    def on_protocol_error(self, code, detail):
        self.protocol_errors[code] += 1

    def on_ready(self, link):
        self.ready.append(link)


class StationPeer(ChargePoint):
    """A charging station with ``evses`` EVSEs. ``device_model`` maps "Component.Variable" to its
    value; components in ``unknown_components`` answer UnknownComponent; actions in ``held`` are
    answered only once ``release`` is set (a station that does not answer in time)."""

    def __init__(self, station_id, websocket, device_model=None, unknown_components=(), evses=1):
        super().__init__(station_id, websocket, response_timeout=5)
        self.evses = evses
        self.device_model = dict(device_model or {})
        self.unknown_components = set(unknown_components)
        self.frames: list = []                          # every frame received, parsed
        self.requests: dict[str, list[dict]] = defaultdict(list)
        self.held: set[str] = set()
        self.release = asyncio.Event()

    async def route_message(self, raw_msg):
        try:
            self.frames.append(json.loads(raw_msg))
        except ValueError:
            self.frames.append(raw_msg)
        await super().route_message(raw_msg)

    async def close(self) -> None:
        await self._connection.close()

    async def send_raw(self, frame: str) -> None:
        """A frame as it is, past the library's packing and validation."""
        await self._connection.send(frame)

    def call_errors(self, unique_id: str) -> list[list]:
        return [f for f in self.frames if isinstance(f, list) and f[:2] == [4, unique_id]]

    def results(self, unique_id: str) -> list[list]:
        return [f for f in self.frames if isinstance(f, list) and f[:2] == [3, unique_id]]

    async def _record(self, action: str, payload: dict) -> None:
        self.requests[action].append(payload)
        if action in self.held:
            await self.release.wait()

    async def boot(self, vendor="Hinode", model="WB-201", serial="SN-7") -> call_result.BootNotification:
        return await self.call(call.BootNotification(
            charging_station=ChargingStationType(model=model, vendor_name=vendor, serial_number=serial,
                                                 firmware_version="2.4.1"),
            reason="PowerUp"))

    # ---- what the CSMS asks

    @on(Action.get_variables)
    async def on_get_variables(self, get_variable_data, **kwargs):
        await self._record("GetVariables", {"get_variable_data": get_variable_data})
        results = []
        for item in get_variable_data:
            key = f"{item['component']['name']}.{item['variable']['name']}"
            result = {"component": item["component"], "variable": item["variable"]}
            evse_id = (item["component"].get("evse") or {}).get("id", 0)
            if item["component"]["name"] in self.unknown_components or evse_id > self.evses:
                result["attribute_status"] = "UnknownComponent"
            elif item["component"]["name"] == "EVSE" and item["variable"]["name"] == "Available":
                result.update(attribute_status="Accepted", attribute_value="true")
            elif key in self.device_model:
                result.update(attribute_status="Accepted", attribute_value=self.device_model[key])
            else:
                result["attribute_status"] = "UnknownVariable"
            results.append(result)
        return call_result.GetVariables(get_variable_result=results)

    @on(Action.set_variables)
    async def on_set_variables(self, set_variable_data, **kwargs):
        await self._record("SetVariables", {"set_variable_data": set_variable_data})
        results = []
        for item in set_variable_data:
            result = {"component": item["component"], "variable": item["variable"]}
            if item["component"]["name"] in self.unknown_components:
                result["attribute_status"] = "UnknownComponent"
            else:
                self.device_model[f"{item['component']['name']}.{item['variable']['name']}"] = item["attribute_value"]
                result["attribute_status"] = "Accepted"
            results.append(result)
        return call_result.SetVariables(set_variable_result=results)

    @on(Action.set_charging_profile)
    async def on_set_charging_profile(self, evse_id, charging_profile, **kwargs):
        await self._record("SetChargingProfile", {"evse_id": evse_id, "charging_profile": charging_profile})
        return call_result.SetChargingProfile(status="Accepted")

    @on(Action.clear_charging_profile)
    async def on_clear_charging_profile(self, **kwargs):
        await self._record("ClearChargingProfile", kwargs)
        return call_result.ClearChargingProfile(status="Accepted")

    @on(Action.get_composite_schedule)
    async def on_get_composite_schedule(self, duration, evse_id, **kwargs):
        await self._record("GetCompositeSchedule", {"duration": duration, "evse_id": evse_id})
        return call_result.GetCompositeSchedule(status="Accepted", schedule={
            "evseId": evse_id, "duration": duration, "scheduleStart": "2026-11-29T08:00:00Z",
            "chargingRateUnit": "A", "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 16.0, "numberPhases": 3}]})

    @on(Action.request_start_transaction)
    async def on_request_start_transaction(self, id_token, remote_start_id, **kwargs):
        await self._record("RequestStartTransaction",
                           {"id_token": id_token, "remote_start_id": remote_start_id, **kwargs})
        return call_result.RequestStartTransaction(status="Accepted")

    @on(Action.request_stop_transaction)
    async def on_request_stop_transaction(self, transaction_id, **kwargs):
        await self._record("RequestStopTransaction", {"transaction_id": transaction_id})
        return call_result.RequestStopTransaction(status="Accepted")

    @on(Action.reset)
    async def on_reset(self, type, **kwargs):
        await self._record("Reset", {"type": type, **kwargs})
        return call_result.Reset(status="Scheduled" if type == "OnIdle" else "Accepted")

    @on(Action.unlock_connector)
    async def on_unlock_connector(self, evse_id, connector_id, **kwargs):
        await self._record("UnlockConnector", {"evse_id": evse_id, "connector_id": connector_id})
        return call_result.UnlockConnector(status="Unlocked")

    @on(Action.trigger_message)
    async def on_trigger_message(self, requested_message, **kwargs):
        await self._record("TriggerMessage", {"requested_message": requested_message, **kwargs})
        return call_result.TriggerMessage(status="Accepted")


class SilentStation(StationPeer):
    """A station that implements none of the device model messages (answers NotImplemented)."""

    on_get_variables = None
    on_set_variables = None


class Csms:
    """:class:`Connection` served on a free loopback port, one per station that connects."""

    def __init__(self, settings: BootSettings = FAST, events: RecordingEvents | None = None):
        self.settings = settings
        self.events = events or RecordingEvents()
        self.connections: dict[str, Connection] = {}
        self.returned: list[str] = []
        self._server = None
        self._clients: list = []

    async def __aenter__(self) -> "Csms":
        self._server = await serve(self._serve, "127.0.0.1", 0, subprotocols=[SUBPROTOCOL])
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc) -> None:
        for websocket, task in self._clients:
            await websocket.close()
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        self._server.close()
        await self._server.wait_closed()

    async def _serve(self, websocket) -> None:
        station_id = websocket.request.path.strip("/")
        connection = Connection(station_id, websocket, self.events, self.settings)
        self.connections[station_id] = connection
        await connection.start()
        self.returned.append(station_id)        # start() ended without an exception

    async def station(self, station_id: str = "CP-201", peer_class=StationPeer, **peer_options) -> StationPeer:
        websocket = await connect(f"ws://127.0.0.1:{self.port}/{station_id}", subprotocols=[SUBPROTOCOL])
        peer = peer_class(station_id, websocket, **peer_options)
        task = asyncio.get_running_loop().create_task(self._run(peer))
        self._clients.append((websocket, task))
        await eventually(lambda: station_id in self.connections, "the CSMS to take the connection")
        return peer

    @staticmethod
    async def _run(peer: StationPeer) -> None:
        try:
            await peer.start()
        except ConnectionClosed:
            pass

    async def booted(self, station_id: str = "CP-201", **peer_options) -> tuple[StationPeer, Connection]:
        """A station that booted and got configured (on_ready seen)."""
        peer = await self.station(station_id, **peer_options)
        await peer.boot()
        connection = self.connections[station_id]
        await eventually(lambda: connection in self.events.ready, "the connection to be ready")
        return peer, connection
