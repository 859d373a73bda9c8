"""The live fleet tracker: fixes in, MDS-style events out. Pure: no I/O, no clock (time is the fixes'
``ts`` and ``tick``'s ``now_ms``), so a recorded stream always gives the same events.

Per fix, in this order: comms_restored, trip_start, tipped_over / righted, emergency_stop, obstacle,
battery_low / battery_charged, zone_enter, violation_end, violation_start, zone_exit, trip_end.

- A fix with ``ts`` at or before the vehicle's last one is ignored and counted (``duplicate`` when equal,
  ``out_of_order`` when earlier). A position less accurate than ``max_accuracy_m`` moves no zone
  membership and no trip distance (counted ``inaccurate``); the fix's other readings still count.
- Zones: entered and left on the first fix inside / outside; only zones that apply to the vehicle type.
- Violations (one per zone and kind, ``violation_id`` shared by start and end): speeding in a slow zone
  (above max + ``speed_tolerance_kmh`` for ``violation_min_s``; ends once at or below max for
  ``violation_clear_s``), riding in a no-ride zone (faster than walking, ``no_ride_speed_kmh``, for
  ``violation_min_s``), parking in a no-parking zone or away from a hub in a station_parking zone
  (parked for ``parking_grace_s``).
  The start event carries the time the condition began; leaving the zone ends a violation at once.
- Battery: battery_low at or below ``battery_low_pct``, then battery_charged only once back at or
  above ``battery_charged_pct`` (no flapping around one threshold).
- ``tick(now_ms)``: comms_lost ``comms_lost_s`` after the last fix (stamped then, not at the tick),
  idle_too_long after ``idle_too_long_s`` without moving ``idle_move_m``, parking violations whose
  grace ran out while the vehicle sent nothing.
"""

from __future__ import annotations

from typing import Iterable

from hinode.mobility import EventType, VehicleState, ViolationKind

from .events import Fix, FleetEvent, Trip, VehicleView, Violation, event_id
from .tracker_rules import PARKED_STATES, TrackerRules
from .tracker_state import Candidate, VehicleRecord
from .zones import ZoneIndex, ZoneKind, haversine_m

SNAPSHOT_VERSION = 1
_PARKING_KINDS = (ViolationKind.NO_PARKING.value, ViolationKind.STATION_PARKING.value)
_ZONE_VIOLATION = {ZoneKind.SLOW: ViolationKind.SPEEDING.value, ZoneKind.NO_RIDE: ViolationKind.NO_RIDE.value,
                   ZoneKind.NO_PARKING: ViolationKind.NO_PARKING.value,
                   ZoneKind.STATION_PARKING: ViolationKind.STATION_PARKING.value}
_COUNTERS = ("fixes", "duplicate", "out_of_order", "inaccurate", "events")


