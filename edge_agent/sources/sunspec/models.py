"""SunSpec point tables (models.yaml) and decoding of one model's registers into readings.

SunSpec marks a value the device does not provide with a sentinel per type ("not
implemented"); such points are left out. A value whose scale factor is not
implemented cannot be scaled: it is reported as None with quality bad.

Accumulator points (types acc16/acc32/acc64, the energy totals) are counters: they
wrap at the end of their type's range, 2**bits raw units, scaled like the value.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

from device_profiles.codec import decode_raw
from device_profiles.schema import DataType
from edge_agent.sources.base import reading
from hinode.contract import MetricInfo, Quality, Reading

MODELS_FILE = Path(__file__).with_name("models.yaml")

# type -> (registers, struct format or None, "not implemented" raw value)
_TYPES: dict[str, tuple[int, str | None, object]] = {
    "int16": (1, ">h", -0x8000), "sunssf": (1, ">h", -0x8000),
    "uint16": (1, ">H", 0xFFFF), "enum16": (1, ">H", 0xFFFF), "bitfield16": (1, ">H", 0xFFFF),
    "acc16": (1, ">H", 0),
    "int32": (2, ">i", -0x80000000), "uint32": (2, ">I", 0xFFFFFFFF), "bitfield32": (2, ">I", 0xFFFFFFFF),
    "enum32": (2, ">I", 0xFFFFFFFF), "acc32": (2, ">I", 0),
    "int64": (4, ">q", -0x8000000000000000), "uint64": (4, ">Q", 0xFFFFFFFFFFFFFFFF), "acc64": (4, ">Q", 0),
    "float32": (2, ">f", None),
    "string": (0, None, ""),
}
NOT_IMPLEMENTED = object()


@dataclass(frozen=True, slots=True)
class Point:
    name: str
    offset: int
    type: str
    size: int
    sf: str | None = None
    exp: int = 0
    metric: str | None = None
    unit: str = ""

    @property
    def counter(self) -> bool:
        return self.type.startswith("acc")


@dataclass(frozen=True, slots=True)
class ModelTable:
    id: int
    label: str
    length: int
    points: tuple[Point, ...]
    scale_factors: tuple[Point, ...]
    reported: tuple[Point, ...]


def _table(model_id: int, data: dict) -> ModelTable:
    points = []
    for row in data["points"]:
        kind = row["type"]
        if kind not in _TYPES:
            raise ValueError(f"{MODELS_FILE}: model {model_id} point {row['name']}: unknown type {kind!r}")
        size = row.get("size") or _TYPES[kind][0]
        points.append(Point(name=row["name"], offset=int(row["offset"]), type=kind, size=int(size),
                            sf=row.get("sf"), exp=int(row.get("exp", 0)), metric=row.get("metric"),
                            unit=row.get("unit", "")))
    names = {p.name for p in points}
    for p in points:
        if p.sf and p.sf not in names:
            raise ValueError(f"{MODELS_FILE}: model {model_id} point {p.name}: scale factor {p.sf!r} missing")
    return ModelTable(id=model_id, label=data["label"], length=int(data["length"]), points=tuple(points),
                      scale_factors=tuple(p for p in points if p.type == "sunssf"),
                      reported=tuple(p for p in points if p.metric and p.type != "sunssf"))


@lru_cache(maxsize=1)
def tables() -> tuple[ModelTable, dict[int, ModelTable]]:
    """(common model 1, {meter model id: table}) from models.yaml."""
    data = yaml.safe_load(MODELS_FILE.read_text())
    common = _table(1, data["common"])
    meters = {int(model_id): _table(int(model_id), body) for model_id, body in data["models"].items()}
    return common, meters


def decode_point(point: Point, words: list[int]):
    """Raw value of a point from its model's body registers, or NOT_IMPLEMENTED."""
    raw_words = words[point.offset:point.offset + point.size]
    if point.type == "string":
        text = decode_raw(raw_words, DataType.STRING)
        return text if text else NOT_IMPLEMENTED
    _, fmt, sentinel = _TYPES[point.type]
    value = struct.unpack(fmt, struct.pack(f">{point.size}H", *raw_words))[0]
    if point.type == "float32":
        return value if math.isfinite(value) else NOT_IMPLEMENTED
    return NOT_IMPLEMENTED if value == sentinel else value


def scaled(raw: int, exponent: int) -> float:
    # Dividing by an exact power of ten keeps 2297 x 10^-1 at 229.7 rather than 229.70000000000002.
    return float(raw) * 10 ** exponent if exponent >= 0 else raw / 10 ** -exponent


def decode_identity(table: ModelTable, words: list[int]) -> dict[str, str]:
    """Reported strings of the common model (manufacturer, model, version, serial_number)."""
    out = {}
    for point in table.reported:
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
            # The specification allows scale factors of -10..10; anything else is as good as missing.
            factors[point.name] = value if value is not NOT_IMPLEMENTED and -10 <= value <= 10 else None
    return factors


def describe_meter(table: ModelTable, words: list[int], metrics: set[str]) -> list[MetricInfo]:
    """What the points of ``metrics`` (those the device reports) measure, for the catalog."""
    factors = scale_factors(table, words)
    infos = []
    for point in table.reported:
        if point.metric not in metrics:
            continue
        rollover = None
        if point.counter:
            factor = factors.get(point.sf) if point.sf else 0
            rollover = scaled(2 ** (16 * point.size), factor + point.exp) if factor is not None else None
        infos.append(MetricInfo(metric=point.metric, unit=point.unit, counter=point.counter, rollover=rollover))
    return infos


def decode_meter(table: ModelTable, words: list[int], ts: int) -> list[Reading]:
    """Readings of one meter model; ``words`` is its body (may be shorter than the table)."""
    factors = scale_factors(table, words)
    readings = []
    for point in table.reported:
        if point.offset + point.size > len(words):
            continue
        raw = decode_point(point, words)
        if raw is NOT_IMPLEMENTED:
            continue
        if point.sf is None:
            readings.append(reading(ts, point.metric, raw, point.unit))
            continue
        factor = factors.get(point.sf)
        if factor is None:
            readings.append(reading(ts, point.metric, None, point.unit, Quality.BAD))
            continue
        readings.append(reading(ts, point.metric, scaled(raw, factor + point.exp), point.unit))
    return readings
