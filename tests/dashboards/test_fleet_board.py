"""The fleet board's queries against a real InfluxDB 1.6 holding hand-made vehicle, event, violation, trip
and hub points: every panel runs with Grafana's substitutions (dashboards.render, the same code that draws
the screenshots) and shows the answers worked out by hand below; then the whole demo data set."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import Dashboard

from cloud.config import InfluxConfig
from cloud.domains.fleet.events import FleetEvent, Trip, Violation, event_id
from cloud.domains.fleet.worker_points import HUB_MEASUREMENT, event_point, trip_point, violation_point
from cloud.influx import InfluxClient
from cloud.lineproto import encode_envelope
from cloud.points import Point, encode_point
from dashboards import catalog, demo_fleet, draw, fleet
from dashboards.common import InfluxQLQuery
from dashboards.render import Influx, panel_data
from hinode.contract import DeviceKind, TelemetryEnvelope
from hinode.mobility import EventType, vehicle_readings

pytestmark = pytest.mark.timeout(60)

MIN = 60_000
JST = ZoneInfo("Asia/Tokyo")
FLEET, OTHER_FLEET = "hitachi-scooters", "mito-bikes"


# Every point below is made by the code that writes it in production: vehicle fixes by the ingest's
# encoder (cloud.lineproto), events, violations and trips by the fleet worker (worker_points), hub
# coverage the way the fleet.hubs job builds it. A renamed field or tag fails these tests.

def _fix(vehicle: str, ts: int, fleet_id: str = FLEET, vehicle_type: str = "escooter", seq: int = 1, **values) -> str:
    envelope = TelemetryEnvelope(site=fleet_id, agent=vehicle, device=vehicle, kind=DeviceKind.VEHICLE, seq=seq,
                                 meta={"fleet": fleet_id, "vehicle_type": vehicle_type},
                                 readings=vehicle_readings(ts, **values))
    (line,) = encode_envelope(envelope, meta=envelope.meta).lines
    return line


def _violation(vehicle: str, zone: str, kind: str, start: int, end: int, fleet_id: str = FLEET) -> str:
    return encode_point(violation_point(Violation(f"{fleet_id}:{vehicle}:{start}:{kind}:{zone}", fleet_id, vehicle,
                                                  "escooter", kind, zone, start, 36.59, 140.66, 17.5, end)))


def _event(vehicle: str, event_type: str, ts: int, zone: str = "", fleet_id: str = FLEET,
           battery_pct: float = 50.0, trip: Trip | None = None) -> str:
    return encode_point((trip_point if trip else event_point)(FleetEvent(
        event_id(fleet_id, vehicle, ts, event_type, zone), fleet_id, vehicle, "escooter", ts, EventType(event_type),
        "on_trip", 36.59, 140.66, battery_pct, zone_id=zone, trip=trip)))


def _trip(vehicle: str, start: int, duration_s: float, distance_m: float, fleet_id: str = FLEET) -> str:
    end = start + int(duration_s * 1000)
    trip = Trip(fleet_id, vehicle, "escooter", start, end, 36.59, 140.66, 36.51, 140.63, distance_m, duration_s,
                19.0, [[140.66, 36.59], [140.63, 36.51]])
    return _event(vehicle, "trip_end", end, fleet_id=fleet_id, trip=trip)


def _hub(hub: str, kind: str, ts: int, available: int, nearest: float) -> str:
    # as cloud/domains/fleet/jobs.py writes it
    return encode_point(Point(HUB_MEASUREMENT, {"hub": hub, "hub_kind": kind},
                              {"available": available, "gap": available == 0, "nearest_m": nearest}, ts))


class Scene:
    def __init__(self, now: datetime):
        self.now = now
        n = int(now.timestamp() * 1000)
        midnight_jst = now.astimezone(JST).replace(hour=0, minute=0, second=0, microsecond=0)
        since_midnight = n - int(midnight_jst.timestamp() * 1000)
        # today's two trips start after midnight JST whatever the hour the test runs
        first, second = n - min(50 * MIN, since_midnight * 2 // 3), n - min(30 * MIN, since_midnight // 3)
        self.lines = [
            # sc-1 moves, its newest fix 1 min ago; sc-2 at 12 % battery; sc-3 silent for 30 min (not "reporting");
            # another fleet's vehicle is never shown (the $fleet variable lists both: the first one is picked).
            _fix("sc-1", n - 10 * MIN, lat=36.50, lon=140.60, battery=80.0, state="on_trip", speed=15.0, seq=1),
            _fix("sc-1", n - MIN, lat=36.59, lon=140.66, battery=78.0, state="available", speed=0.0, seq=2),
            _fix("sc-2", n - 2 * MIN, lat=36.52, lon=140.62, battery=12.0, state="available", speed=0.0),
            _fix("sc-3", n - 30 * MIN, lat=36.55, lon=140.64, battery=55.0, state="available", speed=0.0),
            _fix("sm-1", n - MIN, vehicle_type="slowmobility", lat=36.57, lon=140.63, battery=40.0,
                 state="on_trip", speed=5.0),
            _fix("zz-9", n - MIN, fleet_id="zz-other", lat=35.0, lon=139.0, battery=1.0, state="available"),
            # one open violation (speeding, 7 min), one that ended; another fleet's open one
            _violation("sc-1", "slow-hitachi", "speeding", n - 7 * MIN, 0),
            _violation("sc-2", "no-parking-omika", "no_parking", n - 90 * MIN, n - 60 * MIN),
            _violation("zz-9", "zz-zone", "no_ride", n - 5 * MIN, 0, fleet_id="zz-other"),
            # events, newest first in the table
            _event("sc-1", "trip_start", n - 20 * MIN), _event("sc-1", "zone_enter", n - 8 * MIN, zone="slow-hitachi"),
            _event("sc-2", "battery_low", n - 4 * MIN, battery_pct=12.0),
            _event("zz-9", "trip_start", n - 2 * MIN, fleet_id="zz-other"),
            # trips: today 2 for sc-1 (10 + 20 min, 2 + 4 km), 1 for sc-2 three days ago
            _trip("sc-1", first, 600.0, 2000.0), _trip("sc-1", second, 1200.0, 4000.0),
            _trip("sc-2", n - 3 * 86_400_000, 900.0, 3000.0),
            _trip("zz-9", n - 40 * MIN, 900.0, 3000.0, fleet_id="zz-other"),
            # hubs: the estate has no vehicle within reach
            _hub("jr-hitachi", "rail_station", n - 10 * MIN, 3, 80.0),
            _hub("jr-hitachi", "rail_station", n - 5 * MIN, 4, 50.0),
            _hub("hillside-estate", "estate", n - 5 * MIN, 0, 900.0),
        ]


@pytest.fixture
def answers(influx):
    scene = Scene(datetime.now(timezone.utc))
    with InfluxClient(InfluxConfig(url=influx.url, database="hinode")) as client:
        client.create_database()
        client.write_lines(scene.lines)
    data = panel_data(fleet.build("en"), Influx(influx.url, "hinode"), scene.now)
    return scene, {d["panel"]["title"]: d for d in data}


def _table(d: dict) -> list[dict]:
    header, rows = draw.table_rows(d)
    return [dict(zip(header, row)) for row in rows]


def _stat(d: dict) -> float:
    (result,) = d["results"]
    assert "error" not in result, result
    (series,) = result["series"]
    return series["values"][0][1]


def test_the_board_has_both_languages_and_round_trips_through_the_sdk():
    en, ja = fleet.build("en"), fleet.build("ja")
    assert en["uid"] == "hinode-fleet-en" and ja["uid"] == "hinode-fleet-ja"
    assert len(en["panels"]) == len(ja["panels"]) == 12
    for english, japanese in zip(en["panels"], ja["panels"]):
        assert english["title"] != japanese["title"] and english["description"] != japanese["description"]
    assert [q for _, _, q in catalog.panel_queries(en)] == [q for _, _, q in catalog.panel_queries(ja)]
    assert [v["name"] for v in en["templating"]["list"]] == ["fleet", "offline_after", "zones_url"]
    for board in (en, ja):
        model = Dashboard.from_json(board)
        assert json.loads(json.dumps(model, cls=JSONEncoder)) == board
        assert all(isinstance(t, InfluxQLQuery) for p in model.panels for t in p.targets or [])
    assert fleet.build("en") == en                                  # deterministic
    titles = [p["title"] for p in en["panels"]]
    assert len(set(titles)) == len(titles)


def test_the_map_draws_vehicles_by_coordinates_and_zones_from_the_templated_url():
    (geomap,) = [p for p in fleet.build("en")["panels"] if p["type"] == "geomap"]
    zones, vehicles = geomap["options"]["layers"]
    assert zones["type"] == "geojson" and zones["config"]["src"] == "$zones_url"
    assert {r["check"]["value"] for r in zones["config"]["rules"]} == {"no_ride", "no_parking", "station_parking", "slow"}
    assert vehicles["type"] == "markers"
    assert vehicles["location"] == {"mode": "coords", "latitude": "lat", "longitude": "lon"}
    assert vehicles["config"]["style"]["color"]["field"] == "battery"
    assert geomap["targets"][0]["resultFormat"] == "table"


def test_every_panel_query_runs_and_answers(answers):
    _, panels = answers
    assert len(panels) == 12
    for title, d in panels.items():
        for result in d["results"]:
            assert "error" not in result, f"{title}: {result['error']}\n{result['query']}"
            assert result["series"], f"{title}: no data\n{result['query']}"


def test_the_map_has_each_vehicles_newest_position_of_the_chosen_fleet(answers):
    _, panels = answers
    d = panels["Vehicles and zones"]
    assert d["variables"]["fleet"] == [FLEET]          # one fleet at a time: the first of SHOW TAG VALUES
    rows = {r["device"]: r for r in _table(d)}
    assert set(rows) == {"sc-1", "sc-2", "sc-3", "sm-1"}
    assert (rows["sc-1"]["lat"], rows["sc-1"]["lon"], rows["sc-1"]["battery"]) == (36.59, 140.66, 78.0)
    assert rows["sc-1"]["state"] == "available"
    assert rows["sm-1"]["vehicle_type"] == "slowmobility"


def test_counts_reporting_low_battery_open_violations_and_trips_today(answers):
    _, panels = answers
    assert _stat(panels["Vehicles reporting"]) == 3           # sc-3 silent for 30 min
    assert _stat(panels["Low battery"]) == 1                  # sc-2 at 12 %
    assert _stat(panels["Violations open now"]) == 1          # not the ended one, not the other fleet's
    assert _stat(panels["Trips today"]) == 2                  # not sc-2's of three days ago, not the other fleet's


def test_open_violations_lists_only_open_ones(answers):
    _, panels = answers
    (row,) = _table(panels["Open violations"])
    assert (row["vehicle"], row["zone"], row["kind"], row["max km/h"]) == ("sc-1", "slow-hitachi", "speeding", 17.5)


def test_recent_events_newest_first_of_the_fleet(answers):
    _, panels = answers
    rows = _table(panels["Recent events"])
    assert [(r["vehicle"], r["event"]) for r in rows] == [("sc-2", "battery_low"), ("sc-1", "zone_enter"),
                                                          ("sc-1", "trip_start")]
    assert rows[1]["zone"] == "slow-hitachi" and rows[0]["battery"] == 12.0


def test_utilisation_per_vehicle_and_per_day(answers):
    _, panels = answers
    rows = {r["vehicle"]: r for r in _table(panels["Utilisation per vehicle (7 days)"])}
    assert set(rows) == {"sc-1", "sc-2"}
    assert (rows["sc-1"]["trips"], rows["sc-1"]["km"], rows["sc-1"]["hours"]) == (2, 6.0, 0.5)
    assert rows["sc-2"]["trips"] == 1
    (result,) = panels["Trips per day"]["results"]
    (series,) = result["series"]
    per_day = {row[0]: row[1] for row in series["values"]}
    assert sum(per_day.values()) == 3 and max(per_day.values()) == 2


def test_hubs_show_availability_and_the_coverage_gap(answers):
    _, panels = answers
    rows = {r["hub"]: r for r in _table(panels["Vehicles available at hubs"])}
    assert (rows["jr-hitachi"]["available"], rows["jr-hitachi"]["nearest m"], rows["jr-hitachi"]["gap"]) == (4.0, 50.0, False)
    assert (rows["hillside-estate"]["available"], rows["hillside-estate"]["gap"]) == (0.0, True)
    series = panels["Availability per hub"]["results"][0]["series"]
    assert {s["tags"]["hub"] for s in series} == {"jr-hitachi", "hillside-estate"}


def test_battery_over_time_per_vehicle(answers):
    _, panels = answers
    series = {s["tags"]["device"] for s in panels["Battery per vehicle"]["results"][0]["series"]}
    assert series == {"sc-1", "sc-2", "sc-3", "sm-1"}


def test_the_demo_data_fills_every_panel(influx):
    now = datetime.now(timezone.utc)
    with InfluxClient(InfluxConfig(url=influx.url, database="hinode")) as client:
        client.create_database()
        client.write_lines(demo_fleet.fleet_lines(now))
    data = {d["panel"]["title"]: d for d in panel_data(fleet.build("en"), Influx(influx.url, "hinode"), now)}
    for title, d in data.items():
        for result in d["results"]:
            assert "error" not in result and result["series"], f"{title}: {result}"
    assert _stat(data["Vehicles reporting"]) == 11              # sc-010 went silent
    assert _stat(data["Low battery"]) == 1                      # sc-007
    assert _stat(data["Violations open now"]) == 1
    (open_row,) = _table(data["Open violations"])
    assert (open_row["vehicle"], open_row["kind"]) == (demo_fleet.SPEEDER, "speeding")
    gaps = {r["hub"] for r in _table(data["Vehicles available at hubs"]) if r["gap"]}
    assert gaps == {"estate-okubo"}


def test_the_map_panel_draws_each_vehicle_over_the_shipped_zones(influx):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from dashboards.draw_geomap import SHIPPED_ZONES, draw_geomap

    now = datetime.now(timezone.utc)
    with InfluxClient(InfluxConfig(url=influx.url, database="hinode")) as client:
        client.create_database()
        client.write_lines(demo_fleet.fleet_lines(now))
    (d,) = [d for d in panel_data(fleet.build("en"), Influx(influx.url, "hinode"), now) if d["panel"]["type"] == "geomap"]
    fig, ax = plt.subplots(figsize=(8, 4))
    try:
        draw_geomap(ax, d)
        (dots,) = ax.collections
        assert len(dots.get_offsets()) == 12                 # every vehicle of the fleet, sc-010 at its last fix
        zones = json.loads(SHIPPED_ZONES.read_text())["features"]
        assert len(ax.patches) == sum(1 if f["geometry"]["type"] == "Polygon" else len(f["geometry"]["coordinates"])
                                      for f in zones)
        labels = {t.get_text() for t in ax.texts}
        assert {"sc-001", demo_fleet.LOW_BATTERY, "sm-02"} <= labels
        colours = {t.get_text(): dots.get_facecolors()[i] for i, t in enumerate(ax.texts)}
        assert tuple(colours[demo_fleet.LOW_BATTERY][:3]) == pytest.approx(matplotlib.colors.to_rgb(draw.color("red")))
    finally:
        plt.close(fig)
