"""Trips from a recorded track (testcases/track_sc014.csv) and utilisation per vehicle and per hub.

The track: scooter sc-014 on a Tuesday morning peak, 32 min, a fix every 5 s: parked at JR Hitachi
(GPS wander of a few metres), a ride to a factory on Route 6 (2,904 m of road, a 30 s red light on the
way, one multipath fix 180 m off with a 150 m accuracy estimate), parked, a ride back (2,458 m).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import polars as pl
import pytest

from cloud.domains.fleet.events import Fix
from cloud.domains.fleet.hubs import hubs_frame, load_hubs
from cloud.domains.fleet.tracker import FleetTracker
from cloud.domains.fleet.trips import trips_from_track, utilisation
from cloud.domains.fleet.zones import ZoneIndex
from hinode.mobility import EventType

CASES = Path(__file__).parent / "testcases"
EXPECTED = json.loads((CASES / "track_sc014_expected.json").read_text())


def load_track() -> pl.DataFrame:
    return pl.read_csv(CASES / "track_sc014.csv", schema_overrides={"state": pl.String, "heading": pl.Float64})


def plain_haversine_m(lat1, lon1, lat2, lon2) -> float:
    """Written out again here, independent of the code under test."""
    r = 6_371_008.8
    a = (math.sin(math.radians(lat2 - lat1) / 2) ** 2
         + math.cos(math.radians(lat1)) * math.cos(math.radians(lat2)) * math.sin(math.radians(lon2 - lon1) / 2) ** 2)
    return 2 * r * math.asin(math.sqrt(a))


def hand_sum(track: pl.DataFrame, start_ms: int, end_ms: int) -> float:
    """The haversine sum over the trip's own fixes, leaving out the one with a 150 m accuracy."""
    rows = track.filter(pl.col("ts_ms").is_between(start_ms, end_ms) & (pl.col("accuracy_m") <= 50)).rows(named=True)
    return sum(plain_haversine_m(a["lat"], a["lon"], b["lat"], b["lon"]) for a, b in zip(rows, rows[1:]))


def test_the_recorded_track_gives_exactly_two_trips_with_the_hand_computed_distances():
    track = load_track()
    trips = trips_from_track(track, fleet="hitachi-scooters", vehicle="sc-014", vehicle_type="escooter")
    assert trips.height == 2
    for trip, expected in zip(trips.iter_rows(named=True), EXPECTED["trips"]):
        assert (trip["start_ms"], trip["end_ms"]) == (expected["start_ms"], expected["end_ms"])
        assert trip["duration_s"] == (expected["end_ms"] - expected["start_ms"]) / 1000
        by_hand = hand_sum(track, trip["start_ms"], trip["end_ms"])
        assert trip["distance_m"] == pytest.approx(by_hand, rel=0.02)
        assert trip["distance_m"] == pytest.approx(expected["path_m"], rel=0.02)   # the road itself
        assert 15 <= trip["max_speed_kmh"] <= 20
        route = json.loads(trip["route"])
        assert route["type"] == "LineString" and 2 <= len(route["coordinates"]) <= 200
        assert route["coordinates"][0] == pytest.approx([trip["start_lon"], trip["start_lat"]], abs=1e-4)
        assert trip["vehicle"] == "sc-014" and trip["fleet"] == "hitachi-scooters"


def test_without_the_state_column_motion_alone_finds_the_same_two_trips():
    track = load_track().with_columns(pl.lit(None, pl.String).alias("state"))
    trips = trips_from_track(track, vehicle="sc-014")
    assert trips.height == 2
    for trip, expected in zip(trips.iter_rows(named=True), EXPECTED["trips"]):
        # starts at the first moving fix (5 s after the state said on_trip), ends at the first stopped one
        assert trip["start_ms"] == expected["start_ms"] + 5000
        assert trip["end_ms"] == expected["end_ms"] - 5000
        assert trip["distance_m"] == pytest.approx(expected["path_m"], rel=0.02)


def test_the_live_tracker_finds_the_same_trips_as_the_recorded_track():
    track = load_track()
    tracker = FleetTracker(ZoneIndex.empty())
    live = []
    for row in track.iter_rows(named=True):
        fix = Fix(fleet="hitachi-scooters", vehicle="sc-014", vehicle_type="escooter", ts_ms=row["ts_ms"],
                  lat=row["lat"], lon=row["lon"], speed_kmh=row["speed_kmh"], accuracy_m=row["accuracy_m"],
                  battery_pct=row["battery_pct"], state=row["state"])
        live += [e.trip for e in tracker.update(fix) if e.event_type == EventType.TRIP_END]
    recorded = trips_from_track(track, fleet="hitachi-scooters", vehicle="sc-014", vehicle_type="escooter")
    assert [(t.start_ms, t.end_ms, t.distance_m, t.max_speed_kmh) for t in live] == list(
        recorded.select("start_ms", "end_ms", "distance_m", "max_speed_kmh").iter_rows())
    assert tracker.counters["inaccurate"] == 1
    assert tracker.vehicles()[0].trip_count == 2


