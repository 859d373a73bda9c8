"""The ingest's decode step: contract validation with a fast path, and the clock-skew check.

``decode_envelope`` gives exactly the result of :func:`hinode.contract.decode_telemetry`
(the same envelope, or a ContractError with the same reason code), about twice as fast
for valid payloads: pydantic parses and validates the JSON bytes in one step
(``model_validate_json``) instead of ``json.loads`` + ``model_validate``. Anything the
fast path refuses, or cannot judge like the slow path (a missing ``v``), goes through
``decode_telemetry`` itself, so error codes and messages do not change.

``clock_skew`` finds readings whose ``ts`` is implausibly far from the ingest's clock
(an edge box whose clock jumped): such an envelope is dead-lettered with reason
``clock_skew`` instead of being stored at a wrong time.
"""

from __future__ import annotations

from pydantic import ValidationError

from hinode.contract import MAX_PAYLOAD_BYTES, ContractError, TelemetryEnvelope, decode_telemetry, parse_topic

CLOCK_SKEW = "clock_skew"


def decode_envelope(payload: bytes, topic: str | None = None) -> TelemetryEnvelope:
    """Parse and validate a telemetry payload; raises ContractError like decode_telemetry."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        return decode_telemetry(payload, topic)
    try:
        envelope = TelemetryEnvelope.model_validate_json(payload)
    except ValidationError:
        return decode_telemetry(payload, topic)     # the reason code and message of the contract
    if "v" not in envelope.model_fields_set:        # the contract requires an explicit version
        return decode_telemetry(payload, topic)
    if topic is not None:
        parsed = parse_topic(topic)
        if parsed is None or parsed[0] != envelope.site or parsed[1] != envelope.agent:
            return decode_telemetry(payload, topic)
    return envelope


def _duration(ms: int) -> str:
    seconds = ms / 1000
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    if seconds < 3 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def clock_skew(envelope: TelemetryEnvelope, now_ms: int, max_future_ms: int, max_past_ms: int) -> str | None:
    """None when every reading's ts is within [now - max_past, now + max_future]; else why not."""
    newest = oldest = envelope.readings[0].ts
    for reading in envelope.readings:
        ts = reading.ts
        if ts > newest:
            newest = ts
        elif ts < oldest:
            oldest = ts
    if newest - now_ms > max_future_ms:
        return (f"reading ts {newest} is {_duration(newest - now_ms)} ahead of the ingest's clock "
                f"(limit {_duration(max_future_ms)}); edge clock jumped forward?")
    if now_ms - oldest > max_past_ms:
        return (f"reading ts {oldest} is {_duration(now_ms - oldest)} behind the ingest's clock "
                f"(limit {_duration(max_past_ms)}); edge clock jumped back?")
    return None


__all__ = ["CLOCK_SKEW", "ContractError", "clock_skew", "decode_envelope"]
