"""A simulated OCPP 2.0.1 charging station (the messages; the behaviour is in station.py).

Each connector is an EVSE with one connector (``evse_id`` = connector number). A
transaction starts when the driver is authorized (TransactionEvent Started), charging-state
changes and periodic meter values are TransactionEvent Updated, and it ends when the car
leaves or the central system stops it (Ended). Events made while offline carry
``offline=True``.
"""

from __future__ import annotations

from datetime import datetime

from ocpp.routing import after, on
from ocpp.v201 import ChargePoint, call, call_result
from ocpp.v201.enums import Action

from simulators.ocpp.clock import ocpp_time
from simulators.ocpp.connector import Connector, Transaction
from simulators.ocpp.smart import composite_schedule
from simulators.ocpp.station import ChargerLink, SimCharger

TRIGGERABLE = ("BootNotification", "Heartbeat", "MeterValues", "StatusNotification", "TransactionEvent")
CHARGING_STATE = {"Charging": "Charging", "SuspendedEV": "SuspendedEV", "SuspendedEVSE": "SuspendedEVSE",
                  "Preparing": "EVConnected", "Finishing": "EVConnected"}
# 1.6-style stop reasons used by station.py -> (2.0.1 stoppedReason, triggerReason)
STOP_REASONS = {"EVDisconnected": ("EVDisconnected", "EVDeparted"), "Remote": ("Remote", "RemoteStop"),
                "Local": ("Local", "StopAuthorized"), "HardReset": ("ImmediateReset", "ResetCommand"),
                "SoftReset": ("ImmediateReset", "ResetCommand"), "UnlockCommand": ("Other", "UnlockCommand")}


def meter_value(when: datetime, sampled: list[dict]) -> dict:
    values = []
    for s in sampled:
        value = {"value": s["value"], "context": s["context"], "measurand": s["measurand"],
                 "location": s["location"]}
        if s["unit"]:
            value["unit_of_measure"] = {"unit": s["unit"]}
        if s["phase"]:
            value["phase"] = s["phase"]
        values.append(value)
    return {"timestamp": ocpp_time(when), "sampled_value": values}


def connector_status(status: str) -> str:
    return status if status in ("Available", "Unavailable", "Faulted") else "Occupied"


