"""Panels both boards show: data completeness per device and devices gone silent."""

from __future__ import annotations

from grafana_foundation_sdk.builders import common as common_builders, table
from grafana_foundation_sdk.models import common as common_models
from grafana_foundation_sdk.models import dashboard as model

from dashboards.common import (
    DATASOURCE, UNIT_PERCENT, InfluxQL, Text, completeness_thresholds, transformation,
)


def completeness_query(measurement: str, site_condition: str, group_by: str = '"site", "device"',
                       detail: bool = True) -> str:
    """Per device: distinct seqs received vs. the seqs between the lowest and highest seen (``seq`` counts
    envelopes per device without gaps, so missing numbers are missing data)."""
    columns = ', "received", "expected" - "received" AS "missing"' if detail else ""
    return (f'SELECT "received" / "expected" * 100 AS "completeness"{columns} '
            f'FROM (SELECT count(distinct("seq")) AS "received", spread("seq") + 1 AS "expected" FROM {measurement} '
            f'WHERE {site_condition} AND $timeFilter GROUP BY {group_by}) GROUP BY {group_by}')


def completeness_cells(decimals: int) -> list[model.DynamicConfigValue]:
    """A completeness column in %, its cell coloured by the panel's completeness thresholds."""
    return [model.DynamicConfigValue(id_val="unit", value=UNIT_PERCENT),
            model.DynamicConfigValue(id_val="decimals", value=decimals),
            model.DynamicConfigValue(id_val="custom.cellOptions",
                                     value={"type": common_models.TableCellDisplayMode.COLOR_BACKGROUND.value})]


def completeness_table(lang: str, measurement: str, site_condition: str) -> table.Panel:
    return (table.Panel().title(Text("Data completeness per device", "機器別データ完全性")(lang))
            .description(Text("count(distinct(seq)) against max(seq) − min(seq) + 1 over the range; "
                              "red rows are meters with missing data.",
                              "期間内の count(distinct(seq)) と max(seq) − min(seq) + 1 の比。赤い行は欠損のあるメーター。")(lang))
            .datasource(DATASOURCE).with_target(InfluxQL(completeness_query(measurement, site_condition)).table())
            .with_transformation(transformation("organize", {"excludeByName": {"Time": True}}))
            .sort_by([common_builders.TableSortByFieldState().display_name("completeness")])
            .override_by_name("completeness", completeness_cells(decimals=1))
            .thresholds(completeness_thresholds()).height(8).span(8))


# Written by the API's status tracker on every change of a device's state (cloud/status.py).
DEVICE_STATUS = "device_status"
# How far back the newest reason is looked for: points are written on change only, so a device
# offline for days has its reason from when it went offline.
REASON_LOOKBACK = "30d"


def _kind_condition(measurement: str) -> str:
    """``"meter"`` -> ``"kind" = 'meter'``; ``/^(meter|charger)$/`` -> ``"kind" =~ /^(meter|charger)$/``."""
    if measurement.startswith("/"):
        return f'"kind" =~ {measurement}'
    name = measurement.strip('"')
    return f"\"kind\" = '{name}'"


def silent_devices_queries(measurement: str, site_condition: str) -> tuple[InfluxQL, InfluxQL, InfluxQL]:
    seen = InfluxQL(f'SELECT last("seq") AS "last_seq" FROM {measurement} WHERE {site_condition} AND $timeFilter '
                    f'GROUP BY "site", "device"', "A").table()
    recent = InfluxQL(f'SELECT last("seq") AS "recent_seq" FROM {measurement} WHERE {site_condition} '
                      f'AND time > now() - $offline_after GROUP BY "site", "device"', "B").table()
    reason = InfluxQL(f'SELECT last("reason") AS "reason" FROM "{DEVICE_STATUS}" '
                      f'WHERE {site_condition} AND {_kind_condition(measurement)} AND time > now() - {REASON_LOOKBACK} '
                      f'GROUP BY "site", "device"', "C").table()
    return seen, recent, reason


def silent_devices_table(lang: str, measurement: str, site_condition: str, span: int = 8) -> table.Panel:
    """Devices seen in the range but silent for ``$offline_after``: query A (seen) merged with B (recent)
    and C (the newest reason its agent's status gave); rows without a recent seq are the silent ones.

    C's time is when the reason was recorded, not when the device was last seen: it is dropped before
    the merge (Grafana merges rows that agree on every column the queries share, Time included)."""
    seen, recent, reason = silent_devices_queries(measurement, site_condition)
    last_seen = Text("last seen", "最終受信")(lang)
    only_reason = model.MatcherConfig(id_val="byRefId", options="C")
    return (table.Panel().title(Text("Silent devices (no data for $offline_after)", "無応答の機器（$offline_after 以上データなし）")(lang))
            .description(Text("Devices with data in the range but none in the last $offline_after, with the reason "
                              "from their agent's newest status (agent offline, device offline and its error, not "
                              "listed). An empty reason: the agent reports the device online, yet no data arrives.",
                              "期間内にデータがあり、直近 $offline_after にない機器と、エージェントの最新ステータスによる理由"
                              "（エージェント停止、機器オフラインとそのエラー、未登録）。理由が空欄：エージェントは"
                              "オンラインと報告しているがデータが届いていない。")(lang))
            .datasource(DATASOURCE).with_target(seen).with_target(recent).with_target(reason)
            .with_transformation(model.DataTransformerConfig(id_val="organize", filter_val=only_reason,
                                                             options={"excludeByName": {"Time": True}}))
            .with_transformation(transformation("merge", {}))
            .with_transformation(transformation("filterByValue", {
                "type": "include", "match": "all",
                "filters": [{"fieldName": "recent_seq", "config": {"id": "isNull", "options": {}}},
                            {"fieldName": "last_seq", "config": {"id": "isNotNull", "options": {}}}]}))
            .with_transformation(transformation("organize", {"excludeByName": {"recent_seq": True},
                                                             "renameByName": {"Time": last_seen,
                                                                              "reason": Text("reason", "理由")(lang)}}))
            .sort_by([common_builders.TableSortByFieldState().display_name(last_seen)])
            .no_value(Text("none: every device reported", "なし：全機器が受信中")(lang))
            .height(8).span(span))
