"""A simulated OCPP 1.6J charge point (the messages; the behaviour is in station.py)."""

from __future__ import annotations

from datetime import datetime

from ocpp.routing import after, on
from ocpp.v16 import ChargePoint, call, call_result
from ocpp.v16.enums import Action

from simulators.ocpp.clock import ocpp_time
from simulators.ocpp.connector import Connector, Transaction
from simulators.ocpp.smart import composite_schedule
from simulators.ocpp.station import ChargerLink, SimCharger, SkipMessage

TRIGGERABLE = ("BootNotification", "Heartbeat", "MeterValues", "StatusNotification")


def meter_value(when: datetime, sampled: list[dict]) -> dict:
    """1.6 sends values as strings."""
    values = []
    for s in sampled:
        value = {"value": f"{s['value']:.2f}".rstrip("0").rstrip("."), "context": s["context"],
                 "measurand": s["measurand"], "location": s["location"]}
        if s["unit"]:
            value["unit"] = s["unit"]
        if s["phase"]:
            value["phase"] = s["phase"]
        values.append(value)
    return {"timestamp": ocpp_time(when), "sampled_value": values}


class V16Charger(SimCharger):
    version = "1.6"
    subprotocol = "ocpp1.6"

    def make_link(self, ws):
        return _Link16(self, ws)

    def boot_payload(self):
        return call.BootNotification(charge_point_model=self.options.model, charge_point_vendor=self.options.vendor,
                                     charge_point_serial_number=f"SIM-{self.charger_id}", firmware_version="1.0.0")

    def heartbeat_payload(self):
        return call.Heartbeat()

    def authorize_payload(self, id_tag: str):
        return call.Authorize(id_tag=id_tag)

    def is_authorized(self, response) -> bool:
        return response.id_tag_info["status"] == "Accepted"

    def status_payload(self, conn: Connector):
        return call.StatusNotification(connector_id=conn.number, error_code="NoError", status=conn.status,
                                       timestamp=ocpp_time(self.clock.now()))

    def on_status_change(self, conn: Connector, old: str | None, new: str) -> None:
        payload = self.status_payload(conn)
        self.enqueue("StatusNotification", lambda: payload)

    def on_transaction_started(self, conn: Connector, remote: bool) -> None:
        tx = conn.tx
        payload = call.StartTransaction(connector_id=conn.number, id_tag=tx.id_tag,
                                        meter_start=int(round(tx.meter_start_wh)), timestamp=ocpp_time(tx.started))

        def started(response) -> None:
            tx.remote_id = str(response.transaction_id)
            self.wake()         # a TxProfile for this id may already wait
        self.enqueue("StartTransaction", lambda: payload, keep=True, on_response=started)

    @staticmethod
    def _remote_id(tx: Transaction) -> int:
        if tx.remote_id is None:
            raise SkipMessage(f"transaction {tx.local_id} never started")
        return int(tx.remote_id)

    def send_meter_values(self, conn: Connector, context: str) -> None:
        now = self.clock.now()
        value = meter_value(now, self.samples(conn, context))
        tx = conn.tx
        if tx is None:
            self.enqueue("MeterValues", lambda: call.MeterValues(connector_id=conn.number, meter_value=[value]))
            return
        self.enqueue("MeterValues", lambda: call.MeterValues(
            connector_id=conn.number, meter_value=[value], transaction_id=self._remote_id(tx)), keep=True)

    def on_transaction_ended(self, conn: Connector, tx: Transaction, reason: str, now: datetime) -> None:
        end = meter_value(now, self.samples(conn, "Transaction.End", ["Energy.Active.Import.Register"]))
        meter_stop = int(round(conn.energy_wh))
        self.enqueue("StopTransaction", lambda: call.StopTransaction(
            meter_stop=meter_stop, timestamp=ocpp_time(now), transaction_id=self._remote_id(tx), reason=reason,
            id_tag=tx.id_tag, transaction_data=[end]), keep=True)