class V201Charger(SimCharger):
    version = "2.0.1"
    subprotocol = "ocpp2.0.1"

    def make_link(self, ws):
        return _Link201(self, ws)

    def boot_payload(self):
        return call.BootNotification(
            charging_station={"model": self.options.model, "vendor_name": self.options.vendor,
                              "serial_number": f"SIM-{self.charger_id}", "firmware_version": "1.0.0"},
            reason="PowerUp")

    def heartbeat_payload(self):
        return call.Heartbeat()

    def authorize_payload(self, id_tag: str):
        return call.Authorize(id_token={"id_token": id_tag, "type": "ISO14443"})

    def is_authorized(self, response) -> bool:
        return response.id_token_info["status"] == "Accepted"

    def status_payload(self, conn: Connector):
        return call.StatusNotification(timestamp=ocpp_time(self.clock.now()),
                                       connector_status=connector_status(conn.status),
                                       evse_id=conn.number, connector_id=1)

    def on_status_change(self, conn: Connector, old: str | None, new: str) -> None:
        if old is None or connector_status(old) != connector_status(new):
            payload = self.status_payload(conn)
            self.enqueue("StatusNotification", lambda: payload)
        if conn.tx is not None and conn.tx.seq_no > 0 and conn.tx.charging_state != CHARGING_STATE.get(new, "Idle"):
            self._event(conn, conn.tx, "Updated", "ChargingStateChanged", self.clock.now())

    def _event(self, conn: Connector, tx: Transaction, event_type: str, trigger: str, when: datetime,
               samples: list[dict] | None = None, **extra) -> None:
        info = {"transaction_id": tx.remote_id, "charging_state": CHARGING_STATE.get(conn.status, "Idle")}
        info.update(extra.pop("info", {}))
        tx.charging_state = info["charging_state"]
        payload = call.TransactionEvent(
            event_type=event_type, timestamp=ocpp_time(when), trigger_reason=trigger, seq_no=tx.seq_no,
            transaction_info=info, meter_value=[meter_value(when, samples)] if samples else None,
            offline=True if not self.connected else None, evse={"id": conn.number, "connector_id": 1}, **extra)
        tx.seq_no += 1
        self.enqueue("TransactionEvent", lambda: payload, keep=True)

    def on_transaction_started(self, conn: Connector, remote: bool) -> None:
        tx = conn.tx
        # Unique across restarts of the simulator with the same --start, as the CSMS keeps ids.
        tx.remote_id = f"{self.charger_id}-{tx.started:%y%m%d%H%M}-{self._ids.getrandbits(24):06x}"
        extra = {"info": {"remote_start_id": tx.remote_start_id}} if tx.remote_start_id is not None else {}
        self._event(conn, tx, "Started", "RemoteStart" if remote else "Authorized", tx.started,
                    self.samples(conn, "Transaction.Begin", ["Energy.Active.Import.Register"]),
                    id_token={"id_token": tx.id_tag, "type": "ISO14443"}, **extra)

    def send_meter_values(self, conn: Connector, context: str) -> None:
        now = self.clock.now()
        sampled = self.samples(conn, context)
        if conn.tx is not None:
            trigger = "Trigger" if context == "Trigger" else "MeterValuePeriodic"
            self._event(conn, conn.tx, "Updated", trigger, now, sampled)
        else:
            value = meter_value(now, sampled)
            self.enqueue("MeterValues", lambda: call.MeterValues(evse_id=conn.number, meter_value=[value]))

    def on_transaction_ended(self, conn: Connector, tx: Transaction, reason: str, now: datetime) -> None:
        stopped, trigger = STOP_REASONS.get(reason, ("Other", "AbnormalCondition"))
        self._event(conn, tx, "Ended", trigger, now,
                    self.samples(conn, "Transaction.End", ["Energy.Active.Import.Register"]),
                    info={"stopped_reason": stopped,
                          "charging_state": "EVConnected" if conn.car is not None and reason != "EVDisconnected"
                          else "Idle"})


