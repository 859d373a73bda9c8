"""OCPP 2.0.1: one connected charging station, as :class:`ChargerEvents` calls and a
:class:`ChargerLink`.

The ``ocpp`` library routes and validates; this class adds what it leaves out: a CALLERROR for a
frame that is not OCPP at all (the library only logs it) and a count of every CALLERROR we send,
by code. The rest lives next door:

* ``v201_transactions``: TransactionEvent Started / Updated / Ended as transaction start / stop,
  samples and status (queued events a station sends after being offline keep their timestamps);
* ``v201_samples``: meter values as samples, the energy register;
* ``v201_device_model``: what is read and set after boot (GetVariables / SetVariables);
* ``v201_requests``: charging profiles and id tokens for the outbound calls.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from datetime import datetime, timezone

from ocpp.exceptions import OCPPError, UnknownCallErrorCodeError
from ocpp.messages import CallError
from ocpp.routing import after, on
from ocpp.v201 import ChargePoint, call, call_result
from ocpp.v201.datatypes import ClearChargingProfileType, EVSEType, IdTokenInfoType
from ocpp.v201.enums import Action, AuthorizationStatusEnumType, DataTransferStatusEnumType
from ocpp.v201.enums import ChargingProfileKindEnumType as Kind
from ocpp.v201.enums import MessageTriggerEnumType, ResetEnumType
from websockets.exceptions import ConnectionClosed

from edge_agent.sources.ocpp.disconnects import closed_as_connection_error, route_parsed_once
from edge_agent.sources.ocpp.wirelog import wire_log
from edge_agent.sources.ocpp import v201_device_model as device_model
from edge_agent.sources.ocpp import v201_requests as requests
from edge_agent.sources.ocpp.model import BootInfo, BootSettings, Capabilities, ChargerEvents, Limit, OcppVersion
from edge_agent.sources.ocpp.v201_samples import samples_from, timestamp_ms
from edge_agent.sources.ocpp.v201_transactions import TransactionEvent, Transactions

log = logging.getLogger("edge_agent.sources.ocpp.v201")

UNKNOWN_UNIQUE_ID = "-1"        # 2.0.1 RPC framework: the message id of an answer to an unreadable frame


def _unique_id_of(raw) -> str:
    try:
        frame = json.loads(raw)
    except (TypeError, ValueError):
        return UNKNOWN_UNIQUE_ID
    if isinstance(frame, list) and len(frame) > 1 and isinstance(frame[1], str):
        return frame[1]
    return UNKNOWN_UNIQUE_ID


def _failure(error: Exception) -> str:
    """What a call that got no usable answer is recorded as: the CALLERROR code, or NoAnswer."""
    if isinstance(error, TimeoutError):
        return "NoAnswer"
    return getattr(error, "code", "GenericError")


def _utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class Connection(ChargePoint):
    version = OcppVersion.V201
    # Relative suits stations whose clock cannot be trusted; Absolute starts a minute ago.
    schedule_kind: Kind = Kind.absolute

    def __init__(self, charger_id: str, websocket, events: ChargerEvents, settings: BootSettings):
        super().__init__(charger_id, websocket, response_timeout=settings.response_timeout_s, logger=wire_log)
        self.charger_id = charger_id
        self.events = events
        self.settings = settings
        self.capabilities = Capabilities()
        self.configuration_results: dict[str, str] = {}    # "Component.Variable" → the station's answer
        self.transactions = Transactions(events)
        self._remote_start_id = 0
        self._tasks: set[asyncio.Task] = set()
        self._configuring: asyncio.Task | None = None
        self._sent_call_ids: set[str] = set()      # CALLs on the wire, waiting for their answer
        self._closed = False

    async def start(self) -> None:
        """Serve until the socket closes. Calls still waiting for an answer then raise
        ConnectionError at once instead of a TimeoutError much later."""
        try:
            await super().start()
        except (ConnectionClosed, ConnectionError):     # ConnectionError: closed while we answered
            pass
        finally:
            self._closed = True
            for unique_id in self._sent_call_ids:
                self._response_queue.put_nowait(CallError(unique_id, "GenericError", "connection closed"))
            for task in self._tasks:
                task.cancel()

    # ------------------------------------------------------------ framing and errors

    async def route_message(self, raw_msg):
        try:
            await route_parsed_once(self, raw_msg, self._unparsable)
        except (TypeError, AttributeError) as error:
            # a CALL whose action is not a string cannot even be looked up in the route map
            await self._send(CallError(_unique_id_of(raw_msg), "FormatViolation",
                                       "Message is not a valid OCPP-J frame", {"cause": str(error)[:200]}).to_json())

    async def _unparsable(self, raw_msg: str, error: OCPPError) -> None:
        await self._send(CallError(_unique_id_of(raw_msg), error.code, error.description,
                                   {"cause": str(error.details.get("cause", ""))[:200]}).to_json())

    async def _send(self, message):
        if message.startswith("[2"):
            self._sent_call_ids.add(json.loads(message)[1])
        elif message.startswith("[4"):
            frame = json.loads(message)
            self.events.on_protocol_error(str(frame[2]), str(frame[3]))
        with closed_as_connection_error(self.charger_id):
            await super()._send(message)

    # ------------------------------------------------------------ station → central system

    @on(Action.boot_notification)
    def on_boot_notification(self, charging_station, reason, **kwargs):
        self.events.on_boot(BootInfo(vendor=charging_station["vendor_name"], model=charging_station["model"],
                                     serial=charging_station.get("serial_number", ""),
                                     firmware=charging_station.get("firmware_version", "")))
        return call_result.BootNotification(current_time=_utc_now(), interval=self.settings.heartbeat_interval_s,
                                            status=self.settings.boot_status)

    @after(Action.boot_notification)
    def after_boot_notification(self, **kwargs):
        if self.settings.boot_status != "Accepted":
            return
        if self._configuring is None or self._configuring.done():
            self._configuring = self._spawn(self._configure(), "configure")

    @on(Action.heartbeat)
    def on_heartbeat(self, **kwargs):
        return call_result.Heartbeat(current_time=_utc_now())

    @on(Action.status_notification)
    def on_status_notification(self, timestamp, connector_status, evse_id, connector_id, **kwargs):
        self.capabilities.connectors = max(self.capabilities.connectors, evse_id)
        # 2.0.1 has no error code here: faults come as NotifyEvent
        self.transactions.on_status(evse_id, connector_status, timestamp_ms(timestamp))
        return call_result.StatusNotification()

    @on(Action.authorize)
    def on_authorize(self, id_token, **kwargs):
        return call_result.Authorize(id_token_info=self._token_info(id_token["id_token"]))

    def _token_info(self, id_tag: str) -> IdTokenInfoType:
        accepted = self.events.authorize(id_tag)
        return IdTokenInfoType(status=AuthorizationStatusEnumType.accepted if accepted
                               else AuthorizationStatusEnumType.invalid)

    @on(Action.transaction_event)
    def on_transaction_event(self, event_type, timestamp, trigger_reason, seq_no, transaction_info,
                             meter_value=None, evse=None, id_token=None, offline=False, **kwargs):
        self.transactions.on_event(TransactionEvent(
            event_type=event_type, ts_ms=timestamp_ms(timestamp), seq_no=seq_no,
            transaction_id=transaction_info["transaction_id"], evse_id=evse["id"] if evse else None,
            id_tag=id_token["id_token"] if id_token else "", charging_state=transaction_info.get("charging_state"),
            stopped_reason=transaction_info.get("stopped_reason"), samples=samples_from(meter_value),
            offline=bool(offline)))
        return call_result.TransactionEvent(
            id_token_info=self._token_info(id_token["id_token"]) if id_token else None)

    @on(Action.meter_values)
    def on_meter_values(self, evse_id, meter_value, **kwargs):
        samples = samples_from(meter_value)
        if samples:
            self.events.on_samples(evse_id, self.transactions.running_on(evse_id), samples)
        return call_result.MeterValues()

    @on(Action.notify_report)
    def on_notify_report(self, report_data=None, **kwargs):
        device_model.apply_report(self.capabilities, report_data or [])
        return call_result.NotifyReport()

    @on(Action.notify_event)
    def on_notify_event(self, event_data, **kwargs):
        for event in event_data:
            log.info("%s: event %s.%s = %s (%s)", self.charger_id, event["component"]["name"],
                     event["variable"]["name"], event.get("actual_value"), event.get("trigger"))
        return call_result.NotifyEvent()

    @on(Action.security_event_notification)
    def on_security_event_notification(self, type, timestamp, **kwargs):
        log.warning("%s: security event %s at %s", self.charger_id, type, timestamp)
        return call_result.SecurityEventNotification()

    @on(Action.firmware_status_notification)
    def on_firmware_status_notification(self, status, **kwargs):
        log.info("%s: firmware %s", self.charger_id, status)
        return call_result.FirmwareStatusNotification()

    @on(Action.log_status_notification)
    def on_log_status_notification(self, status, **kwargs):
        return call_result.LogStatusNotification()

    @on(Action.data_transfer)
    def on_data_transfer(self, vendor_id, **kwargs):
        return call_result.DataTransfer(status=DataTransferStatusEnumType.unknown_vendor_id)

    # ------------------------------------------------------------ after boot

    def _spawn(self, coro, name: str) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coro, name=f"{self.charger_id}:{name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _configure(self) -> None:
        """Read the capabilities, set the sampling, then tell the source commands may go. What the
        station refuses, or leaves unanswered, keeps its default: a station that ignores the device
        model is still controlled."""
        try:
            await self._read_capabilities()
            await self._write_boot_settings()
        except ConnectionError as error:
            log.warning("%s: gone while being configured: %s", self.charger_id, error)
            return
        except ValueError as error:         # a settings value the schema refuses: configured in part
            log.error("%s: configuration after boot stopped: %s", self.charger_id, error)
        self.events.on_ready(self)

    def _note(self, key: device_model.VariableKey, status: str) -> None:
        self.configuration_results[str(key)] = status
        if status not in ("Accepted", "RebootRequired"):
            log.info("%s: %s: %s, default kept", self.charger_id, key, status)

    async def _read_capabilities(self) -> None:
        request = call.GetVariables(
            get_variable_data=[device_model.get_request(key) for key in device_model.BOOT_READS])
        try:
            answer = await self._call(request)
        except (OCPPError, UnknownCallErrorCodeError, TimeoutError) as error:
            for key in device_model.BOOT_READS:
                self._note(key, _failure(error))
            return
        device_model.apply_read_results(self.capabilities, answer.get_variable_result)
        for result in answer.get_variable_result:
            self._note(device_model.key_of(result), result["attribute_status"])
        try:
            evses = await self._call(call.GetVariables(get_variable_data=device_model.evse_probe()))
        except (OCPPError, UnknownCallErrorCodeError, TimeoutError) as error:
            log.info("%s: EVSEs not counted (%s)", self.charger_id, _failure(error))
            return
        self.capabilities.connectors = max(self.capabilities.connectors,
                                           device_model.evse_count(evses.get_variable_result))

    async def _write_boot_settings(self) -> None:
        writes = device_model.boot_writes(self.settings)
        try:
            answer = await self._call(call.SetVariables(
                set_variable_data=[device_model.set_request(key, value) for key, value in writes]))
        except TimeoutError as error:
            for key, _ in writes:
                self._note(key, _failure(error))
            return
        except (OCPPError, UnknownCallErrorCodeError):
            # a station taking fewer items per message (ItemsPerMessageSetVariables) gets them one by one
            for index, (key, value) in enumerate(writes):
                try:
                    self._note(key, await self.configure(str(key), value))
                except TimeoutError as error:
                    for unanswered, _ in writes[index:]:
                        self._note(unanswered, _failure(error))
                    return
            return
        for result in answer.set_variable_result:
            self._note(device_model.key_of(result), result["attribute_status"])

    # ------------------------------------------------------------ central system → station (ChargerLink)

    async def _call(self, payload):
        """The station's answer; OCPPError for a CALLERROR answer, ValueError for a request the
        library's schema refuses before it is sent (a tag longer than 36 characters, say)."""
        unique_id = str(uuid.uuid4())
        try:
            with closed_as_connection_error(self.charger_id):
                return await self.call(payload, suppress=False, unique_id=unique_id)
        except OCPPError as error:
            if unique_id not in self._sent_call_ids:
                raise ValueError(f"{type(payload).__name__} is not valid OCPP 2.0.1: {error}") from None
            if self._closed:
                raise ConnectionError(f"charger {self.charger_id} disconnected before answering") from None
            raise
        finally:
            self._sent_call_ids.discard(unique_id)

    async def _status(self, payload) -> str:
        """The answer's status; a CALLERROR answer is its error code."""
        try:
            answer = await self._call(payload)
        except OCPPError as error:
            return error.code
        except UnknownCallErrorCodeError:
            return "GenericError"
        return str(answer.status)

    async def set_limit(self, connector: int, limit: Limit, tx_profile: bool = False) -> str:
        transaction_id = None
        if tx_profile:
            transaction_id = self.transactions.running_on(connector)
            if transaction_id is None:
                log.warning("%s: no transaction on EVSE %d for a TxProfile", self.charger_id, connector)
                return "Rejected"
        profile = requests.charging_profile(connector, limit, self.capabilities.rate_units, transaction_id,
                                            self.schedule_kind)
        return await self._status(call.SetChargingProfile(evse_id=connector, charging_profile=profile))

    async def clear_limit(self, connector: int) -> str:
        return await self._status(call.ClearChargingProfile(charging_profile_criteria=ClearChargingProfileType(
            evse_id=connector, stack_level=requests.STACK_LEVEL)))

    async def composite_schedule(self, connector: int, duration_s: int) -> dict:
        try:
            answer = await self._call(call.GetCompositeSchedule(duration=duration_s, evse_id=connector))
        except OCPPError as error:
            return requests.composite_schedule_dict(error.code, None)
        except UnknownCallErrorCodeError:
            return requests.composite_schedule_dict("GenericError", None)
        return requests.composite_schedule_dict(str(answer.status), answer.schedule)

    async def remote_start(self, connector: int, id_tag: str) -> str:
        self._remote_start_id += 1
        return await self._status(call.RequestStartTransaction(
            id_token=requests.id_token(id_tag), remote_start_id=self._remote_start_id, evse_id=connector or None))

    async def remote_stop(self, transaction_id: str) -> str:
        return await self._status(call.RequestStopTransaction(transaction_id=transaction_id))

    async def reset(self, hard: bool = False) -> str:
        return await self._status(call.Reset(type=ResetEnumType.immediate if hard else ResetEnumType.on_idle))

    async def unlock(self, connector: int) -> str:
        return await self._status(call.UnlockConnector(evse_id=connector, connector_id=1))

    async def trigger(self, message: str, connector: int | None = None) -> str:
        try:
            requested = MessageTriggerEnumType(message)
        except ValueError:
            raise ValueError(f"trigger message {message!r}: expected one of "
                             f"{', '.join(m.value for m in MessageTriggerEnumType)}") from None
        return await self._status(call.TriggerMessage(
            requested_message=requested, evse=EVSEType(id=connector) if connector else None))

    async def configure(self, key: str, value: str) -> str:
        """``key`` is "Component.Variable" (or "Component.Variable.Instance"); the answer is the
        attribute status (Accepted, Rejected, RebootRequired, UnknownComponent, ...)."""
        request = device_model.set_request(device_model.parse_key(key), value)
        try:
            answer = await self._call(call.SetVariables(set_variable_data=[request]))
        except OCPPError as error:
            return error.code
        except UnknownCallErrorCodeError:
            return "GenericError"
        return str(answer.set_variable_result[0]["attribute_status"])

    def note_transaction(self, transaction_id: str, connector: int) -> None:
        """A transaction running from before (the agent restarted, or the station reconnected)."""
        self.transactions.note(transaction_id, connector)