class _Link16(ChargerLink, ChargePoint):
    charger: V16Charger

    @on(Action.get_configuration)
    def on_get_configuration(self, key: list | None = None, **_):
        settings = self.charger.settings
        names = key or list(settings.values)
        known = [{"key": k, "readonly": not settings.setting(k).writable, "value": settings.get(k)}
                 for k in names if settings.setting(k)]
        unknown = [k for k in names if not settings.setting(k)]
        return call_result.GetConfiguration(configuration_key=known, unknown_key=unknown or None)

    @on(Action.change_configuration)
    def on_change_configuration(self, key: str, value: str, **_):
        status = self.charger.settings.set(key, value)
        self.charger.wake()
        return call_result.ChangeConfiguration(status=status)

    @on(Action.set_charging_profile)
    def on_set_charging_profile(self, connector_id: int, cs_charging_profiles: dict, **_):
        self.charger.profiles_received.append({"connector_id": connector_id, **cs_charging_profiles})
        return call_result.SetChargingProfile(status=self.charger.accept_charging_profile(
            cs_charging_profiles, connector_id, transaction_id_optional=True))

    @on(Action.clear_charging_profile)
    def on_clear_charging_profile(self, id: int | None = None, connector_id: int | None = None,
                                  charging_profile_purpose: str | None = None, stack_level: int | None = None, **_):
        return call_result.ClearChargingProfile(status=self.charger.clear_charging_profiles(
            id, connector_id, charging_profile_purpose, stack_level))

    @on(Action.get_composite_schedule)
    def on_get_composite_schedule(self, connector_id: int, duration: int, charging_rate_unit: str | None = None, **_):
        if connector_id > len(self.charger.connectors):
            return call_result.GetCompositeSchedule(status="Rejected")
        found = composite_schedule(self.charger, connector_id, duration, charging_rate_unit)
        return call_result.GetCompositeSchedule(
            status="Accepted", connector_id=connector_id, schedule_start=ocpp_time(found["start"]),
            charging_schedule={"duration": duration, "start_schedule": ocpp_time(found["start"]),
                               "charging_rate_unit": found["unit"], "charging_schedule_period": found["periods"]})

    @on(Action.remote_start_transaction)
    def on_remote_start_transaction(self, id_tag: str, connector_id: int | None = None,
                                    charging_profile: dict | None = None, **_):
        conn = self.charger.connector_to_start(connector_id)
        if conn is None:
            return call_result.RemoteStartTransaction(status="Rejected")
        self._after["start"] = (conn, id_tag, charging_profile)
        return call_result.RemoteStartTransaction(status="Accepted")

    @after(Action.remote_start_transaction)
    def after_remote_start_transaction(self, **_):
        self.start_accepted()

    @on(Action.remote_stop_transaction)
    def on_remote_stop_transaction(self, transaction_id: int, **_):
        conn = self.charger.connector_with_transaction(str(transaction_id))
        if conn is not None:
            self._after["stop"] = conn
        return call_result.RemoteStopTransaction(status="Rejected" if conn is None else "Accepted")

    @after(Action.remote_stop_transaction)
    def after_remote_stop_transaction(self, **_):
        self.stop_accepted()

    @on(Action.change_availability)
    def on_change_availability(self, connector_id: int, type: str, **_):
        if connector_id > len(self.charger.connectors):
            return call_result.ChangeAvailability(status="Rejected")
        return call_result.ChangeAvailability(status=self.charger.set_available(connector_id, type == "Operative"))

    @on(Action.reset)
    def on_reset(self, type: str, **_):
        return call_result.Reset(status="Accepted")

    @after(Action.reset)
    def after_reset(self, type: str, **_):
        self.charger.reset(hard=type == "Hard")

    @on(Action.unlock_connector)
    def on_unlock_connector(self, connector_id: int, **_):
        if not 1 <= connector_id <= len(self.charger.connectors):
            return call_result.UnlockConnector(status="NotSupported")
        conn = self.charger.connector(connector_id)
        if conn.tx is not None:
            self.charger.end_transaction(conn, "UnlockCommand")
        return call_result.UnlockConnector(status="Unlocked")

    @on(Action.trigger_message)
    def on_trigger_message(self, requested_message: str, connector_id: int | None = None, **_):
        if requested_message not in TRIGGERABLE:
            return call_result.TriggerMessage(status="NotImplemented")
        if connector_id is not None and not 0 <= connector_id <= len(self.charger.connectors):
            return call_result.TriggerMessage(status="Rejected")
        return call_result.TriggerMessage(status="Accepted")

    @after(Action.trigger_message)
    def after_trigger_message(self, requested_message: str, connector_id: int | None = None, **_):
        self.charger.send_triggered(requested_message,
                                    [c for c in self.charger.connectors if connector_id in (None, 0, c.number)])

    @on(Action.data_transfer)
    def on_data_transfer(self, vendor_id: str, **_):
        return call_result.DataTransfer(status="UnknownVendorId")
