"""The wire contract: topics, one realistic envelope per device kind, and refusals."""

import json

import pytest

from hinode import contract
from hinode.contract import ContractError, decode_telemetry

TS = 1_795_430_688_123

EXAMPLES = {
    "meter": {"device": "press-3", "kind": "meter", "profile": "eastron-sdm630", "readings": [
        {"ts": TS, "metric": "power_total", "value": 48213.5, "unit": "W"},
        {"ts": TS, "metric": "energy_import", "value": 183220.41, "unit": "kWh"}]},
    "charger": {"device": "cp-07", "kind": "charger", "profile": "ocpp-1.6j", "meta": {"connector": "1"}, "readings": [
        {"ts": TS, "metric": "power_active_import", "value": 7360.0, "unit": "W"},
        {"ts": TS, "metric": "status", "value": "Charging"},
        {"ts": TS, "metric": "transaction_id", "value": 4711}]},
    "vitals": {"device": "bp-cuff-12", "kind": "vitals", "profile": "ble-blood-pressure",
               "meta": {"subject": "p-5f3a", "consent": "c-2026-0412"}, "readings": [
        {"ts": TS, "metric": "systolic", "value": 128.0, "unit": "mmHg"},
        {"ts": TS, "metric": "diastolic", "value": 84.0, "unit": "mmHg"},
        {"ts": TS, "metric": "pulse", "value": 71.0, "unit": "bpm", "quality": "uncertain"}]},
    "vehicle": {"device": "scooter-0042", "kind": "vehicle", "profile": "gbfs-scooter", "meta": {"fleet": "hitachi-ev"},
                "readings": [
        {"ts": TS, "metric": "lat", "value": 36.5991, "unit": "deg"},
        {"ts": TS, "metric": "lon", "value": 140.6515, "unit": "deg"},
        {"ts": TS, "metric": "battery", "value": 62.0, "unit": "%"},
        {"ts": TS, "metric": "state", "value": "riding"},
        {"ts": TS, "metric": "locked", "value": False}]},
}


def envelope(example: str, **changes) -> dict:
    return {"v": 1, "site": "hitachi-omika", "agent": "edge-01", "seq": 12, **EXAMPLES[example], **changes}


def test_topics_are_versioned_and_parse_back():
    assert contract.telemetry_topic("s1", "a1") == "hinode/v1/s1/a1/telemetry"
    assert contract.status_topic("s1", "a1") == "hinode/v1/s1/a1/status"
    assert contract.command_topic("s1", "a1", "reboot") == "hinode/v1/s1/a1/cmd/reboot"
    assert contract.shared("hinode-ingest", contract.TELEMETRY_FILTER) == "$share/hinode-ingest/hinode/v1/+/+/telemetry"
    assert contract.parse_topic("hinode/v1/s1/a1/telemetry") == ("s1", "a1", "telemetry")
    assert contract.parse_topic("hinode/v1/_deadletter/invalid") is None
    for bad in ("plant\n", "a/b", "+", ""):
        with pytest.raises(ValueError):
            contract.telemetry_topic(bad, "a1")


@pytest.mark.parametrize("kind", sorted(EXAMPLES))
def test_every_device_kind_fits_the_envelope(kind):
    raw = envelope(kind)
    parsed = decode_telemetry(json.dumps(raw).encode(), contract.telemetry_topic("hitachi-omika", "edge-01"))
    assert parsed.kind == kind
    assert [r.value for r in parsed.readings] == [r["value"] for r in raw["readings"]]
    assert json.loads(contract.encode(parsed))["readings"][0]["ts"] == TS


@pytest.mark.parametrize("payload, code", [
    (b"{not json", "malformed_json"),
    (b"[1, 2]", "wrong_type"),
    (json.dumps(envelope("meter", v=2)).encode(), "unknown_version"),
    (json.dumps(envelope("meter", seq="twelve")).encode(), "invalid"),
    (json.dumps(envelope("meter", seq=0)).encode(), "invalid"),
    (json.dumps(envelope("meter", kind="toaster")).encode(), "invalid"),
    (json.dumps(envelope("meter", readings=[])).encode(), "invalid"),
    (json.dumps(envelope("meter", extra=1)).encode(), "invalid"),
    (b"x" * (contract.MAX_PAYLOAD_BYTES + 1), "oversized"),
])
def test_bad_payloads_are_refused_with_a_reason_code(payload, code):
    with pytest.raises(ContractError) as err:
        decode_telemetry(payload)
    assert err.value.code == code


def test_payload_must_match_its_topic():
    payload = json.dumps(envelope("meter")).encode()
    with pytest.raises(ContractError) as err:
        decode_telemetry(payload, contract.telemetry_topic("other-site", "edge-01"))
    assert err.value.code == "topic_mismatch"
