"""geofencing_zones.json (gbfs_out_zones.py): GBFS 3.0 applies only the first feature covering a point, so a
zone lying wholly inside others must carry their restrictions too; each combination checked by hand."""

from __future__ import annotations

from cloud.domains.fleet.gbfs_out_zones import combined, geofencing_zones, kind_rule
from cloud.domains.fleet.zones import ZoneIndex
from tests.cloud.domains.fleet.test_gbfs_out import NOW_MS, schema_errors, settings, square, zone

OPEN = {"ride_start_allowed": True, "ride_end_allowed": True, "ride_through_allowed": True}


def rules_by_zone(features: list[dict]) -> dict[str, list[dict]]:
    return {next(n["text"] for n in f["properties"]["name"] if n["language"] == "en"): f["properties"]["rules"]
            for f in features}


def test_a_forecourt_inside_a_slow_area_keeps_the_speed_limit():
    zones = ZoneIndex.from_geojson({"type": "FeatureCollection", "features": [
        zone("station-area", "slow", square(140.66, 36.59, 0.004), max_speed_kmh=6),
        zone("forecourt", "no_parking", square(140.66, 36.59, 0.001)),                 # wholly inside
        zone("half-out", "no_parking", square(140.664, 36.59, 0.001)),                 # straddles the edge
        zone("concourse", "no_ride", square(140.6605, 36.5905, 0.0002), vehicle_types=["escooter"]),
        zone("scooter-slow", "slow", square(140.66, 36.59, 0.002), max_speed_kmh=4, vehicle_types=["escooter"]),
    ]})
    doc = geofencing_zones(settings(), NOW_MS, zones.zones)
    assert schema_errors("geofencing_zones", doc) == []
    rules = rules_by_zone(doc["data"]["geofencing_zones"]["features"])
    assert list(rules) == ["concourse", "forecourt", "half-out", "station-area", "scooter-slow"]
    # the forecourt: no parking for both types, and each type's lowest speed limit over it
    assert rules["forecourt"] == [
        {"vehicle_type_ids": ["escooter"], "ride_start_allowed": True, "ride_end_allowed": False,
         "ride_through_allowed": True, "maximum_speed_kph": 4},
        {"vehicle_type_ids": ["slowmobility"], "ride_start_allowed": True, "ride_end_allowed": False,
         "ride_through_allowed": True, "maximum_speed_kph": 6}]
    # only partly inside: its own rule (GBFS.md: the shared part keeps the first feature's rules)
    assert rules["half-out"] == [{"ride_start_allowed": True, "ride_end_allowed": False,
                                  "ride_through_allowed": True}]
    # an escooter-only zone stays escooter-only, with the limits over it
    assert rules["concourse"] == [{"vehicle_type_ids": ["escooter"], "ride_start_allowed": False,
                                   "ride_end_allowed": False, "ride_through_allowed": False,
                                   "maximum_speed_kph": 4}]
    assert rules["station-area"] == [OPEN | {"maximum_speed_kph": 6}]
    assert rules["scooter-slow"] == [{"vehicle_type_ids": ["escooter"], **OPEN, "maximum_speed_kph": 4}]
    assert doc["data"]["global_rules"] == [OPEN]


def test_combining_rules_keeps_the_stricter_of_each():
    assert combined(kind_rule("no_parking"), kind_rule("station_parking")) == {
        "ride_start_allowed": True, "ride_end_allowed": False, "ride_through_allowed": True, "station_parking": True}
    assert combined(kind_rule("slow", 6.9), kind_rule("no_ride")) == {
        "ride_start_allowed": False, "ride_end_allowed": False, "ride_through_allowed": False,
        "maximum_speed_kph": 6}
    assert combined(kind_rule("slow", 6), kind_rule("slow", 10)) == OPEN | {"maximum_speed_kph": 6}


def test_no_zones_is_still_a_valid_file():
    doc = geofencing_zones(settings(), NOW_MS, [])
    assert schema_errors("geofencing_zones", doc) == []
    assert doc["data"]["geofencing_zones"]["features"] == [] and doc["data"]["global_rules"] == [OPEN]


def test_rings_follow_the_right_hand_rule_whatever_the_file_says():
    clockwise = [list(reversed(square(140.66, 36.59)[0]))]
    zones = ZoneIndex.from_geojson({"type": "FeatureCollection", "features": [zone("cw", "no_ride", clockwise)]})
    ring = geofencing_zones(settings(), NOW_MS, zones.zones)["data"]["geofencing_zones"]["features"][0][
        "geometry"]["coordinates"][0][0]
    signed_area = sum(x1 * y2 - x2 * y1 for (x1, y1), (x2, y2) in zip(ring, ring[1:]))
    assert signed_area > 0, "the exterior ring goes counter-clockwise"
