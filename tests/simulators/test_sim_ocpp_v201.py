"""OCPP 2.0.1 charging stations against a small CSMS written with the real `ocpp` library.

Simulated time runs 60x: a 10 s meter interval is 1/6 s, the 120 s phase-switch pause 2 s.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from ocpp.routing import on
from ocpp.v201 import ChargePoint, call, call_result
from ocpp.v201.enums import Action

from hinode.services import free_port
from simulators.ocpp import ChargerFleet
from simulators.ocpp.clock import parse_ocpp_time
from simulators.ocpp.ev import Car
from tests.simulators.ocpp_central import CentralSystem, RecordingLink, eventually, fast_fleet

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]
CAR_3P = Car(id_tag="EMP0007", battery_kwh=50.0, max_current_a=16.0, phases=3)


class CsmsLink(RecordingLink, ChargePoint):
    """The CSMS's side of one station: accepts everything."""

    results = call_result

    @on(Action.authorize)
    def on_authorize(self, id_token, **_):
        return call_result.Authorize(id_token_info={"status": "Accepted"})

    @on(Action.transaction_event)
    def on_transaction_event(self, **_):
        return call_result.TransactionEvent()


class Csms(CentralSystem):
    subprotocol = "ocpp2.0.1"
    link_class = CsmsLink

    def events(self, event_type: str | None = None) -> list[dict]:
        return [e for e in self.of("TransactionEvent") if event_type in (None, e["eventType"])]

    def periodic(self) -> list[dict]:
        """Periodic meter values as {measurand/phase: value, "<key>:unit": unit, "ts": ..., "event": ...}."""
        rows = []
        for event in self.events("Updated"):
            if event["triggerReason"] != "MeterValuePeriodic":
                continue
            for value in event["meterValue"]:
                row = {"ts": parse_ocpp_time(value["timestamp"]), "event": event}
                for sample in value["sampledValue"]:
                    key = sample["measurand"] + (f"/{sample['phase']}" if sample.get("phase") else "")
                    row[key] = sample["value"]
                    row[f"{key}:unit"] = sample.get("unitOfMeasure", {}).get("unit")
                rows.append(row)
        return rows


@pytest.fixture
async def csms():
    server = Csms(free_port())
    await server.start()
    yield server
    await server.stop()


def fleet_for(csms: Csms, **options) -> ChargerFleet:
    return fast_fleet(f"ws://127.0.0.1:{csms.port}", "2.0.1", **options)


def profile(limit: float, unit: str = "A", purpose: str = "TxDefaultProfile", transaction_id: str | None = None,
            phases: int | None = None, evse_id: int = 1) -> call.SetChargingProfile:
    period = {"start_period": 0, "limit": limit}
    if phases:
        period["number_phases"] = phases
    body = {"id": 5, "stack_level": 0, "charging_profile_purpose": purpose, "charging_profile_kind": "Relative",
            "charging_schedule": [{"id": 1, "charging_rate_unit": unit, "charging_schedule_period": [period]}]}
    if transaction_id:
        body["transaction_id"] = transaction_id
    return call.SetChargingProfile(evse_id=evse_id, charging_profile=body)


async def test_transaction_events_carry_meter_values_and_end_when_the_car_leaves(csms):
    async with fleet_for(csms) as fleet:
        station = fleet["CP01"]
        await eventually(lambda: csms.of("StatusNotification"), "the first StatusNotification")
        assert csms.of("BootNotification")[0]["chargingStation"]["vendorName"] == "hinode"
        assert csms.of("StatusNotification")[0]["connectorStatus"] == "Available"

        station.plug_in(1, CAR_3P, soc=30.0)
        await eventually(lambda: len(csms.periodic()) >= 5, "five periodic meter values")
        assert csms.of("Authorize")[0]["idToken"] == {"idToken": "EMP0007", "type": "ISO14443"}
        assert csms.of("StatusNotification")[1]["connectorStatus"] == "Occupied"
        started = csms.events("Started")[0]
        assert started["triggerReason"] == "Authorized" and started["seqNo"] == 0
        assert started["idToken"]["idToken"] == "EMP0007" and started["evse"] == {"id": 1, "connectorId": 1}
        assert started["transactionInfo"]["chargingState"] == "Charging"
        assert started["meterValue"][0]["sampledValue"][0]["context"] == "Transaction.Begin"
        tx_id = started["transactionInfo"]["transactionId"]

        rows = csms.periodic()[-4:]
        for row in rows:
            assert row["event"]["transactionInfo"]["transactionId"] == tx_id
            assert row["Energy.Active.Import.Register:unit"] == "Wh" and row["Power.Active.Import:unit"] == "W"
            assert row["Current.Import/L1"] == 16.0 and row["Current.Import/L3:unit"] == "A"
            assert row["SoC:unit"] == "Percent" and row["Voltage/L2-N:unit"] == "V"
        for before, after in zip(rows, rows[1:]):
            seconds = (after["ts"] - before["ts"]).total_seconds()
            assert after["Energy.Active.Import.Register"] - before["Energy.Active.Import.Register"] == \
                pytest.approx(before["Power.Active.Import"] * seconds / 3600, rel=0.02, abs=0.5)
            # 50 kWh battery: SoC rises 1 % per 500 Wh
            assert after["SoC"] - before["SoC"] == pytest.approx(
                (after["Energy.Active.Import.Register"] - before["Energy.Active.Import.Register"]) / 500, abs=0.02)

        station.unplug(1)
        await eventually(lambda: csms.events("Ended"), "TransactionEvent Ended")
        ended = csms.events("Ended")[0]
        assert ended["triggerReason"] == "EVDeparted"
        assert ended["transactionInfo"]["stoppedReason"] == "EVDisconnected"
        assert [e["seqNo"] for e in csms.events()] == list(range(len(csms.events())))
        await eventually(lambda: csms.of("StatusNotification")[-1]["connectorStatus"] == "Available", "Available")


