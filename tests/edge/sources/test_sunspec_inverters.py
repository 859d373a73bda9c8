"""The SunSpec source reading PV inverters (103, 113), a battery (802) and the model restriction.

The maps are written here by hand from the specification's offsets (model_103.json,
model_113.json, model_802.json), with hand-checked values, and served by a real pymodbus
server; nothing here comes from the tables the source builds.
"""

from __future__ import annotations

import struct

import pytest
from pydantic import ValidationError

import edge_agent.sources.sunspec as sunspec
from edge_agent.config import ConfigError, load_site_config
from hinode.contract import MetricInfo, Quality
from tests.edge.sources.test_sunspec_source import NI16, common_model, make_config, metrics, s16, sunspec_memory

pytestmark = pytest.mark.timeout(60)

NU16 = 0xFFFF          # uint16 / enum16 "not implemented"


def f32(value: float) -> list[int]:
    return list(struct.unpack(">2H", struct.pack(">f", value)))


def inverter_103() -> list[int]:
    body = [NU16] * 4 + [NI16] + [NU16] * 6 + [NI16] + [NI16, NI16, NU16, NI16] + [NI16] * 6 + [0, 0, NI16]
    body += [NU16, NI16, NU16, NI16, NI16, NI16] + [NI16] * 5 + [NU16, NU16] + [0xFFFF] * 12
    assert len(body) == 50
    body[0:5] = [937, 312, 313, 312, s16(-1)]          # A, AphA-C, A_SF -1: 93.7 A, 31.2 A ...
    body[5:12] = [3991, 3990, 3987, 2302, 2307, 2301, s16(-1)]   # PPVphAB.., PhVphA.., V_SF -1
    body[12:14] = [2158, 2]                             # W = 2158 x 10^2 = 215800 W
    body[14:16] = [5001, s16(-2)]                       # Hz 50.01
    body[18:20] = [NI16, NI16]                          # VAr and VAr_SF not implemented: left out
    body[20:22] = [1000, s16(-1)]                       # PF 100.0 % -> 1.0
    body[22:25] = [0x0001, 0x0000, 1]                   # WH = 65536 x 10^1 Wh = 655.36 kWh
    body[29:31] = [2225, NI16]                          # DCW present but DCW_SF not implemented: None, bad
    body[31:36] = [296, NI16, NI16, NI16, s16(-1)]      # TmpCab 29.6 °C; other temperatures not implemented
    body[36] = 4                                        # St: MPPT
    body[38:42] = [0, 0, 0, 0]                          # Evt1, Evt2: no events
    return [103, 50] + body


def inverter_113() -> list[int]:
    nan = [0x7FC0, 0x0000]
    body = nan * 23 + [NU16, NU16] + [0xFFFF] * 12
    assert len(body) == 60
    body[20:22] = f32(21581.5)                          # W
    body[22:24] = f32(49.98)                            # Hz
    body[28:30] = f32(99.5)                             # PF 99.5 % -> 0.995
    body[30:32] = f32(1234567.0)                        # WH: 1234.567 kWh (exact in float32)
    body[38:40] = f32(41.25)                            # TmpCab
    body[46] = 2                                        # St: SLEEPING
    body[48:52] = [0, 0, 0, 0]
    return [113, 60] + body


def battery_802() -> list[int]:
    body = [NU16] * 12 + [0xFFFF, 0xFFFF] + [NU16] * 8 + [0xFFFF] * 10 + [NU16] * 10 + [NI16] + [NU16] * 2
    body += [NI16, NU16, NI16, NU16, NU16] + [NI16] * 12
    assert len(body) == 62
    body[0:4] = [133, 100, 50, 50]                      # AHRtg, WHRtg (x10^3 Wh), WChaRteMax, WDisChaRteMax (x10^3 W)
    body[9] = 433                                       # SoC 43.3 % (SoC_SF -1)
    body[11] = 98                                       # SoH 98 % (SoH_SF 0)
    body[14:16] = [4, 0]                                # ChaSt CHARGING, LocRemCtl REMOTE
    body[18:21] = [0, 4, 3]                             # AlmRst, Typ LITHIUM_ION, State CONNECTED
    body[24:32] = [0] * 8                               # Evt1, Evt2, EvtVnd1, EvtVnd2
    body[32] = 7433                                     # V 743.3 (V_SF -1)
    body[41] = 3712                                     # CellVAvg 3.712 V (CellV_SF -3)
    body[42] = s16(-188)                                # A -18.8 (A_SF -1)
    body[45] = s16(-140)                                # W -140 x 10^2 = -14000 W (charging)
    body[48:50] = [1, 3]                                # SetOp CONNECT, SetInvState INVERTER_STARTED
    body[50:62] = [0, 3, 3, NI16, s16(-1), NI16, 0, s16(-1), s16(-3), s16(-1), 0, 2]
    return [802, 62] + body


