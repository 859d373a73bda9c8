"""The CO2 and interchange boards' queries against a real InfluxDB 1.6 holding hand-made co2_slot,
co2_input, interchange_slot and interchange_flow points: every panel runs with Grafana's substitutions
(dashboards.render, the code that draws the screenshots) at a fixed "now" (Wednesday 2026-11-18 14:10
JST) and shows the numbers worked out by hand below. The demo data is checked against sums taken from
its own lines."""

from __future__ import annotations

import copy
from collections import defaultdict
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from grafana_foundation_sdk.models.dashboard import Dashboard

from cloud.config import InfluxConfig
from cloud.influx import InfluxClient
from dashboards import catalog, co2, demo_greencity, draw, interchange
from dashboards.common import InfluxQLQuery
from dashboards.render import Influx, panel_data

pytestmark = pytest.mark.timeout(90)

JST = ZoneInfo("Asia/Tokyo")
NOW = datetime(2026, 11, 18, 14, 10, tzinfo=JST)
DB = "hinode"


def jst(*args) -> int:
    return int(datetime(*args, tzinfo=JST).timestamp() * 1000)


def line(measurement: str, tags: dict, fields: dict, ts: int) -> str:
    def value(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        return f'"{v}"' if isinstance(v, str) else f"{v}i" if isinstance(v, int) else repr(float(v))
    tag_text = ",".join(f"{k}={v}" for k, v in sorted(tags.items()))
    return f"{measurement},{tag_text} " + ",".join(f"{k}={value(v)}" for k, v in fields.items()) + f" {ts}"


def co2_slot(site: str, ts: int, kwh: float | None, loc: float = 0.0, mkt: float = 0.0,
             expected: int = 1, measured: int = 1) -> str:
    fields = {"meters_expected": expected, "meters_measured": measured}
    if kwh is not None:
        fields |= {"kwh": kwh, "kg_location": loc, "kg_market": mkt}
    return line("co2_slot", {"site": site}, fields, ts)


CO2_LINES = [
    # sme-press. Today: 09:00 measured, 09:30 missing (no kWh, no kg), 10:00 measured.
    co2_slot("sme-press", jst(2026, 11, 18, 9, 0), 10.0, 4.3, 4.5),
    co2_slot("sme-press", jst(2026, 11, 18, 9, 30), None, measured=0),
    co2_slot("sme-press", jst(2026, 11, 18, 10, 0), 20.0, 8.6, 9.0),
    co2_slot("sme-press", jst(2026, 11, 17, 23, 30), 5.0, 2.15, 2.25),       # yesterday in JST, 14:30 UTC
    co2_slot("sme-press", jst(2026, 11, 1, 0, 0), 4.0, 1.72, 1.8),           # November in JST, October in UTC
    co2_slot("sme-press", jst(2026, 10, 31, 23, 30), 6.0, 2.58, 2.7),        # October
    co2_slot("sme-press", jst(2026, 4, 1, 0, 0), 8.0, 3.44, 3.6),            # first slot of FY2026
    co2_slot("sme-press", jst(2026, 3, 31, 23, 30), 100.0, 43.0, 45.0),      # FY2025: never counted
    # The city: one complete slot of the city hall, one slot of sme-food with 99 of 100 meter slots.
    co2_slot("city-hall-annex", jst(2026, 11, 18, 9, 0), 3.0, 1.29, 1.35),
    co2_slot("sme-food", jst(2026, 11, 2, 12, 0), 2.0, 0.86, 0.9, expected=100, measured=99),
    line("co2_input", {"site": "sme-press", "kind": "production", "item": "pcs", "month": "2026-11"},
         {"amount": 52000.0, "unit": "pcs"}, jst(2026, 11, 1)),
    line("co2_input", {"site": "sme-press", "kind": "fuel", "item": "kerosene", "month": "2026-10"},
         {"amount": 0.4, "unit": "kL", "cost_yen": 48000.0}, jst(2026, 10, 1)),
    line("co2_input", {"site": "sme-machining", "kind": "electricity", "item": "default/standard", "month": "2026-10"},
         {"amount": 9000.0, "unit": "kWh", "cost_yen": 252000.0}, jst(2026, 10, 1)),
]


def slot_rows(community: str, ts: int, provisional: bool, producer: tuple, consumers: dict) -> list[str]:
    """producer = (site, generation, consumption, supplied, export); consumers = {site: (demand, received)}."""
    site, gen, cons, supplied, export = producer
    tags = {"community": community}
    rows = [line("interchange_slot", tags | {"site": site, "role": "producer"}, {
        "generation_kwh": gen, "consumption_kwh": cons, "supplied_kwh": supplied, "received_kwh": 0.0,
        "self_kwh": gen - supplied - export, "export_kwh": export, "grid_kwh": 0.0, "provisional": provisional}, ts)]
    for consumer, (demand, received) in consumers.items():
        rows.append(line("interchange_slot", tags | {"site": consumer, "role": "consumer"}, {
            "generation_kwh": 0.0, "consumption_kwh": demand, "supplied_kwh": 0.0, "received_kwh": received,
            "self_kwh": 0.0, "export_kwh": 0.0, "grid_kwh": demand - received, "provisional": provisional}, ts))
        if received:
            rows.append(line("interchange_flow", tags | {"from": site, "to": consumer},
                             {"kwh": received, "provisional": provisional}, ts))
    return rows


P, A, B = "hitachi-omika", "sme-press", "city-hall-annex"
INTERCHANGE_LINES = [
    # Today 11:00: surplus 100 - 50 = 50, demand 10 + 30 = 40 -> all of it received, 10 exported.
    *slot_rows("omika-pv", jst(2026, 11, 18, 11, 0), False, (P, 100.0, 50.0, 40.0, 10.0), {A: (10.0, 10.0), B: (30.0, 30.0)}),
    # Today 11:30, provisional: surplus 80 - 50 = 30, demand 20 + 40 = 60 -> ratio 0.5: 10 and 20.
    *slot_rows("omika-pv", jst(2026, 11, 18, 11, 30), True, (P, 80.0, 50.0, 30.0, 0.0), {A: (20.0, 10.0), B: (40.0, 20.0)}),
    # 3 November (a holiday) 12:00: surplus 20, demand 5 + 5 -> 5 and 5, 10 exported.
    *slot_rows("omika-pv", jst(2026, 11, 3, 12, 0), False, (P, 60.0, 40.0, 10.0, 10.0), {A: (5.0, 5.0), B: (5.0, 5.0)}),
    # Last month, and another community today: never counted.
    *slot_rows("omika-pv", jst(2026, 10, 31, 12, 0), False, (P, 60.0, 40.0, 7.0, 13.0), {A: (7.0, 7.0)}),
    *slot_rows("other-pv", jst(2026, 11, 18, 11, 0), False, ("plant-q", 500.0, 1.0, 99.0, 400.0), {"shop-c": (99.0, 99.0)}),
]


def write(url: str, database: str, lines: list[str]) -> None:
    with InfluxClient(InfluxConfig(url=url, database=database, timeout_s=30)) as client:
        client.create_database()
        for start in range(0, len(lines), 5000):
            client.write_lines(lines[start:start + 5000])


def pinned(board: dict, **values: str) -> dict:
    """The board with variables set as a user would pick them (a custom value) or constants changed."""
    board = copy.deepcopy(board)
    for variable in board["templating"]["list"]:
        if variable["name"] in values:
            variable["type"] = "constant" if variable["type"] == "constant" else "custom"
            variable["query"] = values[variable["name"]]
    return board


def panels(board: dict, url: str, database: str = DB, now: datetime = NOW) -> dict[str, dict]:
    return {d["panel"]["title"]: d for d in panel_data(board, Influx(url, database), now)}


def series(d: dict, ref: str = "A") -> list[dict]:
    (result,) = [r for r in d["results"] if r["target"]["refId"] == ref]
    assert "error" not in result, result
    return result["series"]


def rows(d: dict, ref: str = "A") -> list[dict]:
    return [dict(zip(s["columns"], values)) | (s.get("tags") or {}) for s in series(d, ref) for values in s["values"]]


def table(d: dict, drop: tuple[str, ...] = (), upto: int | None = None) -> list[dict]:
    """The table as the renderer's transformations make it: the first ``upto`` transformations, less the
    ids in ``drop``."""
    kept = [t for t in d["panel"]["transformations"][:upto] if t["id"] not in drop]
    d = {**d, "panel": {**d["panel"], "transformations": kept}}
    header, values = draw.table_rows(d)
    return [dict(zip(header, row)) for row in values]


@pytest.fixture
def scene_url(influx):
    write(influx.url, DB, CO2_LINES + INTERCHANGE_LINES)
    return influx.url


@pytest.fixture
def co2_panels(scene_url):
    return panels(pinned(co2.build("en"), site="sme-press"), scene_url)


@pytest.fixture
def interchange_panels(scene_url):
    return panels(interchange.build("en"), scene_url)


def test_both_boards_exist_in_two_languages_with_the_same_queries():
    boards = catalog.all_dashboards()
    for base in (co2.BASE_UID, interchange.BASE_UID):
        en, ja = boards[f"{base}-en"], boards[f"{base}-ja"]
        assert len(en["panels"]) == len(ja["panels"]) and len({p["title"] for p in en["panels"]}) == len(en["panels"])
        for english, japanese in zip(en["panels"], ja["panels"]):
            assert english["title"] != japanese["title"] and english["description"] != japanese["description"]
        assert [q for _, _, q in catalog.panel_queries(en)] == [q for _, _, q in catalog.panel_queries(ja)]
        for board in (en, ja):
            model = Dashboard.from_json(board)
            assert model.uid == board["uid"]
            assert all(isinstance(t, InfluxQLQuery) for p in model.panels for t in p.targets or [])
            assert all(p["gridPos"]["x"] + p["gridPos"]["w"] <= 24 for p in board["panels"])
    assert all('"site" =~ /^$site$/' in q for t, _, q in catalog.panel_queries(boards["hinode-co2-en"])
               if not t.startswith("City"))
    assert all('"community" =~ /^$community$/' in q for _, _, q in catalog.panel_queries(boards["hinode-interchange-en"]))


def test_site_variable_lists_metered_and_bill_only_sites(scene_url):
    (variable,) = [v for v in co2.build("en")["templating"]["list"] if v["name"] == "site"]
    found = {row[1] for s in Influx(scene_url, DB).query(variable["query"]) for row in s["values"]}
    assert found == {"sme-press", "city-hall-annex", "sme-food", "sme-machining"}


def test_every_panel_runs(co2_panels, interchange_panels):
    for title, d in {**co2_panels, **interchange_panels}.items():
        for result in d["results"]:
            assert "error" not in result, f"{title}: {result['error']}\n{result['query']}"
            assert result["series"], f"{title}: no data\n{result['query']}"


def test_slots_today_leave_the_missing_slot_empty_and_mark_its_completeness(co2_panels):
    d = co2_panels["CO2 per 30-minute slot today"]
    kg = {r["time"]: (r["location-based"], r["market-based"]) for r in rows(d, "A")}
    done = {r["time"]: r["completeness"] for r in rows(d, "B")}
    nine, half, ten = jst(2026, 11, 18, 9, 0), jst(2026, 11, 18, 9, 30), jst(2026, 11, 18, 10, 0)
    assert kg[nine] == (4.3, 4.5) and kg[ten] == (8.6, 9.0)
    assert kg[half] == (None, None)                 # missing, not zero
    assert (done[nine], done[half], done[ten]) == (100, 0, 100)
    assert kg[jst(2026, 11, 18, 8, 30)] == (None, None) and done[jst(2026, 11, 18, 8, 30)] is None   # no row at all


def test_days_are_cut_at_midnight_tokyo_time(co2_panels):
    d = co2_panels["CO2 per day"]
    kg = {r["time"]: (r["location-based"], r["market-based"]) for r in rows(d, "A") if r["market-based"] is not None}
    assert kg == {jst(2026, 11, 18): (pytest.approx(12.9), pytest.approx(13.5)),     # 4.3 + 8.6, 4.5 + 9.0
                  jst(2026, 11, 17): (2.15, 2.25), jst(2026, 11, 1): (1.72, 1.8), jst(2026, 10, 31): (2.58, 2.7)}
    done = {r["time"]: r["completeness"] for r in rows(d, "B") if r["completeness"] is not None}
    assert done[jst(2026, 11, 18)] == pytest.approx(200 / 3)                           # 2 of 3 slots measured


def test_fiscal_months_in_jst(co2_panels):
    d = co2_panels["CO2 by month, this fiscal year"]
    months = {r["Month (JST)"]: r for r in table(d, upto=3)}          # before the ratio and hiding its parts
    assert set(months) == {"2026-04", "2026-10", "2026-11"}                            # FY2025's slot left out
    assert months["2026-11"]["kWh"] == pytest.approx(39.0)                             # 4 + 5 + 10 + 20
    assert months["2026-11"]["t market"] == pytest.approx(0.01755)                     # (1.8 + 2.25 + 4.5 + 9.0) / 1000
    assert months["2026-11"]["t location"] == pytest.approx(0.01677)                   # (1.72 + 2.15 + 4.3 + 8.6) / 1000
    assert (months["2026-11"]["measured"], months["2026-11"]["expected"]) == (4, 5)
    assert months["2026-10"]["t market"] == pytest.approx(0.0027) and months["2026-04"]["kWh"] == 8.0
    (ratio,) = [t for t in d["panel"]["transformations"] if t["id"] == "calculateField"]
    assert ratio["options"]["binary"] == {"left": "measured", "operator": "/", "right": "expected"}


def test_fiscal_year_against_baseline(scene_url, co2_panels):
    (unset,) = rows(co2_panels["This fiscal year against the baseline and FY2030"])
    assert unset["t-CO2 so far"] == pytest.approx(0.02385)                  # (3.6 + 2.7 + 17.55) / 1000
    assert unset["annualised t/yr"] == pytest.approx(0.02385 / 6 * 17520)   # 6 slots with kg: 69.642 t/yr
    assert unset["completeness"] == pytest.approx(600 / 7)                  # 6 of 7 meter slots
    assert (unset["baseline t/yr"], unset["FY2030 target t/yr"], unset["vs baseline"]) == (None, None, None)

    board = pinned(co2.build("en"), site="sme-press", baseline_t_co2="100")
    shown = panels(board, scene_url)
    (row,) = rows(shown["This fiscal year against the baseline and FY2030"])
    assert (row["baseline t/yr"], row["FY2030 target t/yr"]) == (100, pytest.approx(54))
    assert row["vs baseline"] == pytest.approx((69.642 / 100 - 1) * 100)    # -30.358 %: orange, not yet -46 %
    last = rows(shown["Trajectory this fiscal year"])[-1]
    assert last["market-based, cumulative"] == pytest.approx(0.02385)
    assert last["baseline pace"] == pytest.approx(6 / 17520 * 100)          # 0.0342 t after 6 slots
    assert last["FY2030 pace (−46 %)"] == pytest.approx(6 / 17520 * 100 * 0.54)


def test_inputs_entered_for_the_site(co2_panels):
    entered = {(r["month"], r["kind"], r["item"]): (r["amount"], r["unit"], r["yen"])
               for r in table(co2_panels["Bills, fuel and production entered, this fiscal year"])}
    assert entered == {("2026-11", "production", "pcs"): (52000.0, "pcs", None),
                       ("2026-10", "fuel", "kerosene"): (0.4, "kL", 48000.0)}


def test_city_counts_sites_with_complete_data(co2_panels):
    month, year = co2_panels["City: sites this month"], co2_panels["City: sites this fiscal year"]
    # November: sme-press 4 of 5 (incomplete), city hall 1 of 1, sme-food 99 of 100 (complete from 99 %).
    assert [(r["reporting"], r["complete data"]) for r in rows(month)] == [(3, 2)]
    assert [(r["reporting"], r["complete data"]) for r in rows(year)] == [(3, 2)]    # sme-press 6 of 7
    per_site = {r["site"]: r for r in table(co2_panels["City: per site this fiscal year"])}
    assert per_site["sme-press"]["t market"] == pytest.approx(0.02385)
    assert per_site["sme-food"]["completeness"] == pytest.approx(99.0)
    stacked = {(r["Time"], r["site"]): r["t (sum)"] for r in table(co2_panels["City: t-CO2 per month, all sites"],
                                                                     drop=("groupingToMatrix",))}
    assert stacked[("2026-11", "sme-press")] == pytest.approx(0.01755)
    assert stacked[("2026-11", "city-hall-annex")] == pytest.approx(0.00135)
    assert stacked[("2026-11", "sme-food")] == pytest.approx(0.0009)
    assert stacked[("2026-04", "sme-press")] == pytest.approx(0.0036)


def test_today_per_slot_and_provisional_marks(interchange_panels):
    d = interchange_panels["Today per slot: generation, consumption, shared, exported"]
    energy = {r["time"]: (r["generation"], r["shared"], r["exported"]) for r in rows(d, "A") if r["generation"] is not None}
    eleven, half = jst(2026, 11, 18, 11, 0), jst(2026, 11, 18, 11, 30)
    assert energy == {eleven: (100, 40, 10), half: (80, 30, 0)}          # other-pv's 500 kWh not in it
    demand = {r["time"]: r["consumption"] for r in rows(d, "B") if r["consumption"] is not None}
    assert demand == {eleven: 40, half: 60}                              # consumers only: 10 + 30, 20 + 40
    assert {r["time"]: r["shared, provisional"] for r in rows(d, "C")} == {half: 30}
    (count,) = rows(interchange_panels["Provisional slots today"])
    assert count["provisional slots"] == 1


def test_node_graph_frames_have_the_fields_grafana_reads(interchange_panels):
    d = interchange_panels["Flows producer → consumer (kWh, selected range)"]
    nodes = {r["id"]: r for r in rows(d, "nodes")}
    assert set(nodes) == {P, A, B}
    assert {k: (r["title"], r["subtitle"], r["mainstat"]) for k, r in nodes.items()} == {
        P: (P, "producer", 70), A: (A, "consumer", 20), B: (B, "consumer", 50)}   # 40 + 30; 10 + 10; 30 + 20
    assert nodes[P]["detail__generation kWh"] == 180 and nodes[B]["detail__grid kWh"] == 20
    edges = rows(d, "edges")
    assert {(e["source"], e["target"]): e["mainstat"] for e in edges} == {(P, A): 20, (P, B): 50}
    assert {"id", "source", "target"} & set(series(d, "edges")[0]["columns"]) == {"source", "target"}
    (edge_id,) = d["panel"]["transformations"]          # Grafana adds the edges' id (row index) to that frame only
    assert edge_id["filter"] == {"id": "byRefId", "options": "edges"}
    assert (edge_id["id"], edge_id["options"]["mode"], edge_id["options"]["alias"]) == ("calculateField", "index", "id")
    assert {(s, t) for s, t in ((e["source"], e["target"]) for e in edges)} <= {(s, t) for s in nodes for t in nodes}


def test_flows_per_slot(interchange_panels):
    flows = {(s["tags"]["from"], s["tags"]["to"]): [v[1] for v in s["values"]]
             for s in series(interchange_panels["Flows per slot, producer → consumer"])}
    assert flows == {(P, A): [10, 10], (P, B): [30, 20]}


def test_month_to_date_per_participant(interchange_panels):
    month = {r["site"]: r for r in table(interchange_panels["Month to date per participant"])}
    assert set(month) == {P, A, B}
    assert (month[P]["supplied"], month[P]["exported"]) == (80, 20)     # 40 + 30 + 10; 10 + 0 + 10 (not 31 Oct)
    assert (month[A]["received"], month[B]["received"]) == (25, 55)     # 10 + 10 + 5; 30 + 20 + 5
    assert month[A]["grid import"] == 10 and {r["provisional slots"] for r in month.values()} == {1}
    received = {s["tags"]["site"]: s["values"][0][1]
                for s in series(interchange_panels["Received this month per consumer"])}
    assert received == {A: 25, B: 55}


def test_demo_data_adds_up(influx):
    now = datetime.now(JST)
    lines = demo_greencity.greencity_lines(now)
    write(influx.url, "demo", lines)
    month_start_ms = int(now.replace(day=1, hour=0, minute=0, second=0, microsecond=0).timestamp() * 1000)
    fy_start_ms = int(demo_greencity.fiscal_year_start(now).timestamp() * 1000)
    received, fy_market = defaultdict(float), defaultdict(float)
    for text in lines:
        head, rest = text.split(" ", 1)
        fields, ts = rest.rsplit(" ", 1)
        tags = dict(part.split("=") for part in head.split(",")[1:])
        values = dict(part.split("=") for part in fields.split(","))
        if head.startswith("interchange_slot,") and int(ts) >= month_start_ms and tags["role"] == "consumer":
            received[tags["site"]] += float(values["received_kwh"])
        if head.startswith("co2_slot,") and int(ts) >= fy_start_ms and "kg_market" in values:
            fy_market[tags["site"]] += float(values["kg_market"]) / 1000
    shown = panels(interchange.build("en"), influx.url, "demo", now)
    gauge = {s["tags"]["site"]: s["values"][0][1] for s in series(shown["Received this month per consumer"])}
    assert gauge == pytest.approx(dict(received)) and sum(gauge.values()) > 0
    city = panels(co2.build("en"), influx.url, "demo", now)
    per_site = {r["site"]: r["t market"] for r in table(city["City: per site this fiscal year"])}
    assert per_site == pytest.approx(dict(fy_market))
    assert set(per_site) == set(demo_greencity.METERED_SITES)
    slots_today = (now.hour * 60 + now.minute) // 30            # finished slots since midnight JST
    provisional = rows(shown["Provisional slots today"])
    assert (provisional[0]["provisional slots"] if provisional else 0) == min(demo_greencity.PROVISIONAL_SLOTS,
                                                                               slots_today)


def test_no_complete_site_counts_zero_not_nothing(influx):
    write(influx.url, "gaps", [co2_slot("sme-press", jst(2026, 11, 18, 9, 0), None, measured=0),
                               co2_slot("sme-food", jst(2026, 11, 18, 9, 0), 2.0, 0.86, 0.9, expected=100, measured=98)])
    shown = panels(co2.build("en"), influx.url, "gaps")
    assert [(r["reporting"], r["complete data"]) for r in rows(shown["City: sites this month"])] == [(2, 0)]