async def test_variables_choose_measurands_and_interval(csms):
    async with fleet_for(csms, phase_switching=True) as fleet:
        station = fleet["CP01"]
        await eventually(lambda: "CP01" in csms.links and csms.of("StatusNotification"), "connected")
        link = csms.links["CP01"]
        names = [("SmartChargingCtrlr", "RateUnit"), ("SmartChargingCtrlr", "Phases3to1"),
                 ("ChargingStation", "NumberOfConnectors"), ("SampledDataCtrlr", "TxUpdatedMeasurands"),
                 ("SampledDataCtrlr", "Nonsense")]
        answer = await link.call(call.GetVariables(get_variable_data=[
            {"component": {"name": c}, "variable": {"name": v}} for c, v in names]))
        got = {r["variable"]["name"]: (r["attribute_status"], r.get("attribute_value"))
               for r in answer.get_variable_result}
        assert got["RateUnit"] == ("Accepted", "A,W") and got["Phases3to1"] == ("Accepted", "true")
        assert got["NumberOfConnectors"] == ("Accepted", "1") and got["Nonsense"][0] == "UnknownVariable"
        assert got["TxUpdatedMeasurands"][1].split(",")[0] == "Energy.Active.Import.Register"

        answer = await link.call(call.SetVariables(set_variable_data=[
            {"component": {"name": "SampledDataCtrlr"}, "variable": {"name": "TxUpdatedMeasurands"},
             "attribute_value": "Energy.Active.Import.Register,Power.Active.Import"},
            {"component": {"name": "SampledDataCtrlr"}, "variable": {"name": "TxUpdatedInterval"},
             "attribute_value": "30"},
            {"component": {"name": "SampledDataCtrlr"}, "variable": {"name": "TxUpdatedMeasurands"},
             "attribute_value": "Humidity"}]))
        assert [r["attribute_status"] for r in answer.set_variable_result] == ["Accepted", "Accepted", "Rejected"]

        station.plug_in(1, CAR_3P, soc=30.0)
        await eventually(lambda: len(csms.periodic()) >= 3, "three periodic meter values")
        rows = csms.periodic()
        assert all(set(k for k in row if ":" not in k) == {"ts", "event", "Energy.Active.Import.Register",
                                                           "Power.Active.Import"} for row in rows)
        for before, after in zip(rows, rows[1:]):
            assert 29.5 <= (after["ts"] - before["ts"]).total_seconds() <= 40


async def test_profiles_limit_suspend_and_switch_phases(csms):
    async with fleet_for(csms, phase_switching=True, max_current_a=32.0) as fleet:
        station = fleet["CP01"]
        conn = station.connector(1)
        await eventually(lambda: "CP01" in csms.links and csms.of("StatusNotification"), "connected")
        link = csms.links["CP01"]
        station.plug_in(1, Car("EMP0002", 60.0, 32.0, 3), soc=30.0)
        await eventually(lambda: conn.current_a == 32.0, "charging at 32 A")
        tx_id = csms.events("Started")[0]["transactionInfo"]["transactionId"]

        assert (await link.call(profile(8.0, purpose="TxProfile", transaction_id="other"))).status == "Rejected"
        assert (await link.call(profile(8.0, purpose="TxProfile", transaction_id=tx_id))).status == "Accepted"
        await eventually(lambda: conn.current_a == 8.0, "8 A from the TxProfile")

        assert (await link.call(profile(11040.0, unit="W", purpose="TxProfile", transaction_id=tx_id))).status \
            == "Accepted"
        await eventually(lambda: abs(conn.current_a - 16.0) < 0.01, "11040 W as 16 A on 3 phases")

        assert (await link.call(profile(5.0, purpose="TxProfile", transaction_id=tx_id))).status == "Accepted"
        await eventually(lambda: any(e["triggerReason"] == "ChargingStateChanged"
                                     and e["transactionInfo"]["chargingState"] == "SuspendedEVSE"
                                     for e in csms.events("Updated")), "ChargingStateChanged to SuspendedEVSE")

        assert (await link.call(profile(20.0, purpose="TxProfile", transaction_id=tx_id, phases=1))).status \
            == "Accepted"
        asked_at = station.clock.now()
        await eventually(lambda: conn.phases_in_use == 1 and conn.current_a == 20.0, "20 A on one phase", 15)
        await eventually(lambda: [r for r in csms.periodic() if r["Current.Import/L1"] == 20.0],
                         "a meter value on one phase")
        first = [r for r in csms.periodic() if r["Current.Import/L1"] == 20.0][0]
        assert first["Current.Import/L2"] == 0.0 and first["ts"] >= asked_at + timedelta(seconds=115)

        composite = await link.call(call.GetCompositeSchedule(duration=300, evse_id=1, charging_rate_unit="W"))
        assert composite.status == "Accepted"
        assert composite.schedule["charging_schedule_period"][0]["limit"] == pytest.approx(20 * 230.0)


