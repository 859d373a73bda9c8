"""A charge point "written by someone else" for the charging end-to-end tests: nothing from the
product, only the ``ocpp`` library (``ocpp.v16`` / ``ocpp.v201`` ``ChargePoint`` as a client) over
``websockets``, connecting to the documented URL ``ws://host:port/<charger id>`` with HTTP Basic auth
(security profile 1). It answers what a central system asks after boot (configuration / device
model), records every request it gets, and drives one transaction with the messages a wallbox sends.
"""

from __future__ import annotations

import asyncio
import base64
import time
from datetime import datetime, timezone

from ocpp.routing import on
from ocpp.v16 import ChargePoint as ChargePoint16, call as call16, call_result as result16
from ocpp.v201 import ChargePoint as ChargePoint201, call as call201, call_result as result201
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed


def iso(ms: int) -> str:
    moment = datetime.fromtimestamp(ms / 1000, timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class _Recording:
    def got(self, action: str) -> list[dict]:
        return [payload for name, payload in self.received if name == action]


class Wallbox16(ChargePoint16, _Recording):
    """OCPP 1.6J, one connector, amps and watts accepted in profiles."""

    def __init__(self, charger_id, websocket):
        super().__init__(charger_id, websocket, response_timeout=10)
        self.received: list[tuple[str, dict]] = []
        self.config = {"ChargingScheduleAllowedChargingRateUnit": "Current,Power", "NumberOfConnectors": "1",
                       "ConnectorSwitch3to1PhaseSupported": "false", "MeterValuesSampledDataMaxLength": "8",
                       "MeterValueSampleInterval": "60", "MeterValuesSampledData": "Energy.Active.Import.Register"}
        self.transaction_id: int | None = None
        self.stop_requested = asyncio.Event()

    @on("GetConfiguration")
    def _get_configuration(self, **kwargs):
        self.received.append(("GetConfiguration", kwargs))
        keys = kwargs.get("key") or list(self.config)
        return result16.GetConfiguration(
            configuration_key=[{"key": k, "readonly": False, "value": self.config[k]}
                               for k in keys if k in self.config],
            unknown_key=[k for k in keys if k not in self.config] or None)

    @on("ChangeConfiguration")
    def _change_configuration(self, key, value):
        self.received.append(("ChangeConfiguration", {"key": key, "value": value}))
        self.config[key] = value
        return result16.ChangeConfiguration(status="Accepted")

    @on("SetChargingProfile")
    def _set_charging_profile(self, **kwargs):
        self.received.append(("SetChargingProfile", kwargs))
        return result16.SetChargingProfile(status="Accepted")

    @on("ClearChargingProfile")
    def _clear_charging_profile(self, **kwargs):
        self.received.append(("ClearChargingProfile", kwargs))
        return result16.ClearChargingProfile(status="Accepted")

    @on("RemoteStopTransaction")
    def _remote_stop(self, transaction_id):
        self.received.append(("RemoteStopTransaction", {"transaction_id": transaction_id}))
        ok = transaction_id == self.transaction_id
        if ok:
            self.stop_requested.set()
        return result16.RemoteStopTransaction(status="Accepted" if ok else "Rejected")

    @on("TriggerMessage")
    def _trigger(self, **kwargs):
        self.received.append(("TriggerMessage", kwargs))
        return result16.TriggerMessage(status="Accepted")

    # ------------------------------------------------------------------ what it sends

    async def boot(self) -> str:
        answer = await self.call(call16.BootNotification(charge_point_vendor="Elsewhere", charge_point_model="EW-11"))
        return answer.status

    async def status(self, status: str, ts: int) -> None:
        await self.call(call16.StatusNotification(connector_id=1, error_code="NoError", status=status,
                                                  timestamp=iso(ts)))

    async def authorize(self, tag: str) -> str:
        return (await self.call(call16.Authorize(id_tag=tag))).id_tag_info["status"]

    async def start_transaction(self, tag: str, meter_wh: float, ts: int) -> str:
        answer = await self.call(call16.StartTransaction(connector_id=1, id_tag=tag, meter_start=int(meter_wh),
                                                         timestamp=iso(ts)))
        self.transaction_id = answer.transaction_id
        return answer.id_tag_info["status"]

    async def meter(self, sample: dict, ts: int) -> None:
        await self.call(call16.MeterValues(connector_id=1, transaction_id=self.transaction_id,
                                           meter_value=[{"timestamp": iso(ts), "sampledValue": _values16(sample)}]))

    async def stop(self, meter_wh: float, ts: int, reason: str = "Local") -> None:
        await self.call(call16.StopTransaction(meter_stop=int(meter_wh), timestamp=iso(ts),
                                               transaction_id=self.transaction_id, reason=reason))


def _values16(sample: dict) -> list[dict]:
    """Strings, units as 1.6 names them."""
    values = [{"value": str(sample["wh"]), "measurand": "Energy.Active.Import.Register", "unit": "Wh"},
              {"value": str(sample["w"]), "measurand": "Power.Active.Import", "unit": "W"},
              {"value": str(sample["soc"]), "measurand": "SoC", "unit": "Percent"}]
    for phase, amps in zip(("L1", "L2", "L3"), sample["a"]):
        values.append({"value": str(amps), "measurand": "Current.Import", "phase": phase, "unit": "A"})
    values.append({"value": str(sample["v"]), "measurand": "Voltage", "phase": "L1-N", "unit": "V"})
    return values


def _values201(sample: dict, context: str) -> list[dict]:
    """Numbers with unitOfMeasure."""
    values = [{"value": sample["wh"], "measurand": "Energy.Active.Import.Register", "unitOfMeasure": {"unit": "Wh"}},
              {"value": sample["w"], "measurand": "Power.Active.Import", "unitOfMeasure": {"unit": "W"}},
              {"value": sample["soc"], "measurand": "SoC", "unitOfMeasure": {"unit": "Percent"}}]
    for phase, amps in zip(("L1", "L2", "L3"), sample["a"]):
        values.append({"value": amps, "measurand": "Current.Import", "phase": phase, "unitOfMeasure": {"unit": "A"}})
    values.append({"value": sample["v"], "measurand": "Voltage", "phase": "L1-N", "unitOfMeasure": {"unit": "V"}})
    return [dict(v, context=context) for v in values]


class Station201(ChargePoint201, _Recording):
    """OCPP 2.0.1, one EVSE with one connector."""

    def __init__(self, charger_id, websocket):
        super().__init__(charger_id, websocket, response_timeout=10)
        self.received: list[tuple[str, dict]] = []
        self.variables = {"SmartChargingCtrlr.RateUnit": "A,W", "SmartChargingCtrlr.Phases3to1": "false",
                          "ChargingStation.NumberOfConnectors": "1",
                          "SampledDataCtrlr.TxUpdatedMeasurandsMaxLength": "8"}
        self.transaction_id = f"TX-{charger_id}-{now_ms()}"
        self.seq = 0
        self.stop_requested = asyncio.Event()

    @on("GetVariables")
    def _get_variables(self, get_variable_data):
        self.received.append(("GetVariables", {"get_variable_data": get_variable_data}))
        results = []
        for item in get_variable_data:
            key = f"{item['component']['name']}.{item['variable']['name']}"
            result = {"component": item["component"], "variable": item["variable"]}
            if item["component"]["name"] == "EVSE":
                result.update(attribute_status="Accepted", attribute_value="true")
            elif key in self.variables:
                result.update(attribute_status="Accepted", attribute_value=self.variables[key])
            else:
                result["attribute_status"] = "UnknownVariable"
            results.append(result)
        return result201.GetVariables(get_variable_result=results)

    @on("SetVariables")
    def _set_variables(self, set_variable_data):
        self.received.append(("SetVariables", {"set_variable_data": set_variable_data}))
        results = []
        for item in set_variable_data:
            self.variables[f"{item['component']['name']}.{item['variable']['name']}"] = item["attribute_value"]
            results.append({"component": item["component"], "variable": item["variable"],
                            "attribute_status": "Accepted"})
        return result201.SetVariables(set_variable_result=results)

    @on("SetChargingProfile")
    def _set_charging_profile(self, **kwargs):
        self.received.append(("SetChargingProfile", kwargs))
        return result201.SetChargingProfile(status="Accepted")

    @on("ClearChargingProfile")
    def _clear_charging_profile(self, **kwargs):
        self.received.append(("ClearChargingProfile", kwargs))
        return result201.ClearChargingProfile(status="Accepted")

    @on("RequestStopTransaction")
    def _request_stop(self, transaction_id):
        self.received.append(("RequestStopTransaction", {"transaction_id": transaction_id}))
        ok = transaction_id == self.transaction_id
        if ok:
            self.stop_requested.set()
        return result201.RequestStopTransaction(status="Accepted" if ok else "Rejected")

    @on("TriggerMessage")
    def _trigger(self, **kwargs):
        self.received.append(("TriggerMessage", kwargs))
        return result201.TriggerMessage(status="Accepted")

    # ------------------------------------------------------------------ what it sends

    async def boot(self) -> str:
        answer = await self.call(call201.BootNotification(
            charging_station={"model": "EW-22", "vendor_name": "Elsewhere", "serial_number": "EW-0042"},
            reason="PowerUp"))
        return answer.status

    async def status(self, status: str, ts: int) -> None:
        status = {"Preparing": "Occupied", "Finishing": "Occupied", "Charging": "Occupied"}.get(status, status)
        await self.call(call201.StatusNotification(timestamp=iso(ts), connector_status=status, evse_id=1,
                                                   connector_id=1))

    async def authorize(self, tag: str) -> str:
        answer = await self.call(call201.Authorize(id_token={"id_token": tag, "type": "ISO14443"}))
        return answer.id_token_info["status"]

    async def _event(self, event_type: str, trigger: str, ts: int, sample: dict | None, context: str,
                     **info) -> dict:
        self.seq += 1
        kwargs = {}
        if sample is not None:
            kwargs["meter_value"] = [{"timestamp": iso(ts), "sampledValue": _values201(sample, context)}]
        answer = await self.call(call201.TransactionEvent(
            event_type=event_type, timestamp=iso(ts), trigger_reason=trigger, seq_no=self.seq,
            transaction_info={"transactionId": self.transaction_id, **info}, evse={"id": 1, "connectorId": 1},
            **kwargs, **({"id_token": {"idToken": self.tag, "type": "ISO14443"}} if event_type == "Started" else {})))
        return answer.id_token_info or {}

    async def start_transaction(self, tag: str, meter_wh: float, ts: int) -> str:
        self.tag = tag
        info = await self._event("Started", "Authorized", ts,
                                 {"wh": meter_wh, "w": 0.0, "a": (0.0, 0.0, 0.0), "v": 230.0, "soc": 30.0},
                                 "Transaction.Begin", chargingState="Charging")
        return info.get("status", "Accepted")

    async def meter(self, sample: dict, ts: int) -> None:
        await self._event("Updated", "MeterValuePeriodic", ts, sample, "Sample.Periodic", chargingState="Charging")

    async def stop(self, meter_wh: float, ts: int, reason: str = "Local") -> None:
        await self._event("Ended", "StopAuthorized" if reason == "Local" else "RemoteStop", ts,
                          {"wh": meter_wh, "w": 0.0, "a": (0.0, 0.0, 0.0), "v": 230.0, "soc": 80.0},
                          "Transaction.End", chargingState="EVConnected", stoppedReason=reason)


class Connected:
    """``async with Connected(port, id, password, "1.6") as cp``: the charge point connected and its
    message loop running."""

    def __init__(self, port: int, charger_id: str, password: str, version: str):
        self.url = f"ws://127.0.0.1:{port}/{charger_id}"
        self.charger_id, self.password, self.version = charger_id, password, version

    async def __aenter__(self):
        token = base64.b64encode(f"{self.charger_id}:{self.password}".encode()).decode()
        protocol = "ocpp1.6" if self.version == "1.6" else "ocpp2.0.1"
        self.websocket = await connect(self.url, subprotocols=[protocol],
                                       additional_headers={"Authorization": f"Basic {token}"})
        assert self.websocket.subprotocol == protocol
        peer_class = Wallbox16 if self.version == "1.6" else Station201
        self.cp = peer_class(self.charger_id, self.websocket)
        self.task = asyncio.get_running_loop().create_task(self._run())
        return self.cp

    async def _run(self):
        try:
            await self.cp.start()
        except ConnectionClosed:
            pass

    async def __aexit__(self, *exc):
        await self.websocket.close()
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
