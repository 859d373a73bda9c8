"""GBFS 3.0 out (cloud/domains/fleet/gbfs_out.py): every file valid against MobilityData's official 3.0
JSON schemas (vendored in the gbfs-validator package, pinned in its data/PIN) and clean in that package's
validator; rotating ids, disabled vehicles, vehicles in a rental left out, counts per hub, zone rules."""

from __future__ import annotations

import json
import math
import re
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

import gbfs_validator
import jsonschema
import pytest

from cloud.domains.fleet import gbfs_out, gbfs_out_zones
from cloud.domains.fleet.events import VehicleView
from cloud.domains.fleet.gbfs_out import GbfsSettings
from cloud.domains.fleet.zones import ZoneIndex

SCHEMAS = Path(gbfs_validator.__file__).parent / "data" / "schemas"
NOW_MS = 1_795_996_800_000            # 2026-11-30T00:00:00Z, a fixed answer time: the builders take no clock
M_PER_DEG_LAT = 111_195.0

HUB_A = {"id": "jr-hitachi", "name": {"ja": "日立駅", "en": "JR Hitachi"}, "kind": "rail_station",
         "lat": 36.5900, "lon": 140.6600, "capacity": 30}
HUB_B = {"id": "bus-route6", "name": {"ja": "国道6号バス停", "en": "Route 6 bus stop"}, "kind": "bus_stop",
         "lat": 36.6000, "lon": 140.6600}
HUB_C = {"id": "estate-east", "name": {"ja": "東の団地", "en": "East estate"}, "kind": "estate",
         "lat": 36.5900, "lon": 140.6600 + 300 / (M_PER_DEG_LAT * math.cos(math.radians(36.59)))}


def settings(**overrides) -> GbfsSettings:
    values = dict(system_id="hinode-test", name={"ja": "日立シェアモビリティ", "en": "Hitachi shared mobility"},
                  operator={"ja": "日立市", "en": "Hitachi City"}, feed_contact_email="ops@example.com",
                  rotation_secret=b"k" * 32, base_url="https://city.example/public/fleet/gbfs")
    return GbfsSettings(**(values | overrides))


def offset(lat: float, lon: float, north_m: float = 0.0, east_m: float = 0.0) -> tuple[float, float]:
    return (lat + north_m / M_PER_DEG_LAT,
            lon + east_m / (M_PER_DEG_LAT * math.cos(math.radians(lat))))


def view(vehicle: str, lat: float | None = 36.59, lon: float | None = 140.66, *, state: str | None = "available",
         battery: float | None = 80.0, vehicle_type: str = "escooter", trip_count: int = 0, online: bool = True,
         tipped_over: bool = False, range_m: float | None = None, fleet: str = "hitachi-scooters") -> VehicleView:
    return VehicleView(fleet=fleet, vehicle=vehicle, vehicle_type=vehicle_type, ts_ms=NOW_MS - 5_000, lat=lat,
                       lon=lon, speed_kmh=0.0, heading=None, battery_pct=battery, range_m=range_m, state=state,
                       tipped_over=tipped_over, driving_mode=None, passenger=None, online=online, zones=[],
                       trip_count=trip_count, last_event_type="")


def square(lon: float, lat: float, half: float = 0.001) -> list:
    return [[[lon - half, lat - half], [lon + half, lat - half], [lon + half, lat + half], [lon - half, lat + half],
             [lon - half, lat - half]]]


def zone(zone_id: str, kind: str, coords: list, geometry: str = "Polygon", **props) -> dict:
    return {"type": "Feature", "geometry": {"type": geometry, "coordinates": coords},
            "properties": {"id": zone_id, "name": {"ja": f"{zone_id} (ja)", "en": zone_id}, "kind": kind, **props}}


ZONES = ZoneIndex.from_geojson({"type": "FeatureCollection", "features": [
    zone("station-slow", "slow", square(140.660, 36.590), max_speed_kmh=6.5),
    zone("station-parking", "station_parking", square(140.661, 36.591)),
    zone("park-no-parking", "no_parking", [square(140.670, 36.600), square(140.675, 36.600)], "MultiPolygon"),
    zone("factory-no-ride", "no_ride", square(140.680, 36.610), vehicle_types=["escooter"]),
]}, source="test zones")


def fleet_views() -> list[VehicleView]:
    return [view("sc-001"), view("sc-002", state="reserved"), view("sc-003", battery=5.0),
            view("sm-001", vehicle_type="slowmobility", range_m=4_200.0), view("sc-004", state="on_trip")]


