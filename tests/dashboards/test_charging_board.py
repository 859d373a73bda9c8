"""The charging board's queries against a real InfluxDB 1.6 holding hand-made charger, site and session
points: every panel runs with Grafana's substitutions (dashboards.render, the same code that draws the
screenshots) and shows the numbers worked out by hand below."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from grafana_foundation_sdk.models.dashboard import Dashboard

from cloud.config import InfluxConfig
from cloud.influx import InfluxClient
from dashboards import catalog, charging, draw
from dashboards.common import InfluxQLQuery
from dashboards.render import Influx, interval_for, panel_data

pytestmark = pytest.mark.timeout(60)

JST = ZoneInfo("Asia/Tokyo")
MIN = 60_000
BUCKET_MS = 10 * MIN          # $__interval of a 24-hour range: 360 s (240 points) rounded up to a nice 10m
SITE, OTHER_SITE = "plant-a", "plant-z"


def _line(measurement: str, tags: dict, fields: dict, ts: int) -> str:
    tag_text = ",".join(f"{k}={v}" for k, v in sorted(tags.items()))
    field_text = ",".join(f'{k}="{v}"' if isinstance(v, str) else f"{k}={float(v)}" for k, v in fields.items())
    return f"{measurement},{tag_text} {field_text} {ts}"


def _connector(charger: str, evse: str, ts: int, site: str = SITE, **fields) -> str:
    return _line("charger", {"site": site, "agent": "edge-1", "device": charger, "profile": "ocpp",
                             "station": charger, "evse": evse}, fields, ts)


def _session(tag: str, energy: float, pv: float, ts: int, site: str = SITE) -> str:
    return _line("charging_session", {"site": site, "agent": "edge-1", "device": "cp-1.sessions", "profile": "ocpp",
                                      "station": "cp-1", "evse": "1", "id_tag": tag},
                 {"session_id": str(ts), "energy": energy, "pv_energy": pv, "pv_share": pv / energy}, ts)


def month_start(moment: datetime) -> datetime:
    return moment.astimezone(JST).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


class Scene:
    """What is written, relative to the test's start, and the expected answers."""

    def __init__(self, now: datetime):
        self.now = now
        now_ms = int(now.timestamp() * 1000)
        self.this_month = month_start(now)
        start_ms = int(self.this_month.timestamp() * 1000)
        elapsed = now_ms - start_ms
        bucket = BUCKET_MS
        self.buckets = [now_ms // bucket * bucket - k * bucket + MIN for k in (3, 2)]
        self.previous_month = month_start(self.this_month - timedelta(days=1))
        self.lines = [
            # cp-1 connector 1 charging (newest 7.4 kW), its station (evse 0) reporting the same power,
            # cp-2 connector 1 at 4 kW and connector 2 paused 20 minutes ago (too old for "now").
            _connector("cp-1", "1", now_ms - 3 * MIN, status="Charging", power_total=3000.0, session_energy=2.0,
                       mode="pv", target_current=6.0, target_phases=3.0, decision="pv surplus 4.1 kW: 6 A"),
            _connector("cp-1", "1", now_ms - MIN, status="Charging", power_total=7400.0, session_energy=2.5,
                       mode="pv", target_current=10.7, target_phases=3.0, decision="pv surplus 7.4 kW: 10.7 A"),
            _connector("cp-1", "0", now_ms - MIN, status="Available", power_total=7400.0),
            _connector("cp-2", "1", now_ms - 2 * MIN, status="Charging", power_total=4000.0, session_energy=9.0,
                       mode="now", target_current=16.0, decision="mode now: full current"),
            _connector("cp-2", "2", now_ms - 20 * MIN, status="SuspendedEVSE", power_total=3000.0,
                       mode="minpv", decision="surplus below minimum: paused"),
            _connector("cp-9", "1", now_ms - MIN, site=OTHER_SITE, status="Faulted", power_total=50000.0),
            # The site controller: importing 2 kW in the first bucket, exporting 8.6 kW in the second.
            _line("site", {"site": SITE, "agent": "edge-1", "device": "ev-control", "profile": "ocpp"},
                  {"pv_power": 30000.0, "load_power": 20000.0, "ev_power": 12000.0, "grid_power": 2000.0, "surplus": 10000.0,
                   "decision": "surplus 10.0 kW shared"}, self.buckets[0]),
            _line("site", {"site": SITE, "agent": "edge-1", "device": "ev-control", "profile": "ocpp"},
                  {"pv_power": 40000.0, "load_power": 20000.0, "ev_power": 11400.0, "grid_power": -8600.0, "surplus": 20000.0,
                   "decision": "surplus 20.0 kW shared"}, self.buckets[1]),
            # Sessions. This month (JST): tag A 10 kWh (4 PV) half an hour after midnight JST, which is still
            # last month in UTC, and 6 kWh (6 PV); tag B 20 kWh (5 PV). Last month: tag A 8 (2 PV) at 23:30
            # JST on its last day and 12 (12 PV). Another site's session is never counted.
            _session("TAG-A", 10.0, 4.0, start_ms + min(30 * MIN, elapsed // 3)),
            _session("TAG-A", 6.0, 6.0, start_ms + elapsed // 2),
            _session("TAG-B", 20.0, 5.0, start_ms + elapsed * 3 // 4),
            _session("TAG-A", 8.0, 2.0, start_ms - 30 * MIN),
            _session("TAG-A", 12.0, 12.0, start_ms - 10 * 86_400_000),
            _session("TAG-A", 100.0, 100.0, start_ms + elapsed // 2 + 1, site=OTHER_SITE),
        ]


@pytest.fixture
def answers(influx):
    scene = Scene(datetime.now(timezone.utc))
    with InfluxClient(InfluxConfig(url=influx.url, database="hinode")) as client:
        client.create_database()
        client.write_lines(scene.lines)
    data = panel_data(charging.build("en"), Influx(influx.url, "hinode"), scene.now)
    return scene, {d["panel"]["title"]: d for d in data}


def _series(d: dict, ref: str = "A") -> list[dict]:
    (result,) = [r for r in d["results"] if r["target"]["refId"] == ref]
    assert "error" not in result, result
    return result["series"]


def _table(d: dict) -> list[dict]:
    header, rows = draw.table_rows(d)
    return [dict(zip(header, row)) for row in rows]


def test_the_interval_assumed_above_is_the_renderers():
    start = datetime(2026, 11, 29, tzinfo=timezone.utc)
    assert interval_for(start, start + timedelta(days=1)) == "10m"


def test_the_board_is_listed_in_both_languages_with_every_title_translated():
    boards = catalog.all_dashboards()
    en, ja = boards["hinode-charging-en"], boards["hinode-charging-ja"]
    assert len(en["panels"]) == len(ja["panels"]) == 9
    for english, japanese in zip(en["panels"], ja["panels"]):
        assert english["title"] != japanese["title"] and english["description"] != japanese["description"]
    assert any("\u3040" <= ch <= "\u9fff" for p in ja["panels"] for ch in p["title"])
    assert [q for _, _, q in catalog.panel_queries(en)] == [q for _, _, q in catalog.panel_queries(ja)]
    assert [v["name"] for v in en["templating"]["list"]] == ["site", "offline_after"]
    for board in (en, ja):            # the JSON is what the SDK's typed models read back
        model = Dashboard.from_json(board)
        assert model.uid == board["uid"]
        assert all(isinstance(t, InfluxQLQuery) for p in model.panels for t in p.targets or [])
    assert all('"site" =~ /^$site$/' in query for _, _, query in catalog.panel_queries(en))


def test_every_panel_query_runs_and_answers(answers):
    _, panels = answers
    assert len(panels) == 9
    for title, d in panels.items():
        for result in d["results"]:
            assert "error" not in result, f"{title}: {result['error']}\n{result['query']}"
            assert result["series"], f"{title}: no data\n{result['query']}"
            assert "plant\\-a" in result["query"], result["query"]


def test_power_now_adds_live_connectors_only(answers):
    _, panels = answers
    # 7.4 (cp-1/1) + 4.0 (cp-2/1): not the station's own 7.4, not cp-2/2 silent for 20 min, not plant-z
    (series,) = _series(panels["EV charging now"])
    assert series["values"][0][1] == pytest.approx(11.4)


def test_chargers_now_shows_each_connectors_newest_state(answers):
    _, panels = answers
    rows = {(r["charger"], r["evse"]): r for r in _table(panels["Chargers now"])}
    assert set(rows) == {("cp-1", "0"), ("cp-1", "1"), ("cp-2", "1"), ("cp-2", "2")}
    assert {k: rows[("cp-1", "1")][k] for k in ("status", "kW", "session kWh", "mode")} == \
        {"status": "Charging", "kW": 7.4, "session kWh": 2.5, "mode": "pv"}
    assert (rows[("cp-2", "2")]["status"], rows[("cp-2", "2")]["mode"]) == ("SuspendedEVSE", "minpv")
    assert rows[("cp-1", "0")]["status"] == "Available"


def test_connector_power_over_time_leaves_the_station_out(answers):
    _, panels = answers
    series = {(s["tags"]["device"], s["tags"]["evse"]): [v[1] for v in s["values"]]
              for s in _series(panels["Charging power per connector"])}
    assert set(series) == {("cp-1", "1"), ("cp-2", "1"), ("cp-2", "2")}
    newest_ms = int(answers[0].now.timestamp() * 1000) - MIN
    same_bucket = (newest_ms - 2 * MIN) // BUCKET_MS == newest_ms // BUCKET_MS
    assert series[("cp-1", "1")] == ([pytest.approx(5.2)] if same_bucket else [3.0, 7.4])


def test_site_balance_splits_grid_power_into_import_and_export(answers):
    scene, panels = answers
    (series,) = _series(panels["Site: PV, load, export and EV charging"])
    rows = [dict(zip(series["columns"], values)) for values in series["values"]]
    assert [r["time"] for r in rows] == [ts - 60_000 for ts in scene.buckets]
    assert [(r["PV"], r["load"], r["EV charging"]) for r in rows] == [(30.0, 20.0, 12.0), (40.0, 20.0, 11.4)]
    assert [r["export"] for r in rows] == [0.0, pytest.approx(8.6)]
    assert [r["grid import"] for r in rows] == [2.0, 0.0]


def test_decisions_per_connector_and_for_the_site(answers):
    _, panels = answers
    rows = _table(panels["Controller decisions (latest)"])
    by_device = {(r["device"], r.get("evse")): r for r in rows}
    assert by_device[("cp-1", "1")]["decision"] == "pv surplus 7.4 kW: 10.7 A"
    assert by_device[("cp-1", "1")]["target A"] == 10.7
    assert by_device[("cp-2", "2")]["decision"] == "surplus below minimum: paused"
    assert by_device[("ev-control", None)]["decision"] == "surplus 20.0 kW shared"
    assert by_device[("ev-control", None)]["surplus kW"] == 20.0


def test_this_month_per_tag_and_pv_share(answers):
    _, panels = answers
    rows = {r["tag"]: r for r in _table(panels["Sessions per employee tag, this month"])}
    assert set(rows) == {"TAG-A", "TAG-B"}
    assert {k: rows["TAG-A"][k] for k in ("sessions", "kWh", "PV kWh")} == {"sessions": 2, "kWh": 16.0, "PV kWh": 10.0}
    assert rows["TAG-A"]["PV share"] == pytest.approx(62.5)
    assert (rows["TAG-B"]["sessions"], rows["TAG-B"]["kWh"], rows["TAG-B"]["PV share"]) == (1, 20.0, 25.0)
    (charged,) = _series(panels["Charged this month"])
    assert charged["values"][0][1] == pytest.approx(36.0)
    (share,) = _series(panels["PV share of charging, this month"])
    assert share["values"][0][1] == pytest.approx(15 / 36 * 100)


def test_months_are_cut_at_midnight_tokyo_time(answers):
    scene, panels = answers
    d = panels["Charging per employee tag by month (fiscal year)"]
    rows = {(r["Month (JST)"], r["tag"]): (r["sessions"], r["kWh"], r["PV kWh"]) for r in _table(d)}
    this, last = scene.this_month.strftime("%Y-%m"), scene.previous_month.strftime("%Y-%m")
    expected = {(this, "TAG-A"): (2, 16.0, 10.0), (this, "TAG-B"): (1, 20.0, 5.0)}
    if scene.this_month.month != 4:          # in April, last month belongs to the previous fiscal year
        expected[(last, "TAG-A")] = (2, 20.0, 14.0)
    assert rows == expected
    (share,) = [t for t in d["panel"]["transformations"] if t["id"] == "calculateField"]
    assert share["options"]["binary"] == {"left": "PV kWh", "operator": "/", "right": "kWh"}
