"""Every query of every generated board and alert rule, run against a real InfluxDB 1.6 holding demo data.

No Grafana server can run in these tests (none is installed, and no network): variables are
substituted the way Grafana does it (tests/dashboards/grafana_substitution.py) and the InfluxQL goes
straight to InfluxDB's /query, which is what Grafana's InfluxDB data source sends in InfluxQL mode.
"""

from __future__ import annotations

import math
import re
from zoneinfo import ZoneInfo

import pytest

from cloud.config import InfluxConfig
from cloud.influx import InfluxClient
from dashboards import catalog, demo_fleet
from dashboards.draw import table_rows
from dashboards.alert_rules import alert_groups
from tests.dashboards import demo_data
from tests.dashboards.grafana_substitution import expected_columns, resolve_variables, substitute, time_filter


@pytest.fixture
def demo_influx(influx):
    demo_data.write_demo_data(influx.url)
    with InfluxClient(InfluxConfig(url=influx.url, database=demo_data.DATABASE, timeout_s=30)) as client:
        yield client


def _panels_with_queries(board: dict):
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            yield panel, target


def _non_empty(series: list[dict]) -> bool:
    return any(row[1:] and any(value is not None for value in row[1:]) for s in series for row in s["values"])


# What a value may be in a panel of each Grafana unit, at the demo data's scale (a few sites of meters
# drawing tens of kW, chargers of 7..22 kW, a city of five sites): a query in the wrong unit falls
# outside (W in a kW panel, kg in t, g in kg, 0..100 in a 0..1 "percentunit", ms as s where it is
# large). A panel with a unit missing here fails: give the new unit its range.
UNIT_RANGES: dict[str, tuple[float, float]] = {
    "kwatt": (-1_000, 1_000),            # demo up to ~175 kW; the smallest charger's 6.5 kW is 6500 W
    "kwatth": (-1_000_000, 1_000_000),   # a site's day ~1300 kWh (1.3e6 Wh); the city's year ~420 MWh
    "volt": (80, 480),                   # 100 V, 200 V and 400 V service
    "percent": (-100, 100),              # shares 0..100; "vs baseline" may be a reduction
    "percentunit": (-1, 1),
    "s": (0, 86_400),                    # lags and durations in seconds
    "short": (0, 1_000_000),             # counts
    "masskg": (0, 100_000),              # kg-CO2 per slot or day (~160 kg, so grams fail)
    "masst": (0, 10_000),                # t-CO2 per month or year (~50 t, so kg fail)
    "currencyJPY": (0, 1_000_000_000),
    "velocitykmh": (0, 60),              # e-scooters <= 20 km/h, walking-speed vehicles <= 6 km/h
}
# Columns that are coordinates, never the panel's measured quantity (a geomap's lat/lon).
POSITION_COLUMNS = {"lat", "lon"}


def _column_units(panel: dict) -> tuple[str | None, dict[str, str]]:
    config = panel.get("fieldConfig") or {}
    overrides = {}
    for override in config.get("overrides") or []:
        if (override.get("matcher") or {}).get("id") == "byName":
            for prop in override.get("properties") or []:
                if prop.get("id") == "unit":
                    overrides[override["matcher"]["options"]] = prop["value"]
    return (config.get("defaults") or {}).get("unit"), overrides


def _implausible(panel: dict, series: list[dict]) -> list[str]:
    """Values outside their unit's range, by the unit the panel declares for their column."""
    default, overrides = _column_units(panel)
    problems = []
    for unit in {default, *overrides.values()} - {None, ""} - UNIT_RANGES.keys():
        problems.append(f"unit {unit!r} has no plausible range in UNIT_RANGES")
    for s in series:
        for index, column in enumerate(s["columns"]):
            unit = overrides.get(column, default)
            if column == "time" or column in POSITION_COLUMNS or unit not in UNIT_RANGES:
                continue
            low, high = UNIT_RANGES[unit]
            numbers = [row[index] for row in s["values"]
                       if isinstance(row[index], (int, float)) and not isinstance(row[index], bool)]
            bad = [v for v in numbers if not (math.isfinite(v) and low <= v <= high)]
            if bad:
                problems.append(f"column {column!r} ({unit}, {low}..{high}): {bad[:3]}")
    return problems


def test_every_panel_query_of_every_board_returns_data(demo_influx):
    failures, results = [], {}
    boards = catalog.all_dashboards()
    assert len(boards) == 12
    for uid, board in boards.items():
        values, options = resolve_variables(board, demo_influx.query)
        for name, found in options.items():
            if not found:
                failures.append(f"{uid}: variable ${name} lists nothing")
        for panel, target in _panels_with_queries(board):
            query = substitute(target["query"], values, time_filter(board["time"]["from"], panel))
            assert not re.search(r"\$[A-Za-z_{]", query), f"unsubstituted variable in {query}"
            try:
                series = demo_influx.query(query)
            except Exception as exc:   # collect every failure, not just the first
                failures.append(f"{uid} / {panel['title']} / {target['refId']}: {exc}\n  {query}")
                continue
            results[(uid, panel["title"], target["refId"])] = series
            if not _non_empty(series):
                failures.append(f"{uid} / {panel['title']} / {target['refId']}: no data\n  {query}")
                continue
            columns = set(series[0]["columns"])
            missing = [c for c in expected_columns(target["query"]) if c not in columns]
            if missing:
                failures.append(f"{uid} / {panel['title']}: columns {missing} not in {sorted(columns)}")
            failures += [f"{uid} / {panel['title']} / {target['refId']}: {problem}\n  {query}"
                         for problem in _implausible(panel, series)]
    assert not failures, "\n".join(failures)
    _check_meaning(results)
    _check_silent_devices_table(boards, results)


