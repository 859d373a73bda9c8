"""Validation of user input that ends up in InfluxQL.

Nothing a user typed reaches a query as text: ids and metric names must match the
contract patterns (and are quoted anyway), times become integer milliseconds and
windows become integer milliseconds. Every refusal says what was expected.
"""

from __future__ import annotations

import re
import time
from datetime import datetime, timezone

from hinode import contract


class InvalidParameter(ValueError):
    """Bad user input; the API answers 422 with this message."""

    def __init__(self, name: str, message: str):
        super().__init__(f"{name}: {message}")
        self.name = name


AGGREGATES = ("mean", "min", "max", "last", "count")
KINDS = tuple(k.value for k in contract.DeviceKind)

_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
_DURATION_RE = re.compile(r"^([1-9][0-9]{0,8})(ms|s|m|h|d|w)$")
_RELATIVE_RE = re.compile(r"^-([1-9][0-9]{0,8})(ms|s|m|h|d|w)$")
_ID_RE = re.compile(contract.ID_PATTERN)
_METRIC_RE = re.compile(contract.METRIC_PATTERN)
MAX_BUCKETS = 10_000


def _show(value: str) -> str:
    return repr(value if len(value) <= 80 else value[:80] + "...")


def check_id(name: str, value: str) -> str:
    if not _ID_RE.fullmatch(value):
        raise InvalidParameter(name, f"{_show(value)} is not a valid id (expected {contract.ID_PATTERN})")
    return value


def check_metric(value: str) -> str:
    if not _METRIC_RE.fullmatch(value):
        raise InvalidParameter("metric", f"{_show(value)} is not a valid metric name (expected {contract.METRIC_PATTERN})")
    return value


def check_agg(value: str) -> str:
    if value not in AGGREGATES:
        raise InvalidParameter("agg", f"{_show(value)} is not one of {', '.join(AGGREGATES)}")
    return value


def parse_duration_ms(name: str, value: str) -> int:
    """``10s``, ``1m``, ``30m``, ``2h``, ``1d``, ``500ms`` -> milliseconds."""
    match = _DURATION_RE.fullmatch(value)
    if not match:
        raise InvalidParameter(name, f"{_show(value)} is not a duration (expected a number and a unit "
                                     "ms/s/m/h/d/w, like 10s, 1m, 30m)")
    return int(match.group(1)) * _UNIT_MS[match.group(2)]


def parse_time_ms(name: str, value: str, now_ms: int | None = None) -> int:
    """``now``, relative (``-1h``, ``-15m``) or RFC3339 (``2024-05-01T08:00:00Z``) -> epoch ms."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    if value == "now":
        return now_ms
    match = _RELATIVE_RE.fullmatch(value)
    if match:
        return now_ms - int(match.group(1)) * _UNIT_MS[match.group(2)]
    if not re.fullmatch(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$", value):
        raise InvalidParameter(name, f"{_show(value)} is not a time (expected RFC3339 like "
                                     "2024-05-01T08:00:00Z, a relative time like -1h or -15m, or now)")
    text = value.replace("Z", "+00:00")
    # Python before 3.11 parsed at most 6 fraction digits; cut nanoseconds to microseconds.
    text = re.sub(r"\.(\d{6})\d+", r".\1", text)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise InvalidParameter(name, f"{_show(value)} is not a valid time: {exc}") from None
    return int(parsed.astimezone(timezone.utc).timestamp() * 1000)


def check_range(start_ms: int, end_ms: int, window_ms: int) -> None:
    if end_ms <= start_ms:
        raise InvalidParameter("end", "must be after start")
    buckets = (end_ms - start_ms) // window_ms
    if buckets > MAX_BUCKETS:
        raise InvalidParameter("window", f"gives {buckets} buckets for this range; at most {MAX_BUCKETS} "
                                         "(choose a larger window or a shorter range)")
