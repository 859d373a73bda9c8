"""What goes into and comes out of the fleet tracker: fixes, events, trips, violations, vehicle views.

All plain dataclasses, JSON-able through :func:`dataclasses.asdict` (``Trip`` inside a ``FleetEvent``
included). Vehicle vocabulary (metric names, states, event types) comes from ``hinode.mobility``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from hinode.contract import TelemetryEnvelope
from hinode.mobility import EventType, fixes

# Reading metric -> Fix attribute (the ones that are not spelled the same).
_METRIC_FIELDS = {
    "lat": "lat", "lon": "lon", "heading": "heading", "speed": "speed_kmh", "accuracy": "accuracy_m",
    "battery": "battery_pct", "range": "range_m", "state": "state", "tipped_over": "tipped_over",
    "driving_mode": "driving_mode", "passenger": "passenger", "emergency_stop": "emergency_stop",
    "obstacle": "obstacle",
}
_FLOAT_FIELDS = frozenset({"lat", "lon", "heading", "speed_kmh", "accuracy_m", "battery_pct", "range_m"})
_RANGES = {"lat": (-90.0, 90.0), "lon": (-180.0, 180.0), "heading": (0.0, 360.0), "battery_pct": (0.0, 100.0)}
_BOOL_FIELDS = frozenset({"tipped_over", "passenger", "emergency_stop"})
_STR_FIELDS = frozenset({"state", "driving_mode", "obstacle"})


@dataclass(slots=True)
class Fix:
    """One moment of one vehicle: every reading it sent with one ``ts``. Absent readings are None."""

    fleet: str
    vehicle: str
    vehicle_type: str
    ts_ms: int
    lat: float | None = None
    lon: float | None = None
    speed_kmh: float | None = None
    heading: float | None = None
    accuracy_m: float | None = None
    battery_pct: float | None = None
    range_m: float | None = None
    state: str | None = None
    tipped_over: bool | None = None
    driving_mode: str | None = None
    passenger: bool | None = None
    emergency_stop: bool | None = None
    obstacle: str | None = None

    @property
    def has_position(self) -> bool:
        return self.lat is not None and self.lon is not None


class FixError(ValueError):
    """A reading whose value does not fit its metric (the fix is kept without it)."""


def fixes_from_envelope(envelope: TelemetryEnvelope, problems: list[str] | None = None) -> list[Fix]:
    """The envelope's fixes in ts order; a message per dropped reading (wrong type, out of range: a
    latitude of 200, a negative speed) goes to ``problems``.

    A reading with a value of the wrong type is left out of its fix, never the whole fix. Metrics
    the tracker does not use are ignored. The vehicle is ``meta["fleet"]`` / the device, its type
    ``meta["vehicle_type"]`` (the site and device when meta lacks them).
    """
    fleet = envelope.meta.get("fleet") or envelope.site
    vehicle_type = envelope.meta.get("vehicle_type", "")
    found: list[Fix] = []
    for values in fixes(envelope):
        fix = Fix(fleet=fleet, vehicle=envelope.device, vehicle_type=vehicle_type, ts_ms=int(values["ts"]))
        for metric, value in values.items():
            name = _METRIC_FIELDS.get(metric)
            if name is None or value is None:
                continue
            try:
                setattr(fix, name, _coerce(name, value))
            except FixError as exc:
                if problems is not None:
                    problems.append(f"{fleet}/{envelope.device} ts {fix.ts_ms}: {metric}: {exc}")
        found.append(fix)
    return found


def _coerce(name: str, value: Any):
    if name in _FLOAT_FIELDS:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise FixError(f"expected a number, got {value!r}")
        low, high = _RANGES.get(name, (0.0, math.inf))
        if not low <= value <= high:
            raise FixError(f"expected {low:g} .. {high:g}, got {value!r}")
        return float(value)
    if name in _BOOL_FIELDS:
        if not isinstance(value, bool):
            raise FixError(f"expected true/false, got {value!r}")
        return value
    if not isinstance(value, str):
        raise FixError(f"expected a string, got {value!r}")
    return value


@dataclass(slots=True)
class Trip:
    fleet: str
    vehicle: str
    vehicle_type: str
    start_ms: int
    end_ms: int
    start_lat: float | None
    start_lon: float | None
    end_lat: float | None
    end_lon: float | None
    distance_m: float
    duration_s: float
    max_speed_kmh: float
    route: list[list[float]] = field(default_factory=list)   # [[lon, lat], ...], at most 200 points

    def route_geojson(self) -> dict:
        return {"type": "LineString", "coordinates": [list(p) for p in self.route]}


@dataclass(slots=True)
class FleetEvent:
    event_id: str
    fleet: str
    vehicle: str
    vehicle_type: str
    ts_ms: int
    event_type: EventType
    vehicle_state: str
    lat: float | None
    lon: float | None
    battery_pct: float | None
    zone_id: str = ""
    violation_id: str = ""
    violation_kind: str = ""
    detail: str = ""
    trip: Trip | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def event_id(fleet: str, vehicle: str, ts_ms: int, event_type: str, zone_id: str = "") -> str:
    base = f"{fleet}:{vehicle}:{ts_ms}:{event_type}"
    return f"{base}:{zone_id}" if zone_id else base


@dataclass(slots=True)
class Violation:
    """An open (``end_ms`` 0) or finished violation; start and end events share ``violation_id``."""

    violation_id: str
    fleet: str
    vehicle: str
    vehicle_type: str
    kind: str            # a ViolationKind
    zone_id: str
    start_ms: int
    lat: float | None
    lon: float | None
    max_speed_kmh: float = 0.0
    end_ms: int = 0

    @property
    def open(self) -> bool:
        return self.end_ms == 0


@dataclass(slots=True)
class VehicleView:
    fleet: str
    vehicle: str
    vehicle_type: str
    ts_ms: int
    lat: float | None
    lon: float | None
    speed_kmh: float | None
    heading: float | None
    battery_pct: float | None
    range_m: float | None
    state: str | None
    tipped_over: bool
    driving_mode: str | None
    passenger: bool | None
    online: bool
    zones: list[str]
    trip_count: int
    last_event_type: str
    # beyond design.md's list: what the alerts need without guessing from last_event_type
    battery_low: bool = False        # below battery_low_pct and not yet back to battery_charged_pct
    idle_too_long: bool = False      # idle_too_long raised and it has not moved since
    idle_since_ms: int = 0           # when it last moved more than idle_move_m
    on_trip: bool = False
