"""The ingest's fast decode path gives what the contract's decoder gives: same envelope, same error."""

import json

import pytest

from cloud.ingest.decode import decode_envelope
from hinode import contract
from hinode.contract import ContractError

pytestmark = pytest.mark.timeout(10)

TOPIC = contract.telemetry_topic("plant-a", "edge-1")
GOOD = {"v": 1, "site": "plant-a", "agent": "edge-1", "device": "pm-1", "kind": "meter", "profile": "p", "seq": 3,
        "readings": [{"ts": 1795430688123, "metric": "power_w", "value": 48213.5, "unit": "W", "quality": "good"},
                     {"ts": 1795430688123, "metric": "on", "value": True},
                     {"ts": 1795430688124, "metric": "state", "value": "Charging", "quality": "uncertain"},
                     {"ts": 1795430688124, "metric": "count", "value": 7},
                     {"ts": 1795430688124, "metric": "gone", "value": None, "quality": "bad"}],
        "meta": {"consent": "c-1"}}


def variant(**changes) -> bytes:
    body = {**GOOD, **changes}
    return json.dumps({k: v for k, v in body.items() if v is not ...}).encode()


PAYLOADS = {
    "good": json.dumps(GOOD).encode(),
    "good, minimal": variant(profile=..., meta=...),
    "string seq (lax)": variant(seq="3"),
    "no version": variant(v=...),
    "version 2": variant(v=2),
    "version as string": variant(v="1"),
    "not JSON": b'{"v": 1, "site": ',
    "not UTF-8": b'{"v": 1, "site": "\xff\xfe"}',
    "UTF-16": json.dumps(GOOD).encode("utf-16"),
    "array": b"[1, 2]",
    "null": b"null",
    "bad id": variant(device="pm 1"),
    "bad metric": variant(readings=[{"ts": 1, "metric": "Power", "value": 1}]),
    "negative ts": variant(readings=[{"ts": -1, "metric": "p", "value": 1}]),
    "no readings": variant(readings=[]),
    "unknown key": variant(extra=1),
    "wrong kind": variant(kind="toaster"),
    "NaN value": json.dumps({**GOOD, "readings": [{"ts": 1, "metric": "p", "value": float("nan")}]}).encode(),
    "huge int": variant(readings=[{"ts": 1, "metric": "p", "value": 10 ** 400}]),
    "other site than topic": variant(site="plant-b"),
    "oversized": b" " * (contract.MAX_PAYLOAD_BYTES + 1),
}


def outcome(decoder, payload: bytes, topic: str | None):
    try:
        return "ok", repr(decoder(payload, topic).model_dump())   # repr: NaN == NaN
    except ContractError as exc:
        return exc.code, str(exc)


@pytest.mark.parametrize("name", sorted(PAYLOADS))
@pytest.mark.parametrize("topic", [TOPIC, None, "not/our/topic"])
def test_fast_decode_matches_the_contract_decoder(name, topic):
    payload = PAYLOADS[name]
    assert outcome(decode_envelope, payload, topic) == outcome(contract.decode_telemetry, payload, topic)


def test_the_corpus_covers_success_and_every_error_code():
    codes = {outcome(contract.decode_telemetry, payload, TOPIC)[0] for payload in PAYLOADS.values()}
    assert codes == {"ok", "oversized", "malformed_json", "wrong_type", "unknown_version", "invalid", "topic_mismatch"}
