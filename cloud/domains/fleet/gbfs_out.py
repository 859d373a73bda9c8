"""The platform's own GBFS 3.0 feed, built from the live fleet (pure: no I/O, no clock).

Every builder takes what the fleet domain already holds — the tracker's vehicle views, the zone
index, the hubs and :data:`hinode.mobility.VEHICLE_TYPE_INFO` — plus :class:`GbfsSettings` and the
time of the answer, and returns one GBFS 3.0 file as a JSON-able dict. GBFS.md in this folder says
which field comes from where and why; gbfs_out_zones.py builds geofencing_zones; router_gbfs.py serves
the files.

Only 3.0 is published (``version: "3.0"``, RFC3339 ``last_updated``, ``vehicle_status`` rather than
2.3's ``free_bike_status``); the poller in edge_agent/sources/gbfs reads both versions.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterable, Mapping, Sequence
from zoneinfo import ZoneInfo

from hinode.mobility import VEHICLE_TYPE_INFO, VehicleState, VehicleType, VehicleTypeInfo

GBFS_VERSION = "3.0"
# Listed in gbfs.json, in this order. manifest.json is served too but, as 3.0 requires, linked only from
# system_information.manifest_url (gbfs.json must not link to it).
DISCOVERED_FILES = ("system_information", "vehicle_types", "vehicle_status", "station_information",
                    "station_status", "geofencing_zones")
FILES = ("gbfs", "manifest", *DISCOVERED_FILES)

COORD_DECIMALS = 6                 # GBFS: coordinates with 6 decimals (~0.1 m)
STATION_AREA_SEGMENTS = 32         # vertices of the circle drawn as a station_area
EARTH_RADIUS_M = 6_371_008.8
# Vehicles a rider cannot see in the street (MDS: taken off the street, lost, outside the area) and those
# in a rental (on_trip; stopped is a pause within one): GBFS lists neither.
NOT_LISTED_STATES = frozenset({VehicleState.ON_TRIP, VehicleState.STOPPED, VehicleState.REMOVED,
                               VehicleState.MISSING, VehicleState.ELSEWHERE})


@dataclass(frozen=True)
class GbfsSettings:
    """What the feed says about the system (from ``domains.fleet.gbfs`` in cloud.yaml, see router_gbfs)."""

    system_id: str
    name: Mapping[str, str]                 # language -> text
    operator: Mapping[str, str]
    feed_contact_email: str
    rotation_secret: bytes                  # HMAC key of the rotating vehicle ids
    base_url: str                           # absolute URL of the feed's folder, no trailing slash
    timezone: str = "Asia/Tokyo"
    languages: tuple[str, ...] = ("ja", "en")   # the first is the system's main language
    ttl_s: int = 30
    opening_hours: str = "24/7"             # OSM opening_hours syntax, as GBFS 3.0 asks
    # A hub is a virtual station: the circle where parking "at the hub" is allowed (the tracker's
    # station_parking radius, so the feed and the violations agree), not the 500 m walking radius.
    station_radius_m: float = 40.0
    battery_low_pct: float = 15.0           # below: listed as disabled (not rentable)
    fleets: tuple[str, ...] = ()            # fleets published; empty: every fleet the tracker knows

    def __post_init__(self):
        if not self.rotation_secret:
            raise ValueError("GbfsSettings.rotation_secret: expected a non-empty HMAC key")
        if not self.languages:
            raise ValueError("GbfsSettings.languages: expected at least one language")


# ---------------------------------------------------------------------------------------------- helpers

def rfc3339(ms: int | float, timezone: str) -> str:
    """``2026-11-30T09:00:00+09:00``: GBFS 3.0 timestamps, in the system's time zone."""
    return datetime.fromtimestamp(ms / 1000, ZoneInfo(timezone)).isoformat(timespec="seconds")


def localized(texts: Mapping[str, str] | str, languages: Sequence[str]) -> list[dict[str, str]]:
    """GBFS 3.0 localized string: ``[{"text": ..., "language": ...}]`` for each language we have a text in.

    A plain string is taken as the main (first) language's text.
    """
    if isinstance(texts, str):
        return [{"text": texts, "language": languages[0]}]
    out = [{"text": texts[lang], "language": lang} for lang in languages if texts.get(lang)]
    if not out:   # never an empty name: fall back to whatever text there is
        out = [{"text": text, "language": lang} for lang, text in texts.items() if text][:1]
    return out


def rotating_vehicle_id(secret: bytes, fleet: str, vehicle: str, trip_count: int) -> str:
    """HMAC-SHA256(secret, ``fleet|vehicle|trip_count``), 24 hex digits: a new id after every trip, the
    same one between trips, and no way back to the vehicle without the secret."""
    message = f"{fleet}|{vehicle}|{int(trip_count)}".encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()[:24]


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def coord(value: float) -> float:
    return round(float(value), COORD_DECIMALS)


def _field(obj: Any, name: str, default: Any = None) -> Any:
    """A hub may be a Hub or a plain dict (a hubs.yaml row)."""
    if isinstance(obj, dict):
        return obj.get(name, default)
    return getattr(obj, name, default)


