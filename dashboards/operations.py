"""The **Operations** board: agents online, silent devices, outbox depth and drops, ingest lag,
dead letters by reason and completeness by site."""

from __future__ import annotations

from grafana_foundation_sdk.builders import common as common_builders, stat, table, timeseries
from grafana_foundation_sdk.models import common as common_models

from dashboards.common import (
    DATASOURCE, DEVICE_MEASUREMENTS, INGEST_LAG_BAD_S, INGEST_LAG_WARN_S, OFFLINE_AFTER, UNIT_COUNT,
    UNIT_SECONDS, InfluxQL, Text, board, completeness_thresholds, constant_variable, site_variable, thresholds,
    transformation, to_json,
)
from dashboards.panels import completeness_cells, completeness_table, silent_devices_table

BASE_UID = "hinode-operations"

SITE = '"site" =~ /^$site$/'
AGENTS = f'"agent" WHERE {SITE}'


def _agents_online(lang: str) -> stat.Panel:
    online = InfluxQL(f'SELECT count("up") AS "online" FROM (SELECT last("uptime_s") AS "up" FROM {AGENTS} '
                      f'AND time > now() - $offline_after GROUP BY "device")', "A").alias(Text("online", "稼働中")(lang))
    seen = InfluxQL(f'SELECT count("up") AS "seen" FROM (SELECT last("uptime_s") AS "up" FROM {AGENTS} '
                    f'AND $timeFilter GROUP BY "device")', "B").alias(Text("seen in range", "期間内に受信")(lang))
    return (stat.Panel().title(Text("Edge agents online", "稼働中のエッジエージェント")(lang))
            .description(Text("Agents whose health telemetry (measurement agent) arrived in the last $offline_after, "
                              "against every agent seen in the range.",
                              "直近 $offline_after にヘルス情報（agent 計測）が届いたエージェント数と、期間内の全エージェント数。")(lang))
            .datasource(DATASOURCE).with_target(online).with_target(seen).unit(UNIT_COUNT)
            .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]))
            .height(6).span(6))


def _agents_table(lang: str) -> table.Panel:
    query = (f'SELECT last("readings_per_s") AS "readings_per_s", last("devices_online") AS "devices_online", '
             f'last("devices_total") AS "devices_total", last("queue_envelopes") AS "queue_envelopes", '
             f'last("queue_bytes") AS "queue_bytes", last("dropped_readings_total") AS "dropped_readings_total" '
             f'FROM {AGENTS} AND $timeFilter GROUP BY "site", "device"')
    return (table.Panel().title(Text("Agents", "エージェント一覧")(lang))
            .description(Text("Newest health figures per agent (device = agent id).",
                              "エージェントごとの最新ヘルス値（device = エージェントID）。")(lang))
            .datasource(DATASOURCE).with_target(InfluxQL(query).table())
            .with_transformation(transformation("organize", {"excludeByName": {"Time": True},
                                                             "renameByName": {"device": "agent"}}))
            .height(6).span(18))


def _per_agent_series(lang: str, title: Text, description: Text, select: str, unit: str) -> timeseries.Panel:
    query = f'SELECT {select} FROM {AGENTS} AND $timeFilter GROUP BY time($__interval), "device" fill(none)'
    return (timeseries.Panel().title(title(lang)).description(description(lang)).datasource(DATASOURCE)
            .with_target(InfluxQL(query).alias("$tag_device")).unit(unit).height(8).span(12))


def _ingest_lag(lang: str) -> timeseries.Panel:
    lag = InfluxQL('SELECT max("lag_p50_seconds") AS "lag" FROM "hinode_ingest" WHERE $timeFilter '
                   'GROUP BY time($__interval), "ingest" fill(none)', "A").alias("$tag_ingest")
    return (timeseries.Panel().title(Text("Ingest lag (p50 of the last batch)", "取り込み遅延（直近バッチの中央値）")(lang))
            .description(Text("Reading timestamp to stored in InfluxDB, per ingest process (hinode_ingest).",
                              "読み取り時刻から InfluxDB 保存までの時間、取り込みプロセス別（hinode_ingest）。")(lang))
            .datasource(DATASOURCE).with_target(lag).unit(UNIT_SECONDS)
            .thresholds(thresholds((None, "green"), (INGEST_LAG_WARN_S, "orange"), (INGEST_LAG_BAD_S, "red")))
            .thresholds_style(common_builders.GraphThresholdsStyleConfig().mode(common_models.GraphTresholdsStyleMode.LINE))
            .height(8).span(8))


