"""Derived points (what domain services and the scheduler write) and their line protocol.

Unlike telemetry (cloud/lineproto.py, where every number becomes a float), a Point keeps
the Python type of each field value:

* ``int``   -> InfluxDB integer (``readings=12i``)
* ``float`` -> InfluxDB float (``consumption=1.5``; ``1.0`` stays a float)
* ``bool``  -> boolean, ``str`` -> string

InfluxDB fixes a field's type per shard by the first value written, and refuses a later
value of another type (``field type conflict``). So a derived series must keep the type
of each field stable: build values with ``float(...)`` / ``int(...)`` explicitly rather
than passing whatever a computation returned. NaN and infinities cannot be stored and
raise ValueError here, before anything is sent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable

from cloud.lineproto import escape_key, escape_measurement, format_string

FieldValue = float | int | bool | str


@dataclass(frozen=True)
class Point:
    measurement: str
    tags: dict[str, str]
    fields: dict[str, FieldValue]
    ts_ms: int


def format_field(value: FieldValue) -> str:
    if isinstance(value, bool):  # before int: bool is an int subclass
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value}i"
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value!r} cannot be stored in InfluxDB")
        return repr(value)
    if isinstance(value, str):
        return format_string(value)
    raise TypeError(f"field value {value!r} is {type(value).__name__}, expected float, int, bool or str")


def encode_point(point: Point) -> str:
    """One line; tags sorted (InfluxDB's canonical order), empty tag values left out."""
    if not point.fields:
        raise ValueError(f"point of {point.measurement!r} at {point.ts_ms} has no fields")
    tags = "".join(f",{escape_key(k)}={escape_key(v)}" for k, v in sorted(point.tags.items()) if v != "")
    try:
        fields = ",".join(f"{escape_key(k)}={format_field(v)}" for k, v in point.fields.items())
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"{point.measurement} {point.tags} at {point.ts_ms}: {exc}") from None
    return f"{escape_measurement(point.measurement)}{tags} {fields} {int(point.ts_ms)}"


def encode_points(points: Iterable[Point]) -> list[str]:
    return [encode_point(p) for p in points]
