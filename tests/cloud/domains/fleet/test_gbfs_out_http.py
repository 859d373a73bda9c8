"""The GBFS 3.0 feed served over HTTP (router_gbfs.py) by uvicorn on a free port, from a real FleetTracker fed
fixes: discovery followed to every listed URL with no token, each file schema-valid, the gbfs-validator
package clean against the live URLs, ids that rotate after a trip seen through HTTP, and the rotation key
kept across restarts."""

from __future__ import annotations

import contextlib
import math
import stat
from types import SimpleNamespace

import httpx
import pytest
from fastapi import FastAPI

from cloud.domains.fleet import router_gbfs
from cloud.domains.fleet.config import FleetConfig
from cloud.domains.fleet.events import Fix
from cloud.domains.fleet.hubs import Hub, HubKind
from cloud.domains.fleet.tracker import FleetTracker
from tests.cloud.domains.fleet.test_gbfs_out import (M_PER_DEG_LAT, ZONES, report_problems, schema_errors,
                                                     validator_report)
from tests.cloud.test_api_kit import serve_app

FLEET = "hitachi-scooters"
HUBS = [Hub("jr-hitachi", {"ja": "日立駅", "en": "JR Hitachi"}, HubKind.RAIL_STATION, 36.5900, 140.6600, 30),
        Hub("estate-suwa", {"ja": "諏訪団地", "en": "Suwa estate"}, HubKind.ESTATE, 36.6000, 140.6400)]
T0 = 1_795_996_800_000


def near(hub: Hub, east_m: float) -> tuple[float, float]:
    """A point east of the hub, with the 6 decimals the feed keeps (so it can be looked up in the feed)."""
    return round(hub.lat, 6), round(hub.lon + east_m / (M_PER_DEG_LAT * math.cos(math.radians(hub.lat))), 6)


def fix(vehicle: str, ts_s: float, lat: float, lon: float, state: str, vehicle_type: str = "escooter",
        **values) -> Fix:
    return Fix(fleet=FLEET, vehicle=vehicle, vehicle_type=vehicle_type, ts_ms=T0 + int(ts_s * 1000), lat=lat,
               lon=lon, state=state, **({"battery_pct": 80.0, "speed_kmh": 0.0} | values))


def live_fleet(state_dir, **config) -> SimpleNamespace:
    """What the domain's lifespan puts on app.state.fleet: the tracker, zones, hubs and config."""
    fleet_config = FleetConfig(state_dir=state_dir, **config)
    tracker = FleetTracker(ZONES, fleet_config.tracker_rules(), [(h.lat, h.lon) for h in HUBS])
    for f in (fix("sc-001", 0, *near(HUBS[0], 10), "available"),            # at the JR Hitachi station
              fix("sc-002", 0, 36.6100, 140.6500, "available", battery_pct=9.0),   # low battery: disabled
              fix("sc-003", 0, 36.5950, 140.6550, "on_trip", speed_kmh=15.0),      # riding: not listed
              fix("sm-001", 0, *near(HUBS[1], -20), "available", "slowmobility", tipped_over=True)):
        tracker.update(f)
    return SimpleNamespace(tracker=tracker, zones=ZONES, hubs=HUBS, config=fleet_config)


@contextlib.contextmanager
def feed_server(fleet):
    app = FastAPI()
    app.include_router(router_gbfs.router, prefix="/public/fleet")
    app.state.fleet = fleet
    with serve_app(app) as base:
        yield base


def vehicles_by_position(client: httpx.Client, url: str) -> dict[tuple[float, float], dict]:
    answer = client.get(url)
    answer.raise_for_status()
    return {(v["lat"], v["lon"]): v for v in answer.json()["data"]["vehicles"]}


