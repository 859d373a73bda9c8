"""Reading GBFS documents of both versions (no I/O), and the source's config checks."""

from __future__ import annotations

import re

import pytest
from pydantic import ValidationError

from edge_agent.sources.gbfs import Config
from edge_agent.sources.gbfs.feed import (FeedError, as_ident, parse_discovery, parse_document, parse_timestamp,
                                          parse_vehicle_types, parse_vehicles)
from edge_agent.sources.gbfs.vehicles import vehicle_type_tag
from tests.edge.sources.gbfs.feed_server import load, shift_time, stamped

T0 = 1_795_996_800_000       # 2026-11-30T09:00:00+09:00


@pytest.mark.parametrize("value, expected", [
    (1795996800, T0),
    (1795996800.5, T0 + 500),
    ("2026-11-30T09:00:00+09:00", T0),
    ("2026-11-30T00:00:00Z", T0),
    ("2026-11-30T00:00:00.250Z", T0 + 250),
    (1795996800123, T0 + 123),           # milliseconds, as some operators publish
])
def test_last_updated_in_either_format(value, expected):
    assert parse_timestamp(value, "last_updated") == expected


@pytest.mark.parametrize("value, problem", [
    ("2026-11-30T09:00:00", "has no UTC offset"),
    ("last tuesday", "is not an RFC 3339 time"),
    (True, "expected POSIX seconds or an RFC 3339 time"),
    (-5, "expected POSIX seconds or an RFC 3339 time"),
    ("1960-01-01T00:00:00Z", "before 1970 or too far in the future"),
])
def test_bad_times_are_named(value, problem):
    with pytest.raises(ValueError, match=problem):
        parse_timestamp(value, "last_updated")


def test_discovery_of_both_versions():
    v3 = parse_discovery(load("v3_0", "gbfs.json"), "u", None)
    assert (v3.major, v3.version, v3.language) == (3, "3.0", None)
    assert v3.vehicles_url == "{base}/v3_0/vehicle_status.json"
    v2 = parse_discovery(load("v2_3", "gbfs.json"), "u", None)
    assert (v2.major, v2.version, v2.language) == (2, "2.3", "ja")
    assert v2.vehicles_url == "{base}/v2_3/ja/free_bike_status.json"
    assert parse_discovery(load("v2_3", "gbfs.json"), "u", "en").vehicles_url.endswith("/en/free_bike_status.json")


def test_a_document_without_its_header_is_refused_with_the_url():
    with pytest.raises(FeedError, match=r"http://x/v.json: missing ttl, data") as caught:
        parse_document({"last_updated": 1}, "http://x/v.json")
    assert caught.value.code == "bad_feed"
    with pytest.raises(FeedError, match="ttl must be a non-negative number"):
        parse_document({"last_updated": 1, "ttl": "30", "data": {}}, "u")


def test_vehicles_of_both_versions_and_bad_records():
    v2 = load("v2_3", "free_bike_status.json")
    bikes, bad = parse_vehicles(v2["data"], 2, "u", {"oda-sta": (36.637205, 140.68632)})
    assert bad == [] and [b.vehicle_id for b in bikes] == ["KS-3b8f51", "KS-91c0d2", "KS-e44a07", "KS-07fa3e"]
    assert bikes[0].last_reported_ms == 1795996770_000 and bikes[0].fuel_fraction == 0.57
    assert (bikes[2].lat, bikes[2].lon, bikes[2].station_id) == (36.637205, 140.68632, "oda-sta")
    v3 = load("v3_0", "vehicle_status_partly_bad.json")
    vehicles, bad = parse_vehicles(v3["data"], 3, "u", {})
    assert len(vehicles) == 4
    assert [label for label, _ in bad] == ["hr-19b2d4f0", "#2", "hr-5e03aa71"]
    with pytest.raises(FeedError, match="data.bikes missing"):
        parse_vehicles(v3["data"], 2, "u")
    doubled = {"vehicles": [v3["data"]["vehicles"][0]] * 2}
    assert parse_vehicles(doubled, 3, "u")[1] == [("hr-7c1e0a55", "vehicle_id listed twice")]


