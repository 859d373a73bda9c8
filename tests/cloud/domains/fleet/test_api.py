"""/api/fleet through the real app: scopes, the live views (vehicles, alerts, hubs), the stored ones
(trips, utilisation), the zones, refusals, and the worker's counters on Prometheus' text format."""

from __future__ import annotations

import httpx
import pytest

from cloud.api import create_app
from hinode.metrics import FamiliesCollector, registry_of, render
from tests.cloud.domains.fleet.test_worker_kit import (ADMIN, FLEET, IN_NO_PARKING, METERS_ONLY, NO_PARKING_ZONE,
                                                       OUTSIDE, SLOW_ZONE, Vehicle, fleet_app, fleet_config, now_ms)
from tests.cloud.test_api_kit import serve_app
from tests.support.waiting import wait_until

pytestmark = pytest.mark.timeout(120)


def test_scopes_viewer_reads_no_token_is_401_and_another_scope_is_403(tmp_path, broker, influx):
    with fleet_app(tmp_path, broker, influx) as app:
        for path in ("/api/fleet/vehicles", "/api/fleet/events", "/api/fleet/zones", "/api/fleet/alerts"):
            assert app.http.get(path).status_code == 200, path
            assert httpx.get(app.url + path).status_code == 401, path
            assert httpx.get(app.url + path, headers={"Authorization": f"Bearer {METERS_ONLY}"}).status_code == 403
            assert httpx.get(app.url + path, headers={"Authorization": f"Bearer {ADMIN}"}).status_code == 200


def test_live_vehicles_alerts_and_hub_coverage(tmp_path, broker, influx):
    start = now_ms() - 30_000
    with fleet_app(tmp_path, broker, influx, rules={"parking_grace_s": 0}) as app, \
            Vehicle(broker.port, "sc-010") as parked, Vehicle(broker.port, "sc-011") as tipped, \
            Vehicle(broker.port, "slow-01", vehicle_type="slowmobility") as slow:
        parked.fix(start, lat=IN_NO_PARKING[0], lon=IN_NO_PARKING[1], speed=0.0, state="available", battery=9.0)
        parked.fix(start + 1000, lat=IN_NO_PARKING[0], lon=IN_NO_PARKING[1], speed=0.0, state="available",
                   battery=9.0)
        tipped.fix(start, lat=OUTSIDE[0], lon=OUTSIDE[1], speed=0.0, state="available", battery=80.0,
                   tipped_over=True)
        slow.fix(start, lat=OUTSIDE[0], lon=OUTSIDE[1] + 0.001, speed=0.0, state="non_operational", battery=70.0,
                 driving_mode="stopped", passenger=False)
        wait_until(lambda: app.get("/api/fleet/vehicles")["count"] == 3, "three vehicles")
        assert [v["vehicle"] for v in app.get("/api/fleet/vehicles", vehicle_type="slowmobility")["vehicles"]] == \
            ["slow-01"]
        assert app.get("/api/fleet/vehicles", state="available")["count"] == 2
        one = app.get(f"/api/fleet/vehicles/{FLEET}/sc-010")
        assert one["vehicle"]["zones"] == [NO_PARKING_ZONE] and one["vehicle"]["battery_pct"] == 9.0
        assert app.http.get(f"/api/fleet/vehicles/{FLEET}/nope").status_code == 404

        alerts = wait_until(lambda: (a := app.get("/api/fleet/alerts")["alerts"]) and
                            {x["kind"] for x in a} >= {"battery_low", "tipped_over", "violation"} and a,
                            "the alerts")
        kinds = sorted((a["vehicle"], a["kind"]) for a in alerts)
        assert kinds == [("sc-010", "battery_low"), ("sc-010", "violation"), ("sc-011", "tipped_over")]
        violation = next(a for a in alerts if a["kind"] == "violation")
        assert (violation["violation_kind"], violation["zone"]) == ("no_parking", NO_PARKING_ZONE)
        assert app.get("/api/fleet/alerts", kind="tipped_over")["count"] == 1

        hubs = {h["id"]: h for h in app.get("/api/fleet/hubs")["hubs"]}
        # the test station (lon 140.641) has sc-011 (available, ~90 m) within 500 m; sc-010 is 1.3 km east
        # and slow-01 is not available; the far estate has none: a gap
        assert (hubs["jr-test"]["available"], hubs["jr-test"]["gap"]) == (1, False)
        assert round(hubs["jr-test"]["nearest_m"]) == 89
        assert (hubs["estate-far"]["available"], hubs["estate-far"]["gap"]) == (0, True)
        assert app.get("/api/fleet/hubs", radius_m=2000)["hubs"][0]["available"] == 2

        zones = app.get("/api/fleet/zones")
        assert zones["type"] == "FeatureCollection"
        assert [f["properties"]["id"] for f in zones["features"]] == [SLOW_ZONE, NO_PARKING_ZONE]


