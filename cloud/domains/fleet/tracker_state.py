"""What the tracker remembers per vehicle, and how it goes to and from a JSON-able snapshot."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from operator import attrgetter

from .events import VehicleView, Violation
from .tracker_trip import TripDetector


@dataclass(slots=True)
class Candidate:
    """A violation's condition seen, not yet long enough to be one."""

    since_ms: int
    lat: float | None
    lon: float | None
    max_speed_kmh: float = 0.0


@dataclass(slots=True)
class VehicleRecord:
    fleet: str
    vehicle: str
    vehicle_type: str
    last_ts: int = 0
    lat: float | None = None
    lon: float | None = None
    speed_kmh: float | None = None
    heading: float | None = None
    accuracy_m: float | None = None
    battery_pct: float | None = None
    range_m: float | None = None
    state: str | None = None
    tipped_over: bool = False
    driving_mode: str | None = None
    passenger: bool | None = None
    emergency_stop: bool = False
    online: bool = True
    reports_state: bool = False
    zones: list[str] = field(default_factory=list)        # ids of the zones it is in, file order
    zone_lat: float | None = None                          # where ``zones`` was last decided
    zone_lon: float | None = None
    trip_count: int = 0
    last_event_type: str = ""
    battery_low: bool = False
    idle_lat: float | None = None                          # where it has stood since idle_since_ms
    idle_lon: float | None = None
    idle_since_ms: int = 0
    idle_alerted: bool = False
    # "kind:zone" -> the open violation / its condition seen but not yet confirmed / ending
    violations: dict[str, Violation] = field(default_factory=dict)
    candidates: dict[str, Candidate] = field(default_factory=dict)
    clearing: dict[str, int] = field(default_factory=dict)
    trips: TripDetector = field(default_factory=TripDetector)

    def view(self) -> VehicleView:
        return VehicleView(
            fleet=self.fleet, vehicle=self.vehicle, vehicle_type=self.vehicle_type, ts_ms=self.last_ts,
            lat=self.lat, lon=self.lon, speed_kmh=self.speed_kmh, heading=self.heading,
            battery_pct=self.battery_pct, range_m=self.range_m, state=self.state, tipped_over=self.tipped_over,
            driving_mode=self.driving_mode, passenger=self.passenger, online=self.online, zones=list(self.zones),
            trip_count=self.trip_count, last_event_type=self.last_event_type, battery_low=self.battery_low,
            idle_too_long=self.idle_alerted, idle_since_ms=self.idle_since_ms, on_trip=self.trips.trip is not None)

    def to_dict(self) -> dict:
        data = dict(zip(_PLAIN_FIELDS, _get_plain(self)))
        data["zones"] = list(self.zones)
        data["violations"] = {key: plain(v) for key, v in self.violations.items()}
        data["candidates"] = {key: plain(c) for key, c in self.candidates.items()}
        data["clearing"] = dict(self.clearing)
        data["trips"] = self.trips.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict) -> VehicleRecord:
        data = dict(data)
        violations = {key: Violation(**value) for key, value in data.pop("violations", {}).items()}
        candidates = {key: Candidate(**value) for key, value in data.pop("candidates", {}).items()}
        trips = TripDetector.from_dict(data.pop("trips", {}))
        record = cls(**data)
        record.violations, record.candidates, record.trips = violations, candidates, trips
        return record


def plain(obj) -> dict:
    """A slots dataclass's fields as a dict (shallow: much faster than dataclasses.asdict for snapshots)."""
    names = _FIELD_NAMES.get(type(obj))
    if names is None:
        names = _FIELD_NAMES[type(obj)] = tuple(f.name for f in fields(obj))
    return {name: getattr(obj, name) for name in names}


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


_PLAIN_FIELDS = tuple(f.name for f in fields(VehicleRecord)
                      if f.name not in ("zones", "violations", "candidates", "clearing", "trips"))
_get_plain = attrgetter(*_PLAIN_FIELDS)
