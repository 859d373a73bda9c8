"""Envelope -> line protocol, against hand-written expected lines."""

import pytest

from cloud.lineproto import encode_envelope, envelope_to_lines, escape_key, escape_measurement, format_string
from hinode.contract import Reading, TelemetryEnvelope

pytestmark = pytest.mark.timeout(10)

TS = 1_700_000_000_000


def envelope(readings, kind="meter", profile="hinode-sim-meter", seq=42, device="pm-1"):
    return TelemetryEnvelope(site="plant-a", agent="edge-1", device=device, kind=kind, profile=profile,
                             seq=seq, readings=[Reading(**r) for r in readings])


def test_numbers_are_floats_seq_is_integer_tags_sorted():
    env = envelope([{"ts": TS, "metric": "power_w", "value": 1520},
                    {"ts": TS, "metric": "voltage_v", "value": 230.4},
                    {"ts": TS, "metric": "energy_wh", "value": 0}])
    assert envelope_to_lines(env) == [
        "meter,agent=edge-1,device=pm-1,profile=hinode-sim-meter,site=plant-a "
        f"power_w=1520.0,voltage_v=230.4,energy_wh=0.0,seq=42i {TS}"]


def test_bool_string_and_none():
    env = envelope([{"ts": TS, "metric": "charging", "value": True},
                    {"ts": TS, "metric": "locked", "value": False},
                    {"ts": TS, "metric": "status", "value": "Charging"},
                    {"ts": TS, "metric": "error_code", "value": None}], kind="charger", profile="")
    assert envelope_to_lines(env) == [
        f'charger,agent=edge-1,device=pm-1,site=plant-a charging=true,locked=false,status="Charging",seq=42i {TS}']


def test_one_line_per_timestamp_in_first_seen_order():
    env = envelope([{"ts": TS + 1000, "metric": "power_w", "value": 2.5},
                    {"ts": TS, "metric": "power_w", "value": 1.5},
                    {"ts": TS + 1000, "metric": "voltage_v", "value": 230}], profile="")
    assert envelope_to_lines(env) == [
        f"meter,agent=edge-1,device=pm-1,site=plant-a power_w=2.5,voltage_v=230.0,seq=42i {TS + 1000}",
        f"meter,agent=edge-1,device=pm-1,site=plant-a power_w=1.5,seq=42i {TS}"]


def test_bad_quality_is_listed_not_written_and_uncertain_is_both():
    env = envelope([{"ts": TS, "metric": "power_w", "value": 10, "quality": "bad"},
                    {"ts": TS, "metric": "voltage_v", "value": 231.5, "quality": "uncertain"},
                    {"ts": TS, "metric": "current_a", "value": 3.2},
                    {"ts": TS, "metric": "energy_wh", "value": 99, "quality": "bad"}], profile="")
    encoded = encode_envelope(env)
    assert encoded.lines == [
        "meter,agent=edge-1,device=pm-1,site=plant-a voltage_v=231.5,current_a=3.2,seq=42i,"
        f'bad_metrics="energy_wh,power_w",uncertain_metrics="voltage_v" {TS}']
    assert (encoded.bad_quality, encoded.uncertain_quality, encoded.readings_written) == (2, 1, 2)


def test_a_point_with_only_bad_readings_still_carries_seq():
    env = envelope([{"ts": TS, "metric": "power_w", "value": None, "quality": "bad"}], profile="")
    assert envelope_to_lines(env) == [f'meter,agent=edge-1,device=pm-1,site=plant-a seq=42i,bad_metrics="power_w" {TS}']


def test_nan_infinity_and_huge_ints_are_not_storable():
    env = envelope([{"ts": TS, "metric": "a", "value": float("nan")},
                    {"ts": TS, "metric": "b", "value": float("-inf")},
                    {"ts": TS, "metric": "c", "value": 10 ** 400},
                    {"ts": TS, "metric": "d", "value": 1e-5}], profile="")
    encoded = encode_envelope(env)
    assert encoded.lines == [f'meter,agent=edge-1,device=pm-1,site=plant-a d=1e-05,seq=42i,bad_metrics="a,b,c" {TS}']
    assert encoded.not_storable == 3


def test_metric_names_that_clash_with_the_schema_are_not_written():
    env = envelope([{"ts": TS, "metric": "seq", "value": 7}, {"ts": TS, "metric": "time", "value": 1},
                    {"ts": TS, "metric": "site", "value": "x"}, {"ts": TS, "metric": "ok", "value": 1}], profile="")
    encoded = encode_envelope(env)
    assert encoded.lines == [f'meter,agent=edge-1,device=pm-1,site=plant-a ok=1.0,seq=42i,bad_metrics="seq,site,time" {TS}']
    assert encoded.reserved_metric == 3


def test_string_values_escape_quotes_and_backslashes_and_keep_newlines_as_text():
    env = envelope([{"ts": TS, "metric": "message", "value": 'said "hi" C:\\temp\nnext line'}], profile="")
    assert envelope_to_lines(env) == [
        f'meter,agent=edge-1,device=pm-1,site=plant-a message="said \\"hi\\" C:\\\\temp\\\\nnext line",seq=42i {TS}']


def test_profile_tag_escapes_spaces_commas_equals_and_replaces_backslashes():
    env = envelope([{"ts": TS, "metric": "p", "value": 1}], profile="ACME meter, v=2 \\x\\")
    assert envelope_to_lines(env) == [
        f"meter,agent=edge-1,device=pm-1,profile=ACME\\ meter\\,\\ v\\=2\\ /x/,site=plant-a p=1.0,seq=42i {TS}"]


@pytest.mark.parametrize("raw, expected", [
    ("plain", "plain"), ("a b", "a\\ b"), ("a,b", "a\\,b"), ("a=b", "a\\=b"), ("a\\", "a/"), ("a\nb", "a\\nb")])
def test_escape_key(raw, expected):
    assert escape_key(raw) == expected


def test_escape_measurement_leaves_equals_alone():
    assert escape_measurement("my meas,x=y") == "my\\ meas\\,x=y"


def test_format_string():
    assert format_string('a"b\\c') == '"a\\"b\\\\c"'


def test_same_envelope_gives_identical_lines():
    readings = [{"ts": TS, "metric": "power_w", "value": 1.25}, {"ts": TS, "metric": "status", "value": "ok"}]
    assert envelope_to_lines(envelope(readings)) == envelope_to_lines(envelope(readings))
