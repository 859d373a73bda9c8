"""The simulator's GBFS server, 2.3 and 3.0, checked by MobilityData's validator (the `gbfs-validator`
package and the official schemas it ships), and ids that rotate after every trip."""

from __future__ import annotations

import asyncio
from datetime import datetime

import aiohttp
import pytest
from gbfs_validator import validate_feed

from hinode.mobility import VehicleState
from simulators.fleet.gbfs_server import vehicle_public_id
from simulators.fleet.model import JST
from simulators.fleet.simulator import FleetSimulator
from simulators.fleet.world import haversine_m

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]

NOON = datetime(2026, 11, 30, 12, 0, tzinfo=JST)


async def _get(url: str) -> dict:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.status == 200, url
        return await response.json()


@pytest.fixture
async def served(request):
    sim = FleetSimulator(mqtt_port=None, gbfs_port=0, gbfs_version=request.param, scooters=12, slow=3, seed=5,
                         interval_s=1.0, misbehave=True, start=NOON)
    await sim.start()
    try:
        yield sim
    finally:
        await sim.stop()


@pytest.mark.parametrize("served", ["2.3", "3.0"], indirect=True)
async def test_every_file_passes_the_official_validator(served):
    report = await asyncio.to_thread(validate_feed, served.gbfs.url)
    summary = report["summary"]
    assert summary["version"]["detected"] == served.feed.version
    problems = {f["file"]: f.get("errors") for f in report["files"] if f.get("errorsCount")}
    assert not summary["hasErrors"] and summary["errorsCount"] == 0, problems
    present = {f["file"] for f in report["files"] if f.get("exists") or f.get("body")}
    vehicles_file = "vehicle_status.json" if served.feed.version == "3.0" else "free_bike_status.json"
    assert {"gbfs.json", "system_information.json", "vehicle_types.json", vehicles_file, "station_information.json",
            "station_status.json", "geofencing_zones.json"} <= present
    # the validator does look: a wrong ttl is reported in every file
    served.feed.ttl_s = -5
    broken = await asyncio.to_thread(validate_feed, served.gbfs.url)
    assert broken["summary"]["hasErrors"] and broken["summary"]["errorsCount"] >= 7


@pytest.mark.parametrize("served", ["2.3", "3.0"], indirect=True)
async def test_geofencing_zones_are_the_fleet_domains_zones_with_their_rules(served):
    base = served.gbfs.url.rsplit("/", 1)[0]
    doc = await _get(f"{base}/geofencing_zones.json")
    features = doc["data"]["geofencing_zones"]["features"]
    assert len(features) == len(served.model.zones.zones)
    rules = [f["properties"]["rules"][0] for f in features]
    kinds = [z.kind for z in served.model.zones.zones]
    for kind, rule in zip(kinds, rules):
        assert rule["ride_through_allowed"] is (kind != "no_ride")
        if kind == "slow":
            assert rule["maximum_speed_kph"] == 6
        if kind == "station_parking":
            assert rule["station_parking"] is True
        ends = rule["ride_end_allowed"] if served.feed.version == "3.0" else rule["ride_allowed"]
        assert ends is (kind not in ("no_ride", "no_parking"))
    if served.feed.version == "3.0":
        assert doc["data"]["global_rules"] and isinstance(doc["last_updated"], str)
    else:
        assert isinstance(doc["last_updated"], int)
    assert doc["ttl"] == 1


@pytest.mark.parametrize("served", ["3.0", "2.3"], indirect=True)
async def test_a_vehicle_gets_a_new_id_after_each_trip_and_is_hidden_during_it(served):
    base = served.gbfs.url.rsplit("/", 1)[0]
    key, id_key = ("vehicles", "vehicle_id") if served.feed.version == "3.0" else ("bikes", "bike_id")
    name = "vehicle_status" if served.feed.version == "3.0" else "free_bike_status"
    model = served.model
    rider = next(v for v in model.vehicles if not v.role and v.state == VehicleState.AVAILABLE)
    counts = {v.id: v.trip_count for v in model.vehicles}
    before = vehicle_public_id(served.feed.secret, model.fleet, rider.id, rider.trip_count)
    listed = {v[id_key] for v in (await _get(f"{base}/{name}.json"))["data"][key]}
    assert before in listed

    near = min((n for n in model.world.nodes.values() if n.id != rider.node),
               key=lambda n: haversine_m(n.lat, n.lon, rider.lat, rider.lon))
    model._start_trip(rider, near.id)
    model.step(5)
    listed = {v[id_key] for v in (await _get(f"{base}/{name}.json"))["data"][key]}
    assert before not in listed, "a vehicle on a trip is not listed"
    while rider.on_trip:
        model.step(5)
    after = vehicle_public_id(served.feed.secret, model.fleet, rider.id, rider.trip_count)
    listed_now = {v[id_key]: v for v in (await _get(f"{base}/{name}.json"))["data"][key]}
    assert after != before and after in listed_now and before not in listed_now
    assert listed_now[after]["lat"] == pytest.approx(rider.lat, abs=1e-5)
    # the others keep their id as long as they have not ridden
    stayed = [v for v in model.vehicles if v is not rider and v.trip_count == counts[v.id] and not v.on_trip]
    assert stayed
    for v in stayed:
        assert vehicle_public_id(served.feed.secret, model.fleet, v.id, v.trip_count) in listed_now, v.id