def all_files(s: GbfsSettings, views: list[VehicleView], hubs: list[dict] = (HUB_A, HUB_B)) -> dict[str, dict]:
    return {
        "gbfs": gbfs_out.gbfs_json(s, NOW_MS),
        "manifest": gbfs_out.manifest_json(s, NOW_MS),
        "system_information": gbfs_out.system_information(s, NOW_MS),
        "vehicle_types": gbfs_out.vehicle_types(s, NOW_MS),
        "vehicle_status": gbfs_out.vehicle_status(s, NOW_MS, views, hubs),
        "station_information": gbfs_out.station_information(s, NOW_MS, hubs),
        "station_status": gbfs_out.station_status(s, NOW_MS, views, hubs),
        "geofencing_zones": gbfs_out_zones.geofencing_zones(s, NOW_MS, ZONES.zones),
    }


# ---- the official schemas, with formats really checked (jsonschema skips date-time and uri unless a checker
# library is installed, so they are registered here with the standard library)

def _format_checker() -> jsonschema.FormatChecker:
    checker = jsonschema.FormatChecker()

    @checker.checks("date-time", raises=ValueError)
    def _date_time(value) -> bool:
        if not isinstance(value, str):
            return True
        if not re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)", value):
            return False
        return datetime.fromisoformat(value.replace("Z", "+00:00")).tzinfo is not None

    @checker.checks("uri")
    def _uri(value) -> bool:
        if not isinstance(value, str):
            return True
        parts = urlsplit(value)
        return bool(parts.scheme) and (bool(parts.netloc) or parts.scheme == "file")

    @checker.checks("email")
    def _email(value) -> bool:
        return not isinstance(value, str) or re.fullmatch(r"[^@\s]+@[^@\s]+\.[a-z]{2,}", value) is not None

    return checker


FORMATS = _format_checker()


