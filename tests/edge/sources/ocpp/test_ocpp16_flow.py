"""OCPP 1.6J end to end: a real charge point boots, is configured, charges a car, and the source
emits its readings and one session record."""

from __future__ import annotations

from edge_agent.sources.ocpp.model import RateUnit
from hinode.contract import SESSION_DEVICE_SUFFIX, DeviceKind
from tests.edge.sources.ocpp.cp16_peer import (assert_valid_envelopes, eventually, now_ms, open_charge_point,
                                               readings_of, running_source)

T0 = 1_780_000_000_000      # a fixed start, so timestamps are checked exactly


def _sampled(energy_wh: str, power_w: str, amps: tuple[str, str, str], soc: str = "40") -> list[dict]:
    values = [{"value": energy_wh, "measurand": "Energy.Active.Import.Register", "unit": "Wh",
               "context": "Sample.Periodic"},
              {"value": power_w, "measurand": "Power.Active.Import", "unit": "W"},
              {"value": soc, "measurand": "SoC", "unit": "Percent", "location": "EV"}]
    values += [{"value": a, "measurand": "Current.Import", "unit": "A", "phase": p}
               for a, p in zip(amps, ("L1", "L2", "L3"))]
    values.append({"value": "230.5", "measurand": "Voltage", "unit": "V", "phase": "L1-N"})
    return values


async def test_boot_configures_the_charger_and_a_session_becomes_one_record(make_ocpp_config):
    config = make_ocpp_config()
    async with running_source(config) as run:
        async with open_charge_point(run.source.port, "CP1", "pw-CP1") as cp:
            assert cp.boot_answer.status == "Accepted"
            assert cp.boot_answer.interval == config.heartbeat_interval_s
            await eventually(lambda: run.source.chargers["CP1"].link is not None, "the charger to be ready")
            asked = cp.got("GetConfiguration")[0]["key"]
            assert set(asked) == {"ChargingScheduleAllowedChargingRateUnit", "ConnectorSwitch3to1PhaseSupported",
                                  "NumberOfConnectors", "MeterValuesSampledDataMaxLength"}
            changes = {c["key"]: c["value"] for c in cp.got("ChangeConfiguration")}
            assert changes["MeterValueSampleInterval"] == "15"
            # the charger takes 4 measurands at most: the list is trimmed to the first four
            assert changes["MeterValuesSampledData"].split(",") == config.measurands[:4]
            link = run.source.chargers["CP1"].link
            assert link.capabilities.rate_units == (RateUnit.AMPS,) and link.capabilities.connectors == 2
            assert run.source.context.devices["CP1"].online

            assert await cp.authorize("TAG-ANNA") == "Accepted"
            assert await cp.authorize("TAG-NOBODY") == "Invalid"
            await cp.status(1, "Preparing", ts_ms=T0)
            tx = await cp.start_transaction(1, "TAG-ANNA", meter_start_wh=1_000_000, ts_ms=T0 + 1_000)
            await cp.status(1, "Charging", ts_ms=T0 + 1_500)
            await cp.meter_values(1, tx, T0 + 60_000, _sampled("1000250", "11000", ("16.0", "15.9", "16.1")))
            await cp.meter_values(1, tx, T0 + 120_000, _sampled("1000600", "7400.5", ("10.7", "10.7", "10.7")))
            await cp.stop_transaction(tx, meter_stop_wh=1_000_900, ts_ms=T0 + 181_000, reason="EVDisconnected")
            sessions = await eventually(lambda: run.of("CP1" + SESSION_DEVICE_SUFFIX), "the session record")

        record = sessions[0]
        assert len(sessions) == 1 and record.kind == DeviceKind.CHARGING_SESSION
        assert record.meta == {"station": "CP1", "evse": "1", "id_tag": "TAG-ANNA"}
        values = {r.metric: (r.value, r.unit) for r in record.readings}
        assert {r.ts for r in record.readings} == {T0 + 181_000}
        assert values["session_id"] == (str(tx), "")
        assert values["start_ts"] == (T0 + 1_000, "ms") and values["stop_ts"] == (T0 + 181_000, "ms")
        assert values["duration"] == (180.0, "s")
        assert values["energy"] == (0.9, "kWh")             # 1 000 900 Wh - 1 000 000 Wh
        assert values["peak_power"] == (11000.0, "W")
        assert values["pv_energy"] == (0.0, "kWh") and values["pv_share"][0] == 0.0
        assert values["stop_reason"] == ("EVDisconnected", "")

        meter_batch = next(b for b in run.of("CP1") if any(r.metric == "energy_import" for r in b.readings))
        assert meter_batch.meta == {"station": "CP1", "evse": "1"} and meter_batch.profile == "ocpp-1.6"
        got = {r.metric: (r.value, r.unit, r.ts) for r in meter_batch.readings}
        assert got["energy_import"] == (1000.25, "kWh", T0 + 60_000)
        assert got["power_total"] == (11000.0, "W", T0 + 60_000)
        assert got["current_l1"][:2] == (16.0, "A") and got["current_l3"][:2] == (16.1, "A")
        assert got["voltage_l1"][:2] == (230.5, "V")
        assert got["soc"][:2] == (40.0, "%")
        # The state went out with the status change; meter values do not repeat it (charger.STATE_REFRESH_S).
        assert "status" not in got and "mode" not in got
        assert got["session_energy"][:2] == (0.25, "kWh")
        statuses = [r.value for r in readings_of(run.of("CP1"), "status")]
        assert statuses[:2] == ["Preparing", "Charging"]
        assert [r.value for r in readings_of(run.of("CP1"), "mode")][:1] == ["pv"]
        profile, metrics = run.source.context.catalog["CP1"]
        units = {m.metric: (m.unit, m.counter) for m in metrics}
        assert units["energy_import"] == ("kWh", True) and units["power_total"] == ("W", False)
        await eventually(lambda: not run.source.context.devices["CP1"].online, "CP1 offline after it left")
        assert_valid_envelopes(run.batches)


