"""Hubs: the shipped Hitachi City file, file errors, coverage within a walking radius and gaps."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from cloud.domains.fleet.hubs import HubFileError, coverage_gaps, hub_coverage, hubs_frame, load_hubs
from tests.cloud.domains.fleet.testcases.grid import Grid

SHIPPED = Path(__file__).resolve().parents[4] / "cloud" / "domains" / "fleet" / "data" / "hubs_hitachi.yaml"


def test_the_shipped_hitachi_hubs_load_with_stations_bus_stops_and_estates():
    hubs = load_hubs(SHIPPED)
    by_id = {hub.id: hub for hub in hubs}
    assert {"jr-hitachi", "jr-omika", "jr-ogitsu", "jr-hitachi-taga"} <= set(by_id)
    assert by_id["jr-omika"].name["ja"] == "大甕駅"
    assert (by_id["jr-hitachi"].lat, by_id["jr-hitachi"].lon) == (36.5908, 140.6615)
    kinds = {hub.kind.value for hub in hubs}
    assert kinds == {"rail_station", "bus_stop", "estate"}
    # each estate lies west of (inland from) its nearest station, by at least 1.5 km
    stations = [h for h in hubs if h.kind == "rail_station"]
    for estate in (h for h in hubs if h.kind == "estate"):
        nearest = min(stations, key=lambda s: abs(s.lat - estate.lat))
        assert (nearest.lon - estate.lon) * 89_300 > 1500, estate.id     # ~89.3 km per degree of lon here


@pytest.mark.parametrize("text, message", [
    ("{id: x}", "expected a list of hubs"),
    ("- {id: a, name: {ja: あ, en: A}, kind: rail_station, lat: 36.5, lon: 140.6}\n"
     "- {id: a, name: {ja: あ, en: A}, kind: bus_stop, lat: 36.5, lon: 140.6}", "hub 1: key 'id': 'a' is used twice"),
    ("- {id: a, name: {ja: あ}, kind: rail_station, lat: 36.5, lon: 140.6}", "hub 0 (a): key 'name'"),
    ("- {id: a, name: {ja: あ, en: A}, kind: airport, lat: 36.5, lon: 140.6}",
     "hub 0 (a): key 'kind': expected one of"),
    ("- {id: a, name: {ja: あ, en: A}, kind: estate, lat: 136.5, lon: 140.6}", "hub 0 (a): key 'lat'"),
    ("- {id: a, name: {ja: あ, en: A}, kind: estate, lat: 36.5, lon: 140.6, capacity: -1}", "key 'capacity'"),
    ("- {id: a, name: {ja: あ, en: A}, kind: estate, lat: 36.5, lon: 140.6, size: 3}", "key 'size': not a hub key"),
    ("- [unclosed", "not YAML"),
])
def test_a_broken_hubs_file_is_named_with_the_entry_and_key(tmp_path, text, message):
    path = tmp_path / "hubs.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(HubFileError) as caught:
        load_hubs(path)
    assert str(path) in str(caught.value) and message in str(caught.value)


def test_a_missing_hubs_file_is_named(tmp_path):
    with pytest.raises(HubFileError, match="hubs.yaml: cannot read"):
        load_hubs(tmp_path / "hubs.yaml")


def test_coverage_counts_available_vehicles_within_the_radius_and_the_nearest_one():
    grid = Grid()                         # origin: JR Hitachi
    hubs = pl.DataFrame({"id": ["station", "estate", "far"], "kind": ["rail_station", "estate", "estate"],
                         "lat": [grid.point(0)[0], grid.point(0, -2000)[0], grid.point(5000)[0]],
                         "lon": [grid.point(0)[1], grid.point(0, -2000)[1], grid.point(5000)[1]]})
    spots = {  # vehicle: (north m, east m, state, battery)
        "v1": (300, 0, "available", 80.0),      # 300 m from the station
        "v2": (0, -499, "available", 60.0),     # 499 m: inside the 500 m radius
        "v3": (0, -520, "available", 90.0),     # 520 m: outside; 1,480 m from the estate
        "v4": (10, 0, "on_trip", 70.0),         # not available
        "v5": (20, 0, "available", 5.0),        # available, but its battery is below 10 %
        "v6": (0, 0, "available", None),        # battery unknown: counted
    }
    vehicles = pl.DataFrame({
        "vehicle": list(spots), "lat": [grid.point(n, e)[0] for n, e, _, _ in spots.values()],
        "lon": [grid.point(n, e)[1] for n, e, _, _ in spots.values()],
        "state": [s for _, _, s, _ in spots.values()], "battery_pct": [b for _, _, _, b in spots.values()]})
    coverage = hub_coverage(vehicles, hubs, radius_m=500, min_battery_pct=10)
    rows = {r["hub"]: r for r in coverage.iter_rows(named=True)}
    assert coverage["hub"].to_list() == ["station", "estate", "far"]
    assert rows["station"]["available"] == 3                       # v1, v2, v6
    assert rows["station"]["nearest_m"] == pytest.approx(0, abs=0.01)
    assert rows["estate"]["available"] == 0
    assert rows["estate"]["nearest_m"] == pytest.approx(1480, abs=1.0)
    assert rows["far"]["nearest_m"] == pytest.approx(4700, abs=2.0)  # v1, 300 m north, from 5 km north
    gaps = coverage_gaps(coverage, hubs)
    assert gaps["hub"].to_list() == ["estate", "far"]
    assert coverage_gaps(coverage, hubs, min_available=4, kinds=("rail_station",))["hub"].to_list() == ["station"]


def test_coverage_with_no_available_vehicle_is_all_gaps():
    hubs = hubs_frame(load_hubs(SHIPPED))
    vehicles = pl.DataFrame({"vehicle": ["v"], "lat": [36.5908], "lon": [140.6615], "state": ["on_trip"],
                             "battery_pct": [50.0]})
    coverage = hub_coverage(vehicles, hubs)
    assert coverage["available"].to_list() == [0] * hubs.height
    assert coverage["nearest_m"].null_count() == hubs.height
    assert coverage_gaps(coverage, hubs).height == hubs.height
