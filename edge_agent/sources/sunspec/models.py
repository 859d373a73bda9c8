"""Decoding one SunSpec model's registers into readings, with the tables of ``definitions.py``.

SunSpec marks a value the device does not provide with a sentinel per type ("not
implemented"); such points are left out. A value whose scale factor is not
implemented cannot be scaled: it is reported as None with quality bad.

Accumulator points (types acc16/acc32/acc64, and model 701's uint64 energy totals) are
counters: they wrap at the end of their type's range, 2**bits raw units, scaled like the value.
Enumerations are sent as their SunSpec label ("MPPT"); a value without a label as its number in text.
"""

from __future__ import annotations

import math
import struct

from device_profiles.codec import decode_raw
from device_profiles.schema import DataType
from edge_agent.sources.base import reading
from edge_agent.sources.sunspec.definitions import COMMON, ModelTable, Point, model_table
from hinode.contract import MetricInfo, Quality, Reading

# type -> (struct format, "not implemented" raw value); strings are handled apart
_TYPES: dict[str, tuple[str | None, object]] = {
    "int16": (">h", -0x8000), "sunssf": (">h", -0x8000), "pad": (">H", None),
    "uint16": (">H", 0xFFFF), "count": (">H", 0xFFFF), "enum16": (">H", 0xFFFF), "bitfield16": (">H", 0xFFFF),
    "acc16": (">H", 0),
    "int32": (">i", -0x80000000), "uint32": (">I", 0xFFFFFFFF), "bitfield32": (">I", 0xFFFFFFFF),
    "enum32": (">I", 0xFFFFFFFF), "acc32": (">I", 0), "ipaddr": (">I", 0),
    "int64": (">q", -0x8000000000000000), "uint64": (">Q", 0xFFFFFFFFFFFFFFFF), "acc64": (">Q", 0),
    "float32": (">f", None), "float64": (">d", None),
    "eui48": (">Q", None), "ipv6addr": (None, None), "string": (None, ""),
}
NOT_IMPLEMENTED = object()
SCALE_FACTOR_RANGE = range(-10, 11)       # the specification's; anything else is as good as missing


def decode_point(point: Point, words: list[int]):
    """Raw value of a point from its model's body registers, or NOT_IMPLEMENTED."""
    raw_words = words[point.offset:point.offset + point.size]
    if point.type == "string":
        text = decode_raw(raw_words, DataType.STRING)
        return text if text else NOT_IMPLEMENTED
    fmt, sentinel = _TYPES.get(point.type, (None, None))
    if fmt is None:
        return NOT_IMPLEMENTED                      # ipv6addr: nothing we report
    value = struct.unpack(fmt, struct.pack(f">{point.size}H", *raw_words))[0]
    if point.type.startswith("float"):
        return value if math.isfinite(value) else NOT_IMPLEMENTED
    return NOT_IMPLEMENTED if value == sentinel else value


def scaled(raw: int | float, exponent: int) -> float:
    # Dividing by an exact power of ten keeps 2297 x 10^-1 at 229.7 rather than 229.70000000000002.
    return float(raw) * 10 ** exponent if exponent >= 0 else raw / 10 ** -exponent


def decode_identity(words: list[int]) -> dict[str, str]:
    """Reported strings of the common model (manufacturer, model, version, serial_number)."""
    out = {}
    for point in model_table(COMMON).reported:
        if point.offset + point.size <= len(words):
            value = decode_point(point, words)
            if value is not NOT_IMPLEMENTED:
                out[point.metric] = value
    return out


def scale_factors(table: ModelTable, words: list[int]) -> dict[str, int | None]:
    factors: dict[str, int | None] = {}
    for point in table.scale_factors:
        if point.offset < len(words):
            value = decode_point(point, words)
            factors[point.name] = value if value is not NOT_IMPLEMENTED and value in SCALE_FACTOR_RANGE else None
    return factors


def _exponent(point: Point, factors: dict[str, int | None]) -> int | None:
    """Power of ten from the raw value to ours; None if the scale factor is missing."""
    if point.sf is None:
        return point.exp
    if isinstance(point.sf, int):
        return point.sf + point.exp
    factor = factors.get(point.sf)
    return None if factor is None else factor + point.exp


def _value(point: Point, raw, exponent: int):
    if point.symbols:
        return point.labels.get(raw, str(raw))
    if point.type.startswith(("bitfield", "enum")) or point.type in ("string", "eui48", "ipaddr"):
        return raw
    if point.type.startswith("float"):
        return scaled(raw, exponent) if exponent else float(raw)
    return scaled(raw, exponent)


def decode_model(table: ModelTable, words: list[int], ts: int, names: dict[str, str] | None = None) -> list[Reading]:
    """Readings of one model; ``words`` is its body (may be shorter than the table: an older device).

    ``names`` renames metrics (point name -> metric) where two models of one device share a name.
    """
    factors = scale_factors(table, words)
    readings = []
    for point in table.reported:
        if point.offset + point.size > len(words):
            continue
        raw = decode_point(point, words)
        if raw is NOT_IMPLEMENTED:
            continue
        metric = (names or {}).get(point.name, point.metric)
        exponent = _exponent(point, factors)
        if exponent is None:
            readings.append(reading(ts, metric, None, point.unit, Quality.BAD))
            continue
        readings.append(reading(ts, metric, _value(point, raw, exponent), point.unit))
    return readings


def describe_model(table: ModelTable, words: list[int], metrics: set[str],
                   names: dict[str, str] | None = None) -> list[MetricInfo]:
    """What the points of ``metrics`` (those the device reports) measure, for the catalog."""
    factors = scale_factors(table, words)
    infos = []
    for point in table.reported:
        metric = (names or {}).get(point.name, point.metric)
        if metric not in metrics:
            continue
        rollover = None
        if point.counter and not point.type.startswith("float"):
            exponent = _exponent(point, factors)
            rollover = scaled(2 ** (16 * point.size), exponent) if exponent is not None else None
        infos.append(MetricInfo(metric=metric, unit=point.unit, counter=point.counter, rollover=rollover))
    return infos
