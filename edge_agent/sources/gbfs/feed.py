"""Reading GBFS documents of either version into plain records (no I/O).

The differences handled here (GBFS 2.3 / 3.0):

* header ``last_updated``: POSIX seconds (int) / RFC 3339 string; ``ttl`` in seconds in both;
* discovery: ``data.{language}.feeds`` / ``data.feeds``;
* vehicles: ``free_bike_status.json`` ``data.bikes[].bike_id`` / ``vehicle_status.json``
  ``data.vehicles[].vehicle_id``; ``last_reported`` in the header's format;
* vehicle types: ``name`` a string / a localized array.

A bad record (a vehicle without an id or with a position off the globe) is reported and
skipped; the rest of the document is kept. A bad document raises :class:`FeedError`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime

from hinode.contract import ID_PATTERN, MAX_TS_MS

VEHICLE_FEEDS = {2: "free_bike_status", 3: "vehicle_status"}
VEHICLE_LISTS = {2: ("bikes", "bike_id"), 3: ("vehicles", "vehicle_id")}
_ID_RE = re.compile(ID_PATTERN)
MILLISECONDS_ABOVE = 100_000_000_000      # a POSIX time above this (year 5138 in seconds) is in milliseconds


class FeedError(Exception):
    """A document we cannot use at all; ``code`` is the error counter's name."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class Discovery:
    version: str
    major: int                      # 2 (1.x and 2.x have the same shape) or 3
    language: str | None
    feeds: dict[str, str]           # feed name -> URL

    @property
    def vehicles_url(self) -> str:
        return self.feeds[VEHICLE_FEEDS[self.major]]


@dataclass(frozen=True, slots=True)
class Document:
    last_updated_ms: int
    ttl_s: int
    data: dict


@dataclass(frozen=True, slots=True)
class VehicleRecord:
    vehicle_id: str
    lat: float | None
    lon: float | None
    vehicle_type_id: str
    reserved: bool
    disabled: bool
    fuel_fraction: float | None         # current_fuel_percent, 0..1
    range_m: float | None
    last_reported_ms: int | None
    station_id: str


@dataclass(frozen=True, slots=True)
class VehicleTypeInfo:
    form_factor: str
    propulsion_type: str
    max_speed_kmh: float | None


def parse_timestamp(value: object, what: str) -> int:
    """A GBFS time (POSIX seconds in 2.x, RFC 3339 in 3.0; either accepted) in ms."""
    if isinstance(value, bool):
        raise ValueError(f"{what}: expected POSIX seconds or an RFC 3339 time, got {value!r}")
    if isinstance(value, (int, float)) and math.isfinite(value) and value >= 0:
        # Some operators publish milliseconds; as seconds that would be after the year 5000.
        ms = round(value) if value > MILLISECONDS_ABOVE else round(value * 1000)
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{what}: {value!r} is not an RFC 3339 time") from None
        if moment.tzinfo is None:
            raise ValueError(f"{what}: {value!r} has no UTC offset (RFC 3339 requires one)")
        ms = round(moment.timestamp() * 1000)
    else:
        raise ValueError(f"{what}: expected POSIX seconds or an RFC 3339 time, got {value!r}")
    if not 0 <= ms <= MAX_TS_MS:
        raise ValueError(f"{what}: {value!r} is before 1970 or too far in the future")
    return ms


def parse_document(doc: object, url: str) -> Document:
    """The common header of every GBFS file."""
    if not isinstance(doc, dict):
        raise FeedError("bad_feed", f"{url}: expected a JSON object with last_updated, ttl and data")
    missing = [key for key in ("last_updated", "ttl", "data") if key not in doc]
    if missing:
        raise FeedError("bad_feed", f"{url}: missing {', '.join(missing)} (every GBFS file has last_updated, "
                                    "ttl and data)")
    try:
        last_updated = parse_timestamp(doc["last_updated"], "last_updated")
    except ValueError as exc:
        raise FeedError("bad_feed", f"{url}: {exc}") from None
    ttl = doc["ttl"]
    if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or ttl < 0:
        raise FeedError("bad_feed", f"{url}: ttl must be a non-negative number of seconds, got {ttl!r}")
    if not isinstance(doc["data"], dict):
        raise FeedError("bad_feed", f"{url}: data must be an object")
    return Document(last_updated, int(ttl), doc["data"])


def parse_discovery(doc: object, url: str, language: str | None) -> Discovery:
    """gbfs.json: the version and the URL of every feed (2.x: of the chosen language)."""
    header = parse_document(doc, url)
    version = str(doc.get("version", ""))
    data = header.data
    if "feeds" in data:
        feeds_list, chosen = data["feeds"], None
        major = 3 if not version or version.startswith("3") else 2
    else:
        languages = list(data)
        if not languages:
            raise FeedError("discovery", f"{url}: data has neither feeds (GBFS 3.0) nor a language (GBFS 2.x)")
        chosen = language or languages[0]
        if chosen not in data:
            raise FeedError("discovery", f"{url}: language {chosen!r} not offered (the feed has {languages}); "
                                         "set the source's language key to one of them")
        feeds_list = data[chosen].get("feeds") if isinstance(data[chosen], dict) else None
        major = 2
    if not isinstance(feeds_list, list):
        raise FeedError("discovery", f"{url}: expected a list of feeds [{{name, url}}]")
    feeds = {f["name"]: f["url"] for f in feeds_list
             if isinstance(f, dict) and isinstance(f.get("name"), str) and isinstance(f.get("url"), str)}
    wanted = VEHICLE_FEEDS[major]
    if wanted not in feeds:
        raise FeedError("discovery", f"{url}: GBFS {version or major} feed lists no {wanted} "
                                     f"(it lists {sorted(feeds) or 'nothing'}); a vehicle feed is required")
    return Discovery(version or f"{major}.x", major, chosen, feeds)


