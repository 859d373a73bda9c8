"""The **CO2** board: one site's Scope 2 CO2 per 30-minute slot, day and fiscal month (location- and
market-based), its fiscal year against its baseline and the −46 % FY2030 line, the bills and fuel
entered for it, and the city view (all sites stacked per month, how many report complete data).

Series (cloud/domains/co2/README.md): ``co2_slot`` (tag site; fields kwh, kg_location, kg_market,
kg_basic, meters_expected, meters_measured; one point per site and slot, time = slot start) and
``co2_input`` (tags site, kind, item, month; fields amount, unit, cost_yen; time = month start JST).

A slot the co2 job has no meter data for has no kg: sums skip it and ``fill(null)`` leaves a gap, and
completeness = Σ meters_measured / Σ meters_expected is shown next to every figure. Months are cut in
Asia/Tokyo as on the site energy board (daily sums ``tz('Asia/Tokyo')`` grouped by Grafana).

The baseline lives in the cloud config (``domains.co2.sites[].baseline_t_co2``) or is computed by the
API (``GET /api/co2/sites/{site}/progress``), which Grafana cannot read. The board takes it from the
constant ``$baseline_t_co2`` (t-CO2 per year; the default, ``sum("baseline_not_set")``, is null) and
computes baseline and FY2030 values and lines in the queries (``count(slots) / 17520 × baseline``):
Grafana puts no variables into thresholds. The −46 % itself is a fixed threshold on "vs baseline".
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import (
    barchart, common as common_builders, dashboard as dash, stat, table, timeseries,
)
from grafana_foundation_sdk.models import common as common_models
from grafana_foundation_sdk.models import dashboard as model

from dashboards.common import (
    COMPLETENESS_BAD_PCT, COMPLETENESS_WARN_PCT, DATASOURCE, UNIT_COUNT, UNIT_KWH, UNIT_PERCENT, InfluxQL, Text,
    board, completeness_thresholds, constant_variable, thresholds, to_json, transformation,
)

BASE_UID = "hinode-co2"

SITE = '"site" =~ /^$site$/'
SLOTS = f'"co2_slot" WHERE {SITE}'
SLOTS_PER_YEAR = 365 * 48          # 17520: annualising divides by the slots a year has
FY2030_REMAINING = 0.54            # −46 % against the baseline (national and Hitachi City target)
REDUCTION_TARGET_PCT = -46
UNIT_KG = "masskg"
UNIT_T = "masst"
COMPLETENESS = 'sum("meters_measured") / sum("meters_expected") * 100 AS "completeness"'
COMPLETE_SITE_RATIO = COMPLETENESS_WARN_PCT / 100     # a site "reports complete data" from 99 % of its meter slots
# A field nothing writes: its sum is null, so every expression using the baseline is empty until it is set.
BASELINE_NOT_SET = 'sum("baseline_not_set")'
ANNUALISED = f'sum("kg_market") / 1000 / count("kg_market") * {SLOTS_PER_YEAR}'


def _prop(key: str, value: object) -> model.DynamicConfigValue:
    return model.DynamicConfigValue(id_val=key, value=value)


def _completeness_axis(panel: timeseries.Panel) -> timeseries.Panel:
    """The completeness series as a line on the right axis, coloured by the completeness thresholds."""
    return panel.override_by_name("completeness", [
        _prop("unit", UNIT_PERCENT), _prop("min", 0), _prop("max", 100), _prop("custom.axisPlacement", "right"),
        _prop("custom.drawStyle", "line"), _prop("custom.fillOpacity", 0), _prop("custom.lineWidth", 2),
        _prop("custom.showPoints", "always"), _prop("color", {"mode": "thresholds"}),
        _prop("thresholds", completeness_thresholds().build()),
    ])


def _per_bucket(lang: str, title: Text, description: Text, bucket: str, time_from: str) -> timeseries.Panel:
    kg = (f'SELECT sum("kg_location") AS "location-based", sum("kg_market") AS "market-based" FROM {SLOTS} '
          f'AND $timeFilter GROUP BY time({bucket}) fill(null) tz(\'Asia/Tokyo\')')
    done = f'SELECT {COMPLETENESS} FROM {SLOTS} AND $timeFilter GROUP BY time({bucket}) fill(null) tz(\'Asia/Tokyo\')'
    panel = (timeseries.Panel().title(title(lang)).description(description(lang)).datasource(DATASOURCE)
             .with_target(InfluxQL(kg, "A").alias("$col")).with_target(InfluxQL(done, "B").alias("$col"))
             .unit(UNIT_KG).draw_style(common_models.GraphDrawStyle.BARS).fill_opacity(70)
             .span_nulls(False).time_from(time_from).height(8).span(12))
    return _completeness_axis(panel)


def _fiscal_months(lang: str) -> table.Panel:
    query = ('SELECT sum("kwh") AS "kWh", sum("kg_location") / 1000 AS "t location", '
             'sum("kg_market") / 1000 AS "t market", sum("meters_measured") AS "measured", '
             f'sum("meters_expected") AS "expected" FROM {SLOTS} AND $timeFilter '
             'GROUP BY time(1d) fill(none) tz(\'Asia/Tokyo\')')
    month = Text("Month (JST)", "月（日本時間）")(lang)
    summed = ("kWh", "t location", "t market", "measured", "expected")
    panel = (table.Panel().title(Text("CO2 by month, this fiscal year", "月別 CO2（今年度）")(lang))
             .description(Text("Scope 2 of the metered electricity, April–March: daily sums cut at midnight JST, "
                               "grouped into months by Grafana; completeness = meter slots measured / expected. "
                               "Bills, fuel (Scope 1) and the printable report: GET /api/co2/sites/{site}/summary.",
                               "計測した電力の Scope 2（4月〜3月）：日本時間0時で区切った日別合計を Grafana が月ごとに集計。"
                               "完全性 = 計測できたメーター×コマ / 予定数。請求書・燃料（Scope 1）と月報は "
                               "GET /api/co2/sites/{site}/summary")(lang))
             .datasource(DATASOURCE).with_target(InfluxQL(query).table()).time_from("now/fy")
             .with_transformation(transformation("formatTime", {"timeField": "Time", "outputFormat": "YYYY-MM",
                                                                "useTimezone": True}))
             .with_transformation(transformation("groupBy", {"fields": {
                 "Time": {"operation": "groupby", "aggregations": []},
                 **{name: {"operation": "aggregate", "aggregations": ["sum"]} for name in summed}}}))
             .with_transformation(transformation("organize", {"renameByName": {
                 "Time": month, **{f"{name} (sum)": name for name in summed}}}))
             .with_transformation(transformation("calculateField", {
                 "mode": "binary", "alias": "completeness", "replaceFields": False,
                 "binary": {"left": "measured", "operator": "/", "right": "expected"}}))
             .with_transformation(transformation("organize", {"excludeByName": {"measured": True, "expected": True}}))
             .thresholds(thresholds((None, "red"), (COMPLETENESS_BAD_PCT / 100, "orange"), (COMPLETE_SITE_RATIO, "green")))
             .height(9).span(12))
    panel = panel.override_by_name("kWh", [_prop("unit", UNIT_KWH), _prop("decimals", 0)])
    for name in ("t location", "t market"):
        panel = panel.override_by_name(name, [_prop("decimals", 2)])
    return panel.override_by_name("completeness", [
        _prop("unit", "percentunit"), _prop("decimals", 1),
        _prop("custom.cellOptions", {"type": common_models.TableCellDisplayMode.COLOR_BACKGROUND.value})])


def _fiscal_year(lang: str) -> stat.Panel:
    query = (f'SELECT sum("kg_market") / 1000 AS "t-CO2 so far", {ANNUALISED} AS "annualised t/yr", '
             f'sum("kg_market") * 0 + $baseline_t_co2 AS "baseline t/yr", '
             f'sum("kg_market") * 0 + $baseline_t_co2 * {FY2030_REMAINING} AS "FY2030 target t/yr", '
             f'({ANNUALISED} / $baseline_t_co2 - 1) * 100 AS "vs baseline", '
             f'{COMPLETENESS} FROM {SLOTS} AND $timeFilter')
    return (stat.Panel().title(Text("This fiscal year against the baseline and FY2030", "今年度：基準年度と2030年度目標")(lang))
            .description(Text("Market-based Scope 2 since 1 April (JST). Annualised = t-CO2 so far / slots with data "
                              "× 17,520 slots a year. Baseline: the dashboard constant baseline_t_co2 (the site's "
                              "FY2013 or first-year t-CO2 a year, from GET /api/co2/sites/{site}/progress); until it is set the "
                              "baseline, target and percentage stay empty. FY2030 target = baseline × 0.54; "
                              "vs baseline = (annualised / baseline − 1) × 100: green below −46 %, orange below the "
                              "baseline, red above it.",
                              "4月1日（日本時間）以降のマーケット基準 Scope 2。年換算 = これまでの t-CO2 / データのあるコマ数 × "
                              "年間 17,520 コマ。基準：ダッシュボードの定数 baseline_t_co2（拠点の2013年度または初年度の年間 t-CO2、"
                              "GET /api/co2/sites/{site}/progress）。設定するまで基準・目標・比率は空欄。2030年度目標 = 基準 × 0.54。"
                              "基準比 =（年換算 / 基準 − 1）× 100：−46 % 未満で緑、基準未満で橙、基準以上で赤。")(lang))
            .datasource(DATASOURCE).with_target(InfluxQL(query)).unit(UNIT_T).decimals(1).time_from("now/fy")
            .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]).fields("/.*/"))
            .color_mode(common_models.BigValueColorMode.VALUE)
            .thresholds(thresholds((None, "blue")))
            .override_by_name("completeness", [_prop("unit", UNIT_PERCENT),
                                               _prop("thresholds", completeness_thresholds().build()),
                                               _prop("color", {"mode": "thresholds"})])
            .override_by_name("vs baseline", [
                _prop("unit", UNIT_PERCENT), _prop("color", {"mode": "thresholds"}),
                _prop("thresholds", thresholds((None, "green"), (REDUCTION_TARGET_PCT, "orange"), (0, "red")).build())])
            .no_value(Text("no data this fiscal year", "今年度のデータなし")(lang))
            .height(5).span(24))


def _trajectory(lang: str) -> timeseries.Panel:
    query = ('SELECT cumulative_sum(sum("kg_market")) / 1000 AS "market-based, cumulative", '
             f'cumulative_sum(count("kg_market")) / {SLOTS_PER_YEAR} * $baseline_t_co2 AS "baseline pace", '
             f'cumulative_sum(count("kg_market")) / {SLOTS_PER_YEAR} * $baseline_t_co2 * {FY2030_REMAINING} '
             f'AS "FY2030 pace (−46 %)" FROM {SLOTS} AND $timeFilter GROUP BY time(1d) fill(none) tz(\'Asia/Tokyo\')')
    return (timeseries.Panel().title(Text("Trajectory this fiscal year", "今年度の推移")(lang))
            .description(Text("Cumulative market-based t-CO2 since 1 April against the baseline's and the FY2030 "
                              "target's pace over the same slots with data (baseline × slots / 17,520).",
                              "4月1日以降の累積マーケット基準 t-CO2 と、同じデータのあるコマ数での基準年度・2030年度目標の"
                              "ペース（基準 × コマ数 / 17,520）。")(lang))
            .datasource(DATASOURCE).with_target(InfluxQL(query).alias("$col")).unit(UNIT_T).decimals(1)
            .time_from("now/fy").height(8).span(12)
            .override_by_name("baseline pace", [_prop("custom.lineStyle", {"fill": "dash", "dash": [10, 10]}),
                                                 _prop("color", {"mode": "fixed", "fixedColor": "orange"})])
            .override_by_name("FY2030 pace (−46 %)", [_prop("custom.lineStyle", {"fill": "dash", "dash": [10, 10]}),
                                                     _prop("color", {"mode": "fixed", "fixedColor": "green"})]))


def _inputs(lang: str) -> table.Panel:
    query = ('SELECT sum("amount") AS "amount", last("unit") AS "unit", sum("cost_yen") AS "yen" '
             f'FROM "co2_input" WHERE {SITE} AND $timeFilter GROUP BY "month", "kind", "item"')
    return (table.Panel().title(Text("Bills, fuel and production entered, this fiscal year",
                                     "入力済みの請求書・燃料・生産量（今年度）")(lang))
            .description(Text("What was entered or imported for the site (co2_input): electricity bills (kWh), fuel "
                              "deliveries and production per month. Their CO2 (factors per retailer and fuel) is in the "
                              "API's summary, not in InfluxDB.",
                              "拠点に入力・取込した値（co2_input）：月ごとの電力請求（kWh）・燃料・生産量。"
                              "その CO2（小売事業者別・燃料別の係数）は API の集計にあり、InfluxDB にはない。")(lang))
            .datasource(DATASOURCE).with_target(InfluxQL(query).table()).time_from("now/fy")
            .with_transformation(transformation("organize", {"excludeByName": {"Time": True}}))
            .sort_by([common_builders.TableSortByFieldState().display_name("month")])
            .no_value(Text("nothing entered", "入力なし")(lang))
            .override_by_name("yen", [_prop("unit", "currencyJPY"), _prop("decimals", 0)])
            .height(8).span(12))


def _city_months(lang: str) -> barchart.Panel:
    query = ('SELECT sum("kg_market") / 1000 AS "t" FROM "co2_slot" WHERE $timeFilter '
             'GROUP BY time(1d), "site" fill(none) tz(\'Asia/Tokyo\')')
    return (barchart.Panel().title(Text("City: t-CO2 per month, all sites", "市全体：月別 t-CO2（全拠点）")(lang))
            .description(Text("Market-based Scope 2 of every metered site, stacked per month of this fiscal year "
                              "(daily sums cut at midnight JST; Grafana groups them into months and one column per site). "
                              "Sites reporting bills only: GET /api/co2/city.",
                              "計測している全拠点のマーケット基準 Scope 2 を今年度の月ごとに積み上げ（日本時間0時で区切った"
                              "日別合計を Grafana が月・拠点別に集計）。請求書のみの拠点は GET /api/co2/city")(lang))
            .datasource(DATASOURCE).with_target(InfluxQL(query).table()).time_from("now/fy")
            .with_transformation(transformation("formatTime", {"timeField": "Time", "outputFormat": "YYYY-MM",
                                                               "useTimezone": True}))
            .with_transformation(transformation("groupBy", {"fields": {
                "Time": {"operation": "groupby", "aggregations": []},
                "site": {"operation": "groupby", "aggregations": []},
                "t": {"operation": "aggregate", "aggregations": ["sum"]}}}))
            .with_transformation(transformation("groupingToMatrix", {
                "columnField": "site", "rowField": "Time", "valueField": "t (sum)"}))
            .stacking(common_models.StackingMode.NORMAL).unit(UNIT_T).decimals(1).x_field("Time\\site")
            .height(9).span(12))


def _city_reporting(lang: str, title: Text, time_from: str) -> stat.Panel:
    # A site is complete from 99 %: floor(pct / 99) is 1 from 99 % (at most 100 %), else 0, so its sum counts the
    # complete sites and is 0, not empty, when none is. (An outer WHERE "pct" >= 99 would also work, but InfluxDB
    # 1.6 compares an unscaled sum(int) / sum(int) there as an integer division.)
    query = ('SELECT count("pct") AS "reporting", sum("complete") AS "complete data" FROM ('
             'SELECT sum("meters_measured") / sum("meters_expected") * 100 AS "pct", '
             f'floor(sum("meters_measured") / sum("meters_expected") * 100 / {COMPLETENESS_WARN_PCT}) AS "complete" '
             'FROM "co2_slot" WHERE $timeFilter GROUP BY "site")')
    return (stat.Panel().title(title(lang))
            .description(Text(f"Sites with co2_slot data in the period, and those of them with at least "
                              f"{COMPLETENESS_WARN_PCT:.0f} % of their meter slots measured.",
                              f"期間内に co2_slot のある拠点数と、そのうちメーター×コマの {COMPLETENESS_WARN_PCT:.0f} % 以上を"
                              f"計測できた拠点数。")(lang))
            .datasource(DATASOURCE).with_target(InfluxQL(query)).unit(UNIT_COUNT).decimals(0)
            .time_from(time_from).no_value("0")
            .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]).fields("/.*/"))
            .override_by_name("reporting", [_prop("displayName", Text("reporting", "報告あり")(lang))])
            .override_by_name("complete data", [_prop("displayName", Text("complete data", "データ完全")(lang))])
            .height(4).span(6))


def _city_sites(lang: str) -> table.Panel:
    query = ('SELECT sum("kwh") AS "kWh", sum("kg_location") / 1000 AS "t location", sum("kg_market") / 1000 AS "t market", '
             f'{COMPLETENESS} FROM "co2_slot" WHERE $timeFilter GROUP BY "site"')
    return (table.Panel().title(Text("City: per site this fiscal year", "市全体：拠点別（今年度）")(lang))
            .description(Text("Every metered site's kWh, t-CO2 and completeness since 1 April (JST).",
                              "4月1日（日本時間）以降の各拠点の kWh・t-CO2・完全性。")(lang))
            .datasource(DATASOURCE).with_target(InfluxQL(query).table()).time_from("now/fy")
            .with_transformation(transformation("organize", {"excludeByName": {"Time": True}}))
            .sort_by([common_builders.TableSortByFieldState().display_name("t market").desc(True)])
            .thresholds(completeness_thresholds())
            .override_by_name("kWh", [_prop("unit", UNIT_KWH), _prop("decimals", 0)])
            .override_by_name("t location", [_prop("decimals", 2)]).override_by_name("t market", [_prop("decimals", 2)])
            .override_by_name("completeness", [
                _prop("unit", UNIT_PERCENT), _prop("decimals", 1),
                _prop("custom.cellOptions", {"type": common_models.TableCellDisplayMode.COLOR_BACKGROUND.value})])
            .height(8).span(12))


def _site_variable(lang: str) -> dash.QueryVariable:
    # Sites with meters (co2_slot) and sites that only enter bills (co2_input).
    return (dash.QueryVariable("site").label(Text("Site", "拠点")(lang)).datasource(DATASOURCE)
            .query('SHOW TAG VALUES FROM /^co2_(slot|input)$/ WITH KEY = "site"')
            .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED).sort(model.VariableSort.ALPHABETICAL_ASC))


def build(lang: str) -> dict:
    """The board as Grafana JSON, in ``lang`` ("en" or "ja")."""
    builder = (board(BASE_UID, lang, Text("Hinode: CO2", "Hinode：CO2"),
                     Text("Scope 2 CO2 per site (slot, day, fiscal month and year against the baseline and the "
                          "FY2030 line) and for the city, with the completeness of the meter data.",
                          "拠点ごとの Scope 2 CO2（コマ・日・年度の月別、基準年度と2030年度目標との比較）と市全体、"
                          "メーターデータの完全性つき。"), ["co2", "greencity"])
               .with_variable(_site_variable(lang))
               .with_variable(constant_variable("baseline_t_co2", BASELINE_NOT_SET,
                                                "the site's baseline, t-CO2 a year (a number); the default is an "
                                                "always-empty field: baseline lines and percentage stay empty"))
               .with_panel(_fiscal_year(lang))
               .with_panel(_per_bucket(lang, Text("CO2 per 30-minute slot today", "本日の30分ごとの CO2"),
                                       Text("kg-CO2 per slot, location-based (national average) and market-based "
                                            "(the retailer's adjusted factor); the line is the slot's completeness "
                                            "(meters measured / expected). A gap is a slot without meter data.",
                                            "コマごとの kg-CO2（ロケーション基準 = 全国平均、マーケット基準 = 小売事業者の"
                                            "調整後係数）。線はコマの完全性（計測メーター / 予定）。空白はメーターデータのないコマ。"),
                                       "30m", "now/d"))
               .with_panel(_per_bucket(lang, Text("CO2 per day", "日別の CO2"),
                                       Text("kg-CO2 per day (JST) over the last 30 days; the line is the day's "
                                            "completeness.",
                                            "直近30日の日別（日本時間）kg-CO2。線はその日の完全性。"),
                                       "1d", "now-30d/d"))
               .with_panel(_fiscal_months(lang))
               .with_panel(_trajectory(lang))
               .with_panel(_inputs(lang))
               .with_panel(_city_reporting(lang, Text("City: sites this month", "市全体：今月の拠点数"), "now/M"))
               .with_panel(_city_reporting(lang, Text("City: sites this fiscal year", "市全体：今年度の拠点数"), "now/fy"))
               .with_panel(_city_months(lang))
               .with_panel(_city_sites(lang)))
    return to_json(builder.time("now/fy", "now").build())
