"""The **Site energy** board, for a factory manager: power now, today's load against the same weekday
last week, energy per day and per 30-minute slot, top consumers, power quality, missing data and
fiscal-month totals (the Japanese fiscal year starts in April; months are cut in Asia/Tokyo)."""

from __future__ import annotations

from grafana_foundation_sdk.builders import barchart, common as common_builders, stat, table, timeseries
from grafana_foundation_sdk.models import common as common_models

from dashboards.common import (
    DATASOURCE, OFFLINE_AFTER, POWER_FACTOR_LOW, POWER_FACTOR_OK, UNIT_KW,
    UNIT_KWH, UNIT_VOLT, VOLTAGE_HIGH_V, VOLTAGE_LOW_V, InfluxQL, Text, board,
    constant_variable, device_variable, site_variable, tag_variable, thresholds, transformation, to_json,
)
from dashboards.panels import completeness_table, silent_devices_table

BASE_UID = "hinode-site-energy"

SITE = '"site" =~ /^$site$/'
DEVICES = '"device" =~ /^$device$/'
SLOTS = f'"energy_slot" WHERE {SITE} AND {DEVICES} AND "metric" =~ /^$energy_metric$/'


def _site_power_w(inner_range: str) -> str:
    return (f'SELECT sum("p") / 1000 AS "kW" FROM (SELECT mean("power_total") AS "p" FROM "meter" '
            f'WHERE {SITE} AND {DEVICES} AND {inner_range} GROUP BY time($__interval), "device" fill(none)) '
            f'WHERE $timeFilter GROUP BY time($__interval) fill(none)')


def _power_now(lang: str) -> stat.Panel:
    query = (f'SELECT sum("p") / 1000 AS "kW" FROM (SELECT last("power_total") AS "p" FROM "meter" '
             f'WHERE {SITE} AND time > now() - $offline_after GROUP BY "device")')
    return (stat.Panel().title(Text("Site power now", "現在の拠点電力")(lang))
            .description(Text("Sum of every meter's newest power_total (last $offline_after), in kW.",
                              "拠点の全メーターの最新 power_total の合計（直近 $offline_after）、kW。")(lang))
            .datasource(DATASOURCE).with_target(InfluxQL(query)).unit(UNIT_KW).decimals(1)
            .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]))
            .height(6).span(6))


def _load_curve(lang: str, last_week: bool) -> timeseries.Panel:
    title = (Text("Load, same weekday last week", "負荷曲線（先週の同じ曜日）") if last_week
             else Text("Load today", "本日の負荷曲線"))
    panel = (timeseries.Panel().title(title(lang))
             .description(Text("Sum of the site's meters (mean power per interval), kW. The neighbouring panel shows "
                               "the same hours 7 days earlier (panel time shift: InfluxQL cannot move timestamps).",
                               "拠点メーター合計（区間平均電力）、kW。隣のパネルは7日前の同時間帯"
                               "（パネルの時間シフト。InfluxQL は時刻をずらせないため）。")(lang))
             .datasource(DATASOURCE).with_target(InfluxQL(_site_power_w("$timeFilter")).alias(title(lang)))
             .unit(UNIT_KW).fill_opacity(15).time_from("now/d").height(8).span(9))
    if last_week:
        panel = panel.time_shift("7d")
    return panel


def _energy_per(lang: str, slot: str, title: Text, time_from: str | None) -> barchart.Panel:
    query = (f'SELECT sum("consumption") AS "kWh" FROM {SLOTS} AND $timeFilter '
             f'GROUP BY time({slot}) fill(none) tz(\'Asia/Tokyo\')')
    panel = (barchart.Panel().title(title(lang))
             .description(Text("From energy_slot (the energy domain's 30-minute consumption of each counter).",
                               "energy_slot（エネルギー領域が計算する30分ごとの消費量）から。")(lang))
             .datasource(DATASOURCE).with_target(InfluxQL(query)).unit(UNIT_KWH).height(8).span(12))
    return panel.time_from(time_from) if time_from else panel


def _top_consumers(lang: str) -> table.Panel:
    query = f'SELECT sum("consumption") AS "kWh" FROM {SLOTS} AND $timeFilter GROUP BY "device"'
    return (table.Panel().title(Text("Top consumers", "消費量上位")(lang))
            .description(Text("Energy per meter over the selected range, largest first.",
                              "選択期間のメーター別消費量（多い順）。")(lang))
            .datasource(DATASOURCE).with_target(InfluxQL(query).table()).unit(UNIT_KWH).decimals(1)
            .with_transformation(transformation("organize", {"excludeByName": {"Time": True}}))
            .sort_by([common_builders.TableSortByFieldState().display_name("kWh").desc(True)])
            .height(8).span(8))


