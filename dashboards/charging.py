"""The **Charging** board, for whoever runs a site's workplace chargers: each connector's state and
power, the site's PV, load, export and EV charging, the controller's latest decisions, and the
energy charged per employee tag per month with its PV share.

Names are those the OCPP source writes (edge_agent/sources/ocpp/README.md, "What it sends"):
kinds ``charger`` (one batch per connector, tag ``evse``; ``"0"`` is the station itself),
``charging_session`` (one record per finished session, tag ``id_tag``) and ``site``. Chargers and
the site controller report power in W (shown here in kW) and energy in kWh.

Months are cut in Asia/Tokyo like the site energy board's fiscal months: InfluxQL has no calendar
month GROUP BY, so sessions are summed per JST day (``GROUP BY time(1d) ... tz('Asia/Tokyo')``)
and Grafana groups the days into ``YYYY-MM``. The "this month" panels need no grouping at all:
their range is Grafana's "This month" (``now/M``), cut at JST midnight by the board's timezone.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import common as common_builders, stat, table, timeseries
from grafana_foundation_sdk.models import common as common_models
from grafana_foundation_sdk.models import dashboard as model

from dashboards.common import (
    DATASOURCE, OFFLINE_AFTER, UNIT_COUNT, UNIT_KW, UNIT_KWH, UNIT_PERCENT, InfluxQL, Text, board,
    constant_variable, site_variable, thresholds, transformation, to_json,
)

BASE_UID = "hinode-charging"

SITE = '"site" =~ /^$site$/'
CONNECTORS = f'"charger" WHERE {SITE} AND "evse" != \'0\''     # "0" reports the whole station: not added twice
SESSIONS = f'"charging_session" WHERE {SITE}'
THIS_MONTH = "now/M"
STATUS_COLOURS = {"Available": "green", "Preparing": "blue", "Charging": "dark-green", "SuspendedEV": "yellow",
                  "SuspendedEVSE": "orange", "Finishing": "blue", "Occupied": "blue", "Reserved": "purple",
                  "Faulted": "red", "Unavailable": "gray"}


def _column(name: str, unit: str | None = None, decimals: int | None = None,
            colour_cells: bool = False) -> tuple[str, list[model.DynamicConfigValue]]:
    properties = []
    if unit is not None:
        properties.append(model.DynamicConfigValue(id_val="unit", value=unit))
    if decimals is not None:
        properties.append(model.DynamicConfigValue(id_val="decimals", value=decimals))
    if colour_cells:
        properties.append(model.DynamicConfigValue(
            id_val="custom.cellOptions", value={"type": common_models.TableCellDisplayMode.COLOR_BACKGROUND.value}))
    return name, properties


def _with_columns(panel: table.Panel, *columns: tuple[str, list[model.DynamicConfigValue]]) -> table.Panel:
    for name, properties in columns:
        panel = panel.override_by_name(name, properties)
    return panel


def _charging_now(lang: str) -> stat.Panel:
    query = (f'SELECT sum("p") / 1000 AS "kW" FROM (SELECT last("power_total") AS "p" FROM {CONNECTORS} '
             f'AND time > now() - $offline_after GROUP BY "device", "evse")')
    return (stat.Panel().title(Text("EV charging now", "現在の充電電力")(lang))
            .description(Text("Sum of every connector's newest power_total (last $offline_after), kW.",
                              "全コネクタの最新 power_total の合計（直近 $offline_after）、kW。")(lang))
            .datasource(DATASOURCE).with_target(InfluxQL(query)).unit(UNIT_KW).decimals(1)
            .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]))
            .height(6).span(4))


def _month_stat(lang: str, title: Text, description: Text, select: str, unit: str, decimals: int) -> stat.Panel:
    query = f'SELECT {select} FROM {SESSIONS} AND $timeFilter'
    return (stat.Panel().title(title(lang)).description(description(lang)).datasource(DATASOURCE)
            .with_target(InfluxQL(query)).unit(unit).decimals(decimals).time_from(THIS_MONTH)
            .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]))
            .no_value(Text("no sessions yet", "セッションなし")(lang)).height(6).span(4))


def _chargers_now(lang: str) -> table.Panel:
    query = ('SELECT last("status") AS "status", last("power_total") / 1000 AS "kW", last("session_energy") AS "session kWh", '
             'last("mode") AS "mode" '
             f'FROM "charger" WHERE {SITE} AND $timeFilter GROUP BY "device", "evse"')
    mappings = model.ValueMap(options={status: model.ValueMappingResult(color=colour, index=index)
                                       for index, (status, colour) in enumerate(STATUS_COLOURS.items())})
    panel = (table.Panel().title(Text("Chargers now", "充電器の状態")(lang))
             .description(Text("Newest status, power, session energy (the running session's; when idle, the last "
                               "one's) and charging mode per connector (evse 0 = the station). Range: the last 7 days, since "
                               "an idle charger reports only when its status changes. GET /api/charging/chargers "
                               "leaves an ended session's energy out.",
                               "コネクタごとの最新状態・電力・セッションの充電量（実行中のもの。待機中は直前のもの）・充電モード"
                               "（evse 0 は充電器本体）。待機中の充電器は状態が変わったときだけ送るため、範囲は直近7日間。"
                               "GET /api/charging/chargers は終了したセッションの充電量を含めない。")(lang))
             .datasource(DATASOURCE).with_target(InfluxQL(query).table()).time_from("7d")
             .with_transformation(transformation("organize", {"excludeByName": {"Time": True},
                                                              "renameByName": {"device": "charger"}}))
             .mappings([mappings]).height(6).span(12))
    return _with_columns(panel, _column("status", colour_cells=True), _column("kW", UNIT_KW, 1),
                         _column("session kWh", UNIT_KWH, 2))


def _charger_power(lang: str) -> timeseries.Panel:
    query = (f'SELECT mean("power_total") / 1000 AS "kW" FROM {CONNECTORS} AND $timeFilter '
             f'GROUP BY time($__interval), "device", "evse" fill(none)')
    return (timeseries.Panel().title(Text("Charging power per connector", "コネクタ別の充電電力")(lang))
            .description(Text("Mean power_total per interval, kW.", "区間平均の power_total、kW。")(lang))
            .datasource(DATASOURCE).with_target(InfluxQL(query).alias("$tag_device/$tag_evse"))
            .unit(UNIT_KW).fill_opacity(10).height(8).span(8))


def _site_balance(lang: str) -> timeseries.Panel:
    # grid_power is + import / - export: (|g| - g) / 2 is the export and (|g| + g) / 2 the import.
    query = ('SELECT mean("pv_power") / 1000 AS "PV", mean("load_power") / 1000 AS "load", mean("ev_power") / 1000 AS "EV charging", '
             '(abs(mean("grid_power")) - mean("grid_power")) / 2000 AS "export", '
             '(abs(mean("grid_power")) + mean("grid_power")) / 2000 AS "grid import" '
             f'FROM "site" WHERE {SITE} AND $timeFilter GROUP BY time($__interval) fill(none)')
    return (timeseries.Panel().title(Text("Site: PV, load, export and EV charging", "拠点：PV・負荷・逆潮流・EV充電")(lang))
            .description(Text("The site controller's view (kind site), mean per interval, kW. Load excludes EV "
                              "charging; export is the negative part of grid_power.",
                              "拠点制御の値（site 計測）、区間平均、kW。負荷は EV 充電を除く。逆潮流は grid_power の負の部分。")(lang))
            .datasource(DATASOURCE).with_target(InfluxQL(query).alias("$col"))
            .unit(UNIT_KW).fill_opacity(10).height(8).span(16))


def _decisions(lang: str) -> table.Panel:
    chargers = InfluxQL('SELECT last("decision") AS "decision", last("mode") AS "mode", '
                        'last("target_current") AS "target A", last("target_phases") AS "phases" '
                        f'FROM "charger" WHERE {SITE} AND $timeFilter GROUP BY "device", "evse"', "A").table()
    site = InfluxQL('SELECT last("decision") AS "decision", last("surplus") / 1000 AS "surplus kW", '
                    f'last("site_target") / 1000 AS "site target kW" FROM "site" WHERE {SITE} AND $timeFilter '
                    'GROUP BY "device"', "B").table()
    return (table.Panel().title(Text("Controller decisions (latest)", "制御の判断（最新）")(lang))
            .description(Text("Why each connector's target current last changed, and the site controller's "
                              "newest decision and PV surplus (the row without evse).",
                              "各コネクタの目標電流が最後に変わった理由と、拠点制御の最新の判断・PV 余剰（evse のない行）。")(lang))
            .datasource(DATASOURCE).with_target(chargers).with_target(site).time_from("7d")
            .with_transformation(transformation("merge", {}))
            .with_transformation(transformation("organize", {"excludeByName": {"Time": True}}))
            .height(8).span(8))


def _sessions_this_month(lang: str) -> table.Panel:
    query = ('SELECT count("session_id") AS "sessions", sum("energy") AS "kWh", sum("pv_energy") AS "PV kWh", '
             f'sum("pv_energy") / sum("energy") * 100 AS "PV share" FROM {SESSIONS} AND $timeFilter GROUP BY "id_tag"')
    panel = (table.Panel().title(Text("Sessions per employee tag, this month", "社員タグ別の充電（今月）")(lang))
             .description(Text("Finished sessions since the 1st (JST) per RFID tag: count, energy, PV energy and "
                               "PV share. Monthly CSV for settlement: GET /api/charging/sessions/summary?format=csv.",
                               "今月1日（日本時間）以降に終了したセッションの RFID タグ別集計：回数・充電量・PV 由来の量と割合。"
                               "精算用の月次 CSV：GET /api/charging/sessions/summary?format=csv")(lang))
             .datasource(DATASOURCE).with_target(InfluxQL(query).table()).time_from(THIS_MONTH)
             .with_transformation(transformation("organize", {"excludeByName": {"Time": True},
                                                              "renameByName": {"id_tag": "tag"}}))
             .sort_by([common_builders.TableSortByFieldState().display_name("kWh").desc(True)])
             .height(8).span(16))
    return _with_columns(panel, _column("sessions", UNIT_COUNT, 0), _column("kWh", UNIT_KWH, 1),
                         _column("PV kWh", UNIT_KWH, 1), _column("PV share", UNIT_PERCENT, 0))


def _sessions_by_month(lang: str) -> table.Panel:
    query = ('SELECT count("session_id") AS "sessions", sum("energy") AS "kWh", sum("pv_energy") AS "PV kWh" '
             f'FROM {SESSIONS} AND $timeFilter GROUP BY time(1d), "id_tag" fill(none) tz(\'Asia/Tokyo\')')
    month = Text("Month (JST)", "月（日本時間）")(lang)
    summed = {"sessions": "sum", "kWh": "sum", "PV kWh": "sum"}
    panel = (table.Panel().title(Text("Charging per employee tag by month (fiscal year)", "社員タグ別・月別の充電（年度）")(lang))
             .description(Text("This fiscal year (April–March): sessions summed per day cut at midnight JST, grouped "
                               "into calendar months by Grafana; PV share = PV kWh / kWh of the month.",
                               "今年度（4月〜3月）：日本時間0時で区切った日別集計を Grafana が月ごとにまとめる。"
                               "PV 割合 = 月の PV kWh / kWh。")(lang))
             .datasource(DATASOURCE).with_target(InfluxQL(query).table()).time_from("now/fy")
             .with_transformation(transformation("formatTime", {"timeField": "Time", "outputFormat": "YYYY-MM",
                                                                "useTimezone": True}))
             .with_transformation(transformation("groupBy", {"fields": {
                 "Time": {"operation": "groupby", "aggregations": []},
                 "id_tag": {"operation": "groupby", "aggregations": []},
                 **{name: {"operation": "aggregate", "aggregations": [how]} for name, how in summed.items()}}}))
             .with_transformation(transformation("organize", {"renameByName": {
                 "Time": month, "id_tag": "tag", **{f"{name} ({how})": name for name, how in summed.items()}}}))
             .with_transformation(transformation("calculateField", {
                 "mode": "binary", "alias": "PV share", "replaceFields": False,
                 "binary": {"left": "PV kWh", "operator": "/", "right": "kWh"}}))
             .height(8).span(24))
    return _with_columns(panel, _column("sessions", UNIT_COUNT, 0), _column("kWh", UNIT_KWH, 1),
                         _column("PV kWh", UNIT_KWH, 1), _column("PV share", "percentunit", 0))


def build(lang: str) -> dict:
    """The board as Grafana JSON, in ``lang`` ("en" or "ja")."""
    builder = (board(BASE_UID, lang, Text("Hinode: EV charging", "Hinode：EV 充電"),
                     Text("Workplace chargers: state, power, PV surplus charging, controller decisions and "
                          "sessions per employee tag.",
                          "職場の充電器：状態・電力・PV 余剰充電・制御の判断・社員タグ別のセッション。"), ["charging"])
               .time("now-24h", "now")      # charging happens by day: at night or in the morning, show yesterday
               .with_variable(site_variable("charger", lang, multi=False))
               .with_variable(constant_variable("offline_after", OFFLINE_AFTER,
                                                "no data for this long counts as not charging"))
               .with_panel(_charging_now(lang))
               .with_panel(_month_stat(
                   lang, Text("Charged this month", "今月の充電量"),
                   Text("Energy of the sessions finished since the 1st (JST), kWh.",
                        "今月1日（日本時間）以降に終了したセッションの充電量、kWh。"),
                   'sum("energy") AS "kWh"', UNIT_KWH, 0))
               .with_panel(_month_stat(
                   lang, Text("PV share of charging, this month", "充電の PV 割合（今月）"),
                   Text("sum(pv_energy) / sum(energy) of this month's sessions: the part the site's PV surplus "
                        "covered.",
                        "今月のセッションの sum(pv_energy) / sum(energy)：拠点の PV 余剰でまかなった割合。"),
                   'sum("pv_energy") / sum("energy") * 100 AS "PV share"', UNIT_PERCENT, 0)
                   .thresholds(thresholds((None, "orange"), (50, "green"))))
               .with_panel(_chargers_now(lang))
               .with_panel(_charger_power(lang))
               .with_panel(_site_balance(lang))
               .with_panel(_decisions(lang))
               .with_panel(_sessions_this_month(lang))
               .with_panel(_sessions_by_month(lang)))
    return to_json(builder.build())
