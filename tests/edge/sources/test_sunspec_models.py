"""The SunSpec point tables (from pysunspec2's official model JSON) and the decoding rules for
"not implemented" values, scale factors and enumerations."""

from __future__ import annotations

import re

import pytest

from edge_agent.sources.sunspec.definitions import Point, model_table, supported_models
from edge_agent.sources.sunspec.models import NOT_IMPLEMENTED, decode_identity, decode_model, decode_point, scaled
from hinode.contract import METRIC_PATTERN, Quality

pytestmark = pytest.mark.timeout(10)


def test_meter_tables_cover_their_105_registers_without_gaps_or_overlaps():
    meters = {m: model_table(m) for m in (201, 202, 203, 204)}
    for model_id, table in meters.items():
        assert table.length == 105, model_id
        position = 0
        for point in table.points:
            assert point.offset == position, (model_id, point.name)
            position += point.size
        assert position == 105
        names = {p.name for p in table.points}
        assert all(p.sf in names for p in table.points if p.sf)
        metrics = [p.metric for p in table.reported]
        assert len(metrics) == len(set(metrics)) == 62
        assert all(re.match(METRIC_PATTERN, m) for m in metrics)


@pytest.mark.parametrize("model_id", sorted(supported_models()))
def test_every_supported_model_has_unique_valid_metric_names_and_known_scale_factors(model_id):
    table = model_table(model_id)
    metrics = [p.metric for p in table.reported]
    assert metrics and len(metrics) == len(set(metrics)), model_id
    assert all(re.match(METRIC_PATTERN, m) for m in metrics)
    names = {p.name for p in table.points}
    assert all(p.sf in names for p in table.points if isinstance(p.sf, str))


def test_inverter_battery_and_der_tables_come_from_the_official_definitions():
    inverter = {p.name: p for p in model_table(103).points}
    assert model_table(103).length == 50 and model_table(113).length == 60 and model_table(802).length == 62
    assert (inverter["WH"].offset, inverter["WH"].type, inverter["WH"].sf) == (22, "acc32", "WH_SF")
    assert (inverter["WH"].metric, inverter["WH"].unit, inverter["WH"].exp, inverter["WH"].counter) == (
        "energy_export", "kWh", -3, True)
    assert (inverter["St"].offset, inverter["St"].labels[4]) == (36, "MPPT")
    assert (inverter["PF"].metric, inverter["PF"].unit, inverter["PF"].exp) == ("power_factor", "", -2)
    assert inverter["TmpCab"].metric == "temperature_cabinet" and inverter["TmpCab"].unit == "°C"
    floats = {p.name: p for p in model_table(113).points}
    assert (floats["W"].offset, floats["W"].type, floats["W"].sf) == (20, "float32", None)
    battery = {p.name: p for p in model_table(802).points}
    assert (battery["SoC"].offset, battery["SoC"].sf, battery["SoC"].metric, battery["SoC"].unit) == (9, "SoC_SF", "soc", "%")
    assert (battery["W"].offset, battery["W"].metric) == (45, "battery_power")
    der = {p.name: p for p in model_table(701).points}
    # model 701 keeps its energy totals in uint64 (not an acc type): still counters
    assert der["TotWhInj"].type == "uint64" and der["TotWhInj"].counter and der["TotWhInj"].metric == "energy_export"
    # points without a chosen name keep their SunSpec name in snake_case
    assert {p.name: p.metric for p in model_table(702).points}["WMaxRtg"] == "w_max_rtg"


def test_the_common_model_reports_four_strings():
    common = model_table(1)
    assert [(p.name, p.offset, p.size, p.metric) for p in common.reported] == [
        ("Mn", 0, 16, "manufacturer"), ("Md", 16, 16, "model"), ("Vr", 40, 8, "version"), ("SN", 48, 16, "serial_number")]