async def test_transaction_ids_never_repeat_across_a_restart(make_ocpp_config):
    config = make_ocpp_config()
    seen = []
    for _ in range(2):
        async with running_source(config) as run:
            async with open_charge_point(run.source.port, "CP1", "pw-CP1") as cp:
                for _ in range(2):
                    tx = await cp.start_transaction(1, "TAG-BEN", 0, now_ms())
                    await cp.stop_transaction(tx, 10, now_ms())
                    seen.append(tx)
    assert len(set(seen)) == 4, seen


async def test_stop_of_an_unknown_transaction_is_answered_and_counted(make_ocpp_config):
    async with running_source(make_ocpp_config()) as run:
        async with open_charge_point(run.source.port, "CP1", "pw-CP1") as cp:
            answer = await cp.stop_transaction(424242, 10, now_ms())
            assert answer is not None
        assert run.source.context.errors[("CP1", "unknown_transaction")] == 1
        assert not run.of("CP1" + SESSION_DEVICE_SUFFIX)


async def test_data_transfer_is_answered_per_config(make_ocpp_config):
    from ocpp.v16 import call

    for policy, expected in (("unknown_vendor", "UnknownVendorId"), ("accept", "Accepted")):
        async with running_source(make_ocpp_config(data_transfer=policy)) as run:
            async with open_charge_point(run.source.port, "CP1", "pw-CP1") as cp:
                answer = await cp.call(call.DataTransfer(vendor_id="com.example", message_id="x", data="{}"))
                assert answer.status == expected


async def test_limits_in_watts_tx_profiles_and_clearing(make_ocpp_config):
    from edge_agent.sources.ocpp.model import Limit

    watts_only = {"ChargingScheduleAllowedChargingRateUnit": "Power", "NumberOfConnectors": "1",
                  "ConnectorSwitch3to1PhaseSupported": "true"}
    async with running_source(make_ocpp_config()) as run:
        async with open_charge_point(run.source.port, "CP1", "pw-CP1", configuration=watts_only) as cp:
            await eventually(lambda: run.source.chargers["CP1"].link is not None, "CP1 ready")
            link = run.source.chargers["CP1"].link
            assert link.capabilities.rate_units == (RateUnit.WATTS,) and link.capabilities.phase_switch
            assert await link.set_limit(1, Limit(10.0, RateUnit.AMPS, phases=1)) == "Accepted"
            schedule = cp.got("SetChargingProfile")[-1]["cs_charging_profiles"]["charging_schedule"]
            assert schedule["charging_rate_unit"] == "W"
            assert schedule["charging_schedule_period"] == [{"start_period": 0, "limit": 2300.0, "number_phases": 1}]

            tx = await cp.start_transaction(1, "TAG-ANNA", 0, now_ms())
            assert await link.set_limit(1, Limit(6.0, RateUnit.AMPS, phases=3), tx_profile=True) == "Accepted"
            profile = cp.got("SetChargingProfile")[-1]["cs_charging_profiles"]
            assert profile["charging_profile_purpose"] == "TxProfile" and profile["transaction_id"] == tx
            assert profile["charging_profile_kind"] == "Relative"
            assert profile["charging_schedule"]["charging_schedule_period"][0]["limit"] == 4140.0  # 230 x 6 x 3
            composite = await link.composite_schedule(1, 3600)
            assert composite["status"] == "Accepted" and composite["schedule"]["duration"] == 3600
            assert cp.got("GetCompositeSchedule")[-1] == {"connector_id": 1, "duration": 3600}
            assert await link.clear_limit(1) == "Accepted"
            assert cp.got("ClearChargingProfile")[-1] == {"id": 101}
            cp.answer_status["ChangeConfiguration"] = "Rejected"
            assert await link.configure("LightIntensity", "50") == "Rejected"