class FleetTracker:
    def __init__(self, zones: ZoneIndex, rules: TrackerRules | None = None,
                 hubs: Iterable[tuple[float, float]] = ()):
        """``hubs``: (lat, lon) of the places where a station_parking zone allows parking."""
        self.zones = zones
        self.rules = rules or TrackerRules()
        self.hubs = [(float(lat), float(lon)) for lat, lon in hubs]
        self.counters: dict[str, int] = {name: 0 for name in _COUNTERS}
        self._vehicles: dict[tuple[str, str], VehicleRecord] = {}

    # ------------------------------------------------------------------ queries

    def vehicles(self) -> list[VehicleView]:
        return [record.view() for record in self._vehicles.values()]

    def vehicle(self, fleet: str, vehicle: str) -> VehicleView | None:
        record = self._vehicles.get((fleet, vehicle))
        return record.view() if record else None

    def open_violations(self) -> list[Violation]:
        return [v for record in self._vehicles.values() for v in record.violations.values()]

    def open_violation(self, fleet: str, vehicle: str, violation_id: str) -> Violation | None:
        """One vehicle's open violation by id (a fleet of 10,000 is not walked for it)."""
        record = self._vehicles.get((fleet, vehicle))
        if record is None:
            return None
        return next((v for v in record.violations.values() if v.violation_id == violation_id), None)

    # ------------------------------------------------------------------ fixes

    def update(self, fix: Fix) -> list[FleetEvent]:
        key = (fix.fleet, fix.vehicle)
        record = self._vehicles.get(key)
        if record is None:
            record = self._vehicles[key] = VehicleRecord(fleet=fix.fleet, vehicle=fix.vehicle,
                                                          vehicle_type=fix.vehicle_type)
        elif fix.ts_ms <= record.last_ts:
            self.counters["duplicate" if fix.ts_ms == record.last_ts else "out_of_order"] += 1
            return []
        self.counters["fixes"] += 1
        rules = self.rules
        events: list[FleetEvent] = []
        ts = fix.ts_ms
        record.last_ts = ts
        if fix.vehicle_type:
            record.vehicle_type = fix.vehicle_type
        if not record.online:
            record.online = True
            events.append(self._event(record, ts, EventType.COMMS_RESTORED))

        accurate = fix.has_position and (fix.accuracy_m is None or fix.accuracy_m <= rules.max_accuracy_m)
        if fix.has_position and not accurate:
            self.counters["inaccurate"] += 1
        if accurate:
            record.lat, record.lon, record.accuracy_m = fix.lat, fix.lon, fix.accuracy_m
        self._absorb_readings(record, fix)
        # Zone membership is looked up again for every move, except that a parked vehicle's GPS wander
        # (within jitter_m of where membership was last decided) moves nothing: no flapping at an edge.
        moved = accurate and (
            record.zone_lat is None
            or (fix.lat != record.zone_lat or fix.lon != record.zone_lon) and (
                not self._parked(record)
                or haversine_m(record.zone_lat, record.zone_lon, fix.lat, fix.lon) >= rules.jitter_m))
        if moved:
            record.zone_lat, record.zone_lon = fix.lat, fix.lon

        trip_markers = record.trips.step(
            record.fleet, record.vehicle, record.vehicle_type, ts, fix.lat if accurate else None,
            fix.lon if accurate else None, fix.speed_kmh, fix.state, record.reports_state, rules)
        ended: list[Trip] = []
        for marker, value in trip_markers:
            if marker == "start":
                events.append(self._event(record, value, EventType.TRIP_START))
            else:
                ended.append(value)
        self._health_events(record, fix, events)
        self._idle_step(record, ts, accurate)

        if moved:
            inside = [zone.id for zone in self.zones.zones_at(fix.lon, fix.lat, record.vehicle_type)]
        else:
            inside = record.zones
        entered = [zone_id for zone_id in inside if zone_id not in record.zones] if moved else []
        left = [zone_id for zone_id in record.zones if zone_id not in inside] if moved else []
        for zone_id in entered:
            events.append(self._event(record, ts, EventType.ZONE_ENTER, zone_id=zone_id))
        record.zones = inside
        if inside or record.violations or record.candidates:
            self._violations_step(record, ts, left, events)
        for zone_id in left:
            events.append(self._event(record, ts, EventType.ZONE_EXIT, zone_id=zone_id))

        for trip in ended:
            record.trip_count += 1
            events.append(self._event(record, trip.end_ms, EventType.TRIP_END, trip=trip, lat=trip.end_lat,
                                      lon=trip.end_lon, detail=f"{trip.distance_m:.0f} m in {trip.duration_s:.0f} s"))
        return events

    def _absorb_readings(self, record: VehicleRecord, fix: Fix) -> None:
        if fix.speed_kmh is not None:
            record.speed_kmh = fix.speed_kmh
        if fix.heading is not None:
            record.heading = fix.heading
        if fix.range_m is not None:
            record.range_m = fix.range_m
        if fix.state is not None:
            record.state = fix.state
            record.reports_state = True
        if fix.driving_mode is not None:
            record.driving_mode = fix.driving_mode
        if fix.passenger is not None:
            record.passenger = fix.passenger

    def _health_events(self, record: VehicleRecord, fix: Fix, events: list[FleetEvent]) -> None:
        ts = fix.ts_ms
        if fix.tipped_over is not None and fix.tipped_over != record.tipped_over:
            record.tipped_over = fix.tipped_over
            events.append(self._event(record, ts, EventType.TIPPED_OVER if fix.tipped_over else EventType.RIGHTED))
        if fix.emergency_stop is not None:
            if fix.emergency_stop and not record.emergency_stop:
                events.append(self._event(record, ts, EventType.EMERGENCY_STOP))
            record.emergency_stop = fix.emergency_stop
        if fix.obstacle:
            events.append(self._event(record, ts, EventType.OBSTACLE, detail=fix.obstacle))
        if fix.battery_pct is not None:
            record.battery_pct = fix.battery_pct
            if not record.battery_low and fix.battery_pct <= self.rules.battery_low_pct:
                record.battery_low = True
                events.append(self._event(record, ts, EventType.BATTERY_LOW, detail=f"{fix.battery_pct:g} %"))
            elif record.battery_low and fix.battery_pct >= self.rules.battery_charged_pct:
                record.battery_low = False
                events.append(self._event(record, ts, EventType.BATTERY_CHARGED, detail=f"{fix.battery_pct:g} %"))

    def _idle_step(self, record: VehicleRecord, ts: int, accurate: bool) -> None:
        if not accurate:
            return
        if (record.idle_lat is None or record.trips.trip is not None
                or haversine_m(record.idle_lat, record.idle_lon, record.lat, record.lon) > self.rules.idle_move_m):
            record.idle_lat, record.idle_lon, record.idle_since_ms = record.lat, record.lon, ts
            record.idle_alerted = False

    # ------------------------------------------------------------------ violations

    def _parked(self, record: VehicleRecord) -> bool:
        if record.speed_kmh is not None:
            return record.speed_kmh < self.rules.parked_speed_kmh
        return record.state in PARKED_STATES

    def _near_hub(self, record: VehicleRecord) -> bool:
        radius = self.rules.station_radius_m
        return any(haversine_m(lat, lon, record.lat, record.lon) <= radius for lat, lon in self.hubs)

    def _conditions(self, record: VehicleRecord) -> dict[str, tuple[bool, bool, float]]:
        """"kind:zone" -> (may start, still holds, speed) for each zone the vehicle is in, from its latest
        readings (a fix without a speed leaves the last one standing)."""
        rules = self.rules
        speed = record.speed_kmh
        found: dict[str, tuple[bool, bool, float]] = {}
        parked = None
        for zone_id in record.zones:
            zone = self.zones.by_id.get(zone_id)
            if zone is None:          # the zones file changed under a restored snapshot
                continue
            kind = _ZONE_VIOLATION[zone.kind]
            if zone.kind is ZoneKind.SLOW:
                holds = speed is not None and speed > zone.max_speed_kmh
                starts = holds and speed > zone.max_speed_kmh + rules.speed_tolerance_kmh
            elif zone.kind is ZoneKind.NO_RIDE:
                holds = starts = speed is not None and speed > rules.no_ride_speed_kmh
            else:
                if parked is None:
                    parked = self._parked(record)
                holds = parked and (zone.kind is ZoneKind.NO_PARKING or not self._near_hub(record))
                starts = holds
            found[f"{kind}:{zone_id}"] = (starts, holds, speed or 0.0)
        return found

    def _violations_step(self, record: VehicleRecord, ts: int, left: list[str], events: list[FleetEvent]) -> None:
        rules = self.rules
        conditions = self._conditions(record)
        for key in list(record.violations):
            violation = record.violations[key]
            if violation.zone_id in left or key not in conditions:
                # ended when it first cleared (drove off a no-parking spot) or else now, on leaving
                self._end_violation(record, key, record.clearing.get(key, ts), events, "left the zone")
                continue
            _, holds, speed = conditions[key]
            if holds:
                record.clearing.pop(key, None)
                violation.max_speed_kmh = max(violation.max_speed_kmh, speed)
                continue
            clear_since = record.clearing.setdefault(key, ts)
            if (ts - clear_since) / 1000 >= rules.violation_clear_s:
                self._end_violation(record, key, clear_since, events, "cleared")
        for key, (starts, holds, speed) in conditions.items():
            if key in record.violations:
                continue
            candidate = record.candidates.get(key)
            if candidate is None:
                if not starts:
                    continue
                candidate = record.candidates[key] = Candidate(since_ms=ts, lat=record.lat, lon=record.lon)
            elif not (starts or holds):
                del record.candidates[key]
                continue
            candidate.max_speed_kmh = max(candidate.max_speed_kmh, speed)
            kind = key.split(":", 1)[0]
            needed_s = rules.parking_grace_s if kind in _PARKING_KINDS else rules.violation_min_s
            if (ts - candidate.since_ms) / 1000 >= needed_s:
                self._start_violation(record, key, events)
        for key in [key for key in record.candidates if key not in conditions]:
            del record.candidates[key]

    def _start_violation(self, record: VehicleRecord, key: str, events: list[FleetEvent]) -> None:
        candidate = record.candidates.pop(key)
        kind, zone_id = key.split(":", 1)
        violation = Violation(
            violation_id=f"{record.fleet}:{record.vehicle}:{candidate.since_ms}:{kind}:{zone_id}",
            fleet=record.fleet, vehicle=record.vehicle, vehicle_type=record.vehicle_type, kind=kind,
            zone_id=zone_id, start_ms=candidate.since_ms, lat=candidate.lat, lon=candidate.lon,
            max_speed_kmh=candidate.max_speed_kmh)
        record.violations[key] = violation
        events.append(self._event(record, candidate.since_ms, EventType.VIOLATION_START, zone_id=zone_id,
                                  violation=violation, lat=candidate.lat, lon=candidate.lon,
                                  detail=self._violation_detail(violation)))

    def _end_violation(self, record: VehicleRecord, key: str, end_ms: int, events: list[FleetEvent],
                       why: str) -> None:
        violation = record.violations.pop(key)
        record.clearing.pop(key, None)
        violation.end_ms = max(end_ms, violation.start_ms + 1)
        events.append(self._event(record, violation.end_ms, EventType.VIOLATION_END, zone_id=violation.zone_id,
                                  violation=violation, detail=f"{why}; {self._violation_detail(violation)}"))

    def _violation_detail(self, violation: Violation) -> str:
        zone = self.zones.by_id.get(violation.zone_id)
        if violation.kind == ViolationKind.SPEEDING and zone is not None:
            return f"{violation.max_speed_kmh:g} km/h in a {zone.max_speed_kmh:g} km/h zone"
        return violation.kind

    # ------------------------------------------------------------------ time

    def tick(self, now_ms: int) -> list[FleetEvent]:
        rules = self.rules
        comms_ms = int(rules.comms_lost_s * 1000)
        idle_ms = int(rules.idle_too_long_s * 1000)
        grace_ms = int(rules.parking_grace_s * 1000)
        events: list[FleetEvent] = []
        for record in self._vehicles.values():
            if record.online and now_ms - record.last_ts >= comms_ms:
                record.online = False
                events.append(self._event(record, record.last_ts + comms_ms, EventType.COMMS_LOST,
                                          state=VehicleState.NON_CONTACTABLE.value))
            if (not record.idle_alerted and record.idle_lat is not None and record.trips.trip is None
                    and now_ms - record.idle_since_ms >= idle_ms):
                record.idle_alerted = True
                events.append(self._event(record, record.idle_since_ms + idle_ms, EventType.IDLE_TOO_LONG,
                                          detail=f"not moved for {rules.idle_too_long_s:g} s"))
            if record.candidates and record.online:
                for key, candidate in list(record.candidates.items()):
                    if key.split(":", 1)[0] in _PARKING_KINDS and now_ms - candidate.since_ms >= grace_ms:
                        self._start_violation(record, key, events)
        return events

    # ------------------------------------------------------------------ events and snapshots

    def _event(self, record: VehicleRecord, ts_ms: int, event_type: EventType, *, zone_id: str = "",
               violation: Violation | None = None, trip: Trip | None = None, detail: str = "",
               lat: float | None = None, lon: float | None = None, state: str | None = None) -> FleetEvent:
        self.counters["events"] += 1
        record.last_event_type = event_type.value
        return FleetEvent(
            event_id=event_id(record.fleet, record.vehicle, ts_ms, event_type.value, zone_id),
            fleet=record.fleet, vehicle=record.vehicle, vehicle_type=record.vehicle_type, ts_ms=ts_ms,
            event_type=event_type, vehicle_state=state or record.state or "",
            lat=record.lat if lat is None else lat, lon=record.lon if lon is None else lon,
            battery_pct=record.battery_pct, zone_id=zone_id,
            violation_id=violation.violation_id if violation else "",
            violation_kind=violation.kind if violation else "", detail=detail, trip=trip)

    def snapshot(self) -> dict:
        """Everything the tracker knows, JSON-able: restore it to carry on without reopening anything."""
        return {"version": SNAPSHOT_VERSION, "counters": dict(self.counters),
                "vehicles": [record.to_dict() for record in self._vehicles.values()]}

    @classmethod
    def restore(cls, snapshot: dict, zones: ZoneIndex, rules: TrackerRules | None = None,
                hubs: Iterable[tuple[float, float]] = ()) -> FleetTracker:
        if snapshot.get("version") != SNAPSHOT_VERSION:
            raise ValueError(f"fleet tracker snapshot: version {snapshot.get('version')!r}, "
                             f"expected {SNAPSHOT_VERSION}")
        tracker = cls(zones, rules, hubs)
        tracker.counters.update(snapshot.get("counters", {}))
        for data in snapshot.get("vehicles", []):
            record = VehicleRecord.from_dict(data)
            tracker._vehicles[(record.fleet, record.vehicle)] = record
        return tracker