def _number(record: dict, key: str, low: float | None = None, high: float | None = None) -> float | None:
    value = record.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{key} must be a number, got {value!r}")
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"{key} {value} is outside {low}..{high}")
    return float(value)


def _flag(record: dict, key: str) -> bool:
    value = record.get(key)
    if not isinstance(value, bool):
        raise ValueError(f"{key} must be true or false, got {value!r}")
    return value


def _vehicle(record: object, id_key: str, stations: dict[str, tuple[float, float]]) -> VehicleRecord:
    if not isinstance(record, dict):
        raise ValueError(f"expected an object, got {type(record).__name__}")
    vehicle_id = record.get(id_key)
    if not isinstance(vehicle_id, str) or not vehicle_id:
        raise ValueError(f"{id_key} missing or not a string")
    lat, lon = _number(record, "lat", -90, 90), _number(record, "lon", -180, 180)
    station_id = record.get("station_id") if isinstance(record.get("station_id"), str) else ""
    if (lat is None) != (lon is None):
        raise ValueError("has only one of lat and lon")
    if lat is None and station_id in stations:
        lat, lon = stations[station_id]
    last_reported = record.get("last_reported")
    return VehicleRecord(
        vehicle_id=vehicle_id, lat=lat, lon=lon,
        vehicle_type_id=str(record.get("vehicle_type_id") or ""),
        reserved=_flag(record, "is_reserved"), disabled=_flag(record, "is_disabled"),
        fuel_fraction=_number(record, "current_fuel_percent", 0, 1),
        range_m=_number(record, "current_range_meters", 0),
        last_reported_ms=None if last_reported is None else parse_timestamp(last_reported, "last_reported"),
        station_id=station_id)


def parse_vehicles(data: dict, major: int, url: str, stations: dict[str, tuple[float, float]] | None = None
                   ) -> tuple[list[VehicleRecord], list[tuple[str, str]]]:
    """The vehicles of a free_bike_status / vehicle_status ``data``, and (id or #index, problem) of bad ones.

    A record whose id is readable but whose other fields are not is reported under that id, so the
    caller can keep the vehicle's slot.
    """
    list_key, id_key = VEHICLE_LISTS[major]
    records = data.get(list_key)
    if not isinstance(records, list):
        raise FeedError("bad_feed", f"{url}: data.{list_key} missing or not a list (GBFS {major}.x vehicle feed)")
    good: list[VehicleRecord] = []
    bad: list[tuple[str, str]] = []
    seen: set[str] = set()
    for index, record in enumerate(records):
        raw_id = record.get(id_key) if isinstance(record, dict) else None
        label = raw_id if isinstance(raw_id, str) and raw_id else f"#{index}"
        try:
            vehicle = _vehicle(record, id_key, stations or {})
        except ValueError as exc:
            bad.append((label, str(exc)))
            continue
        if vehicle.vehicle_id in seen:
            bad.append((label, f"{id_key} listed twice"))
            continue
        seen.add(vehicle.vehicle_id)
        good.append(vehicle)
    return good, bad


def parse_vehicle_types(data: dict) -> dict[str, VehicleTypeInfo]:
    """vehicle_types ``data``: type id -> form factor, propulsion, max speed (bad entries ignored)."""
    types = {}
    entries = data.get("vehicle_types")
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict) or not isinstance(entry.get("vehicle_type_id"), str):
            continue
        speed = entry.get("max_permitted_speed")
        types[entry["vehicle_type_id"]] = VehicleTypeInfo(
            form_factor=str(entry.get("form_factor", "")), propulsion_type=str(entry.get("propulsion_type", "")),
            max_speed_kmh=float(speed) if isinstance(speed, (int, float)) and not isinstance(speed, bool) else None)
    return types


def parse_station_positions(data: dict) -> dict[str, tuple[float, float]]:
    """station_information ``data``: station id -> (lat, lon), for vehicles docked without their own position."""
    positions = {}
    stations = data.get("stations")
    for station in stations if isinstance(stations, list) else []:
        if not isinstance(station, dict) or not isinstance(station.get("station_id"), str):
            continue
        try:
            lat, lon = _number(station, "lat", -90, 90), _number(station, "lon", -180, 180)
        except ValueError:
            continue
        if lat is not None and lon is not None:
            positions[station["station_id"]] = (lat, lon)
    return positions


def as_ident(text: str, fallback: str) -> str:
    """``text`` made into a contract id (odd characters become '-', at most 64), or ``fallback``."""
    cleaned = re.sub(r"[^A-Za-z0-9_.-]", "-", text.strip()).strip("-._")[:64]
    return cleaned if _ID_RE.fullmatch(cleaned) else fallback