def header(data: dict, now_ms: int, settings: GbfsSettings) -> dict:
    return {"last_updated": rfc3339(now_ms, settings.timezone), "ttl": int(settings.ttl_s),
            "version": GBFS_VERSION, "data": data}


def feed_url(settings: GbfsSettings, name: str) -> str:
    return f"{settings.base_url}/{name}.json"


# ---------------------------------------------------------------------------------------------- vehicles

# A view is a VehicleView (events.py): fleet, vehicle, vehicle_type, ts_ms, lat, lon, battery_pct, range_m,
# state, tipped_over, online, trip_count are read.

def _has_position(view: Any) -> bool:
    lat, lon = view.lat, view.lon
    return (isinstance(lat, (int, float)) and isinstance(lon, (int, float)) and not isinstance(lat, bool)
            and math.isfinite(lat) and math.isfinite(lon) and -90 <= lat <= 90 and -180 <= lon <= 180)


def is_listed(view: Any, settings: GbfsSettings) -> bool:
    """In vehicle_status: a vehicle of a published fleet, with a position, not in a rental or off the street."""
    if settings.fleets and view.fleet not in settings.fleets:
        return False
    return view.state not in NOT_LISTED_STATES and _has_position(view)


def disabled_reason(view: Any, settings: GbfsSettings) -> str:
    """Why a listed vehicle cannot be rented now ("" when it can): GBFS ``is_disabled``."""
    if view.state == VehicleState.NON_OPERATIONAL:
        return "non_operational"
    if view.state == VehicleState.NON_CONTACTABLE or not view.online:
        return "offline"
    if view.tipped_over:
        return "tipped_over"
    battery = view.battery_pct
    if battery is None:
        return "battery_unknown"
    if battery < settings.battery_low_pct:
        return "battery_low"
    return ""


def _type_info(vehicle_type: str) -> VehicleTypeInfo | None:
    try:
        return VEHICLE_TYPE_INFO[VehicleType(vehicle_type)]
    except ValueError:
        return None


def _range_m(view: Any) -> float:
    """Remaining range: the vehicle's own figure, else estimated from the battery and a full battery's range."""
    reported = view.range_m   # the vehicle's own figure
    if isinstance(reported, (int, float)) and reported >= 0:
        return round(float(reported), 1)
    battery, info = view.battery_pct, _type_info(view.vehicle_type)
    if battery is None or info is None:
        return 0.0
    return round(max(0.0, min(100.0, float(battery))) / 100 * info.max_range_m, 1)


def vehicle_record(view: Any, settings: GbfsSettings, station_id: str | None = None) -> dict:
    record: dict[str, Any] = {
        "vehicle_id": rotating_vehicle_id(settings.rotation_secret, view.fleet, view.vehicle, view.trip_count or 0),
        "lat": coord(view.lat),
        "lon": coord(view.lon),
        "is_reserved": view.state == VehicleState.RESERVED,
        "is_disabled": bool(disabled_reason(view, settings)),
        "vehicle_type_id": str(view.vehicle_type),
        "current_range_meters": _range_m(view),
    }
    battery = view.battery_pct
    if battery is not None:
        record["current_fuel_percent"] = round(max(0.0, min(100.0, float(battery))) / 100, 3)
    if view.ts_ms:
        record["last_reported"] = rfc3339(view.ts_ms, settings.timezone)
    if station_id:
        record["station_id"] = station_id
    return record


# ---------------------------------------------------------------------------------------------- stations

def assign_stations(views: Iterable[Any], hubs: Sequence[Any], radius_m: float) -> dict[int, str]:
    """``id(view) -> hub id`` for each view within ``radius_m`` of a hub: its nearest hub, so that a
    vehicle counts at one virtual station only (the station counts add up to the vehicles at stations)."""
    if not hubs:
        return {}
    dlat = math.degrees(radius_m / EARTH_RADIUS_M)
    points = [(str(_field(h, "id")), float(_field(h, "lat")), float(_field(h, "lon"))) for h in hubs]
    assigned: dict[int, str] = {}
    for view in views:
        lat, lon = float(view.lat), float(view.lon)
        dlon = dlat / max(math.cos(math.radians(lat)), 1e-6)
        best, best_m = None, radius_m
        for hub_id, hub_lat, hub_lon in points:
            if abs(hub_lat - lat) > dlat or abs(hub_lon - lon) > dlon:
                continue   # cheap box test first: most hubs are far away
            d = distance_m(lat, lon, hub_lat, hub_lon)
            if d <= best_m:
                best, best_m = hub_id, d
        if best is not None:
            assigned[id(view)] = best
    return assigned


def station_area(lat: float, lon: float, radius_m: float, segments: int = STATION_AREA_SEGMENTS) -> dict:
    """A circle of ``radius_m`` around the hub as a GeoJSON MultiPolygon (counter-clockwise ring, RFC 7946)."""
    ring = []
    for i in range(segments):
        bearing = 2 * math.pi * i / segments
        dlat = radius_m * math.cos(bearing) / EARTH_RADIUS_M
        dlon = radius_m * math.sin(bearing) / (EARTH_RADIUS_M * math.cos(math.radians(lat)))
        ring.append([coord(lon + math.degrees(dlon)), coord(lat + math.degrees(dlat))])
    ring.reverse()   # the bearings above go clockwise; an exterior ring goes counter-clockwise
    ring.append(ring[0])
    return {"type": "MultiPolygon", "coordinates": [[ring]]}