def test_trips_and_utilisation(tmp_path, broker, influx):
    start = now_ms() - 600_000
    with fleet_app(tmp_path, broker, influx) as app, Vehicle(broker.port, "sc-020") as scooter:
        lon = OUTSIDE[1]
        scooter.fix(start, lat=OUTSIDE[0], lon=lon, speed=0.0, state="available")
        # on a trip for 100 s, 0.001 degrees of longitude (about 89 m at 36.6 N) every 10 s, then parked
        for i in range(1, 11):
            scooter.fix(start + i * 10_000, lat=OUTSIDE[0], lon=lon + i * 0.001, speed=12.0, state="on_trip")
        scooter.fix(start + 110_000, lat=OUTSIDE[0], lon=lon + 0.010, speed=0.0, state="available")
        (trip,) = wait_until(lambda: app.get("/api/fleet/trips")["trips"], "the trip")
        assert trip["vehicle"] == "sc-020" and trip["ts_ms"] == start + 10_000
        assert 780 < trip["distance_m"] < 820 and trip["route"]["type"] == "LineString"
        assert trip["route"]["coordinates"][0] == [round(lon + 0.001, 6), OUTSIDE[0]]
        assert "route" not in app.get("/api/fleet/trips", route="false")["trips"][0]
        used = app.get("/api/fleet/utilisation", start="-1h")
        (vehicle,) = used["vehicles"]
        assert (vehicle["vehicle"], vehicle["trips"]) == ("sc-020", 1)
        assert vehicle["on_trip_s"] == trip["duration_s"]
        assert vehicle["utilisation"] == round(trip["duration_s"] / 3600, 4)


def test_refusals_name_the_parameter(tmp_path, broker, influx):
    with fleet_app(tmp_path, broker, influx) as app:
        for path, params, name in (("/api/fleet/events", {"type": "teleported"}, "type"),
                                   ("/api/fleet/events", {"vehicle": "a b"}, "vehicle"),
                                   ("/api/fleet/events", {"start": "yesterday"}, "start"),
                                   ("/api/fleet/vehicles", {"state": "flying"}, "state"),
                                   ("/api/fleet/violations", {"kind": "rudeness"}, "kind")):
            response = app.http.get(path, params=params)
            assert response.status_code == 422 and response.json()["parameter"] == name, (path, response.text)


def test_without_the_worker_the_live_routes_say_why(tmp_path, broker, influx):
    app = create_app(fleet_config(tmp_path, broker.port, influx.url))      # services not managed: no worker
    with serve_app(app) as url:
        response = httpx.get(url + "/api/fleet/vehicles", headers={"Authorization": f"Bearer {ADMIN}"})
        assert response.status_code == 503 and "fleet worker is not running" in response.json()["detail"]
        zones = httpx.get(url + "/api/fleet/zones", headers={"Authorization": f"Bearer {ADMIN}"})
        assert zones.status_code == 200 and len(zones.json()["features"]) == 2


def test_the_workers_counters_in_prometheus_text(tmp_path, broker, influx):
    start = now_ms() - 60_000
    with fleet_app(tmp_path, broker, influx) as app, Vehicle(broker.port, "sc-030") as scooter:
        scooter.route(start, [(OUTSIDE, 12.0)] * 2 + [(IN_NO_PARKING, 12.0)] * 2, state="on_trip")
        scooter.fix(start + 3000, lat=IN_NO_PARKING[0], lon=IN_NO_PARKING[1], speed=12.0)    # sent twice
        wait_until(lambda: app.worker.outbox.written_total >= 1 and app.worker.fixes_total == 5, "events written")
        text = render(registry_of(FamiliesCollector("fleet", app.worker.metric_families))).decode()
    assert "hinode_fleet_fixes_total 5.0" in text
    assert 'hinode_fleet_events_total{event_type="zone_enter"} 1.0' in text
    assert "hinode_fleet_broker_connected 1.0" in text
    assert "hinode_fleet_event_latency_seconds_count 2.0" in text   # trip_start (1st fix), zone_enter (3rd)
    assert 'hinode_fleet_fixes_skipped_total{reason="duplicate"} 1.0' in text


def test_comms_lost_is_an_alert_and_an_event_until_the_next_fix(tmp_path, broker, influx):
    with fleet_app(tmp_path, broker, influx, comms_lost_s=1) as app, Vehicle(broker.port, "sc-050") as scooter:
        last_fix = now_ms()
        scooter.fix(last_fix, lat=OUTSIDE[0], lon=OUTSIDE[1], speed=0.0, state="available", battery=50.0)
        (alert,) = wait_until(lambda: app.get("/api/fleet/alerts", kind="comms_lost")["alerts"], "comms_lost alert")
        assert (alert["vehicle"], alert["last_seen_ms"]) == ("sc-050", last_fix)
        (event,) = wait_until(lambda: app.get("/api/fleet/events", type="comms_lost")["events"], "the stored event")
        assert event["ts_ms"] == last_fix + 1000 and event["vehicle_state"] == "non_contactable"
        assert app.get("/api/fleet/vehicles")["vehicles"][0]["online"] is False
        # stamped 2 s ahead: the alert stays away for 3 s, time enough to see it gone on a busy machine
        scooter.fix(now_ms() + 2000, lat=OUTSIDE[0], lon=OUTSIDE[1], speed=0.0, state="available", battery=50.0)
        wait_until(lambda: app.get("/api/fleet/alerts")["alerts"] == [], "the alert gone with the next fix")
        wait_until(lambda: app.get("/api/fleet/events", type="comms_restored")["count"] == 1, "comms_restored")


def test_a_vehicle_standing_too_long_is_an_idle_alert(tmp_path, broker, influx):
    with fleet_app(tmp_path, broker, influx, idle_too_long_s=1) as app, Vehicle(broker.port, "sc-060") as scooter:
        stood_since = now_ms()
        scooter.fix(stood_since, lat=OUTSIDE[0], lon=OUTSIDE[1], speed=0.0, state="available", battery=90.0)
        (alert,) = wait_until(lambda: app.get("/api/fleet/alerts")["alerts"], "the idle alert")
        assert (alert["vehicle"], alert["kind"], alert["since_ms"]) == ("sc-060", "idle_too_long", stood_since)
        (event,) = wait_until(lambda: app.get("/api/fleet/events", type="idle_too_long")["events"], "the event")
        assert event["ts_ms"] == stood_since + 1000
