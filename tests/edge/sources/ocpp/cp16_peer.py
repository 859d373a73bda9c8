"""An OCPP 1.6J charge point for the source tests: the real ``ocpp`` library over real websockets.

:class:`ChargePoint16` answers what a central system asks (configuration, profiles, remote
start/stop, reset, unlock, trigger) and records every request it got in ``received``
(action, payload as snake_case kwargs). ``open_charge_point`` connects one to a source;
``running_source`` starts a :class:`edge_agent.sources.ocpp.Source` on a free port and
collects its batches. ``eventually`` is the asyncio form of ``tests.support.waiting.wait_until``.
"""

from __future__ import annotations

import asyncio
import base64
import time
from contextlib import asynccontextmanager
from datetime import datetime, timezone

from ocpp.routing import on
from ocpp.v16 import ChargePoint, call, call_result
from ocpp.v16.enums import Action
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from edge_agent.sources.ocpp import Config, Source
from hinode.contract import META_KEYS, TelemetryEnvelope
from hinode.services import free_port
from tests.edge.sources.conftest import SourceRun, make_context
from tests.support.waiting import wait_until_async

DEFAULT_CONFIGURATION = {
    "ChargingScheduleAllowedChargingRateUnit": "Current",
    "ConnectorSwitch3to1PhaseSupported": "false",
    "NumberOfConnectors": "2",
    "MeterValuesSampledDataMaxLength": "4",
    "MeterValueSampleInterval": "60",
    "MeterValuesSampledData": "Energy.Active.Import.Register",
}


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def now_ms() -> int:
    return time.time_ns() // 1_000_000


async def eventually(predicate, what: str, timeout: float = 5.0):
    """The predicate's first truthy value, polled without blocking the loop; AssertionError at the deadline."""
    return await wait_until_async(predicate, what, timeout, interval=0.01)


class ChargePoint16(ChargePoint):
    def __init__(self, charge_point_id: str, connection, configuration: dict | None = None):
        super().__init__(charge_point_id, connection, response_timeout=5)
        self.configuration = dict(DEFAULT_CONFIGURATION if configuration is None else configuration)
        self.received: list[tuple[str, dict]] = []
        self.answer_status: dict[str, str] = {}     # action -> status to answer instead of the default

    def got(self, action: str) -> list[dict]:
        return [payload for name, payload in self.received if name == action]

    def _status(self, action: str, default: str = "Accepted") -> str:
        return self.answer_status.get(action, default)

    @on(Action.get_configuration)
    def on_get_configuration(self, **kwargs):
        self.received.append(("GetConfiguration", kwargs))
        keys = kwargs.get("key") or list(self.configuration)
        known = [{"key": k, "readonly": False, "value": self.configuration[k]} for k in keys if k in self.configuration]
        unknown = [k for k in keys if k not in self.configuration]
        return call_result.GetConfiguration(configuration_key=known, unknown_key=unknown or None)

    @on(Action.change_configuration)
    def on_change_configuration(self, key, value, **kwargs):
        self.received.append(("ChangeConfiguration", {"key": key, "value": value}))
        self.configuration[key] = value
        return call_result.ChangeConfiguration(status=self._status("ChangeConfiguration"))

    @on(Action.set_charging_profile)
    def on_set_charging_profile(self, **kwargs):
        self.received.append(("SetChargingProfile", kwargs))
        return call_result.SetChargingProfile(status=self._status("SetChargingProfile"))

    @on(Action.clear_charging_profile)
    def on_clear_charging_profile(self, **kwargs):
        self.received.append(("ClearChargingProfile", kwargs))
        return call_result.ClearChargingProfile(status=self._status("ClearChargingProfile"))

    @on(Action.get_composite_schedule)
    def on_get_composite_schedule(self, **kwargs):
        self.received.append(("GetCompositeSchedule", kwargs))
        schedule = {"chargingRateUnit": "A", "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 10.0}],
                    "duration": kwargs["duration"]}
        return call_result.GetCompositeSchedule(status="Accepted", connector_id=kwargs["connector_id"],
                                                schedule_start=iso(now_ms()), charging_schedule=schedule)

    @on(Action.remote_start_transaction)
    def on_remote_start(self, **kwargs):
        self.received.append(("RemoteStartTransaction", kwargs))
        return call_result.RemoteStartTransaction(status=self._status("RemoteStartTransaction"))

    @on(Action.remote_stop_transaction)
    def on_remote_stop(self, **kwargs):
        self.received.append(("RemoteStopTransaction", kwargs))
        return call_result.RemoteStopTransaction(status=self._status("RemoteStopTransaction"))

    @on(Action.reset)
    def on_reset(self, **kwargs):
        self.received.append(("Reset", kwargs))
        return call_result.Reset(status=self._status("Reset"))

    @on(Action.unlock_connector)
    def on_unlock(self, **kwargs):
        self.received.append(("UnlockConnector", kwargs))
        return call_result.UnlockConnector(status=self._status("UnlockConnector", "Unlocked"))

    @on(Action.trigger_message)
    def on_trigger(self, **kwargs):
        self.received.append(("TriggerMessage", kwargs))
        return call_result.TriggerMessage(status=self._status("TriggerMessage"))

    # ------------------------------------------------------------ what the charge point sends

    async def boot(self):
        return await self.call(call.BootNotification(charge_point_model="Wallbox-T", charge_point_vendor="Hinode"))

    async def status(self, connector: int, status: str, error_code: str = "NoError", ts_ms: int | None = None):
        return await self.call(call.StatusNotification(connector_id=connector, error_code=error_code, status=status,
                                                       timestamp=iso(ts_ms or now_ms())))

    async def authorize(self, id_tag: str) -> str:
        return (await self.call(call.Authorize(id_tag=id_tag))).id_tag_info["status"]

    async def start_transaction(self, connector: int, id_tag: str, meter_start_wh: int, ts_ms: int) -> int:
        answer = await self.call(call.StartTransaction(connector_id=connector, id_tag=id_tag,
                                                       meter_start=meter_start_wh, timestamp=iso(ts_ms)))
        return answer.transaction_id

    async def meter_values(self, connector: int, transaction_id: int | None, ts_ms: int, values: list[dict]):
        """``values``: sampledValue items in camelCase (value as a string, as 1.6 sends it)."""
        return await self.call(call.MeterValues(connector_id=connector, transaction_id=transaction_id,
                                                meter_value=[{"timestamp": iso(ts_ms), "sampledValue": values}]))

    async def stop_transaction(self, transaction_id: int, meter_stop_wh: int, ts_ms: int, reason: str = "Local",
                               transaction_data: list | None = None):
        return await self.call(call.StopTransaction(meter_stop=meter_stop_wh, timestamp=iso(ts_ms),
                                                    transaction_id=transaction_id, reason=reason,
                                                    transaction_data=transaction_data))