def _ingest_queue(lang: str) -> timeseries.Panel:
    query = ('SELECT max("queue_depth") AS "queue_depth" FROM "hinode_ingest" WHERE $timeFilter '
             'GROUP BY time($__interval), "ingest" fill(none)')
    return (timeseries.Panel().title(Text("Ingest queue depth", "取り込みキュー長")(lang))
            .description(Text("Messages received and not yet stored, per ingest process.",
                              "受信済みで未保存のメッセージ数（取り込みプロセス別）。")(lang))
            .datasource(DATASOURCE).with_target(InfluxQL(query).alias("$tag_ingest")).unit(UNIT_COUNT)
            .height(8).span(8))


DEAD_LETTERS_PER_INTERVAL = ('SELECT sum("d") AS "dead_letters" FROM (SELECT non_negative_difference(max("total")) AS "d" '
                             'FROM "hinode_ingest_dead_letters" WHERE $timeFilter '
                             'GROUP BY time($__interval), "reason", "ingest") WHERE $timeFilter '
                             'GROUP BY time($__interval), "reason" fill(none)')


def _dead_letters(lang: str) -> timeseries.Panel:
    return (timeseries.Panel().title(Text("Dead letters by reason", "デッドレター（理由別）")(lang))
            .description(Text("New dead letters per interval, summed over ingest processes "
                              "(hinode_ingest_dead_letters). Letters themselves: GET /api/dead-letters?reason=.",
                              "区間ごとの新規デッドレター数（全取り込みプロセス合計）。内容は GET /api/dead-letters?reason= で確認。")(lang))
            .datasource(DATASOURCE).with_target(InfluxQL(DEAD_LETTERS_PER_INTERVAL).alias("$tag_reason"))
            .unit(UNIT_COUNT).draw_style(common_models.GraphDrawStyle.BARS).fill_opacity(80)
            .stacking(common_builders.StackingConfig().mode(common_models.StackingMode.NORMAL))
            .height(8).span(8))


def _completeness_by_site(lang: str) -> table.Panel:
    query = (f'SELECT sum("received") / sum("expected") * 100 AS "completeness" FROM '
             f'(SELECT count(distinct("seq")) AS "received", spread("seq") + 1 AS "expected" FROM {DEVICE_MEASUREMENTS} '
             f'WHERE {SITE} AND $timeFilter GROUP BY "site", "device") GROUP BY "site"')
    return (table.Panel().title(Text("Completeness by site", "拠点別データ完全性")(lang))
            .description(Text("All devices of a site: distinct seqs received / seqs expected, over the range.",
                              "拠点の全機器：受信した seq の数 / 期待される seq の数（期間内）。")(lang))
            .datasource(DATASOURCE).with_target(InfluxQL(query).table())
            .with_transformation(transformation("organize", {"excludeByName": {"Time": True}}))
            .override_by_name("completeness", completeness_cells(decimals=2))
            .thresholds(completeness_thresholds()).height(8).span(8))


def build(lang: str) -> dict:
    """The board as Grafana JSON, in ``lang`` ("en" or "ja")."""
    builder = (board(BASE_UID, lang, Text("Hinode: operations", "Hinode：運用"),
                     Text("Edge agents, silent devices, outboxes, ingest lag, dead letters and completeness.",
                          "エッジエージェント、無応答機器、送信待ち、取り込み遅延、デッドレター、データ完全性。"), ["operations"])
               .time("now-6h", "now").refresh("30s")
               .with_variable(site_variable("agent", lang, multi=True))
               .with_variable(constant_variable("offline_after", OFFLINE_AFTER,
                                                "no data for this long counts as offline"))
               .with_panel(_agents_online(lang))
               .with_panel(_agents_table(lang))
               .with_panel(_per_agent_series(
                   lang, Text("Outbox depth", "送信待ちキュー"),
                   Text("Envelopes waiting in each agent's outbox; growing = the broker is unreachable.",
                        "各エージェントの送信待ちエンベロープ数。増え続ける場合はブローカーに届いていない。"),
                   'max("queue_envelopes") AS "queue_envelopes"', UNIT_COUNT))
               .with_panel(_per_agent_series(
                   lang, Text("Dropped readings", "破棄された読み取り"),
                   Text("Readings dropped per interval because the outbox was full (queue.max_bytes).",
                        "送信待ちが上限（queue.max_bytes）に達して破棄された読み取り数（区間ごと）。"),
                   'non_negative_difference(max("dropped_readings_total")) AS "dropped"', UNIT_COUNT))
               .with_panel(silent_devices_table(lang, DEVICE_MEASUREMENTS, SITE, span=24))
               .with_panel(completeness_table(lang, DEVICE_MEASUREMENTS, SITE))
               .with_panel(_completeness_by_site(lang))
               .with_panel(_ingest_lag(lang))
               .with_panel(_ingest_queue(lang))
               .with_panel(_dead_letters(lang)))
    return to_json(builder.build())
