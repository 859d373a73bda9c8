"""OCPP 1.6J charge points against a small central system written with the real `ocpp` library.

Simulated time runs 60x: a 10 s meter interval is 1/6 s, the 120 s phase-switch pause 2 s.
"""

from __future__ import annotations

import ssl
from datetime import datetime, time, timedelta, timezone

import pytest
from ocpp.routing import on
from ocpp.v16 import ChargePoint, call, call_result
from ocpp.v16.enums import Action
from websockets.asyncio.server import basic_auth

from hinode.certs import make_ca, make_signed
from hinode.services import free_port
from simulators.ocpp import ChargerFleet
from simulators.ocpp.clock import parse_ocpp_time
from simulators.ocpp.ev import LOCAL_TZ, Car, visit_on
from tests.simulators.ocpp_central import CentralSystem, RecordingLink, eventually, fast_fleet

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]
CAR_3P = Car(id_tag="EMP0001", battery_kwh=60.0, max_current_a=32.0, phases=3)


class CentralLink(RecordingLink, ChargePoint):
    """The central system's side of one charger: answers like a CSMS."""

    central: Central
    results = call_result

    @on(Action.authorize)
    def on_authorize(self, id_tag, **_):
        return call_result.Authorize(id_tag_info={"status": "Accepted"})

    @on(Action.start_transaction)
    def on_start(self, **_):
        self.central.next_tx += 1
        return call_result.StartTransaction(transaction_id=self.central.next_tx, id_tag_info={"status": "Accepted"})

    @on(Action.stop_transaction)
    def on_stop(self, **_):
        return call_result.StopTransaction()


class Central(CentralSystem):
    subprotocol = "ocpp1.6"
    link_class = CentralLink

    def __init__(self, port: int, heartbeat_s: int = 30, boot_status: str = "Accepted"):
        super().__init__(port, heartbeat_s, boot_status)
        self.next_tx = 100

    def meter_values(self) -> list[dict]:
        """Every sampled value of transaction MeterValues as {measurand/phase: float} with its timestamp."""
        rows = []
        for payload in self.of("MeterValues"):
            for value in payload["meterValue"]:
                row = {"ts": parse_ocpp_time(value["timestamp"]), "tx": payload.get("transactionId")}
                for sample in value["sampledValue"]:
                    key = sample.get("measurand", "Energy.Active.Import.Register") + \
                        (f"/{sample['phase']}" if sample.get("phase") else "")
                    row[key] = float(sample["value"])
                    row[f"{key}:unit"] = sample.get("unit", "Wh")
                rows.append(row)
        return rows


@pytest.fixture
async def central():
    server = Central(free_port())
    await server.start()
    yield server
    await server.stop()