def schema_errors(name: str, document: dict, version: str = "v3.0") -> list[str]:
    schema = json.loads((SCHEMAS / version / f"{name}.json").read_text(encoding="utf-8"))
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    validator = validator_class(schema, format_checker=FORMATS)
    return [f"{name}.json /{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document)]


def validator_report(gbfs_url: str) -> dict:
    """The gbfs-validator package's own report (its cross-file rules included) for a docked and free-floating
    system; gbfs_url may be http(s) or file."""
    return gbfs_validator.GBFS(gbfs_url, docked=True, freefloating=True).validation()


def report_problems(report: dict) -> list[str]:
    problems = []
    for entry in report["files"]:
        if entry.get("required") and not entry.get("exists"):
            problems.append(f"{entry['file']}: required but missing")
        errors = [e for lang in entry.get("languages", [entry]) for e in (lang.get("errors") or [])]
        problems += [f"{entry['file']} {e.get('instancePath')}: {e.get('message')}" for e in errors]
    if report["summary"].get("hasErrors") and not problems:
        problems.append(f"summary says errors: {report['summary']}")
    return problems


# ---- tests

def test_every_file_validates_against_the_official_3_0_schemas():
    files = all_files(settings(), fleet_views())
    assert set(files) == set(gbfs_out.FILES)
    problems = [p for name, doc in files.items() for p in schema_errors(name, doc)]
    assert problems == []
    assert files["vehicle_status"]["data"]["vehicles"], "an empty vehicle list would prove little"
    assert files["geofencing_zones"]["data"]["geofencing_zones"]["features"]


def test_the_schema_check_is_live_a_broken_file_fails():
    files = all_files(settings(), fleet_views())
    broken = json.loads(json.dumps(files["vehicle_status"]))
    del broken["data"]["vehicles"][0]["is_disabled"]
    broken["last_updated"] = 1796000000                          # 2.3's POSIX seconds
    broken["data"]["vehicles"][1]["current_fuel_percent"] = 80   # a percentage, not 0..1
    errors = " | ".join(schema_errors("vehicle_status", broken))
    assert "is_disabled" in errors and "last_updated" in errors and "current_fuel_percent" in errors
    bad_time = dict(files["system_information"], last_updated="2026-11-30 09:00")
    assert schema_errors("system_information", bad_time)


def test_the_gbfs_validator_package_reports_no_errors(tmp_path):
    s = settings(base_url=tmp_path.as_uri())
    for name, document in all_files(s, fleet_views()).items():
        (tmp_path / f"{name}.json").write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    report = validator_report((tmp_path / "gbfs.json").as_uri())
    assert report["summary"]["version"]["detected"] == "3.0"
    assert report_problems(report) == []
    checked = {entry["file"] for entry in report["files"] if entry.get("exists")}
    assert {f"{name}.json" for name in gbfs_out.FILES} <= checked   # manifest.json found via manifest_url


def test_the_gbfs_validator_package_catches_a_cross_file_error(tmp_path):
    """The validator is not a rubber stamp: a motorised vehicle without its type id is an error there."""
    s = settings(base_url=tmp_path.as_uri())
    files = all_files(s, fleet_views())
    del files["vehicle_status"]["data"]["vehicles"][0]["vehicle_type_id"]
    for name, document in files.items():
        (tmp_path / f"{name}.json").write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    problems = report_problems(validator_report((tmp_path / "gbfs.json").as_uri()))
    assert any("vehicle_status.json" in p for p in problems), problems


def test_discovery_lists_every_file_but_the_manifest_with_absolute_urls():
    s = settings()
    feeds = gbfs_out.gbfs_json(s, NOW_MS)["data"]["feeds"]
    assert [f["name"] for f in feeds] == list(gbfs_out.DISCOVERED_FILES)
    assert all(f["url"] == f"https://city.example/public/fleet/gbfs/{f['name']}.json" for f in feeds)
    info = gbfs_out.system_information(s, NOW_MS)["data"]
    assert info["manifest_url"] == "https://city.example/public/fleet/gbfs/manifest.json"
    assert info["languages"] == ["ja", "en"]
    assert {n["language"]: n["text"] for n in info["name"]} == {"ja": "日立シェアモビリティ",
                                                                "en": "Hitachi shared mobility"}


def test_we_publish_3_0_not_2_3():
    files = all_files(settings(), fleet_views())
    assert {doc["version"] for doc in files.values()} == {"3.0"}
    assert isinstance(files["gbfs"]["last_updated"], str)          # RFC3339, not 2.3's POSIX int
    assert "feeds" in files["gbfs"]["data"] and "ja" not in files["gbfs"]["data"]   # no 2.3 language level
    assert "free_bike_status" not in {f["name"] for f in files["gbfs"]["data"]["feeds"]}
    # the same documents are not valid 2.3 files
    assert schema_errors("gbfs", files["gbfs"], "v2.3")
    assert schema_errors("free_bike_status", files["vehicle_status"], "v2.3")
    rules = files["geofencing_zones"]["data"]["geofencing_zones"]["features"][0]["properties"]["rules"]
    assert "ride_allowed" not in rules[0] and "ride_start_allowed" in rules[0]


def test_timestamps_are_rfc3339_in_the_system_time_zone():
    doc = gbfs_out.vehicle_status(settings(), NOW_MS, [view("sc-001")])
    assert doc["last_updated"] == "2026-11-30T09:00:00+09:00" and doc["ttl"] == 30
    assert doc["data"]["vehicles"][0]["last_reported"] == "2026-11-30T08:59:55+09:00"
    assert gbfs_out.rfc3339(NOW_MS, "UTC") == "2026-11-30T00:00:00+00:00"


def test_vehicle_ids_rotate_after_a_trip_and_not_otherwise():
    s = settings()
    first = gbfs_out.vehicle_record(view("sc-001", trip_count=3), s)["vehicle_id"]
    moved = view("sc-001", *offset(36.59, 140.66, 200, 100), trip_count=3, battery=40.0)
    assert gbfs_out.vehicle_record(moved, s)["vehicle_id"] == first        # moved, same trip count: same id
    after_trip = gbfs_out.vehicle_record(view("sc-001", trip_count=4), s)["vehicle_id"]
    assert after_trip != first
    other_key = gbfs_out.vehicle_record(view("sc-001", trip_count=3), settings(rotation_secret=b"x" * 32))
    assert other_key["vehicle_id"] != first
    other_fleet = gbfs_out.vehicle_record(view("sc-001", trip_count=3, fleet="other"), s)["vehicle_id"]
    assert other_fleet != first
    assert "sc-001" not in first and re.fullmatch(r"[0-9a-f]{24}", first)


@pytest.mark.parametrize("why,kwargs", [
    ("tipped over", {"tipped_over": True}),
    ("offline", {"online": False}),
    ("non_operational", {"state": "non_operational"}),
    ("non_contactable", {"state": "non_contactable"}),
    ("battery below battery_low_pct", {"battery": 14.9}),
    ("battery unknown", {"battery": None}),
])
def test_a_vehicle_that_cannot_be_rented_is_listed_as_disabled(why, kwargs):
    record = gbfs_out.vehicle_record(view("sc-009", **kwargs), settings(battery_low_pct=15.0))
    assert record["is_disabled"] is True, why
    assert record["is_reserved"] is False


def test_a_rentable_vehicle_is_not_disabled_and_a_reserved_one_is_reserved():
    s = settings()
    ok = gbfs_out.vehicle_record(view("sc-001", battery=15.0), s)
    assert ok["is_disabled"] is False and ok["is_reserved"] is False
    assert ok["current_fuel_percent"] == 0.15 and ok["current_range_meters"] == 4_500.0   # 15 % of 30 km
    reserved = gbfs_out.vehicle_record(view("sc-002", state="reserved"), s)
    assert reserved["is_reserved"] is True and reserved["is_disabled"] is False
    own_range = gbfs_out.vehicle_record(view("sm-001", vehicle_type="slowmobility", range_m=4_200.4), s)
    assert own_range["current_range_meters"] == 4_200.4 and own_range["vehicle_type_id"] == "slowmobility"


@pytest.mark.parametrize("state", ["on_trip", "stopped", "removed", "missing", "elsewhere"])
def test_vehicles_in_a_rental_or_off_the_street_are_not_listed(state):
    doc = gbfs_out.vehicle_status(settings(), NOW_MS, [view("sc-001"), view("sc-002", state=state)])
    assert len(doc["data"]["vehicles"]) == 1


def test_a_vehicle_without_a_position_or_of_another_fleet_is_not_listed():
    views = [view("sc-001", lat=None, lon=None), view("sc-002", lat=float("nan")), view("sc-003", fleet="other"),
             view("sc-004")]
    assert len(gbfs_out.vehicle_status(settings(), NOW_MS, views)["data"]["vehicles"]) == 2
    only_ours = gbfs_out.vehicle_status(settings(fleets=("hitachi-scooters",)), NOW_MS, views)
    assert len(only_ours["data"]["vehicles"]) == 1


def test_coordinates_have_six_decimals():
    record = gbfs_out.vehicle_record(view("sc-001", lat=36.123456789, lon=140.987654321), settings())
    assert (record["lat"], record["lon"]) == (36.123457, 140.987654)


def _station_counts(doc: dict) -> dict[str, tuple[int, dict[str, int], int]]:
    return {s["station_id"]: (s["num_vehicles_available"],
                              {t["vehicle_type_id"]: t["count"] for t in s["vehicle_types_available"]},
                              s["num_vehicles_disabled"]) for s in doc["data"]["stations"]}


def test_vehicles_count_at_their_nearest_hub_within_the_walking_radius():
    a, b = (HUB_A["lat"], HUB_A["lon"]), (HUB_B["lat"], HUB_B["lon"])    # 1,112 m apart, north-south
    views = [
        view("sc-001", *offset(*a, north_m=100)),                          # A
        view("sm-001", *offset(*a, north_m=-300), vehicle_type="slowmobility"),   # A
        view("sc-002", *offset(*a, east_m=-450)),                           # A (C is further, east)
        view("sc-003", *offset(*a, north_m=556)),                           # midway: 556 m from both, neither
        view("sc-004", *offset(*b, east_m=-200), battery=5.0),              # B, disabled
        view("sc-005", *offset(*b, north_m=100), state="reserved"),         # B, neither available nor disabled
        view("sc-006", *offset(*a, north_m=10), state="on_trip"),           # riding: counts nowhere
        view("sc-007", *offset(*a, east_m=400)),                            # 100 m from C, 400 m from A: C only
        view("sc-008", *offset(*b, north_m=501)),                           # just outside B's radius
    ]
    hubs = [HUB_A, HUB_B, HUB_C]
    s = settings(station_radius_m=500.0)
    counts = _station_counts(gbfs_out.station_status(s, NOW_MS, views, hubs))
    assert counts == {"jr-hitachi": (3, {"escooter": 2, "slowmobility": 1}, 0),
                      "bus-route6": (0, {"escooter": 0, "slowmobility": 0}, 1),
                      "estate-east": (1, {"escooter": 1, "slowmobility": 0}, 0)}
    vehicles = gbfs_out.vehicle_status(s, NOW_MS, views, hubs)["data"]["vehicles"]
    at = {}
    for record in vehicles:
        at[record.get("station_id")] = at.get(record.get("station_id"), 0) + 1
    assert at == {"jr-hitachi": 3, "bus-route6": 2, "estate-east": 1, None: 2}


def test_hubs_are_virtual_stations_with_their_walking_area():
    doc = gbfs_out.station_information(settings(station_radius_m=500.0), NOW_MS, [HUB_A, HUB_B])
    first, second = doc["data"]["stations"]
    assert first["station_id"] == "jr-hitachi" and first["is_virtual_station"] is True
    assert first["capacity"] == 30 and "capacity" not in second
    assert {n["language"]: n["text"] for n in first["name"]} == {"ja": "日立駅", "en": "JR Hitachi"}
    ring = first["station_area"]["coordinates"][0][0]
    assert ring[0] == ring[-1] and len(ring) == gbfs_out.STATION_AREA_SEGMENTS + 1
    radii = [gbfs_out.distance_m(HUB_A["lat"], HUB_A["lon"], lat, lon) for lon, lat in ring]
    assert all(abs(r - 500) < 2 for r in radii)
    signed_area = sum(x1 * y2 - x2 * y1 for (x1, y1), (x2, y2) in zip(ring, ring[1:]))
    assert signed_area > 0, "an exterior ring goes counter-clockwise (RFC 7946)"


def test_zone_kinds_become_geofencing_rules_most_restrictive_first():
    doc = gbfs_out_zones.geofencing_zones(settings(), NOW_MS, ZONES.zones)
    features = doc["data"]["geofencing_zones"]["features"]
    names = [next(n["text"] for n in f["properties"]["name"] if n["language"] == "en") for f in features]
    assert names == ["factory-no-ride", "park-no-parking", "station-slow", "station-parking"]
    rules = {name: f["properties"]["rules"] for name, f in zip(names, features)}
    assert rules["factory-no-ride"] == [{"vehicle_type_ids": ["escooter"], "ride_start_allowed": False,
                                         "ride_end_allowed": False, "ride_through_allowed": False}]
    assert rules["park-no-parking"] == [{"ride_start_allowed": True, "ride_end_allowed": False,
                                         "ride_through_allowed": True}]
    assert rules["station-slow"] == [{"ride_start_allowed": True, "ride_end_allowed": True,
                                      "ride_through_allowed": True, "maximum_speed_kph": 6}]   # 6.5 rounded down
    assert rules["station-parking"] == [{"ride_start_allowed": True, "ride_end_allowed": True,
                                         "ride_through_allowed": True, "station_parking": True}]
    assert all(f["geometry"]["type"] == "MultiPolygon" for f in features)
    assert len(features[1]["geometry"]["coordinates"]) == 2          # both parts of the MultiPolygon
    assert doc["data"]["global_rules"] == [{"ride_start_allowed": True, "ride_end_allowed": True,
                                            "ride_through_allowed": True}]


def test_vehicle_types_come_from_the_mobility_vocabulary():
    types = {t["vehicle_type_id"]: t for t in gbfs_out.vehicle_types(settings(), NOW_MS)["data"]["vehicle_types"]}
    assert types["escooter"]["form_factor"] == "scooter_standing"
    assert types["escooter"]["max_permitted_speed"] == 20 and types["escooter"]["max_range_meters"] == 30_000
    assert types["slowmobility"]["form_factor"] == "other" and types["slowmobility"]["max_permitted_speed"] == 6


def test_settings_refuse_an_empty_rotation_key():
    with pytest.raises(ValueError, match="rotation_secret"):
        settings(rotation_secret=b"")


def test_the_shipped_hitachi_zones_and_hubs_make_a_valid_feed(tmp_path):
    from cloud.domains.fleet.config import FleetConfig
    from cloud.domains.fleet.hubs import load_hubs

    config = FleetConfig()
    zones = ZoneIndex.from_file(config.resolved_zones_file())
    hubs = load_hubs(config.resolved_hubs_file())
    assert len(zones) and hubs
    s = settings(base_url=tmp_path.as_uri())
    views = [view(f"sc-{i:03d}", hub.lat, hub.lon) for i, hub in enumerate(hubs)]
    files = all_files(s, views, hubs) | {"geofencing_zones": gbfs_out_zones.geofencing_zones(s, NOW_MS, zones.zones)}
    assert [p for name, doc in files.items() for p in schema_errors(name, doc)] == []
    for name, document in files.items():
        (tmp_path / f"{name}.json").write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    assert report_problems(validator_report((tmp_path / "gbfs.json").as_uri())) == []
    assert len(files["geofencing_zones"]["data"]["geofencing_zones"]["features"]) == len(zones)
    at_hubs = sum(s["num_vehicles_available"] for s in files["station_status"]["data"]["stations"])
    assert at_hubs == len(hubs)                       # one vehicle parked on each hub