def basic_auth(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


@asynccontextmanager
async def open_charge_point(port: int, charge_point_id: str, password: str | None = None, *,
                            scheme: str = "ws", ssl=None, path_prefix: str = "", configuration: dict | None = None,
                            boot: bool = True):
    """A connected (and by default booted) ChargePoint16; closed on exit."""
    headers = basic_auth(charge_point_id, password) if password is not None else None
    ws = await connect(f"{scheme}://127.0.0.1:{port}{path_prefix}/{charge_point_id}", subprotocols=["ocpp1.6"],
                       additional_headers=headers, ssl=ssl, open_timeout=5)
    cp = ChargePoint16(charge_point_id, ws, configuration)
    task = asyncio.create_task(cp.start())
    try:
        if boot:
            cp.boot_answer = await cp.boot()
        yield cp
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        try:
            await ws.close()
        except ConnectionClosed:
            pass


def ocpp_config(tmp_path, **overrides) -> Config:
    """A source section on a free loopback port: chargers CP1 and CP2 (passwords pw-CP1, pw-CP2), profile 1."""
    section = {
        "type": "ocpp", "name": "chargers", "host": "127.0.0.1", "port": free_port(), "security_profile": 1,
        "meter_value_interval_s": 15, "response_timeout_s": 3,
        "chargers": [{"id": "CP1", "password": "pw-CP1"}, {"id": "CP2", "password": "pw-CP2"}],
        "auth_list": ["TAG-ANNA", "TAG-BEN"],
        "sessions_db": str(tmp_path / "chargers-ocpp.db"),
    }
    section.update(overrides)
    return Config.model_validate(section, context={"config_dir": tmp_path})


@asynccontextmanager
async def running_source(config: Config, context=None):
    """A connected Source whose batches a SourceRun collects (``run.batches``)."""
    context = context or make_context(config.name)
    async with SourceRun(Source(config, context)) as run:
        yield run


def assert_valid_envelopes(batches) -> None:
    """Every batch passes the wire contract as the agent would send it (names, units, meta keys)."""
    for seq, batch in enumerate(batches, start=1):
        envelope = TelemetryEnvelope.model_validate({
            "site": "s", "agent": "a", "device": batch.device, "kind": batch.kind, "profile": batch.profile,
            "seq": seq, "readings": [r.model_dump() for r in batch.readings], "meta": batch.meta})
        assert set(envelope.meta) <= META_KEYS[envelope.kind], (batch.device, envelope.meta)


def readings_of(batches, metric: str) -> list:
    return [r for b in batches for r in b.readings if r.metric == metric]