def tx_default(limit: float, unit: str = "A", phases: int | None = None,
               profile_id: int = 1) -> call.SetChargingProfile:
    """What evcc sends: a TxDefaultProfile, Absolute from a minute ago, one period."""
    period = {"start_period": 0, "limit": limit}
    if phases:
        period["number_phases"] = phases
    start = (datetime.now(timezone.utc) - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return call.SetChargingProfile(connector_id=0, cs_charging_profiles={
        "charging_profile_id": profile_id, "stack_level": 1, "charging_profile_purpose": "TxDefaultProfile",
        "charging_profile_kind": "Absolute",
        "charging_schedule": {"charging_rate_unit": unit, "start_schedule": start,
                              "charging_schedule_period": [period]}})


def fleet_for(central: Central, **options) -> ChargerFleet:
    return fast_fleet(f"ws://127.0.0.1:{central.port}/ocpp", "1.6", **options)


async def test_session_boots_reports_status_and_meters_energy_consistent_with_power(central):
    async with fleet_for(central) as fleet:
        charger = fleet["CP01"]
        await eventually(lambda: central.of("StatusNotification"), "the first StatusNotification")
        boot = central.of("BootNotification")[0]
        assert boot["chargePointVendor"] == "hinode" and boot["chargePointModel"]
        assert central.of("StatusNotification")[0]["status"] == "Available"

        charger.plug_in(1, CAR_3P, soc=50.0)
        await eventually(lambda: len([r for r in central.meter_values() if r["tx"] == 101]) >= 6,
                         "six MeterValues of transaction 101")
        assert central.of("Authorize")[0]["idTag"] == "EMP0001"
        start = central.of("StartTransaction")[0]
        assert start["connectorId"] == 1 and start["idTag"] == "EMP0001"

        rows = [r for r in central.meter_values() if r["tx"] == 101][-5:]
        for row in rows:
            assert row["Energy.Active.Import.Register:unit"] == "Wh"
            assert row["Power.Active.Import:unit"] == "W" and row["Current.Import/L1:unit"] == "A"
            assert row["Voltage/L1-N:unit"] == "V" and row["SoC:unit"] == "Percent"
            assert row["Current.Import/L1"] == row["Current.Import/L2"] == row["Current.Import/L3"] == 32.0
            assert row["Current.Offered"] == 32.0
            volts = row["Voltage/L1-N"] + row["Voltage/L2-N"] + row["Voltage/L3-N"]
            assert row["Power.Active.Import"] == pytest.approx(volts * 32.0, abs=0.1)
        for before, after in zip(rows, rows[1:]):
            seconds = (after["ts"] - before["ts"]).total_seconds()
            assert 9.5 <= seconds <= 20.0        # the meter interval, in simulated seconds
            expected_wh = before["Power.Active.Import"] * seconds / 3600
            assert after["Energy.Active.Import.Register"] - before["Energy.Active.Import.Register"] == \
                pytest.approx(expected_wh, rel=0.02, abs=0.5)
            assert after["SoC"] > before["SoC"]

        charger.unplug(1)
        await eventually(lambda: central.of("StopTransaction"), "StopTransaction")
        stop = central.of("StopTransaction")[0]
        assert stop["transactionId"] == 101 and stop["reason"] == "EVDisconnected"
        assert stop["meterStop"] >= rows[-1]["Energy.Active.Import.Register"] - 1
        await eventually(lambda: central.of("StatusNotification")[-1]["status"] == "Available", "Available again")
        statuses = [s["status"] for s in central.of("StatusNotification")]
        assert statuses == ["Available", "Preparing", "Charging", "Finishing", "Available"]


async def test_charging_profile_limits_are_obeyed_and_below_6a_suspend(central):
    async with fleet_for(central) as fleet:
        charger = fleet["CP01"]
        conn = charger.connector(1)
        await eventually(lambda: "CP01" in central.links and central.of("StatusNotification"), "connected")
        charger.plug_in(1, CAR_3P, soc=40.0)
        await eventually(lambda: conn.current_a == 32.0, "charging at 32 A")
        link = central.links["CP01"]

        answer = await link.call(tx_default(10.0))
        assert answer.status == "Accepted"
        set_at = charger.clock.now()
        await eventually(lambda: conn.current_a == 10.0, "the current down to 10 A")
        await eventually(lambda: [r for r in central.meter_values() if r["ts"] > set_at + timedelta(seconds=5)],
                         "a meter value after the ramp")
        row = [r for r in central.meter_values() if r["ts"] > set_at + timedelta(seconds=5)][0]
        assert row["Current.Import/L1"] == 10.0 and row["Current.Offered"] == 10.0
        assert row["Power.Active.Import"] == pytest.approx(3 * 230 * 10, rel=0.02)
        assert charger.profiles_received[-1]["charging_schedule"]["charging_schedule_period"][0]["limit"] == 10

        answer = await link.call(tx_default(4140, unit="W"))     # evcc's 6 A at 3 phases, in W
        assert answer.status == "Accepted"
        await eventually(lambda: abs(conn.current_a - 6.0) < 0.01, "the W limit as 6 A per phase")
        assert conn.power_w == pytest.approx(4140, rel=0.02)

        answer = await link.call(tx_default(4.0))
        assert answer.status == "Accepted"
        await eventually(lambda: central.of("StatusNotification")[-1]["status"] == "SuspendedEVSE",
                         "SuspendedEVSE below 6 A")
        await eventually(lambda: conn.current_a == 0.0, "no current while suspended")

        answer = await link.call(call.ClearChargingProfile(id=1))
        assert answer.status == "Accepted"
        await eventually(lambda: central.of("StatusNotification")[-1]["status"] == "Charging", "charging again")
        await eventually(lambda: conn.current_a == 32.0, "back at the car's 32 A")

        schedule = await link.call(call.GetCompositeSchedule(connector_id=1, duration=600))
        assert schedule.status == "Accepted"
        assert schedule.charging_schedule["charging_schedule_period"][0]["limit"] == 32.0


async def test_phase_switch_pauses_then_charges_on_one_phase(central):
    async with fleet_for(central, phase_switching=True) as fleet:
        charger = fleet["CP01"]
        conn = charger.connector(1)
        await eventually(lambda: "CP01" in central.links and central.of("StatusNotification"), "connected")
        link = central.links["CP01"]
        config = await link.call(call.GetConfiguration(key=["ConnectorSwitch3to1PhaseSupported",
                                                            "ChargingScheduleAllowedChargingRateUnit"]))
        values = {item["key"]: item["value"] for item in config.configuration_key}
        assert values == {"ConnectorSwitch3to1PhaseSupported": "true",
                          "ChargingScheduleAllowedChargingRateUnit": "Current,Power"}
        charger.plug_in(1, CAR_3P, soc=40.0)
        await eventually(lambda: conn.current_a == 32.0 and conn.phases_in_use == 3, "charging on 3 phases")

        answer = await link.call(tx_default(16.0, phases=1))
        assert answer.status == "Accepted"
        asked_at = charger.clock.now()
        await eventually(lambda: central.of("StatusNotification")[-1]["status"] == "SuspendedEVSE", "the pause")
        await eventually(lambda: conn.phases_in_use == 1 and conn.current_a == 16.0, "16 A on one phase", 15)
        await eventually(lambda: [r for r in central.meter_values() if r.get("Current.Import/L1") == 16.0],
                         "a meter value on one phase")
        first = [r for r in central.meter_values() if r.get("Current.Import/L1") == 16.0][0]
        assert first["Current.Import/L2"] == first["Current.Import/L3"] == 0.0
        assert first["ts"] >= asked_at + timedelta(seconds=115)      # 120 s switching delay (simulated)
        paused = [r for r in central.meter_values() if asked_at < r["ts"] < first["ts"] - timedelta(seconds=10)]
        assert paused and all(r["Power.Active.Import"] == 0.0 for r in paused)
        assert [s["status"] for s in central.of("StatusNotification")][-2:] == ["SuspendedEVSE", "Charging"]


async def test_offline_transaction_is_delivered_late_with_its_original_timestamps(central):
    async with fleet_for(central) as fleet:
        charger = fleet["CP01"]
        await eventually(lambda: central.of("StatusNotification"), "connected")
        await central.stop()
        await eventually(lambda: not charger.connected, "the charger noticing the drop")
        dropped_at = charger.clock.now()

        charger.plug_in(1, CAR_3P, soc=40.0)        # offline: local authorization, the session starts anyway
        await eventually(lambda: charger.connector(1).energy_wh > charger.connector(1).tx.meter_start_wh + 300,
                         "some charging while offline")
        charger.unplug(1)
        unplugged_at = charger.clock.now()
        offline_meter_values = len(charger.queued("MeterValues"))
        assert offline_meter_values >= 3

        await central.start()
        await eventually(lambda: central.of("StopTransaction"), "the queued StopTransaction", 15)
        late = [(name, payload) for _, name, payload, number in central.log if number == 2 and name in
                ("StartTransaction", "MeterValues", "StopTransaction")]
        assert [name for name, _ in late] == ["StartTransaction"] + ["MeterValues"] * offline_meter_values + \
            ["StopTransaction"]
        start_ts = parse_ocpp_time(late[0][1]["timestamp"])
        stop_ts = parse_ocpp_time(late[-1][1]["timestamp"])
        assert dropped_at <= start_ts < stop_ts <= unplugged_at
        meter_ts = [parse_ocpp_time(p["meterValue"][0]["timestamp"]) for _, p in late[1:-1]]
        assert meter_ts == sorted(meter_ts) and start_ts < meter_ts[0] and meter_ts[-1] <= stop_ts
        assert {p["transactionId"] for _, p in late[1:]} == {101}
        assert late[-1][1]["meterStop"] - late[0][1]["meterStart"] >= 300
        assert charger.connects == 2


async def test_pending_boot_retries_then_remote_commands_are_answered(central):
    central.boot_status, central.heartbeat_s = "Pending", 1
    async with fleet_for(central) as fleet:
        charger = fleet["CP01"]
        await eventually(lambda: len(central.of("BootNotification")) >= 2, "a second boot after Pending")
        assert not central.of("StatusNotification")         # nothing else is sent while Pending
        link = central.links["CP01"]
        answer = await link.call(call.ChangeConfiguration(key="MeterValuesSampledData",
                                                          value="Energy.Active.Import.Register,SoC"))
        assert answer.status == "Accepted"
        assert (await link.call(call.ChangeConfiguration(key="MeterValuesSampledData", value="Humidity"))).status \
            == "Rejected"
        assert (await link.call(call.ChangeConfiguration(key="NoSuchKey", value="1"))).status == "NotSupported"
        central.boot_status = "Accepted"
        await eventually(lambda: charger.boot_status == "Accepted" and central.of("StatusNotification"), "accepted")
        await eventually(lambda: central.of("Heartbeat"), "a heartbeat every second")

        charger.plug_in(1, CAR_3P, soc=40.0, badge=False)
        assert (await link.call(call.RemoteStartTransaction(id_tag="APP0001", connector_id=1))).status == "Accepted"
        await eventually(lambda: central.of("StartTransaction"), "StartTransaction after the remote start")
        assert central.of("StartTransaction")[0]["idTag"] == "APP0001" and not central.of("Authorize")
        await eventually(lambda: central.meter_values(), "meter values")
        assert {k for k in central.meter_values()[0] if ":" not in k} == \
            {"ts", "tx", "Energy.Active.Import.Register", "SoC"}

        assert (await link.call(call.TriggerMessage(requested_message="StatusNotification", connector_id=1))).status \
            == "Accepted"
        await eventually(lambda: central.of("StatusNotification")[-1]["status"] == "Charging", "triggered status")
        assert (await link.call(call.DataTransfer(vendor_id="acme"))).status == "UnknownVendorId"

        assert (await link.call(call.RemoteStopTransaction(transaction_id=999))).status == "Rejected"
        assert (await link.call(call.RemoteStopTransaction(transaction_id=101))).status == "Accepted"
        await eventually(lambda: central.of("StopTransaction"), "StopTransaction after the remote stop")
        assert central.of("StopTransaction")[0]["reason"] == "Remote"
        await eventually(lambda: central.of("StatusNotification")[-1]["status"] == "Finishing", "Finishing")
        answer = await link.call(call.ChangeAvailability(connector_id=1, type="Inoperative"))
        assert answer.status == "Accepted"
        await eventually(lambda: central.of("StatusNotification")[-1]["status"] == "Unavailable", "Unavailable")
        assert (await link.call(call.RemoteStartTransaction(id_tag="APP0001", connector_id=1))).status == "Rejected"
        assert (await link.call(call.ChangeAvailability(connector_id=1, type="Operative"))).status == "Accepted"
        await eventually(lambda: central.of("StatusNotification")[-1]["status"] == "Finishing", "available again")

        assert (await link.call(call.Reset(type="Soft"))).status == "Accepted"
        await eventually(lambda: charger.connects == 2 and len(central.of("BootNotification")) >= 3,
                         "a new boot after the reset")


async def test_tls_and_basic_auth_with_the_charger_id_as_user(tmp_path):
    make_ca(tmp_path / "ca.pem", tmp_path / "ca.key")
    make_signed(tmp_path / "csms.pem", tmp_path / "csms.key", tmp_path / "ca.pem", tmp_path / "ca.key",
                "csms", hostnames=("127.0.0.1",), server=True)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "csms.pem", tmp_path / "csms.key")
    central = Central(free_port())
    await central.start(ssl=context, process_request=basic_auth(credentials=[("CP01", "right"), ("CP02", "right")]))
    fleet = ChargerFleet(f"wss://127.0.0.1:{central.port}", chargers=2, version="1.6", commute=False,
                         passwords={"CP01": "right", "CP02": "wrong"}, cafile=str(tmp_path / "ca.pem"))
    try:
        async with fleet:
            await eventually(lambda: [p for cid, name, p, _ in central.log
                                      if cid == "CP01" and name == "BootNotification"], "CP01 booting over TLS")
            await eventually(lambda: fleet["CP02"].connect_attempts >= 2, "CP02 trying again")
            assert fleet["CP01"].connected and fleet["CP02"].connects == 0 and "CP02" not in central.links
            assert "401" in fleet["CP02"].last_error
    finally:
        await central.stop()