class _Link201(ChargerLink, ChargePoint):
    charger: V201Charger

    @on(Action.get_variables)
    def on_get_variables(self, get_variable_data: list, **_):
        settings = self.charger.settings
        results = []
        for item in get_variable_data:
            key = settings.key_for(item["component"]["name"], item["variable"]["name"])
            result = {"component": item["component"], "variable": item["variable"]}
            if key is None:
                result["attribute_status"] = "UnknownVariable"
            elif item.get("attribute_type", "Actual") != "Actual":
                result["attribute_status"] = "NotSupportedAttributeType"
            else:
                result.update(attribute_status="Accepted", attribute_value=settings.get(key))
            results.append(result)
        return call_result.GetVariables(get_variable_result=results)

    @on(Action.set_variables)
    def on_set_variables(self, set_variable_data: list, **_):
        settings = self.charger.settings
        results = []
        for item in set_variable_data:
            key = settings.key_for(item["component"]["name"], item["variable"]["name"])
            status = "UnknownVariable" if key is None else settings.set(key, str(item["attribute_value"]))
            results.append({"attribute_status": "Rejected" if status == "NotSupported" else status,
                            "component": item["component"], "variable": item["variable"]})
        self.charger.wake()
        return call_result.SetVariables(set_variable_result=results)

    @on(Action.set_charging_profile)
    def on_set_charging_profile(self, evse_id: int, charging_profile: dict, **_):
        self.charger.profiles_received.append({"evse_id": evse_id, **charging_profile})
        return call_result.SetChargingProfile(status=self.charger.accept_charging_profile(
            charging_profile, evse_id, transaction_id_optional=False))

    @on(Action.clear_charging_profile)
    def on_clear_charging_profile(self, charging_profile_id: int | None = None,
                                  charging_profile_criteria: dict | None = None, **_):
        criteria = charging_profile_criteria or {}
        return call_result.ClearChargingProfile(status=self.charger.clear_charging_profiles(
            charging_profile_id, criteria.get("evse_id"), criteria.get("charging_profile_purpose"),
            criteria.get("stack_level")))

    @on(Action.get_composite_schedule)
    def on_get_composite_schedule(self, duration: int, evse_id: int, charging_rate_unit: str | None = None, **_):
        if evse_id > len(self.charger.connectors):
            return call_result.GetCompositeSchedule(status="Rejected")
        found = composite_schedule(self.charger, evse_id, duration, charging_rate_unit)
        return call_result.GetCompositeSchedule(status="Accepted", schedule={
            "evse_id": evse_id, "duration": duration, "schedule_start": ocpp_time(found["start"]),
            "charging_rate_unit": found["unit"], "charging_schedule_period": found["periods"]})

    @on(Action.request_start_transaction)
    def on_request_start_transaction(self, id_token: dict, remote_start_id: int, evse_id: int | None = None,
                                     charging_profile: dict | None = None, **_):
        conn = self.charger.connector_to_start(evse_id)
        if conn is None:
            return call_result.RequestStartTransaction(status="Rejected")
        self._after["start"] = (conn, id_token["id_token"], charging_profile, remote_start_id)
        return call_result.RequestStartTransaction(status="Accepted")

    @after(Action.request_start_transaction)
    def after_request_start_transaction(self, **_):
        self.start_accepted()

    @on(Action.request_stop_transaction)
    def on_request_stop_transaction(self, transaction_id: str, **_):
        conn = self.charger.connector_with_transaction(transaction_id)
        if conn is not None:
            self._after["stop"] = conn
        return call_result.RequestStopTransaction(status="Rejected" if conn is None else "Accepted")

    @after(Action.request_stop_transaction)
    def after_request_stop_transaction(self, **_):
        self.stop_accepted()

    @on(Action.change_availability)
    def on_change_availability(self, operational_status: str, evse: dict | None = None, **_):
        number = evse["id"] if evse else 0
        if number > len(self.charger.connectors):
            return call_result.ChangeAvailability(status="Rejected")
        return call_result.ChangeAvailability(status=self.charger.set_available(number,
                                                                                operational_status == "Operative"))

    @on(Action.reset)
    def on_reset(self, type: str, **_):
        return call_result.Reset(status="Accepted")

    @after(Action.reset)
    def after_reset(self, type: str, **_):
        self.charger.reset(hard=type == "Immediate")

    @on(Action.unlock_connector)
    def on_unlock_connector(self, evse_id: int, connector_id: int, **_):
        if not 1 <= evse_id <= len(self.charger.connectors) or connector_id != 1:
            return call_result.UnlockConnector(status="UnknownConnector")
        if self.charger.connector(evse_id).tx is not None:
            return call_result.UnlockConnector(status="OngoingAuthorizedTransaction")
        return call_result.UnlockConnector(status="Unlocked")

    @on(Action.trigger_message)
    def on_trigger_message(self, requested_message: str, evse: dict | None = None, **_):
        if requested_message not in TRIGGERABLE:
            return call_result.TriggerMessage(status="NotImplemented")
        if evse and not 1 <= evse["id"] <= len(self.charger.connectors):
            return call_result.TriggerMessage(status="Rejected")
        return call_result.TriggerMessage(status="Accepted")

    @after(Action.trigger_message)
    def after_trigger_message(self, requested_message: str, evse: dict | None = None, **_):
        self.charger.send_triggered(requested_message,
                                    [c for c in self.charger.connectors if not evse or c.number == evse["id"]])

    @on(Action.data_transfer)
    def on_data_transfer(self, vendor_id: str, **_):
        return call_result.DataTransfer(status="UnknownVendorId")