def test_vehicle_type_tags():
    v3 = parse_vehicle_types(load("v3_0", "vehicle_types.json")["data"])
    v2 = parse_vehicle_types(load("v2_3", "vehicle_types.json")["data"])
    assert vehicle_type_tag("es-standing", v3["es-standing"]) == "escooter"
    assert vehicle_type_tag("walk-pod", v3["walk-pod"]) == "slowmobility"
    assert vehicle_type_tag("ks-e1", v2["ks-e1"]) == "escooter"
    assert vehicle_type_tag("ks-bike", v2["ks-bike"]) == "bicycle"
    assert vehicle_type_tag("x", None) == "unknown"
    other = parse_vehicle_types({"vehicle_types": [{"vehicle_type_id": "slowmobility", "form_factor": "other"}]})
    assert vehicle_type_tag("slowmobility", other["slowmobility"]) == "slowmobility"     # our own vocabulary


def test_the_test_server_shifts_times_in_the_files_own_format():
    assert shift_time(1795996800, 60_000) == 1795996860
    assert shift_time("2026-11-30T09:00:00+09:00", 60_000) == "2026-11-30T09:01:00+09:00"
    doc = stamped(load("v3_0", "vehicle_status.json"), T0 + 60_000)
    assert doc["data"]["vehicles"][0]["last_reported"] == "2026-11-30T09:00:41+09:00"


def test_ids_from_system_ids():
    assert as_ident("lime_paris", "x") == "lime_paris"
    assert as_ident("Bird Tokyo/東京", "x") == "Bird-Tokyo"
    assert as_ident("東京", "fallback") == "fallback"


@pytest.mark.parametrize("keys, problem", [
    ({"url": "ftp://feeds.example/gbfs.json"}, "expected an http(s) URL of the feed's gbfs.json"),
    ({"min_interval_s": 30, "max_interval_s": 10}, "max_interval_s (10.0) must be at least min_interval_s"),
    ({"device_prefix": "x" * 60}, "device_prefix"),
    ({"fleet": "has space"}, "fleet"),
    ({"stale_after": 300}, "stale_after"),
])
def test_config_errors_name_the_key(keys, problem):
    section = {"type": "gbfs", "name": "f", "url": "https://feeds.example/gbfs.json", **keys}
    with pytest.raises(ValidationError, match=re.escape(problem)):
        Config.model_validate(section)


def test_a_bad_section_in_a_site_file_names_the_file_and_the_key(tmp_path):
    from edge_agent.config import ConfigError, load_site_config
    from tests.support.agent_proc import write_site_config

    path = write_site_config(tmp_path / "site.yaml", 1883, [
        {"type": "gbfs", "name": "ride", "url": "https://feeds.example/gbfs.json", "stale_after_s": -1}])
    with pytest.raises(ConfigError) as caught:
        load_site_config(path)
    message = str(caught.value)
    assert str(path) in message and "stale_after_s" in message and "greater than 0" in message, message


def test_geofencing_rule_names_of_both_versions():
    from edge_agent.sources.gbfs.geofence import as_zone_features, parse_geofencing

    v3_zones, v3_global = parse_geofencing(load("v3_0", "geofencing_zones.json")["data"], 3)
    v2_zones, v2_global = parse_geofencing(load("v2_3", "geofencing_zones.json")["data"], 2)
    assert v3_zones[0].names == {"ja": "日立駅前 徐行区域", "en": "Hitachi Sta. slow zone"}
    assert v3_global[0].maximum_speed_kph == 20 and v2_global == ()
    assert v3_zones[1].rules[0].ride_through_allowed is False
    v2_rule = v2_zones[0].rules[0]           # 2.3 ride_allowed: false -> neither start nor end
    assert v2_rule.vehicle_type_ids == ("ks-e1",)
    assert (v2_rule.ride_start_allowed, v2_rule.ride_end_allowed) == (False, False)
    ours = as_zone_features(v3_zones, "hr", {"es-standing": "escooter"})
    kinds = [(f["properties"]["id"], f["properties"]["kind"], f["properties"].get("max_speed_kmh"),
              f["properties"].get("vehicle_types")) for f in ours["features"]]
    assert kinds == [("hr-1-station_parking", "station_parking", None, ["escooter"]),
                     ("hr-1-slow", "slow", 6.0, ["escooter"]), ("hr-2-no_ride", "no_ride", None, None)]
    v2_kinds = [f["properties"]["kind"] for f in as_zone_features(v2_zones, "ks", {})["features"]]
    assert v2_kinds == ["no_parking", "slow"]
    assert as_zone_features(v2_zones, "ks", {})["features"][0]["properties"]["name"] == {
        "ja": "国道6号 駐車禁止区域", "en": "国道6号 駐車禁止区域"}
