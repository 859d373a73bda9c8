"""The fleet simulator's model: speeds, bounds, zones, battery, misbehaviour, determinism (no I/O)."""

from __future__ import annotations

from datetime import datetime

import pytest

from hinode.mobility import VEHICLE_TYPE_INFO, VehicleState, VehicleType
from simulators.fleet.model import JST, FleetModel
from simulators.fleet.world import World, haversine_m
from simulators.fleet.zones import ZONES_FILE, load_zones, zones_from_geojson

STEP_S = 5.0
MORNING_PEAK = datetime(2026, 11, 30, 7, 0, tzinfo=JST)


def run(model: FleetModel, seconds: float) -> list[dict]:
    """Every vehicle's report and true state after each step."""
    seen = []
    for _ in range(int(seconds / STEP_S)):
        model.step(STEP_S)
        for v in model.vehicles:
            seen.append({"vehicle": v.id, "type": v.vehicle_type, "role": v.role, "true_lat": v.lat,
                         "true_lon": v.lon, "state": v.state, "tipped": v.tipped_over, "silent": v.silent,
                         "odometer": v.odometer_m, **v.report()})
    return seen


@pytest.fixture(scope="module")
def zones():
    found, source = load_zones()
    assert source == str(ZONES_FILE), "the simulator must ride through the fleet domain's shipped zones"
    return found


@pytest.fixture(scope="module")
def two_peak_hours(zones):
    model = FleetModel(World.hitachi(), zones, scooters=40, slow=4, seed=7, misbehave=True, start=MORNING_PEAK)
    return model, run(model, 2 * 3600)


def test_trips_happen_at_the_commuter_peak_and_speeds_stay_within_each_type(two_peak_hours):
    model, seen = two_peak_hours
    assert sum(v.trip_count for v in model.vehicles) >= 40
    for row in seen:
        assert 0 <= row["speed"] <= VEHICLE_TYPE_INFO[row["type"]].max_speed_kmh, row
    slow_riding = [r for r in seen if r["type"] == VehicleType.SLOWMOBILITY and r["state"] == VehicleState.ON_TRIP]
    assert slow_riding and max(r["speed"] for r in slow_riding) > 3
    assert all(r["passenger"] and r["driving_mode"] in ("autonomous", "manual") for r in slow_riding)


def test_only_the_speeder_speeds_in_a_slow_zone(two_peak_hours):
    model, seen = two_peak_hours
    speeding = []
    for row in seen:
        limit = model.zones.speed_limit(row["true_lat"], row["true_lon"], row["type"])
        if limit is not None and row["speed"] > limit:
            speeding.append(row)
    assert speeding, "the speeder never rode through a slow zone"
    assert {r["role"] for r in speeding} == {"speeder"}
    assert max(r["speed"] for r in speeding) >= 14
    # long enough for the tracker to call it a violation (several fixes in a row)
    assert len(speeding) >= 4


def test_reported_positions_stay_within_the_city(two_peak_hours):
    model, seen = two_peak_hours
    south, west, north, east = model.world.bounds(margin_deg=0.003)
    assert 36.45 < south and north < 36.70 and 140.55 < west and east < 140.72     # Hitachi City, not elsewhere
    for row in seen:
        assert south <= row["lat"] <= north and west <= row["lon"] <= east, row
        assert 3 <= row["accuracy"] <= 8
        assert haversine_m(row["lat"], row["lon"], row["true_lat"], row["true_lon"]) < 40


def test_ordinary_vehicles_keep_the_zone_rules_and_the_misbehaving_ones_break_them(two_peak_hours):
    model, seen = two_peak_hours
    for row in seen:
        here = model.zones.at(row["true_lat"], row["true_lon"], row["type"])
        parked = row["state"] != VehicleState.ON_TRIP
        if row["role"] == "parker":
            continue
        assert not (parked and any(z.kind == "no_parking" for z in here)), row
        assert not (row["speed"] > 6 and any(z.kind == "no_ride" for z in here)), row
    parker = [r for r in seen if r["role"] == "parker"]
    in_forecourt = [r for r in parker if r["state"] == VehicleState.AVAILABLE and any(
        z.kind == "no_parking" for z in model.zones.at(r["true_lat"], r["true_lon"], r["type"]))]
    assert len(in_forecourt) * STEP_S >= 120, "the parker must stand in a no-parking zone past the grace time"
    assert parker[-1] not in in_forecourt or len(in_forecourt) < len(parker), "the rebalancer moves it away"
    tipper = [r["tipped_over"] for r in seen if r["role"] == "tipper"]
    assert True in tipper and tipper.index(True) < tipper.index(False, tipper.index(True)), "tips over, then righted"
    silent = [r["silent"] for r in seen if r["role"] == "silent"]
    assert True in silent and False in silent[silent.index(True):], "goes silent, then comes back"
    assert 120 <= silent.count(True) * STEP_S <= 2 * 600, "silent for a few minutes per half hour"


def test_walking_speed_mobility_stops_for_obstacles(two_peak_hours):
    _, seen = two_peak_hours
    obstacles = [r for r in seen if "obstacle" in r]
    assert obstacles and all(r["type"] == VehicleType.SLOWMOBILITY for r in obstacles)
    assert all(r["emergency_stop"] and r["speed"] == 0 for r in obstacles)


def test_battery_drains_with_distance_then_a_rebalancer_swaps_it(zones):
    model = FleetModel(World.hitachi(), zones, scooters=1, slow=0, seed=1, start=MORNING_PEAK)
    scooter = model.vehicles[0]
    scooter.battery_pct = 45.0
    start_battery, start_odometer = scooter.battery_pct, scooter.odometer_m
    far = max(model.world.nodes.values(), key=lambda n: haversine_m(n.lat, n.lon, scooter.lat, scooter.lon))
    model._start_trip(scooter, far.id)
    while scooter.on_trip:
        model.step(STEP_S)
    ridden_m = scooter.odometer_m - start_odometer
    assert ridden_m > 5000
    expected_drain = ridden_m * 100 / VEHICLE_TYPE_INFO[VehicleType.ESCOOTER].max_range_m
    assert start_battery - scooter.battery_pct == pytest.approx(expected_drain, abs=0.2)
    assert scooter.state == VehicleState.NON_OPERATIONAL and scooter.range_m < 0.2 * 30_000
    before = scooter.battery_pct
    model.step(1800)
    assert scooter.state == VehicleState.AVAILABLE and scooter.battery_pct >= 95 > before


def test_the_same_seed_gives_the_same_fleet_and_another_seed_another(zones):
    def trace(seed):
        model = FleetModel(World.hitachi(), zones, scooters=10, slow=2, seed=seed, misbehave=True, start=MORNING_PEAK)
        return [(r["vehicle"], r["lat"], r["lon"], r["speed"], r["battery"], r["state"]) for r in run(model, 1800)]
    first = trace(3)
    assert first == trace(3)
    assert first != trace(4)


def test_a_zones_file_that_is_wrong_is_named_with_the_feature_and_key(tmp_path):
    bad = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [[[140.66, 36.59], [140.67, 36.59],
                                                                            [140.67, 36.60], [140.66, 36.59]]]},
         "properties": {"id": "z1", "kind": "slow"}}]}
    with pytest.raises(ValueError, match=r"zones\.geojson: features\[0\]\.properties\.max_speed_kmh"):
        zones_from_geojson(bad, "zones.geojson")
    with pytest.raises(ValueError, match="no such file"):
        load_zones(tmp_path / "missing.geojson")