@pytest.mark.parametrize("kind, words, expected", [
    ("int16", [0x8000], NOT_IMPLEMENTED), ("int16", [0xFFFF], -1),
    ("uint16", [0xFFFF], NOT_IMPLEMENTED), ("uint16", [0x8000], 0x8000),
    ("sunssf", [0x8000], NOT_IMPLEMENTED), ("sunssf", [0xFFFE], -2),
    ("acc16", [0], NOT_IMPLEMENTED), ("enum16", [0xFFFF], NOT_IMPLEMENTED),
    ("int32", [0x8000, 0x0000], NOT_IMPLEMENTED), ("int32", [0xFFFF, 0xFFFE], -2),
    ("uint32", [0xFFFF, 0xFFFF], NOT_IMPLEMENTED), ("uint32", [0x0001, 0x0000], 65536),
    ("acc32", [0, 0], NOT_IMPLEMENTED), ("acc32", [0x075B, 0xCD15], 123456789),
    ("bitfield32", [0xFFFF, 0xFFFF], NOT_IMPLEMENTED), ("bitfield32", [0, 0], 0),
    ("acc64", [0, 0, 0, 0], NOT_IMPLEMENTED), ("int64", [0x8000, 0, 0, 0], NOT_IMPLEMENTED),
    ("float32", [0x7FC0, 0x0000], NOT_IMPLEMENTED), ("float32", [0x4366, 0x8000], 230.5),
])
def test_not_implemented_sentinels(kind, words, expected):
    value = decode_point(Point(name="x", offset=0, type=kind, size=len(words)), words)
    if expected is NOT_IMPLEMENTED:
        assert value is NOT_IMPLEMENTED
    else:
        assert value == expected


def test_strings_stop_at_nul_and_an_empty_one_is_not_implemented():
    point = Point(name="SN", offset=1, type="string", size=2)
    assert decode_point(point, [0, 0x4142, 0x4300]) == "ABC"
    assert decode_point(point, [0x4142, 0, 0]) is NOT_IMPLEMENTED


def test_scaling_by_powers_of_ten_is_exact_in_decimal():
    assert scaled(2297, -1) == 229.7
    assert scaled(123456789, -3) == 123456.789
    assert scaled(-95, -2) == -0.95
    assert scaled(15, 2) == 1500.0 and isinstance(scaled(15, 0), float)


def test_enumerations_are_sent_as_their_labels_and_bitfields_as_numbers():
    body = [0x8000] * 50                                   # int16 and sunssf: not implemented
    for offset in (0, 1, 2, 3, 5, 6, 7, 8, 9, 10, 14, 25, 27, *range(36, 50)):
        body[offset] = 0xFFFF                              # uint16, enum16, bitfield32: not implemented
    body[22:24] = [0, 0]                                   # WH acc32
    body[36] = 4                       # St = MPPT
    body[38:40] = [0, 0x0041]          # Evt1: ground fault and over temperature bits
    got = {r.metric: r.value for r in decode_model(model_table(103), body, ts=1)}
    assert got == {"inverter_state": "MPPT", "inverter_events": 0x41}
    body[36] = 99                      # not in the definition: its number, as text
    assert {r.metric: r.value for r in decode_model(model_table(103), body, ts=1)}["inverter_state"] == "99"


def test_a_meter_body_decodes_with_its_scale_factors():
    meters = {203: model_table(203)}
    body = [0x8000] * 105
    for offset in range(36, 103):
        body[offset] = 0                              # acc32 energies: 0 = not implemented
    for sf in (52, 69, 102):
        body[sf] = 0x8000
    body[0:5] = [1234, 500, 400, 334, (-2) & 0xFFFF]     # A .. AphC, A_SF = -2
    body[14:16] = [5001, (-2) & 0xFFFF]                  # Hz, Hz_SF
    body[26], body[30] = 250, 0x8000                     # VAR with a missing VAR_SF
    body[44:46] = [0x075B, 0xCD15]                       # TotWhImp = 123456789 Wh
    body[52] = 0                                         # TotWh_SF = 0
    body[103:105] = [0, 4]                               # Evt: bit 2 (power failure)
    readings = decode_model(meters[203], body, ts=1)
    got = {r.metric: (r.value, r.quality) for r in readings}
    assert got == {
        "current_total": (12.34, Quality.GOOD), "current_l1": (5.0, Quality.GOOD), "current_l2": (4.0, Quality.GOOD),
        "current_l3": (3.34, Quality.GOOD), "frequency": (50.01, Quality.GOOD),
        "reactive_power_total": (None, Quality.BAD), "energy_import": (123456.789, Quality.GOOD),
        "meter_events": (4, Quality.GOOD),
    }
    assert {r.unit for r in readings if r.metric == "energy_import"} == {"kWh"}
    # a body shorter than the table (an older device) decodes what it has
    assert {r.metric for r in decode_model(meters[203], body[:16], ts=1)} == {
        "current_total", "current_l1", "current_l2", "current_l3", "frequency"}


def test_identity_skips_empty_strings():
    words = [0] * 65
    words[0:3] = [0x4869, 0x6E6F, 0x6465]                 # "Hinode"
    words[48:50] = [0x534E, 0x3132]                       # "SN12"
    assert decode_identity(words) == {"manufacturer": "Hinode", "serial_number": "SN12"}