async def test_commuters_charge_until_they_leave_between_17_00_and_18_30(central):
    # Monday 16:59 local, 30 simulated minutes per real second: the cars are there and leave by 18:30.
    start = datetime(2026, 11, 30, 16, 59, tzinfo=LOCAL_TZ)
    async with ChargerFleet(f"ws://127.0.0.1:{central.port}", chargers=3, version="1.6", time_scale=1800,
                            start=start, meter_interval_s=300, seed=5) as fleet:
        await eventually(lambda: len(central.of("StopTransaction")) == 3, "three departures", 15)
        starts = {p["idTag"]: p for p in central.of("StartTransaction")}
        assert set(starts) == {"EMP0001", "EMP0002", "EMP0003"}
        for stop in central.of("StopTransaction"):
            left = parse_ocpp_time(stop["timestamp"]).astimezone(LOCAL_TZ)
            assert left.date() == start.date() and time(17, 0) <= left.time() <= time(18, 30), left
            assert stop["reason"] == "EVDisconnected"
            visit = visit_on(start.date(), int(stop["idTag"][3:]), seed=5)
            assert abs((left - visit.departure).total_seconds()) < 60        # when the model says it leaves
            assert stop["meterStop"] > starts[stop["idTag"]]["meterStart"]
        await eventually(lambda: all(c.connector(1).status == "Available" for c in fleet.chargers), "all Available")


async def test_model_time_parks_the_midday_cars_now_with_real_timestamps(central):
    """hinode up's demo at any hour: commuters behave as at 10:30 of a weekday, while every message
    carries the real time (a live board and the cloud ingest read them as fresh)."""
    model_time = datetime(2026, 11, 27, 10, 30, tzinfo=LOCAL_TZ)        # a Friday
    async with ChargerFleet(f"ws://127.0.0.1:{central.port}", chargers=2, version="1.6",
                            model_time=model_time, meter_interval_s=60, seed=5):
        await eventually(lambda: len(central.of("StartTransaction")) == 2, "both commuters' cars charging", 15)
        for start in central.of("StartTransaction"):
            sent = parse_ocpp_time(start["timestamp"])
            assert abs((sent - datetime.now(timezone.utc)).total_seconds()) < 30, sent
