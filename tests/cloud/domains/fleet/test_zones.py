"""Zones: GeoJSON loading, errors naming file, feature and key, point lookups, the shipped Hitachi zones."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from cloud.domains.fleet.hubs import load_hubs
from cloud.domains.fleet.zones import ZoneFileError, ZoneIndex, ZoneKind, haversine_m
from tests.cloud.domains.fleet.testcases.grid import Grid, collection, zone_feature

DATA = Path(__file__).resolve().parents[4] / "cloud" / "domains" / "fleet" / "data"
GRID = Grid()


def at(index: ZoneIndex, north_m: float, east_m: float = 0.0, vehicle_type: str | None = None) -> list[str]:
    lat, lon = GRID.point(north_m, east_m)
    return [zone.id for zone in index.zones_at(lon, lat, vehicle_type)]


def sample() -> dict:
    outer = GRID.ring(0, 0, 100)
    hole = GRID.ring(0, 0, 20)
    return collection(
        zone_feature("slow-a", "slow", [outer, hole], max_speed_kmh=6),                        # a square with a hole
        {"type": "Feature", "geometry": {"type": "MultiPolygon",
                                         "coordinates": [[GRID.ring(1000, 0, 50)], [GRID.ring(1000, 500, 50)]]},
         "properties": {"id": "noparking-twin", "name": {"ja": "二つ", "en": "twin"}, "kind": "no_parking"}},
        zone_feature("noride-scooters", "no_ride", [GRID.ring(50, 0, 100)], vehicle_types=["escooter"]),
    )


def test_point_lookups_honour_holes_multipolygons_boundaries_and_vehicle_types():
    index = ZoneIndex.from_geojson(sample(), source="sample")
    assert len(index) == 3
    assert at(index, 60) == ["slow-a", "noride-scooters"]                 # file order
    assert at(index, 0) == ["noride-scooters"]                            # in the hole of slow-a
    assert at(index, 60, vehicle_type="slowmobility") == ["slow-a"]       # no_ride is for scooters only
    assert at(index, 1000, 500) == ["noparking-twin"] and at(index, 1000, 0) == ["noparking-twin"]
    assert at(index, 1000, 250) == []                                     # between the two parts
    assert at(index, -100) == ["slow-a"]                                  # on the edge counts as inside
    assert at(index, -100.5) == []
    assert ZoneIndex.empty().zones_at(140.0, 36.0) == []


def test_to_geojson_round_trips():
    index = ZoneIndex.from_geojson(sample())
    again = ZoneIndex.from_geojson(json.loads(json.dumps(index.to_geojson())))
    assert [(z.id, z.kind, z.max_speed_kmh, z.vehicle_types) for z in again.zones] == [
        (z.id, z.kind, z.max_speed_kmh, z.vehicle_types) for z in index.zones]
    assert all(a.geometry.equals(b.geometry) for a, b in zip(index.zones, again.zones))


def broken(change) -> dict:
    obj = copy.deepcopy(sample())
    change(obj)
    return obj


@pytest.mark.parametrize("change, message", [
    (lambda o: o.update(type="Feature"), "expected a GeoJSON FeatureCollection"),
    (lambda o: o.update(features={}), "key 'features'"),
    (lambda o: o["features"][1]["properties"].pop("kind"), "feature 1 (noparking-twin): key 'properties.kind'"),
    (lambda o: o["features"][0]["properties"].pop("max_speed_kmh"),
     "feature 0 (slow-a): key 'properties.max_speed_kmh'"),
    (lambda o: o["features"][1]["properties"].update(max_speed_kmh=10), "only slow zones have a maximum speed"),
    (lambda o: o["features"][2]["properties"].update(vehicle_types=["bicycle"]), "feature 2 (noride-scooters): key "
                                                                                 "'properties.vehicle_types'"),
    (lambda o: o["features"][2]["properties"].update(id="no ride!"), "feature 2: key 'properties.id'"),
    (lambda o: o["features"][2]["properties"].update(id="slow-a"),
     "feature 2: key 'properties.id': 'slow-a' is used twice"),
    (lambda o: o["features"][2]["properties"].update(name="no ride"), "key 'properties.name'"),
    (lambda o: o["features"][2].update(geometry={"type": "Point", "coordinates": [140.6, 36.5]}),
     "feature 2: key 'geometry.type': expected Polygon or MultiPolygon"),
    (lambda o: o["features"][2]["geometry"].update(coordinates=[[[140.6, 36.5], [140.7, 36.6], [140.6, 36.6],
                                                                 [140.7, 36.5], [140.6, 36.5]]]),
     "feature 2: key 'geometry.coordinates': invalid polygon (Self-intersection"),
    (lambda o: o["features"][2]["geometry"].update(coordinates=[[[36.5, 140.6], [36.6, 140.6], [36.6, 140.7],
                                                                 [36.5, 140.6]]]),
     "expected [lon, lat] in degrees"),
    (lambda o: o["features"][2]["geometry"].update(coordinates=[[[140.6]]]), "key 'geometry.coordinates'"),
])
def test_a_broken_zones_file_is_named_with_the_feature_and_the_key(tmp_path, change, message):
    path = tmp_path / "zones.geojson"
    path.write_text(json.dumps(broken(change)), encoding="utf-8")
    with pytest.raises(ZoneFileError) as caught:
        ZoneIndex.from_file(path)
    assert str(caught.value).startswith(f"{path}: ") and message in str(caught.value)


def test_an_unreadable_or_non_json_zones_file_is_named(tmp_path):
    with pytest.raises(ZoneFileError, match="zones.geojson: cannot read"):
        ZoneIndex.from_file(tmp_path / "zones.geojson")
    (tmp_path / "bad.geojson").write_text("{not json")
    with pytest.raises(ZoneFileError, match="bad.geojson: not JSON"):
        ZoneIndex.from_file(tmp_path / "bad.geojson")


def test_the_shipped_hitachi_zones_slow_every_station_and_keep_forecourts_clear():
    index = ZoneIndex.from_file(DATA / "zones_hitachi.geojson")
    hubs = {hub.id: hub for hub in load_hubs(DATA / "hubs_hitachi.yaml")}
    kinds = {zone.kind for zone in index.zones}
    assert kinds == set(ZoneKind)
    for station in ("jr-hitachi", "jr-omika", "jr-hitachi-taga", "jr-ogitsu"):
        hub = hubs[station]
        slow = [z for z in index.zones_at(hub.lon, hub.lat) if z.kind is ZoneKind.SLOW]
        assert [z.max_speed_kmh for z in slow] == [6.0], station
        # ~150 m around it: a point 140 m away is inside, 160 m away is not
        assert slow[0] in index.zones_at(hub.lon + 140 / 89_500, hub.lat)
        assert slow[0] not in index.zones_at(hub.lon + 160 / 89_500, hub.lat)
    # the Omika area is station-only parking, and its hub is where parking is allowed
    omika = hubs["jr-omika"]
    assert "stationparking-omika" in [z.id for z in index.zones_at(omika.lon, omika.lat)]
    # every zone lies in Hitachi City (roughly 36.45..36.70 N, 140.55..140.72 E)
    for zone in index.zones:
        minx, miny, maxx, maxy = zone.geometry.bounds
        assert 140.55 < minx and maxx < 140.72 and 36.45 < miny and maxy < 36.70, zone.id


def test_haversine_against_a_known_distance():
    # JR Hitachi to JR Omika, about 9.7 km apart along the coast
    assert haversine_m(36.5908, 140.6615, 36.5086, 140.6283) == pytest.approx(9_640, rel=0.01)
    assert haversine_m(36.5, 140.6, 36.5, 140.6) == 0


def test_grid_lookups_agree_with_shapely_for_many_points_across_cell_edges():
    import random

    import shapely
    rng = random.Random(7)
    features = []
    for i in range(60):     # zones of 20 m .. 900 m, many across grid cell edges (0.005 degree)
        north, east, half = rng.uniform(-3000, 3000), rng.uniform(-3000, 3000), rng.uniform(10, 450)
        features.append(zone_feature(f"z{i}", "no_parking", [GRID.ring(north, east, half)]))
    index = ZoneIndex.from_geojson(collection(*features))
    polygons = [zone.geometry for zone in index.zones]
    for _ in range(3000):
        lat, lon = GRID.point(rng.uniform(-3500, 3500), rng.uniform(-3500, 3500))
        point = shapely.Point(lon, lat)
        expected = [zone.id for zone, polygon in zip(index.zones, polygons) if polygon.intersects(point)]
        assert [zone.id for zone in index.zones_at(lon, lat)] == expected


def test_a_zone_wider_than_a_city_is_refused(tmp_path):
    huge = collection(zone_feature("everything", "no_ride", [[[139.0, 35.0], [141.5, 35.0], [141.5, 37.0],
                                                               [139.0, 35.0]]]))
    with pytest.raises(ZoneFileError, match="feature 0: key 'geometry.coordinates': spans more than 1.0 degree"):
        ZoneIndex.from_geojson(huge, source="huge.geojson")