def inverter_with_battery(UnitMemory):
    return sunspec_memory(UnitMemory, 40000, common_model("Hinode Solar", "HS-250", "2.0", "INV-1"),
                          inverter_103(), battery_802())


async def test_int_inverter_and_battery_values_units_and_counters(modbus_server, source_tools):
    UnitMemory = modbus_server.UnitMemory
    peer = await modbus_server({
        1: inverter_with_battery(UnitMemory),
        2: sunspec_memory(UnitMemory, 40000, common_model("Hinode Solar", "HS-F", "2.0", "INV-2"), inverter_113()),
    })
    context = source_tools.context()
    config = make_config(peer.port, [{"id": "inv1", "unit": 1}, {"id": "inv2", "unit": 2}])
    async with source_tools.run(sunspec.Source(config, context)) as run:
        await run.wait_for(lambda: len(run.of("inv1")) >= 2 and len(run.of("inv2")) >= 2, 10, "two inverters")

    first, second = run.of("inv1")[:2]
    assert first.profile == "sunspec-103-802" and first.kind == "meter"
    assert metrics(second) == {
        "current_total": 93.7, "current_l1": 31.2, "current_l2": 31.3, "current_l3": 31.2,
        "voltage_l1_l2": 399.1, "voltage_l2_l3": 399.0, "voltage_l3_l1": 398.7,
        "voltage_l1": 230.2, "voltage_l2": 230.7, "voltage_l3": 230.1,
        "power_total": 215800.0, "frequency": 50.01, "power_factor": 1.0, "energy_export": 655.36,
        "dc_power": None, "temperature_cabinet": 29.6, "inverter_state": "MPPT",
        "inverter_events": 0, "inverter_events_2": 0,
        # model 802, read with the same poll: points no hand-typed table had before
        "battery_capacity_ah": 133.0, "battery_capacity": 100.0, "battery_charge_power_max": 50000.0,
        "battery_discharge_power_max": 50000.0, "soc": 43.3, "soh": 98.0, "battery_charge_state": "CHARGING",
        "battery_control_mode": "REMOTE", "alm_rst": 0.0, "battery_type": "LITHIUM_ION",
        "battery_state": "CONNECTED", "battery_events": 0, "battery_events_2": 0, "battery_events_vendor_1": 0,
        "battery_events_vendor_2": 0, "battery_voltage": 743.3, "cell_voltage_avg": 3.712,
        "battery_current": -18.8, "battery_power": -14000.0, "set_op": "CONNECT", "set_inv_state": "INVERTER_STARTED",
    }
    assert [r.metric for r in second.readings if r.quality is Quality.BAD] == ["dc_power"]

    profile, infos = context.catalog["inv1"]
    by_name = {m.metric: m for m in infos}
    assert profile == "sunspec-103-802"
    assert by_name["power_total"] == MetricInfo(metric="power_total", unit="W")
    assert by_name["temperature_cabinet"].unit == "°C" and by_name["soc"].unit == "%"
    assert by_name["battery_capacity"].unit == "kWh" and not by_name["battery_capacity"].counter
    energy = by_name["energy_export"]
    assert energy.counter and energy.unit == "kWh"
    assert energy.rollover == pytest.approx(2 ** 32 * 10.0 ** (1 - 3))      # acc32 Wh x 10^WH_SF, in kWh
    assert not by_name["inverter_state"].counter and by_name["inverter_state"].unit == ""

    # one request per model and poll: 103 (50 registers) after 1 (66), then 802 (62) after it
    polls = [(a, c) for _, unit, _, a, c in peer.request_log if unit == 1]
    assert polls[-4:] == [(40072, 50), (40124, 62)] * 2

    floats = metrics(run.of("inv2")[-1])
    assert run.of("inv2")[0].profile == "sunspec-113"
    assert floats == {"power_total": 21581.5, "frequency": pytest.approx(49.98, abs=1e-5), "power_factor": 0.995,
                      "energy_export": 1234.567, "temperature_cabinet": 41.25, "inverter_state": "SLEEPING",
                      "inverter_events": 0, "inverter_events_2": 0}         # NaN points left out
    float_energy = {m.metric: m for m in context.catalog["inv2"][1]}["energy_export"]
    assert float_energy.counter and float_energy.rollover is None