def test_a_track_missing_a_column_is_refused_by_name():
    with pytest.raises(ValueError, match="speed_kmh"):
        trips_from_track(pl.DataFrame({"ts_ms": [1], "lat": [36.5], "lon": [140.6], "state": ["available"]}))


def test_utilisation_per_vehicle_and_per_hub_with_hand_checked_numbers():
    hubs = hubs_frame(load_hubs(Path("cloud/domains/fleet/data/hubs_hitachi.yaml")))
    hitachi = hubs.filter(pl.col("id") == "jr-hitachi").row(0, named=True)
    omika = hubs.filter(pl.col("id") == "jr-omika").row(0, named=True)
    h = 3_600_000
    trips = pl.DataFrame({
        "fleet": ["f"] * 3, "vehicle": ["a", "a", "b"],
        "start_ms": [0, 2 * h, h // 2], "end_ms": [h // 2, 2 * h + h // 4, 5 * h],
        "distance_m": [3000.0, 1500.0, 8000.0],
        # a: Hitachi -> far away, then far away -> Omika; b: Omika -> Hitachi
        "start_lat": [hitachi["lat"], 36.40, omika["lat"]], "start_lon": [hitachi["lon"], 140.50, omika["lon"]],
        "end_lat": [36.40, omika["lat"], hitachi["lat"] + 0.003], "end_lon": [140.50, omika["lon"], hitachi["lon"]],
    })
    per_vehicle, per_hub = utilisation(trips, 0, 4 * h, hubs, radius_m=500)
    a, b = per_vehicle.rows(named=True)
    # a: 2 trips, 4.5 km, 30 min + 15 min = 2700 s of a 4 h window; b: 0:30 .. clipped at 4:00 = 12,600 s
    assert (a["vehicle"], a["trips"], a["km"], a["on_trip_s"], a["share"]) == ("a", 2, 4.5, 2700.0, 2700 / 14_400)
    assert (b["trips"], b["km"], b["on_trip_s"]) == (1, 8.0, 12_600.0)
    counts = {row["hub"]: (row["trips_started"], row["trips_ended"]) for row in per_hub.iter_rows(named=True)}
    # b ends 0.003 deg (334 m) north of JR Hitachi: within 500 m
    assert counts["jr-hitachi"] == (1, 1) and counts["jr-omika"] == (1, 1) and counts["estate-suwa"] == (0, 0)
    assert list(counts) == hubs["id"].to_list()
    with pytest.raises(ValueError, match="end_ms"):
        utilisation(trips, 10, 10)


def test_gps_wander_and_jumps_add_no_distance_and_a_long_route_is_thinned_to_200_points():
    from tests.cloud.domains.fleet.testcases.grid import Grid
    grid = Grid()
    t0 = 1_795_473_000_000
    rows = [(0, 0.0, 0.0, "on_trip")]
    # 10 min standing at a red light on a trip, wandering 5 m back and forth (under the 8 m jitter)
    rows += [(5 * i, 5.0 if i % 2 else 0.0, 0.0, "on_trip") for i in range(1, 121)]
    # then one multipath jump 2 km east and back (5 s apart: 1,440 km/h), then 1,000 fixes 10 m apart north
    rows += [(605, 0.0, 2000.0, "on_trip")]
    rows += [(610 + 5 * i, 10.0 * (i + 1), 0.0, "on_trip") for i in range(1000)]
    rows += [(610 + 5 * 1000, 10.0 * 1000, 0.0, "available")]
    track = pl.DataFrame({
        "ts_ms": [t0 + s * 1000 for s, *_ in rows],
        "lat": [grid.point(n, e)[0] for _, n, e, _ in rows], "lon": [grid.point(n, e)[1] for _, n, e, _ in rows],
        "speed_kmh": [7.2] * len(rows), "state": [state for *_, state in rows]})
    [trip] = trips_from_track(track).iter_rows(named=True)
    # the wander adds nothing: the first step counted is from the last point taken (0 m) to 10 m north
    assert trip["distance_m"] == pytest.approx(10_000, abs=0.5)
    route = json.loads(trip["route"])["coordinates"]
    assert len(route) == 200
    assert route[0] == pytest.approx([grid.point(0)[1], grid.point(0)[0]], abs=1e-6)
    assert route[-1] == pytest.approx([grid.point(10_000)[1], grid.point(10_000)[0]], abs=1e-6)
