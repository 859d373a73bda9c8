"""OCPP 1.6J: one connected charge point, as :class:`ChargerEvents` calls and a :class:`ChargerLink`.

The ``ocpp`` library routes and validates; this class adds what it leaves out for 1.6:
a CALLERROR for a frame that is not OCPP at all (the library only logs it), the 1.6
spelling of error codes (``FormationViolation``, ``OccurenceConstraintViolation``), and a
count of every CALLERROR we send, by code.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from datetime import datetime, timezone

from ocpp.exceptions import OCPPError
from ocpp.messages import Call, CallError
from ocpp.routing import after, on
from ocpp.v16 import ChargePoint, call, call_result
from ocpp.v16.enums import (Action, AuthorizationStatus, ChargingProfileKindType, ChargingProfilePurposeType,
                            ChargingRateUnitType, DataTransferStatus, MessageTrigger, RegistrationStatus, ResetType)
from websockets.exceptions import ConnectionClosed

from edge_agent.sources.base import now_ms
from edge_agent.sources.ocpp.disconnects import closed_as_connection_error, route_parsed_once
from edge_agent.sources.ocpp.wirelog import wire_log
from edge_agent.sources.ocpp.model import (NOMINAL_VOLTAGE_V, plausible_ts, BootInfo, BootSettings, Capabilities, ChargerEvents,
                                           Limit, OcppVersion, RateUnit, Sample, TransactionStart, TransactionStop)

log = logging.getLogger("edge_agent.sources.ocpp.v16")



# The library names some codes as 2.0.1 does; a 1.6 charger expects the 1.6 spelling.
V16_ERROR_CODES = {"FormatViolation": "FormationViolation",
                   "OccurrenceConstraintViolation": "OccurenceConstraintViolation"}
UNKNOWN_UNIQUE_ID = "-1"
PROFILE_ID_BASE = 100           # one TxDefault/Tx profile id per connector: a new one replaces the old
CONFIG_KEYS = ["ChargingScheduleAllowedChargingRateUnit", "ConnectorSwitch3to1PhaseSupported",
               "NumberOfConnectors", "MeterValuesSampledDataMaxLength"]


def parse_ts(text: str | None) -> int:
    """An OCPP timestamp in ms; arrival time when missing, unreadable or implausible (a charger
    whose clock lost power reports 1970; one in the future would shadow every later value)."""
    arrival = now_ms()
    if not text:
        return arrival
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return arrival
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    ts = int(moment.timestamp() * 1000)
    return plausible_ts(ts, arrival)


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).isoformat().replace("+00:00", "Z")


def samples_of(meter_values: list | None) -> list[Sample]:
    """1.6 ``meterValue`` items (snake_case) → samples; values are strings, signed data is skipped."""
    samples = []
    for item in meter_values or []:
        ts = parse_ts(item.get("timestamp"))
        for sv in item.get("sampled_value") or []:
            if sv.get("format") == "SignedData":
                continue
            try:
                value = float(sv.get("value"))
            except (TypeError, ValueError):
                continue
            if not math.isfinite(value):
                continue
            samples.append(Sample(ts_ms=ts, measurand=sv.get("measurand") or "Energy.Active.Import.Register",
                                  value=value, unit=sv.get("unit") or "", phase=sv.get("phase") or "",
                                  context=sv.get("context") or "", location=sv.get("location") or ""))
    return samples


def _guess_unique_id(raw) -> str:
    try:
        frame = json.loads(raw)
        if isinstance(frame, list) and len(frame) > 1 and isinstance(frame[1], str):
            return frame[1]
    except (ValueError, TypeError):
        pass
    return UNKNOWN_UNIQUE_ID


def _rate_units(text: str) -> tuple[RateUnit, ...]:
    units = []
    for part in text.replace(" ", "").split(","):
        if part in ("Current", "A"):
            units.append(RateUnit.AMPS)
        elif part in ("Power", "W"):
            units.append(RateUnit.WATTS)
    return tuple(units) or (RateUnit.AMPS,)


class Connection(ChargePoint):
    version = OcppVersion.V16

    def __init__(self, charger_id: str, websocket, events: ChargerEvents, settings: BootSettings):
        super().__init__(charger_id, websocket, response_timeout=settings.response_timeout_s, logger=wire_log)
        self.charger_id = charger_id
        self.events = events
        self.settings = settings
        self.capabilities = Capabilities()
        self._tx_connector: dict[str, int] = {}
        self._configured = False
        self._tasks: set[asyncio.Task] = set()

    async def start(self) -> None:
        """Serve until the socket closes."""
        try:
            await super().start()
        except (ConnectionClosed, ConnectionError):     # ConnectionError: closed while we answered
            pass
        finally:
            for task in self._tasks:
                task.cancel()

    # ------------------------------------------------------------ framing and errors

    async def route_message(self, raw_msg):
        msg = await route_parsed_once(self, raw_msg, self._unparsable)
        if isinstance(msg, Call) and msg.action != Action.boot_notification:
            self._resumed_without_boot()

    async def _unparsable(self, raw_msg: str, error: OCPPError) -> None:
        await self._send(CallError(_guess_unique_id(raw_msg), error.code, error.description,
                                   {"cause": str(error.details.get("cause", ""))[:200]}).to_json())

    def _resumed_without_boot(self) -> None:
        """A charger that only lost its network reconnects without a BootNotification; its first
        message on the new connection stands in for the boot (it was accepted before)."""
        if not self._configured and self.settings.boot_status == "Accepted":
            self._configured = True
            self._spawn(self._configure(), "configure")

    async def _send(self, message):
        if message.startswith("[4"):
            frame = json.loads(message)
            frame[2] = V16_ERROR_CODES.get(frame[2], frame[2])
            message = json.dumps(frame, separators=(",", ":"), default=str)
            self.events.on_protocol_error(frame[2], str(frame[3]))
        with closed_as_connection_error(self.charger_id):
            await super()._send(message)

    # ------------------------------------------------------------ charger → central system

    @on(Action.boot_notification)
    def on_boot_notification(self, charge_point_vendor, charge_point_model, **kwargs):
        self.events.on_boot(BootInfo(vendor=charge_point_vendor, model=charge_point_model,
                                     serial=kwargs.get("charge_point_serial_number") or "",
                                     firmware=kwargs.get("firmware_version") or ""))
        return call_result.BootNotification(current_time=iso(now_ms()), interval=self.settings.heartbeat_interval_s,
                                            status=RegistrationStatus(self.settings.boot_status))

    @after(Action.boot_notification)
    def after_boot_notification(self, **kwargs):
        if self.settings.boot_status == "Accepted" and not any(t.get_name() == "configure" for t in self._tasks):
            self._configured = True
            self._spawn(self._configure(), "configure")

    @on(Action.heartbeat)
    def on_heartbeat(self, **kwargs):
        return call_result.Heartbeat(current_time=iso(now_ms()))

    @on(Action.status_notification)
    def on_status_notification(self, connector_id, error_code, status, **kwargs):
        self.events.on_status(connector_id, status, error_code, parse_ts(kwargs.get("timestamp")))
        return call_result.StatusNotification()

    @on(Action.authorize)
    def on_authorize(self, id_tag, **kwargs):
        return call_result.Authorize(id_tag_info={"status": self._tag_status(id_tag)})

    def _tag_status(self, id_tag: str) -> str:
        return AuthorizationStatus.accepted if self.events.authorize(id_tag) else AuthorizationStatus.invalid

    @on(Action.start_transaction)
    def on_start_transaction(self, connector_id, id_tag, meter_start, timestamp, **kwargs):
        transaction_id = self.events.next_transaction_id()
        self._tx_connector[str(transaction_id)] = connector_id
        self.events.on_transaction_started(TransactionStart(
            connector=connector_id, transaction_id=str(transaction_id), id_tag=id_tag,
            meter_start_wh=float(meter_start), ts_ms=parse_ts(timestamp)))
        return call_result.StartTransaction(transaction_id=transaction_id,
                                            id_tag_info={"status": self._tag_status(id_tag)})

    @on(Action.stop_transaction)
    def on_stop_transaction(self, meter_stop, timestamp, transaction_id, **kwargs):
        tx = str(transaction_id)
        samples = samples_of(kwargs.get("transaction_data"))
        if samples:
            self.events.on_samples(self._tx_connector.get(tx, 0), tx, samples)
        self.events.on_transaction_ended(TransactionStop(transaction_id=tx, meter_stop_wh=float(meter_stop),
                                                         ts_ms=parse_ts(timestamp), reason=kwargs.get("reason") or ""))
        self._tx_connector.pop(tx, None)
        if kwargs.get("id_tag"):
            return call_result.StopTransaction(id_tag_info={"status": self._tag_status(kwargs["id_tag"])})
        return call_result.StopTransaction()

    @on(Action.meter_values)
    def on_meter_values(self, connector_id, meter_value, **kwargs):
        tx = kwargs.get("transaction_id")
        self.events.on_samples(connector_id, str(tx) if tx is not None else None, samples_of(meter_value))
        return call_result.MeterValues()

    @on(Action.data_transfer)
    def on_data_transfer(self, vendor_id, **kwargs):
        accept = getattr(self.events, "accept_data_transfer", False)
        status = DataTransferStatus.accepted if accept else DataTransferStatus.unknown_vendor_id
        return call_result.DataTransfer(status=status)

    # ------------------------------------------------------------ after boot

    def _spawn(self, coro, name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _configure(self) -> None:
        try:
            await self._read_capabilities()
            await self.configure("MeterValueSampleInterval", str(self.settings.meter_value_interval_s))
            measurands = list(self.settings.measurands)[:self._max_measurands or None]
            await self.configure("MeterValuesSampledData", ",".join(measurands))
        except ConnectionError:
            return
        except (TimeoutError, OCPPError) as exc:
            log.warning("charger %s: configuration after boot incomplete: %r", self.charger_id, exc)
        except Exception:
            log.exception("charger %s: configuration after boot failed", self.charger_id)
        self.events.on_ready(self)

    _max_measurands = 0

    async def _read_capabilities(self) -> None:
        answer = await self._call(call.GetConfiguration(key=CONFIG_KEYS))
        values = {item.get("key"): item.get("value") for item in (answer.configuration_key or [])
                  if isinstance(item, dict)}
        caps = Capabilities()
        if values.get("ChargingScheduleAllowedChargingRateUnit"):
            caps.rate_units = _rate_units(values["ChargingScheduleAllowedChargingRateUnit"])
        caps.phase_switch = str(values.get("ConnectorSwitch3to1PhaseSupported", "")).lower() == "true"
        try:
            caps.connectors = max(1, int(values.get("NumberOfConnectors") or 1))
        except ValueError:
            pass
        try:
            self._max_measurands = max(0, int(values.get("MeterValuesSampledDataMaxLength") or 0))
        except ValueError:
            pass
        self.capabilities = caps

    # ------------------------------------------------------------ central system → charger (ChargerLink)

    async def _call(self, payload):
        with closed_as_connection_error(self.charger_id):
            return await self.call(payload, suppress=False)

    async def _status(self, payload) -> str:
        try:
            answer = await self._call(payload)
        except OCPPError as error:
            return error.code
        return str(getattr(answer, "status", "Accepted"))

    def _schedule_limit(self, limit: Limit) -> tuple[ChargingRateUnitType, float]:
        phases = limit.phases or 3
        allowed = self.capabilities.rate_units
        unit = limit.unit if limit.unit in allowed else allowed[0]
        value = limit.value
        if unit == RateUnit.WATTS and limit.unit == RateUnit.AMPS:
            value = value * NOMINAL_VOLTAGE_V * phases
        elif unit == RateUnit.AMPS and limit.unit == RateUnit.WATTS:
            value = value / (NOMINAL_VOLTAGE_V * phases)
        # truncated (whole W, 0.1 A) as evcc does; the epsilon absorbs float error of a conversion
        value = math.floor(value + 1e-6) if unit == RateUnit.WATTS else math.floor(value * 10 + 1e-6) / 10
        return ChargingRateUnitType(unit.value), max(0.0, float(value))

    async def set_limit(self, connector: int, limit: Limit, tx_profile: bool = False) -> str:
        unit, value = self._schedule_limit(limit)
        period = {"start_period": 0, "limit": value}
        if limit.phases:
            period["number_phases"] = limit.phases
        schedule = {"charging_rate_unit": unit, "charging_schedule_period": [period]}
        profile = {"charging_profile_id": PROFILE_ID_BASE + connector, "stack_level": 0,
                   "charging_profile_purpose": ChargingProfilePurposeType.tx_default_profile,
                   "charging_profile_kind": ChargingProfileKindType.absolute, "charging_schedule": schedule}
        transaction = next((tx for tx, c in self._tx_connector.items() if c == connector), None)
        if tx_profile and transaction is not None:
            profile["charging_profile_purpose"] = ChargingProfilePurposeType.tx_profile
            profile["charging_profile_kind"] = ChargingProfileKindType.relative
            profile["transaction_id"] = int(transaction)
        else:
            schedule["start_schedule"] = iso(now_ms() - 60_000)
        return await self._status(call.SetChargingProfile(connector_id=connector, cs_charging_profiles=profile))

    async def clear_limit(self, connector: int) -> str:
        return await self._status(call.ClearChargingProfile(id=PROFILE_ID_BASE + connector))

    async def composite_schedule(self, connector: int, duration_s: int) -> dict:
        answer = await self._call(call.GetCompositeSchedule(connector_id=connector, duration=duration_s))
        return {"status": str(answer.status), "schedule": answer.charging_schedule or {}}

    async def remote_start(self, connector: int, id_tag: str) -> str:
        return await self._status(call.RemoteStartTransaction(id_tag=id_tag, connector_id=connector or None))

    async def remote_stop(self, transaction_id: str) -> str:
        return await self._status(call.RemoteStopTransaction(transaction_id=int(transaction_id)))

    async def reset(self, hard: bool = False) -> str:
        return await self._status(call.Reset(type=ResetType.hard if hard else ResetType.soft))

    async def unlock(self, connector: int) -> str:
        return await self._status(call.UnlockConnector(connector_id=connector))

    async def trigger(self, message: str, connector: int | None = None) -> str:
        return await self._status(call.TriggerMessage(requested_message=MessageTrigger(message),
                                                      connector_id=connector))

    async def configure(self, key: str, value: str) -> str:
        return await self._status(call.ChangeConfiguration(key=key, value=value))

    def note_transaction(self, transaction_id: str, connector: int) -> None:
        """A session resumed from the store (the agent restarted while it ran)."""
        self._tx_connector[transaction_id] = connector