def _check_meaning(results: dict) -> None:
    """The demo's silent meter and lossy meter show up where the boards promise."""
    by_title = {(uid, title, ref): series for (uid, title, ref), series in results.items()}
    silent = {k: v for k, v in by_title.items() if k[0] == "hinode-site-energy-en" and k[1].startswith("Silent")}
    seen = {s["tags"]["device"] for s in silent[next(k for k in silent if k[2] == "A")]}
    recent = {s["tags"]["device"] for s in silent[next(k for k in silent if k[2] == "B")]}
    assert seen - recent == {demo_data.SILENT_METER}
    for uid in ("hinode-site-energy-en", "hinode-operations-en"):
        reasons = [series for (board, title, ref), series in results.items()
                   if board == uid and title.startswith("Silent") and ref == "C"]
        assert reasons, f"{uid}: the silent devices panel has no reason query (C)"
        newest = {s["tags"]["device"]: s["values"][0][1] for s in reasons[0]}
        assert newest[demo_data.SILENT_METER] == demo_data.SILENT_METER_REASON, uid
        assert newest["pm-1"] == ""                  # online: no reason
    completeness = by_title[("hinode-site-energy-en", "Data completeness per device", "A")]
    per_device = {s["tags"]["device"]: dict(zip(s["columns"], s["values"][0])) for s in completeness}
    assert per_device["pm-1"]["completeness"] == pytest.approx(100.0)
    assert 97.0 < per_device[demo_data.GAPPY_METER]["completeness"] < 99.5
    assert per_device[demo_data.GAPPY_METER]["missing"] > 0
    power_now = by_title[("hinode-site-energy-en", "Site power now", "A")]
    assert 10 < power_now[0]["values"][-1][1] < 200          # kW, two meters reporting
    both_titles = {title for (uid, title, _) in results if uid == "hinode-site-energy-ja"}
    assert "現在の拠点電力" in both_titles


def _check_silent_devices_table(boards: dict, results: dict) -> None:
    """The panel's transformations (as dashboards.draw applies them, like Grafana) give one row per
    silent device with when it was last seen and its agent's reason."""
    for uid in ("hinode-site-energy-en", "hinode-operations-en"):
        (panel,) = [p for p in boards[uid]["panels"] if p["title"].startswith("Silent")]
        answers = [{"target": t, "series": results[(uid, panel["title"], t["refId"])]} for t in panel["targets"]]
        header, rows = table_rows({"panel": panel, "results": answers, "tz": ZoneInfo("Asia/Tokyo")})
        table = [dict(zip(header, row)) for row in rows]
        assert [row["device"] for row in table] == [demo_data.SILENT_METER], (uid, table)
        assert table[0]["reason"] == demo_data.SILENT_METER_REASON, uid
        assert table[0]["last seen"] is not None and "recent_seq" not in header, (uid, header)


def _rules(**options) -> dict[str, dict]:
    return {rule["uid"]: rule for rule in alert_groups(**options)["groups"][0]["rules"]}


def _query_a(rule: dict) -> str:
    (query_a,) = [q for q in rule["data"] if q["refId"] == "A"]
    return query_a["model"]["query"]


def test_every_alert_rule_query_returns_data(demo_influx):
    failures = []
    rules = _rules() | _rules(site_power_limits_w={demo_data.SITE: 50_000})
    # With a limit of its own, the demo site is left out of the default-limit rule: that one finds nothing.
    default_rule = rules.pop("hinode-power-limit-default")
    assert demo_influx.query(_query_a(default_rule)) == []
    rules["hinode-power-limit-default"] = _rules()["hinode-power-limit-default"]
    assert len(rules) == 5
    answers = {}
    for uid, rule in rules.items():
        query = _query_a(rule)
        # Grafana expands $NAME / ${NAME} in provisioning files as environment variables ("$/" is left alone).
        assert not re.search(r"\$[A-Za-z_{$]", query), query
        try:
            answers[uid] = series = demo_influx.query(query)
        except Exception as exc:
            failures.append(f"{uid}: {exc}\n  {query}")
            continue
        if not _non_empty(series):
            failures.append(f"{uid}: no data\n  {query}")
    assert not failures, "\n".join(failures)
    # What reduce(last) + threshold would decide on the demo data:
    last = {uid: {s["tags"]["device"]: s["values"][-1][1] for s in series} for uid, series in answers.items()}
    offline = {device for device, count in last["hinode-device-offline"].items() if count < 1}
    assert offline == {demo_data.SILENT_METER, demo_fleet.SILENT}          # a silent scooter is a device offline too
    assert last["hinode-outbox-growing"] == {demo_data.AGENT: pytest.approx(2800, abs=300)}   # over 1000: fires
    low = {device for device, pct in last["hinode-completeness-low"].items() if pct < 95}
    assert low == set()          # pm-2 loses 2 %: above the 95 % threshold