# ---------------------------------------------------------------------------------------------- files

def gbfs_json(settings: GbfsSettings, now_ms: int) -> dict:
    feeds = [{"name": name, "url": feed_url(settings, name)} for name in DISCOVERED_FILES]
    return header({"feeds": feeds}, now_ms, settings)


def manifest_json(settings: GbfsSettings, now_ms: int) -> dict:
    dataset = {"system_id": settings.system_id,
               "versions": [{"version": GBFS_VERSION, "url": feed_url(settings, "gbfs")}]}
    return header({"datasets": [dataset]}, now_ms, settings)


def system_information(settings: GbfsSettings, now_ms: int) -> dict:
    data = {
        "system_id": settings.system_id,
        "languages": list(settings.languages),
        "name": localized(settings.name, settings.languages),
        "operator": localized(settings.operator, settings.languages),
        "opening_hours": settings.opening_hours,
        "feed_contact_email": settings.feed_contact_email,
        "timezone": settings.timezone,
        "manifest_url": feed_url(settings, "manifest"),
    }
    return header(data, now_ms, settings)


def vehicle_types(settings: GbfsSettings, now_ms: int,
                  type_info: Mapping[VehicleType, VehicleTypeInfo] = VEHICLE_TYPE_INFO) -> dict:
    types = []
    for vehicle_type, info in type_info.items():
        types.append({
            "vehicle_type_id": str(vehicle_type),
            "form_factor": info.form_factor,
            "propulsion_type": info.propulsion_type,
            "name": localized({"ja": info.name_ja, "en": info.name_en}, settings.languages),
            "max_range_meters": float(info.max_range_m),
            "max_permitted_speed": int(info.max_speed_kmh),
            "rider_capacity": 1,
        })
    return header({"vehicle_types": types}, now_ms, settings)


def vehicle_status(settings: GbfsSettings, now_ms: int, views: Iterable[Any], hubs: Sequence[Any] = ()) -> dict:
    listed = [view for view in views if is_listed(view, settings)]
    stations = assign_stations(listed, hubs, settings.station_radius_m)
    vehicles = [vehicle_record(view, settings, stations.get(id(view))) for view in listed]
    vehicles.sort(key=lambda v: v["vehicle_id"])   # the fleet's order would hint at the vehicles behind the ids
    return header({"vehicles": vehicles}, now_ms, settings)


def station_information(settings: GbfsSettings, now_ms: int, hubs: Sequence[Any]) -> dict:
    stations = []
    for hub in hubs:
        lat, lon = float(_field(hub, "lat")), float(_field(hub, "lon"))
        station: dict[str, Any] = {
            "station_id": str(_field(hub, "id")),
            "name": localized(_field(hub, "name") or str(_field(hub, "id")), settings.languages),
            "lat": coord(lat),
            "lon": coord(lon),
            "is_virtual_station": True,
            "station_area": station_area(lat, lon, settings.station_radius_m),
        }
        capacity = _field(hub, "capacity")
        if isinstance(capacity, int) and not isinstance(capacity, bool) and capacity >= 0:
            station["capacity"] = capacity
        stations.append(station)
    return header({"stations": stations}, now_ms, settings)


def station_status(settings: GbfsSettings, now_ms: int, views: Iterable[Any], hubs: Sequence[Any],
                   type_info: Mapping[VehicleType, VehicleTypeInfo] = VEHICLE_TYPE_INFO) -> dict:
    listed = [view for view in views if is_listed(view, settings)]
    stations = assign_stations(listed, hubs, settings.station_radius_m)
    available: dict[str, dict[str, int]] = {str(_field(h, "id")): {str(t): 0 for t in type_info} for h in hubs}
    disabled: dict[str, int] = {hub_id: 0 for hub_id in available}
    for view in listed:
        hub_id = stations.get(id(view))
        if hub_id is None:
            continue
        if disabled_reason(view, settings):
            disabled[hub_id] += 1
        elif view.state != VehicleState.RESERVED:
            per_type = available[hub_id]
            vehicle_type = str(view.vehicle_type)
            per_type[vehicle_type] = per_type.get(vehicle_type, 0) + 1
    reported = rfc3339(now_ms, settings.timezone)
    records = []
    for hub_id, per_type in available.items():
        records.append({
            "station_id": hub_id,
            "num_vehicles_available": sum(per_type.values()),
            "vehicle_types_available": [{"vehicle_type_id": t, "count": n} for t, n in per_type.items()],
            "num_vehicles_disabled": disabled[hub_id],
            # a virtual station has no docks, so num_docks_available is left out (GBFS 3.0 allows it)
            "is_installed": True,
            "is_renting": True,
            "is_returning": True,
            "last_reported": reported,
        })
    return header({"stations": records}, now_ms, settings)
