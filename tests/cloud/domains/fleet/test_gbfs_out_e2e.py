"""End to end: vehicles publish fixes over MQTT (real Mosquitto) to the app as ``python -m cloud serve`` runs it
(the fleet worker in its lifespan, real InfluxDB); the GBFS 3.0 feed is then served at /public/fleet/gbfs/
with no token, while /api/fleet stays behind its scope, and the package validator finds nothing wrong."""

from __future__ import annotations

import httpx
import pytest

from tests.cloud.domains.fleet.test_gbfs_out import report_problems, schema_errors, validator_report
from tests.cloud.domains.fleet.test_worker_kit import HUBS, IN_NO_PARKING, Vehicle, fleet_app, now_ms
from tests.support.waiting import wait_until

pytestmark = pytest.mark.timeout(90)

AT_STATION = (HUBS[0]["lat"], HUBS[0]["lon"])          # jr-test, the kit's station hub


def listed(public: httpx.Client) -> list[dict]:
    answer = public.get("/public/fleet/gbfs/vehicle_status.json")
    answer.raise_for_status()
    return answer.json()["data"]["vehicles"]


def test_vehicles_over_mqtt_appear_in_the_public_feed_which_validates(tmp_path, broker, influx):
    with fleet_app(tmp_path, broker, influx) as app, httpx.Client(base_url=app.url, timeout=10) as public, \
            Vehicle(broker.port, "sc-001") as scooter, \
            Vehicle(broker.port, "sm-001", vehicle_type="slowmobility") as slow:
        assert public.get("/api/fleet/vehicles").status_code == 401          # the operator API needs a token
        ts = now_ms()
        scooter.fix(ts, lat=AT_STATION[0], lon=AT_STATION[1], speed=0.0, battery=80, state="available")
        slow.fix(ts, lat=IN_NO_PARKING[0], lon=IN_NO_PARKING[1], speed=0.0, battery=9, state="available")
        vehicles = wait_until(lambda: len(listed(public)) == 2 and listed(public), "both vehicles in the feed")

        by_type = {v["vehicle_type_id"]: v for v in vehicles}
        assert by_type["escooter"]["is_disabled"] is False and by_type["escooter"]["station_id"] == "jr-test"
        assert by_type["slowmobility"]["is_disabled"] is True                    # 9 % battery
        stations = {s["station_id"]: s for s in
                    public.get("/public/fleet/gbfs/station_status.json").json()["data"]["stations"]}
        assert stations["jr-test"]["num_vehicles_available"] == 1
        assert stations["estate-far"]["num_vehicles_available"] == 0
        zones = public.get("/public/fleet/gbfs/geofencing_zones.json").json()
        assert schema_errors("geofencing_zones", zones) == []
        assert len(zones["data"]["geofencing_zones"]["features"]) == 2

        report = validator_report(f"{app.url}/public/fleet/gbfs/gbfs.json")
        assert report_problems(report) == []
        assert report["summary"]["version"]["validated"] == "3.0"

        # a trip: the scooter leaves the feed while riding and comes back under a new id
        first_id = by_type["escooter"]["vehicle_id"]
        scooter.fix(ts + 1_000, lat=AT_STATION[0], lon=AT_STATION[1] + 0.002, speed=15.0, battery=79,
                    state="on_trip")
        wait_until(lambda: [v["vehicle_type_id"] for v in listed(public)] == ["slowmobility"],
                   "the riding scooter out of the feed")
        scooter.fix(ts + 60_000, lat=AT_STATION[0], lon=AT_STATION[1] + 0.004, speed=0.0, battery=75,
                    state="available")
        back = wait_until(lambda: [v for v in listed(public) if v["vehicle_type_id"] == "escooter"],
                          "the scooter back in the feed")
        assert back[0]["vehicle_id"] != first_id
