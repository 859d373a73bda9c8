"""The fleet worker's InfluxDB points (README.md, "Measurements"); pure functions, no I/O.

Every field keeps one type (cloud/points.py): numbers that may be missing are written as floats and
left out when unknown, never written as another type.

- ``fleet_event``: one point per event, ts = the fix that caused it (tags fleet, vehicle, vehicle_type,
  event_type, zone). Two events of one vehicle at one ms differ by their event_type/zone tags.
- ``fleet_violation``: ts = the violation's start; written open at its start and rewritten (same series,
  same ts) at its end, so each violation is one row.
- ``fleet_trip``: ts = the trip's start; written at its end, with the route as a GeoJSON LineString.
"""

from __future__ import annotations

import json

from cloud.points import Point

EVENT_MEASUREMENT = "fleet_event"
VIOLATION_MEASUREMENT = "fleet_violation"
TRIP_MEASUREMENT = "fleet_trip"
HUB_MEASUREMENT = "fleet_hub"


def _floats(**values) -> dict[str, float]:
    return {k: float(v) for k, v in values.items() if v is not None}


def _text(value) -> str:
    return "" if value is None else str(getattr(value, "value", value))


def event_point(event) -> Point:
    tags = {"fleet": event.fleet, "vehicle": event.vehicle, "vehicle_type": _text(event.vehicle_type),
            "event_type": _text(event.event_type), "zone": event.zone_id or ""}
    fields = {"event_id": event.event_id, "vehicle_state": _text(event.vehicle_state),
              "violation_id": event.violation_id or "", "violation_kind": _text(event.violation_kind),
              "detail": event.detail or "",
              **_floats(lat=event.lat, lon=event.lon, battery_pct=event.battery_pct)}
    return Point(EVENT_MEASUREMENT, tags, fields, int(event.ts_ms))


def violation_point(violation) -> Point:
    """``violation``: events.Violation (``end_ms`` 0 while open)."""
    tags = {"fleet": violation.fleet, "vehicle": violation.vehicle, "zone": violation.zone_id,
            "violation_kind": _text(violation.kind)}
    fields = {"violation_id": violation.violation_id, "start_ms": int(violation.start_ms),
              "end_ms": int(violation.end_ms), "open": violation.end_ms == 0,
              "max_speed_kmh": float(violation.max_speed_kmh), **_floats(lat=violation.lat, lon=violation.lon)}
    return Point(VIOLATION_MEASUREMENT, tags, fields, int(violation.start_ms))


def violation_from_end_event(event):
    """A Violation rebuilt from its end event alone (the worker lost its start): the start is in its id,
    ``<fleet>:<vehicle>:<start_ms>:<kind>:<zone>`` (tracker.py)."""
    from cloud.domains.fleet.events import Violation
    parts = event.violation_id.split(":")
    start_ms = int(parts[2]) if len(parts) >= 3 and parts[2].isdigit() else int(event.ts_ms)
    return Violation(event.violation_id, event.fleet, event.vehicle, _text(event.vehicle_type),
                     _text(event.violation_kind), event.zone_id or "", start_ms, event.lat, event.lon,
                     end_ms=int(event.ts_ms))


def route_geojson(route) -> str:
    """A GeoJSON LineString of [lon, lat] pairs (a single point is repeated: a LineString needs two)."""
    coordinates = [[round(float(lon), 6), round(float(lat), 6)] for lon, lat in route or ()]
    if len(coordinates) == 1:
        coordinates.append(list(coordinates[0]))
    return json.dumps({"type": "LineString", "coordinates": coordinates}, separators=(",", ":"))


def trip_point(event) -> Point:
    trip = event.trip
    tags = {"fleet": event.fleet, "vehicle": event.vehicle, "vehicle_type": _text(event.vehicle_type)}
    fields = {"end_ms": int(trip.end_ms), "duration_s": float(trip.duration_s), "distance_m": float(trip.distance_m),
              "max_speed_kmh": float(trip.max_speed_kmh),
              **_floats(start_lat=trip.start_lat, start_lon=trip.start_lon, end_lat=trip.end_lat,
                        end_lon=trip.end_lon),
              "route": route_geojson(trip.route)}
    return Point(TRIP_MEASUREMENT, tags, fields, int(trip.start_ms))