def test_discovery_reaches_every_file_over_http_without_a_token(tmp_path):
    with feed_server(live_fleet(tmp_path)) as base, httpx.Client(timeout=10) as client:
        root = f"{base}/public/fleet/gbfs"
        discovery = client.get(f"{root}/gbfs.json")
        assert discovery.status_code == 200, discovery.text
        assert schema_errors("gbfs", discovery.json()) == []
        urls = {feed["name"]: feed["url"] for feed in discovery.json()["data"]["feeds"]}
        assert set(urls) == {"system_information", "vehicle_types", "vehicle_status", "station_information",
                             "station_status", "geofencing_zones"}
        urls["manifest"] = client.get(urls["system_information"]).json()["data"]["manifest_url"]
        documents = {}
        for name, url in urls.items():
            assert url == f"{root}/{name}.json"                     # absolute, from the request's own base
            answer = client.get(url)
            assert answer.status_code == 200, (url, answer.text)
            assert answer.headers["content-type"].startswith("application/json")
            assert answer.headers["cache-control"] == "public, max-age=30"
            assert answer.headers["access-control-allow-origin"] == "*"
            assert schema_errors(name, answer.json()) == []
            documents[name] = answer.json()
        manifest = documents["manifest"]["data"]["datasets"][0]
        assert manifest["versions"] == [{"version": "3.0", "url": f"{root}/gbfs.json"}]

        vehicles = documents["vehicle_status"]["data"]["vehicles"]
        assert len(vehicles) == 3                                   # sc-003 is on a trip
        flags = sorted((v["vehicle_type_id"], v["is_disabled"], v.get("station_id")) for v in vehicles)
        assert flags == [("escooter", False, "jr-hitachi"), ("escooter", True, None),
                         ("slowmobility", True, "estate-suwa")]
        counts = {s["station_id"]: (s["num_vehicles_available"], s["num_vehicles_disabled"])
                  for s in documents["station_status"]["data"]["stations"]}
        assert counts == {"jr-hitachi": (1, 0), "estate-suwa": (0, 1)}
        assert all(s["station_area"]["type"] == "MultiPolygon"
                   for s in documents["station_information"]["data"]["stations"])


def test_the_gbfs_validator_package_finds_no_error_in_the_served_feed(tmp_path):
    with feed_server(live_fleet(tmp_path)) as base:
        report = validator_report(f"{base}/public/fleet/gbfs/gbfs.json")
    assert report["summary"]["version"] == {"detected": "3.0", "validated": "3.0"}
    assert report_problems(report) == []
    served = {entry["file"] for entry in report["files"] if entry.get("exists")}
    assert {"gbfs.json", "manifest.json", "system_information.json", "vehicle_types.json", "vehicle_status.json",
            "station_information.json", "station_status.json", "geofencing_zones.json"} <= served


def test_a_vehicle_gets_a_new_id_after_each_trip_and_keeps_it_between_trips(tmp_path):
    fleet = live_fleet(tmp_path)
    tracker = fleet.tracker
    parked = near(HUBS[0], 10)
    elsewhere = near(HUBS[0], 900)
    with feed_server(fleet) as base, httpx.Client(timeout=10) as client:
        url = f"{base}/public/fleet/gbfs/vehicle_status.json"
        before = vehicles_by_position(client, url)[parked]["vehicle_id"]
        tracker.update(fix("sc-001", 30, *parked, "available", battery_pct=79.0))     # a fix, no trip
        assert vehicles_by_position(client, url)[parked]["vehicle_id"] == before

        tracker.update(fix("sc-001", 60, *near(HUBS[0], 300), "on_trip", speed_kmh=15.0))
        assert parked not in vehicles_by_position(client, url) and len(vehicles_by_position(client, url)) == 2
        tracker.update(fix("sc-001", 200, *elsewhere, "available"))                     # the trip ends
        after = vehicles_by_position(client, url)[elsewhere]["vehicle_id"]
        assert after != before

        tracker.update(fix("sc-001", 260, *elsewhere, "available", battery_pct=70.0))
        assert vehicles_by_position(client, url)[elsewhere]["vehicle_id"] == after