async def test_remote_start_and_stop(csms):
    async with fleet_for(csms) as fleet:
        station = fleet["CP01"]
        await eventually(lambda: "CP01" in csms.links and csms.of("StatusNotification"), "connected")
        link = csms.links["CP01"]
        refused = await link.call(call.RequestStartTransaction(id_token={"id_token": "APP1", "type": "Central"},
                                                               remote_start_id=7, evse_id=1))
        assert refused.status == "Rejected"          # no car on the connector
        station.plug_in(1, CAR_3P, soc=30.0, badge=False)
        answer = await link.call(call.RequestStartTransaction(id_token={"id_token": "APP1", "type": "Central"},
                                                              remote_start_id=7, evse_id=1))
        assert answer.status == "Accepted"
        await eventually(lambda: csms.events("Started"), "Started")
        started = csms.events("Started")[0]
        assert started["triggerReason"] == "RemoteStart" and started["transactionInfo"]["remoteStartId"] == 7
        tx_id = started["transactionInfo"]["transactionId"]
        answer = await link.call(call.RequestStopTransaction(transaction_id=tx_id))
        assert answer.status == "Accepted"
        await eventually(lambda: csms.events("Ended"), "Ended")
        ended = csms.events("Ended")[0]
        assert ended["triggerReason"] == "RemoteStop" and ended["transactionInfo"]["stoppedReason"] == "Remote"
        assert ended["transactionInfo"]["chargingState"] == "EVConnected"     # the car is still plugged in


async def test_offline_events_are_sent_late_marked_offline(csms):
    async with fleet_for(csms) as fleet:
        station = fleet["CP01"]
        await eventually(lambda: csms.of("StatusNotification"), "connected")
        station.plug_in(1, CAR_3P, soc=30.0)
        await eventually(lambda: csms.events("Started"), "Started while online")
        await csms.stop()
        await eventually(lambda: not station.connected, "the station noticing the drop")
        dropped_at = station.clock.now()
        await eventually(lambda: len(station.queued("TransactionEvent")) >= 3,
                         "events queued while offline")
        station.unplug(1)
        unplugged_at = station.clock.now()

        await csms.start()
        await eventually(lambda: csms.events("Ended"), "the queued Ended event", 15)
        late = [p for _, name, p, number in csms.log if number == 2 and name == "TransactionEvent"]
        assert len(late) >= 4 and all(p.get("offline") is True for p in late)
        stamps = [parse_ocpp_time(p["timestamp"]) for p in late]
        assert stamps == sorted(stamps) and dropped_at <= stamps[0] and stamps[-1] <= unplugged_at
        assert late[-1]["eventType"] == "Ended"
        assert [e["seqNo"] for e in csms.events()] == list(range(len(csms.events())))


async def test_two_connectors_are_two_evses_with_their_own_cars(csms):
    async with fleet_for(csms, connectors=2) as fleet:
        station = fleet["CP01"]
        await eventually(lambda: len(csms.of("StatusNotification")) >= 2, "both EVSEs reported")
        assert sorted(s["evseId"] for s in csms.of("StatusNotification")) == [1, 2]
        station.plug_in(1, soc=30.0)
        station.plug_in(2, soc=50.0)
        await eventually(lambda: len(csms.events("Started")) == 2, "two transactions")
        started = {e["evse"]["id"]: e for e in csms.events("Started")}
        assert started[1]["idToken"]["idToken"] == "EMP0001" and started[2]["idToken"]["idToken"] == "EMP0002"
        assert started[1]["transactionInfo"]["transactionId"] != started[2]["transactionInfo"]["transactionId"]