async def test_models_key_restricts_what_is_read(modbus_server, source_tools):
    UnitMemory = modbus_server.UnitMemory
    peer = await modbus_server({1: inverter_with_battery(UnitMemory), 2: inverter_with_battery(UnitMemory)})
    context = source_tools.context()
    config = make_config(peer.port, [{"id": "battery", "unit": 1, "models": [802]},
                                     {"id": "wrong", "unit": 2, "models": [203, 113]}])
    async with source_tools.run(sunspec.Source(config, context)) as run:
        await run.wait_for(lambda: len(run.of("battery")) >= 3, 10, "battery polls")
        await run.wait_for(lambda: context.errors[("wrong", "no_supported_model")] >= 1, 5, "unit 2 refused")

    batch = run.of("battery")[-1]
    assert batch.profile == "sunspec-802"
    assert metrics(batch)["soc"] == 43.3 and "power_total" not in metrics(batch)
    # model 103 at 40072 was never read after discovery: only the battery's 62 registers
    assert {(a, c) for _, unit, _, a, c in peer.request_log if unit == 1 and c > 2} == {(40004, 66), (40124, 62)}
    assert not run.of("wrong") and not context.devices["wrong"].online
    assert "none of the configured models [113, 203]; its models are [1, 103, 802]" in context.devices["wrong"].error


def test_models_key_must_name_supported_models():
    with pytest.raises(ValidationError, match=r"unsupported SunSpec model\(s\) \[120, 999\]; expected some of 101,"):
        make_config(5020, [{"id": "x", "unit": 1, "models": [103, 120, 999]}])
    with pytest.raises(ValidationError, match=r"a model is listed twice"):
        make_config(5020, [{"id": "x", "unit": 1, "models": [103, 103]}])
    with pytest.raises(ValidationError, match=r"at least 1 item"):
        make_config(5020, [{"id": "x", "unit": 1, "models": []}])


def test_a_bad_models_key_names_its_path_in_the_site_config(tmp_path):
    path = tmp_path / "site.yaml"
    path.write_text("site: factory-a\nagent: edge-01\nsources:\n  - type: sunspec\n    name: pv\n    host: 127.0.0.1\n"
                    "    port: 5021\n    devices: [{id: inv, unit: 1, models: [103, 42]}]\n")
    with pytest.raises(ConfigError, match=r"sources\[0\]\.devices\[0\]\.models: unsupported SunSpec model\(s\) \[42\]"):
        load_site_config(path)


def storage_713() -> list[int]:
    return [713, 7, 200, 87, 435, 97, 0, 3, s16(-1)]        # 200 / 87 kWh (WH_SF 3), SoC 43.5 %, SoH 9.7 %, Sta OK


def volt_var_705() -> list[int]:
    top = [1, NU16, 1, 2, 1, 0, 300, 0xFFFF, 0xFFFF, NU16, s16(-1), NI16, 0]   # Ena, .., NPt 2, NCrv 1, RvrtTms 300
    curve = [1, 1, 1, 2300, NU16, 0, NU16, 0, 10, 1] + [2200, 300, 2400, s16(-300)]   # one curve of two points
    return [705, len(top) + len(curve)] + top + curve


async def test_der_models_top_level_points_and_repeating_groups_skipped(modbus_server, source_tools):
    UnitMemory = modbus_server.UnitMemory
    memory = sunspec_memory(UnitMemory, 40000, common_model("Hinode", "DER", "1", "D1"), storage_713(), volt_var_705())
    peer = await modbus_server({1: memory, 2: memory})
    context = source_tools.context()
    config = make_config(peer.port, [{"id": "default", "unit": 1}, {"id": "curves", "unit": 2, "models": [705, 713]}])
    async with source_tools.run(sunspec.Source(config, context)) as run:
        await run.wait_for(lambda: len(run.of("default")) >= 2 and len(run.of("curves")) >= 2, 10, "both devices")

    default = run.of("default")[-1]
    assert default.profile == "sunspec-713"                    # 705 (settings, curves) only when listed
    assert metrics(default) == {"storage_capacity": 200.0, "storage_energy_available": 87.0, "soc": 43.5,
                                "soh": 9.7, "storage_state": "OK"}
    curves = run.of("curves")[-1]
    assert curves.profile == "sunspec-713-705"                 # in the map's order
    got = metrics(curves)
    assert {k: got[k] for k in ("ena", "adpt_crv_rslt", "n_pt", "n_crv", "rvrt_tms")} == {
        "ena": "ENABLED", "adpt_crv_rslt": "COMPLETED", "n_pt": 2.0, "n_crv": 1.0, "rvrt_tms": 300.0}
    assert not {"v", "var", "act_pt", "v_ref"} & set(got)      # the curve group is read but not decoded
    assert {m.metric: m.unit for m in context.catalog["curves"][1]}["rvrt_tms"] == "s"
    # the whole 705 block (13 top-level + 14 curve registers) in one request
    assert (40000 + 4 + 66 + 2 + 7 + 2, 27) in {(a, c) for _, unit, _, a, c in peer.request_log if unit == 2}