def _power_factor(lang: str) -> timeseries.Panel:
    query = (f'SELECT mean("power_factor") AS "PF" FROM "meter" WHERE {SITE} AND {DEVICES} AND $timeFilter '
             f'GROUP BY time($__interval), "device" fill(none)')
    return (timeseries.Panel().title(Text("Power factor", "力率")(lang))
            .description(Text(f"Below {POWER_FACTOR_LOW} (red) costs a surcharge on most tariffs.",
                              f"{POWER_FACTOR_LOW} 未満（赤）は多くの料金契約で割増の対象。")(lang))
            .datasource(DATASOURCE).with_target(InfluxQL(query).alias("$tag_device"))
            .min(0).max(1).decimals(2)
            .thresholds(thresholds((None, "red"), (POWER_FACTOR_LOW, "orange"), (POWER_FACTOR_OK, "green")))
            .thresholds_style(common_builders.GraphThresholdsStyleConfig()
                              .mode(common_models.GraphTresholdsStyleMode.LINE))
            .height(8).span(8))


def _voltage(lang: str) -> timeseries.Panel:
    query = (f'SELECT mean("voltage_l1") AS "L1", mean("voltage_l2") AS "L2", mean("voltage_l3") AS "L3" '
             f'FROM "meter" WHERE {SITE} AND {DEVICES} AND $timeFilter GROUP BY time($__interval), "device" fill(none)')
    return (timeseries.Panel().title(Text("Voltage quality", "電圧品質")(lang))
            .description(Text(f"Phase voltages; 200 V service must stay within {VOLTAGE_LOW_V:.0f}–{VOLTAGE_HIGH_V:.0f} V.",
                              f"各相電圧。200 V 受電は {VOLTAGE_LOW_V:.0f}〜{VOLTAGE_HIGH_V:.0f} V の範囲内。")(lang))
            .datasource(DATASOURCE).with_target(InfluxQL(query).alias("$tag_device $col")).unit(UNIT_VOLT)
            .thresholds(thresholds((None, "red"), (VOLTAGE_LOW_V, "green"), (VOLTAGE_HIGH_V, "red")))
            .thresholds_style(common_builders.GraphThresholdsStyleConfig()
                              .mode(common_models.GraphTresholdsStyleMode.LINE_AND_AREA))
            .height(8).span(8))


def _fiscal_months(lang: str) -> table.Panel:
    query = (f'SELECT sum("consumption") AS "kWh" FROM {SLOTS} AND $timeFilter '
             f'GROUP BY time(1d) fill(none) tz(\'Asia/Tokyo\')')
    month = Text("Month (JST)", "月（日本時間）")(lang)
    return (table.Panel().title(Text("Fiscal year by month", "年度の月別消費量")(lang))
            .description(Text("This fiscal year (April–March) so far: daily sums cut at midnight JST, "
                              "grouped into calendar months by Grafana.",
                              "今年度（4月〜3月）の累計：日本時間0時で区切った日別合計を Grafana が月ごとに集計。")(lang))
            .datasource(DATASOURCE).with_target(InfluxQL(query).table()).unit(UNIT_KWH).decimals(0)
            .time_from("now/fy")
            .with_transformation(transformation("formatTime", {"timeField": "Time", "outputFormat": "YYYY-MM",
                                                               "useTimezone": True}))
            .with_transformation(transformation("groupBy", {"fields": {
                "Time": {"operation": "groupby", "aggregations": []},
                "kWh": {"operation": "aggregate", "aggregations": ["sum"]}}}))
            .with_transformation(transformation("organize", {"renameByName": {"Time": month, "kWh (sum)": "kWh"}}))
            .height(8).span(8))


def build(lang: str) -> dict:
    """The board as Grafana JSON, in ``lang`` ("en" or "ja")."""
    builder = (board(BASE_UID, lang, Text("Hinode: site energy", "Hinode：拠点エネルギー"),
                     Text("Power, load curve, consumption and data completeness of one site's meters.",
                          "拠点のメーターの電力・負荷曲線・消費量・データ欠損。"), ["energy"])
               .with_variable(site_variable("meter", lang, multi=False))
               .with_variable(device_variable("meter", lang))
               .with_variable(tag_variable("energy_metric", Text("Counter", "積算計")(lang),
                                           'SHOW TAG VALUES FROM "energy_slot" WITH KEY = "metric"'))
               .with_variable(constant_variable("offline_after", OFFLINE_AFTER,
                                                "no data for this long counts as silent"))
               .with_panel(_power_now(lang))
               .with_panel(_load_curve(lang, last_week=False))
               .with_panel(_load_curve(lang, last_week=True))
               .with_panel(_energy_per(lang, "1d", Text("Energy per day", "日別消費量"), "now-30d/d"))
               .with_panel(_energy_per(lang, "30m", Text("Energy per 30-minute slot", "30分ごとの消費量"), None))
               .with_panel(_top_consumers(lang))
               .with_panel(_power_factor(lang))
               .with_panel(_voltage(lang))
               .with_panel(completeness_table(lang, '"meter"', SITE))
               .with_panel(silent_devices_table(lang, '"meter"', SITE))
               .with_panel(_fiscal_months(lang)))
    return to_json(builder.build())


