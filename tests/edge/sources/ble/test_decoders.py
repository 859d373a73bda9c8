"""The BLE decoders give exactly the values of the test vectors in testcases/*.yaml (reference vectors
from public test suites and hand-built ones, each naming its source), and what they give becomes
the readings, JSON and summaries the rest of the gateway uses."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from pathlib import Path

import pytest
import yaml

from edge_agent.sources.ble import decoders, gatt_ids
from edge_agent.sources.ble.measurement import DecodeError, Measurement, VitalValue, to_readings
from edge_agent.sources.ble.models import load_model
from hinode.contract import Quality, Reading
from hinode.vitals import Category

CASES_DIR = Path(__file__).parent / "testcases"


def _load_cases():
    for path in sorted(CASES_DIR.glob("*.yaml")):
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))
        for case in spec["cases"]:
            yield pytest.param(spec["characteristic"], case, id=f"{path.stem}:{case['name']}")


CASES = list(_load_cases())


def _decode_any(characteristic: int, data: bytes, case: dict):
    if characteristic == gatt_ids.GLUCOSE_MEASUREMENT_CONTEXT:
        return decoders.decode_glucose_context_full(data)
    if characteristic == gatt_ids.RECORD_ACCESS_CONTROL_POINT:
        return decoders.decode_racp(data)
    if characteristic == gatt_ids.CURRENT_TIME:
        return decoders.decode_current_time(data)
    if characteristic == gatt_ids.WEIGHT_SCALE_FEATURE:
        return decoders.decode_weight_feature(data)
    model = load_model(case["model"]) if "model" in case else None
    context = None
    if "feature" in case:
        feature = decoders.decode_weight_feature(bytes.fromhex(case["feature"]))
        context = decoders.DecodeContext(weight_resolution=feature)
    return decoders.decode(characteristic, data, model=model, context=context)


def _check_measurement(m: Measurement, expect: dict) -> None:
    values = expect.get("values", {})
    absent = expect.get("absent", {})
    assert {v.metric for v in m.values} == set(values) | set(absent)
    for v in m.values:
        if v.metric in values:
            assert v.value == pytest.approx(values[v.metric], rel=1e-9), v.metric
            assert v.absent is None
        else:
            assert v.value is None and v.absent == absent[v.metric], v.metric
    for metric, decimals in expect.get("decimals", {}).items():
        assert m.value_of(metric).decimals == decimals, metric
    expected_time = expect.get("device_time")
    assert m.device_time == (datetime.fromisoformat(expected_time) if expected_time else None)
    assert list(m.status) == expect.get("status", [])
    assert m.text == expect.get("text", {})
    assert m.user_id == expect.get("user_id")
    assert m.sequence == expect.get("sequence")


@pytest.mark.parametrize("characteristic,case", CASES)
def test_vector(characteristic, case):
    data = bytes.fromhex(case["hex"])
    assert case.get("source"), "every vector names its source"
    if "error" in case:
        with pytest.raises(DecodeError) as caught:
            _decode_any(characteristic, data, case)
        assert caught.value.code == case["error"]
        return
    result = _decode_any(characteristic, data, case)
    if isinstance(result, Measurement):
        _check_measurement(result, case["expect"])
        return
    got = dataclasses.asdict(result)
    for key, expected in case["expect"].items():
        if key == "time":
            expected = datetime.fromisoformat(expected) if expected else None
        assert got[key] == (pytest.approx(expected) if isinstance(expected, float) else expected), key
    unexpected = {k: v for k, v in got.items() if k not in case["expect"] and v not in (None, {}, False)}
    if characteristic == gatt_ids.GLUCOSE_MEASUREMENT_CONTEXT:
        assert not unexpected
        assert decoders.decode_glucose_context(data) == (case["expect"]["sequence"], case["text"])


def test_every_measurement_characteristic_has_vectors():
    covered = {c.values[0] for c in CASES}
    assert set(decoders.MEASUREMENT_CHARACTERISTICS) <= covered
    assert {0x2A34, 0x2A52, 0x2A2B, 0x2A9E} <= covered


def test_unknown_characteristic_is_a_decode_error():
    with pytest.raises(DecodeError) as caught:
        decoders.decode(0x2A19, b"\x64")
    assert caught.value.code == "unknown_characteristic"


def _nordic_bp() -> Measurement:
    return decoders.decode(0x2A35, bytes.fromhex("1E8A00580078000000041114293B3C00012700"))


def test_readings_of_a_measurement_carry_units_status_visit_and_time_source():
    readings = to_readings(_nordic_bp(), 1_764_397_200_000, visit_id="v-kit-01-20261129-1", time_source="device")
    by_metric = {r.metric: r for r in readings}
    assert by_metric["systolic"].value == 138.0 and by_metric["systolic"].unit == "mm[Hg]"
    assert by_metric["pulse"].unit == "/min"
    assert by_metric["blood_pressure_status"].value == "body_movement,cuff_too_loose,irregular_pulse,improper_position"
    assert by_metric["visit_id"].value == "v-kit-01-20261129-1"
    assert by_metric["time_source"].value == "device"
    assert {r.ts for r in readings} == {1_764_397_200_000}
    for r in readings:       # valid contract readings
        Reading.model_validate(r.model_dump())


def test_a_special_value_is_a_bad_reading_with_its_absent_code_never_a_number():
    m = decoders.decode(0x2A35, bytes.fromhex("04 00 08 FF 07 FE 07 02 08"))
    readings = {r.metric: r for r in to_readings(m, 1000, visit_id="v-1", time_source="gateway")}
    assert readings["systolic"].value is None and readings["systolic"].quality is Quality.BAD
    assert readings["systolic_absent"].value == "error"
    assert readings["pulse_absent"].value == "negative-infinity"
    assert readings["blood_pressure_status"].value == ""


def test_text_fields_become_readings():
    m = decoders.decode(0x2A1C, bytes.fromhex("06 B0 0E 00 FE DC 07 0C 05 0B 32 1B 04"))
    readings = {r.metric: r.value for r in to_readings(m, 1000, visit_id="v-1", time_source="device")}
    assert readings["temp_site"] == "finger" and readings["body_temp"] == 37.6


@pytest.mark.parametrize("characteristic,case", [c for c in CASES if "expect" in c.values[1]
                                                 and c.values[0] in decoders.MEASUREMENT_CHARACTERISTICS])
def test_json_round_trip(characteristic, case):
    m = _decode_any(characteristic, bytes.fromhex(case["hex"]), case)
    import json
    assert Measurement.from_json(json.loads(json.dumps(m.to_json()))) == m


def test_summaries_in_english_and_japanese():
    m = _nordic_bp()
    assert m.summary().startswith("138/88 mmHg (MAP 120), pulse 60 /min")
    assert "irregular pulse" in m.summary()
    assert m.summary_ja().startswith("138/88 mmHg (平均 120)、脈拍 60 /分")
    special = decoders.decode(0x2A5E, bytes.fromhex("00 00 08 FF 07"))
    assert "measurement failed" in special.summary() and "測定失敗" in special.summary_ja()
    temp = decoders.decode(0x2A1C, bytes.fromhex("06 B0 0E 00 FE DC 07 0C 05 0B 32 1B 04"))
    assert temp.summary() == "37.60°C (finger)"


def test_glucose_context_joins_its_measurement():
    measurement_bytes = bytes.fromhex("12 05 00 EA 07 0B 1D 07 1E 00 78 B0 11")
    assert decoders.glucose_context_follows(measurement_bytes)
    m = decoders.decode(0x2A18, measurement_bytes)
    sequence, text = decoders.decode_glucose_context(bytes.fromhex("02 05 00 03"))
    assert sequence == m.sequence == 5
    joined = decoders.with_context(m, text)
    assert joined.text == {"glucose_sample": "capillary_whole_blood", "glucose_location": "finger",
                           "glucose_meal": "fasting"}


def test_racp_requests():
    assert decoders.encode_racp_report(None) == bytes.fromhex("01 01")
    assert decoders.encode_racp_report(41) == bytes.fromhex("01 03 01 2A 00")      # sequence >= 42
    assert decoders.encode_racp_report_number(None) == bytes.fromhex("04 01")
    assert decoders.encode_racp_abort() == bytes.fromhex("03 00")
    request = decoders.decode_racp_request(decoders.encode_racp_report(41))
    assert (request.op_code, request.operator, request.min_sequence) == (1, 3, 42)
    assert decoders.encode_racp_report(0xFFFF) == bytes.fromhex("01 01")     # nothing is above 65535
    with pytest.raises(ValueError):
        decoders.encode_racp_report(-1)
    assert decoders.decode_racp(bytes.fromhex("06 00 01 01")).ok
    assert not decoders.decode_racp(bytes.fromhex("06 00 01 05")).ok


def test_current_time_write():
    data = decoders.encode_current_time(datetime(2026, 11, 29, 10, 0, 5, 500_000))
    assert data == bytes.fromhex("EA 07 0B 1D 0A 00 05 07 80 01")
    with pytest.raises(ValueError):
        decoders.encode_current_time(datetime(1000, 1, 1))


def test_vital_values_refuse_unknown_metrics_and_ambiguous_values():
    with pytest.raises(ValueError):
        VitalValue("cholesterol", 1.0)
    with pytest.raises(ValueError):
        VitalValue("systolic", 120.0, "error")
    with pytest.raises(ValueError):
        VitalValue("systolic", None)
    with pytest.raises(ValueError):
        VitalValue("systolic", None, "missing")
    m = Measurement("weight", 0x2A9D, [VitalValue("weight", 70.0)])
    assert m.category is Category.WEIGHT and isinstance(m.values, tuple)
