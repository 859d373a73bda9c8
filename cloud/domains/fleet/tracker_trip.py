"""Trips of one vehicle, fix by fix: the rules the live tracker and ``trips.trips_from_track`` share.

- A vehicle that reports a state: a trip starts at the fix whose state turns ``on_trip`` and ends at the
  first fix whose state is anything else (MDS: the state is the operator's word for it).
- A vehicle that reports no state (a plain tracker, a GBFS feed): a trip starts at the first of a run of
  moving fixes (speed above ``trip_min_speed_kmh``, or the implied speed between two positions when
  the fix has none) once the run has lasted ``trip_start_s``, and ends at the first of a run of
  stopped fixes once that run has lasted ``trip_end_idle_s``.

Distance is the haversine sum over accurate positions, GPS wander filtered: a step shorter than
``jitter_m`` is not taken (the next position is measured from the last one taken), a step implying
more than ``max_plausible_kmh`` is a jump and skipped. The route keeps at most 200 points.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from operator import attrgetter

from hinode.mobility import VehicleState

from .events import Trip
from .tracker_rules import TrackerRules
from .zones import haversine_m

MAX_ROUTE_POINTS = 200
_ON_TRIP = VehicleState.ON_TRIP.value


@dataclass(slots=True)
class TripBuilder:
    start_ms: int
    start_lat: float | None
    start_lon: float | None
    distance_m: float = 0.0
    max_speed_kmh: float = 0.0
    last_lat: float | None = None
    last_lon: float | None = None
    last_ts: int = 0
    route: list[list[float]] = field(default_factory=list)
    stride: int = 1
    skipped: int = 0          # accepted points not put on the route (stride)
    jumps: int = 0

    def add(self, ts_ms: int, lat: float | None, lon: float | None, speed_kmh: float | None,
            rules: TrackerRules) -> None:
        if speed_kmh is not None and speed_kmh <= rules.max_plausible_kmh and speed_kmh > self.max_speed_kmh:
            self.max_speed_kmh = speed_kmh
        if lat is None or lon is None:
            return
        if self.last_lat is None:
            self._take(ts_ms, lat, lon)
            return
        step = haversine_m(self.last_lat, self.last_lon, lat, lon)
        if step < rules.jitter_m:
            self.last_ts = ts_ms       # still there now: a jump right after wander is judged on 5 s, not 10 min
            return
        elapsed_s = (ts_ms - self.last_ts) / 1000
        if elapsed_s <= 0 or step / elapsed_s * 3.6 > rules.max_plausible_kmh:
            self.jumps += 1
            return
        self.distance_m += step
        self._take(ts_ms, lat, lon)

    def _take(self, ts_ms: int, lat: float, lon: float) -> None:
        self.last_lat, self.last_lon, self.last_ts = lat, lon, ts_ms
        self.skipped += 1
        if self.skipped < self.stride and self.route:
            return
        self.skipped = 0
        self.route.append([round(lon, 6), round(lat, 6)])
        if len(self.route) >= 2 * MAX_ROUTE_POINTS:
            self.route = self.route[::2]
            self.stride *= 2

    def finish(self, fleet: str, vehicle: str, vehicle_type: str, end_ms: int,
               end_lat: float | None, end_lon: float | None) -> Trip:
        route = list(self.route)
        if self.last_lat is not None:
            last = [round(self.last_lon, 6), round(self.last_lat, 6)]
            if not route or route[-1] != last:
                route.append(last)
        if len(route) > MAX_ROUTE_POINTS:
            step = (len(route) - 1) / (MAX_ROUTE_POINTS - 1)
            route = [route[round(i * step)] for i in range(MAX_ROUTE_POINTS)]
        if end_lat is None:
            end_lat, end_lon = self.last_lat, self.last_lon
        return Trip(fleet=fleet, vehicle=vehicle, vehicle_type=vehicle_type, start_ms=self.start_ms, end_ms=end_ms,
                    start_lat=self.start_lat, start_lon=self.start_lon, end_lat=end_lat, end_lon=end_lon,
                    distance_m=round(self.distance_m, 1), duration_s=(end_ms - self.start_ms) / 1000,
                    max_speed_kmh=round(self.max_speed_kmh, 2), route=route)


@dataclass(slots=True)
class TripDetector:
    """One vehicle's trip state. ``step`` returns ("start", ts) / ("end", Trip) markers for one fix."""

    trip: TripBuilder | None = None
    moving_since: int | None = None
    pending: list[list] = field(default_factory=list)    # [ts, lat, lon, speed] of a moving run not yet a trip
    stopped_since: int | None = None
    stopped_lat: float | None = None
    stopped_lon: float | None = None
    last_state: str | None = None
    prev_lat: float | None = None
    prev_lon: float | None = None
    prev_ts: int = 0

    def step(self, fleet: str, vehicle: str, vehicle_type: str, ts_ms: int, lat: float | None, lon: float | None,
             speed_kmh: float | None, state: str | None, reports_state: bool, rules: TrackerRules) -> list[tuple]:
        """``lat``/``lon`` are None when the fix has no usable (accurate) position."""
        if speed_kmh is None and lat is not None and self.prev_lat is not None and ts_ms > self.prev_ts:
            speed_kmh = haversine_m(self.prev_lat, self.prev_lon, lat, lon) / ((ts_ms - self.prev_ts) / 1000) * 3.6
        if lat is not None:
            self.prev_lat, self.prev_lon, self.prev_ts = lat, lon, ts_ms
        if reports_state:
            return self._step_by_state(fleet, vehicle, vehicle_type, ts_ms, lat, lon, speed_kmh, state, rules)
        return self._step_by_motion(fleet, vehicle, vehicle_type, ts_ms, lat, lon, speed_kmh, rules)

    def _step_by_state(self, fleet, vehicle, vehicle_type, ts_ms, lat, lon, speed_kmh, state, rules) -> list[tuple]:
        if state is None:               # this fix did not say; the last word stands
            state = self.last_state
        self.last_state = state
        markers: list[tuple] = []
        if state == _ON_TRIP and self.trip is None:
            start_lat, start_lon = (lat, lon) if lat is not None else (self.prev_lat, self.prev_lon)
            self.trip = TripBuilder(start_ms=ts_ms, start_lat=start_lat, start_lon=start_lon)
            markers.append(("start", ts_ms))
        if self.trip is not None:
            self.trip.add(ts_ms, lat, lon, speed_kmh, rules)
            if state is not None and state != _ON_TRIP:
                markers.append(("end", self._finish(fleet, vehicle, vehicle_type, ts_ms, lat, lon)))
        return markers

    def _step_by_motion(self, fleet, vehicle, vehicle_type, ts_ms, lat, lon, speed_kmh, rules) -> list[tuple]:
        moving = speed_kmh is not None and speed_kmh > rules.trip_min_speed_kmh
        markers: list[tuple] = []
        if self.trip is None:
            if not moving:
                self.moving_since = None
                self.pending.clear()
                return markers
            if self.moving_since is None:
                self.moving_since = ts_ms
            self.pending.append([ts_ms, lat, lon, speed_kmh])
            if (ts_ms - self.moving_since) / 1000 >= rules.trip_start_s:
                first = next((p for p in self.pending if p[1] is not None), self.pending[0])
                self.trip = TripBuilder(start_ms=self.moving_since, start_lat=first[1], start_lon=first[2])
                for p_ts, p_lat, p_lon, p_speed in self.pending:
                    self.trip.add(p_ts, p_lat, p_lon, p_speed, rules)
                markers.append(("start", self.moving_since))
                self.moving_since = None
                self.pending.clear()
            return markers
        self.trip.add(ts_ms, lat, lon, speed_kmh, rules)
        if moving:
            self.stopped_since = None
            return markers
        if self.stopped_since is None:
            self.stopped_since = ts_ms
            self.stopped_lat, self.stopped_lon = (lat, lon) if lat is not None else (self.trip.last_lat,
                                                                                   self.trip.last_lon)
        if (ts_ms - self.stopped_since) / 1000 >= rules.trip_end_idle_s:
            markers.append(("end", self._finish(fleet, vehicle, vehicle_type, self.stopped_since,
                                                self.stopped_lat, self.stopped_lon)))
        return markers

    def _finish(self, fleet, vehicle, vehicle_type, end_ms, end_lat, end_lon) -> Trip:
        trip = self.trip.finish(fleet, vehicle, vehicle_type, end_ms, end_lat, end_lon)
        self.trip = None
        self.stopped_since = None
        self.stopped_lat = self.stopped_lon = None
        return trip

    def to_dict(self) -> dict:
        """JSON-able; shallow copies (route points are never changed in place, only replaced)."""
        data = dict(zip(_DETECTOR_FIELDS, _get_detector(self)))
        data["pending"] = [list(p) for p in self.pending]
        if self.trip is not None:
            data["trip"] = dict(zip(_BUILDER_FIELDS, _get_builder(self.trip)))
            data["trip"]["route"] = list(self.trip.route)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> TripDetector:
        data = dict(data)
        trip = data.pop("trip", None)
        detector = cls(**data)
        detector.trip = TripBuilder(**trip) if trip else None
        return detector


_DETECTOR_FIELDS = tuple(f.name for f in fields(TripDetector))
_BUILDER_FIELDS = tuple(f.name for f in fields(TripBuilder))
_get_detector = attrgetter(*_DETECTOR_FIELDS)
_get_builder = attrgetter(*_BUILDER_FIELDS)
