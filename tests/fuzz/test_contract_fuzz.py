"""Property tests of the wire-contract parser: whatever arrives on a telemetry topic,
``decode_telemetry`` either returns an envelope or raises ContractError with a reason
code — never anything else (the ingest counts and dead-letters by that code)."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from hinode import contract
from hinode.contract import ContractError, TelemetryEnvelope, decode_telemetry
from tests.fuzz.helpers import dumps, envelopes, json_values

pytestmark = pytest.mark.timeout(120)

REASON_CODES = {"oversized", "malformed_json", "wrong_type", "unknown_version", "invalid", "topic_mismatch"}
FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def decode_or_reason(payload: bytes, topic: str | None = None) -> TelemetryEnvelope | str:
    try:
        return decode_telemetry(payload, topic)
    except ContractError as exc:
        assert exc.code in REASON_CODES, f"unknown reason code {exc.code!r}"
        assert str(exc), "a ContractError without a message"
        return exc.code


@FAST
@given(st.binary(max_size=600))
@example(b"")
@example(b"\xff\xfe")
@example(b"NaN")
@example(b"[" * 3000)                       # deep nesting, far below the 256 KiB limit
@example(b'{"v": 1, "readings": ' + b"[" * 3000 + b"]" * 3000 + b"}")
def test_arbitrary_bytes_give_an_envelope_or_a_contract_error(payload):
    decode_or_reason(payload, contract.telemetry_topic("site", "agent"))


@FAST
@given(json_values)
def test_arbitrary_json_gives_a_contract_error_with_a_reason(value):
    result = decode_or_reason(dumps(value))
    assert isinstance(result, str), f"{value!r} was accepted as an envelope"


@FAST
@given(envelopes, st.sampled_from(["v", "site", "agent", "device", "kind", "seq", "readings", "meta", "profile"]),
       json_values)
def test_one_field_replaced_by_arbitrary_json_gives_an_envelope_or_a_contract_error(envelope, key, value):
    envelope = dict(envelope, **{key: value})
    result = decode_or_reason(dumps(envelope))
    if isinstance(result, TelemetryEnvelope):   # only when the replacement happens to be valid
        assert getattr(result, key) is not None


@FAST
@given(envelopes)
def test_valid_envelopes_round_trip_through_encode_and_decode(data):
    envelope = TelemetryEnvelope.model_validate(data)
    topic = contract.telemetry_topic(envelope.site, envelope.agent)
    decoded = decode_telemetry(contract.encode(envelope), topic)
    assert decoded == envelope
    # what a third-party JSON library writes decodes to the same envelope
    assert decode_telemetry(json.dumps(data).encode(), topic) == envelope


@FAST
@given(envelopes, st.from_regex(contract.ID_PATTERN, fullmatch=True))
def test_an_envelope_on_another_agents_topic_is_a_topic_mismatch(data, other):
    envelope = TelemetryEnvelope.model_validate(data)
    if other == envelope.agent:
        other = other + "x" if len(other) < 64 else "y"
    wrong = contract.telemetry_topic(envelope.site, other)
    assert decode_or_reason(contract.encode(envelope), wrong) == "topic_mismatch"


@settings(max_examples=50, deadline=None)
@given(envelopes, st.sampled_from([float("nan"), float("inf"), float("-inf")]))
def test_non_finite_values_encode_to_a_payload_the_contract_still_accepts(data, bad):
    data["readings"][0]["value"] = bad
    envelope = TelemetryEnvelope.model_validate(data)
    decoded = decode_telemetry(contract.encode(envelope))
    # JSON cannot spell NaN/inf: the value arrives as null (stored as "no value"), never as garbage
    assert decoded.readings[0].value is None
    assert decoded.readings[1:] == envelope.readings[1:]


def test_oversized_payload_is_refused_unread():
    payload = b" " * (contract.MAX_PAYLOAD_BYTES + 1)
    assert decode_or_reason(payload) == "oversized"


SURROGATES = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF, categories=["Cs"])


@FAST
@given(envelopes, st.lists(st.one_of(st.characters(), SURROGATES), max_size=10).map("".join),
       st.sampled_from(["value", "unit", "metric"]))
def test_an_accepted_envelope_can_be_encoded_again_as_utf8(data, text, field):
    """Whatever the contract accepts, the cloud must be able to write (InfluxDB bodies are UTF-8).
    A JSON escape like \\ud800 is legal JSON but a lone surrogate, which UTF-8 cannot carry."""
    data["readings"][0][field] = text
    result = decode_or_reason(json.dumps(data).encode())   # ensure_ascii: surrogates as \uXXXX escapes
    if isinstance(result, TelemetryEnvelope):
        contract.encode(result).decode("utf-8")
        for reading in result.readings:
            if isinstance(reading.value, str):
                reading.value.encode("utf-8")
