"""The SunSpec point tables and the decoding rules for "not implemented" values and scale factors."""

from __future__ import annotations

import re

import pytest

from edge_agent.sources.sunspec.models import NOT_IMPLEMENTED, Point, decode_identity, decode_meter, decode_point, scaled, tables
from hinode.contract import METRIC_PATTERN, Quality

pytestmark = pytest.mark.timeout(10)


def test_meter_tables_cover_their_105_registers_without_gaps_or_overlaps():
    _, meters = tables()
    assert sorted(meters) == [201, 202, 203, 204]
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


def test_the_common_model_reports_four_strings():
    common, _ = tables()
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


def test_a_meter_body_decodes_with_its_scale_factors():
    _, meters = tables()
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
    readings = decode_meter(meters[203], body, ts=1)
    got = {r.metric: (r.value, r.quality) for r in readings}
    assert got == {
        "current_total": (12.34, Quality.GOOD), "current_l1": (5.0, Quality.GOOD), "current_l2": (4.0, Quality.GOOD),
        "current_l3": (3.34, Quality.GOOD), "frequency": (50.01, Quality.GOOD),
        "reactive_power_total": (None, Quality.BAD), "energy_import": (123456.789, Quality.GOOD),
        "meter_events": (4, Quality.GOOD),
    }
    assert {r.unit for r in readings if r.metric == "energy_import"} == {"kWh"}
    # a body shorter than the table (an older device) decodes what it has
    assert {r.metric for r in decode_meter(meters[203], body[:16], ts=1)} == {
        "current_total", "current_l1", "current_l2", "current_l3", "frequency"}


def test_identity_skips_empty_strings():
    common, _ = tables()
    words = [0] * 65
    words[0:3] = [0x4869, 0x6E6F, 0x6465]                 # "Hinode"
    words[48:50] = [0x534E, 0x3132]                       # "SN12"
    assert decode_identity(common, words) == {"manufacturer": "Hinode", "serial_number": "SN12"}