def test_the_rotation_key_is_created_once_private_and_kept_across_restarts(tmp_path):
    ids = []
    for _ in range(2):                      # two API processes in turn on the same state_dir
        with feed_server(live_fleet(tmp_path)) as base:
            answer = httpx.get(f"{base}/public/fleet/gbfs/vehicle_status.json", timeout=10)
            ids.append(sorted(v["vehicle_id"] for v in answer.json()["data"]["vehicles"]))
    assert ids[0] == ids[1]
    key_file = tmp_path / router_gbfs.SECRET_FILE_NAME
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert len(key_file.read_bytes().strip()) >= router_gbfs.SECRET_MIN_BYTES
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")], "no key left aside"

    configured = tmp_path / "configured.key"
    configured.write_bytes(b"another-key-of-enough-bytes\n")
    with feed_server(live_fleet(tmp_path, gbfs={"id_rotation_secret_file": configured})) as base:
        answer = httpx.get(f"{base}/public/fleet/gbfs/vehicle_status.json", timeout=10)
    assert sorted(v["vehicle_id"] for v in answer.json()["data"]["vehicles"]) != ids[0]


def test_a_short_or_empty_key_is_refused_naming_it(tmp_path):
    short = tmp_path / "short.key"
    short.write_bytes(b"abc")
    with feed_server(live_fleet(tmp_path, gbfs={"id_rotation_secret_file": short})) as base:
        answer = httpx.get(f"{base}/public/fleet/gbfs/vehicle_status.json", timeout=10)
        assert answer.status_code == 503
        assert "domains.fleet.gbfs.id_rotation_secret_file" in answer.json()["detail"] and str(short) in \
            answer.json()["detail"]
        assert httpx.get(f"{base}/public/fleet/gbfs/gbfs.json", timeout=10).status_code == 503
    emptied = tmp_path / "state"
    emptied.mkdir()
    (emptied / router_gbfs.SECRET_FILE_NAME).write_bytes(b"")
    with feed_server(live_fleet(emptied)) as base:
        answer = httpx.get(f"{base}/public/fleet/gbfs/vehicle_status.json", timeout=10)
    assert answer.status_code == 503 and router_gbfs.SECRET_FILE_NAME in answer.json()["detail"]


@pytest.mark.parametrize("name", ["free_bike_status", "gbfs_versions", "system_hours", "../config"])
def test_files_we_do_not_publish_are_404_naming_what_is(tmp_path, name):
    with feed_server(live_fleet(tmp_path)) as base:
        answer = httpx.get(f"{base}/public/fleet/gbfs/{name}.json", timeout=10)
    assert answer.status_code == 404
    if name != "../config":
        assert "vehicle_status.json" in answer.json()["detail"]


def test_no_running_fleet_is_503_not_an_empty_feed(tmp_path):
    with feed_server(None) as base:
        answer = httpx.get(f"{base}/public/fleet/gbfs/vehicle_status.json", timeout=10)
    assert answer.status_code == 503 and "fleet domain is not running" in answer.json()["detail"]


def test_a_configured_base_url_is_what_discovery_links_to(tmp_path):
    public = "https://mobility.city.example/public/fleet/gbfs"
    with feed_server(live_fleet(tmp_path, gbfs={"base_url": public + "/", "feed_contact_email": "ops@city.example",
                                                 "system_id": "hitachi-city"})) as base:
        discovery = httpx.get(f"{base}/public/fleet/gbfs/gbfs.json", timeout=10).json()
        info = httpx.get(f"{base}/public/fleet/gbfs/system_information.json", timeout=10).json()["data"]
    assert {feed["url"] for feed in discovery["data"]["feeds"]} == {
        f"{public}/{name}.json" for name in ("system_information", "vehicle_types", "vehicle_status",
                                             "station_information", "station_status", "geofencing_zones")}
    assert info["manifest_url"] == f"{public}/manifest.json"
    assert (info["feed_contact_email"], info["system_id"]) == ("ops@city.example", "hitachi-city")


def test_the_zones_are_public_geojson_for_map_layers(tmp_path):
    """Grafana's geomap GeoJSON layer cannot send a token: the zones are served without one."""
    with feed_server(live_fleet(tmp_path)) as base:
        answer = httpx.get(f"{base}/public/fleet/zones.geojson", timeout=10)
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("application/geo+json")
    assert answer.headers["access-control-allow-origin"] == "*"
    body = answer.json()
    assert body["type"] == "FeatureCollection"
    assert {f["properties"]["id"] for f in body["features"]} == {zone.id for zone in ZONES.zones}
    assert all(f["geometry"]["type"] in ("Polygon", "MultiPolygon") for f in body["features"])
