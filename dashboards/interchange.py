"""The **Interchange** board, for a renewable interchange community (the producers' rooftop PV shared
with small firms and public buildings): generation, consumption, shared and exported energy per
30-minute slot today, the flows producer → consumer as a node graph with kWh on the edges, the
month to date per participant, and the slots settled provisionally.

Series (cloud/domains/interchange/README.md): ``interchange_slot`` (tags community, site, role; fields
generation_kwh, consumption_kwh, supplied_kwh, received_kwh, self_kwh, export_kwh, grid_kwh,
provisional, rule) and ``interchange_flow`` (tags community, from, to; fields kwh, provisional).

**Node graph from InfluxQL.** Grafana's node graph takes a nodes frame (``id``, ``title``,
``subtitle``, ``mainstat``, ``detail__*``) and an edges frame (``id``, ``source``, ``target``,
``mainstat``); a frame with a ``source`` field counts as edges. InfluxQL cannot rename a tag in a
GROUP BY, but an outer query over a grouped subquery can select the subquery's tags as columns
(``"site"::tag AS "id"``), so both frames come straight from InfluxDB (table format, one series
each). What InfluxQL cannot make is an edge id (no string concatenation): Grafana adds it with a
``calculateField`` "Row index" transformation limited to the edges query (``filter`` byRefId
``edges``, Grafana 10.4+).
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import (
    bargauge, common as common_builders, dashboard as dash, nodegraph, stat, table, timeseries,
)
from grafana_foundation_sdk.models import common as common_models
from grafana_foundation_sdk.models import dashboard as model

from dashboards.common import DATASOURCE, UNIT_COUNT, UNIT_KWH, InfluxQL, Text, board, thresholds, to_json, transformation

BASE_UID = "hinode-interchange"

COMMUNITY = '"community" =~ /^$community$/'
SLOTS = f'"interchange_slot" WHERE {COMMUNITY}'
FLOWS = f'"interchange_flow" WHERE {COMMUNITY}'
SLOT = "30m"
PROVISIONAL_COLOUR = "orange"


def _prop(key: str, value: object) -> model.DynamicConfigValue:
    return model.DynamicConfigValue(id_val=key, value=value)


def nodes_query() -> str:
    """One row per participant: id/title = site, subtitle = role, mainstat = kWh supplied (producer) or
    received (consumer) over the range."""
    inner = ('SELECT sum("supplied_kwh") + sum("received_kwh") AS "mainstat", sum("generation_kwh") AS "generation", '
             'sum("consumption_kwh") AS "consumption", sum("export_kwh") AS "export", sum("grid_kwh") AS "grid" '
             f'FROM {SLOTS} AND $timeFilter GROUP BY "site", "role"')
    return ('SELECT "mainstat", "site"::tag AS "id", "site"::tag AS "title", "role"::tag AS "subtitle", '
            '"generation" AS "detail__generation kWh", "consumption" AS "detail__consumption kWh", '
            f'"export" AS "detail__export kWh", "grid" AS "detail__grid kWh" FROM ({inner})')


def edges_query() -> str:
    """One row per producer → consumer pair with kWh over the range (the edge id comes from Grafana)."""
    inner = f'SELECT sum("kwh") AS "mainstat" FROM {FLOWS} AND $timeFilter GROUP BY "from", "to"'
    return f'SELECT "mainstat", "from"::tag AS "source", "to"::tag AS "target" FROM ({inner})'


def _today(lang: str) -> timeseries.Panel:
    energy = (f'SELECT sum("generation_kwh") AS "generation", sum("supplied_kwh") AS "shared", '
              f'sum("export_kwh") AS "exported" FROM {SLOTS} AND $timeFilter GROUP BY time({SLOT}) fill(null)')
    demand = (f'SELECT sum("consumption_kwh") AS "consumption" FROM {SLOTS} AND "role" = \'consumer\' AND $timeFilter '
              f'GROUP BY time({SLOT}) fill(null)')
    provisional = (f'SELECT sum("supplied_kwh") AS "shared, provisional" FROM {SLOTS} AND "provisional" = true '
                   f'AND $timeFilter GROUP BY time({SLOT}) fill(none)')
    return (timeseries.Panel().title(Text("Today per slot: generation, consumption, shared, exported",
                                          "本日のコマ別：発電・消費・融通・逆潮流")(lang))
            .description(Text("kWh per 30-minute slot: the producers' generation, the consumers' consumption, what "
                              "the community shared and what went to the grid unused. Orange points: shared kWh of "
                              "slots settled provisionally (data still missing after the grace period; re-settled "
                              "when it arrives).",
                              "30分コマごとの kWh：発電者の発電量、需要家の消費量、コミュニティで融通した量、使われず系統へ"
                              "流れた量。橙の点は暫定精算のコマの融通量（猶予時間後もデータ不足。データ到着後に再精算）。")(lang))
            .datasource(DATASOURCE).with_target(InfluxQL(energy, "A").alias("$col"))
            .with_target(InfluxQL(demand, "B").alias("$col")).with_target(InfluxQL(provisional, "C").alias("$col"))
            .unit(UNIT_KWH).fill_opacity(15).span_nulls(False).time_from("now/d")
            .override_by_name("shared, provisional", [
                _prop("custom.drawStyle", "points"), _prop("custom.pointSize", 9),
                _prop("color", {"mode": "fixed", "fixedColor": PROVISIONAL_COLOUR})])
            .height(9).span(14))


def _flow_graph(lang: str) -> nodegraph.Panel:
    edge_id = model.DataTransformerConfig(id_val="calculateField", options={
        "mode": "index", "alias": "id", "replaceFields": False, "index": {"asPercentile": False}},
        filter_val=model.MatcherConfig(id_val="byRefId", options="edges"))
    return (nodegraph.Panel().title(Text("Flows producer → consumer (kWh, selected range)",
                                         "発電者 → 需要家の融通（kWh、選択期間）")(lang))
            .description(Text("Nodes: participants (supplied kWh for a producer, received for a consumer; click for "
                              "generation, consumption, export and grid import). Edges: kWh shared from producer to "
                              "consumer over the board's range. Per slot: the panel below.",
                              "ノード：参加者（発電者は供給量、需要家は受取量。クリックで発電・消費・逆潮流・系統購入）。"
                              "エッジ：期間内に発電者から需要家へ融通した kWh。コマ別は下のパネル。")(lang))
            .datasource(DATASOURCE)
            .with_target(InfluxQL(nodes_query(), "nodes").table())
            .with_target(InfluxQL(edges_query(), "edges").table())
            .with_transformation(edge_id)
            .nodes(nodegraph.NodeOptions().main_stat_unit(UNIT_KWH))
            .edges(nodegraph.EdgeOptions().main_stat_unit(UNIT_KWH))
            .height(9).span(10))


def _flows_per_slot(lang: str) -> timeseries.Panel:
    query = (f'SELECT sum("kwh") AS "kWh" FROM {FLOWS} AND $timeFilter '
             f'GROUP BY time({SLOT}), "from", "to" fill(none)')
    return (timeseries.Panel().title(Text("Flows per slot, producer → consumer", "コマ別の融通（発電者 → 需要家）")(lang))
            .description(Text("kWh each producer gave each consumer per 30-minute slot (interchange_flow), stacked.",
                              "30分コマごとに各発電者が各需要家へ融通した kWh（interchange_flow）、積み上げ。")(lang))
            .datasource(DATASOURCE).with_target(InfluxQL(query).alias("$tag_from → $tag_to"))
            .unit(UNIT_KWH).draw_style(common_models.GraphDrawStyle.BARS).fill_opacity(70)
            .stacking(common_builders.StackingConfig().mode(common_models.StackingMode.NORMAL))
            .time_from("now/d").height(8).span(18))


def _provisional_today(lang: str) -> stat.Panel:
    query = (f'SELECT count("shared") AS "provisional slots" FROM (SELECT sum("supplied_kwh") AS "shared" '
             f'FROM {SLOTS} AND "provisional" = true AND $timeFilter GROUP BY time({SLOT}) fill(none))')
    return (stat.Panel().title(Text("Provisional slots today", "本日の暫定精算コマ")(lang))
            .description(Text("Slots settled before all meter data arrived (after the community's grace period). "
                              "They are re-settled when the late data comes; statements say provisional until then.",
                              "全メーターデータの到着前（コミュニティの猶予時間後）に精算したコマ。遅れたデータが届くと"
                              "再精算し、それまで明細は暫定と表示される。")(lang))
            .datasource(DATASOURCE).with_target(InfluxQL(query)).unit(UNIT_COUNT).decimals(0).time_from("now/d")
            .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]))
            .thresholds(thresholds((None, "green"), (1, PROVISIONAL_COLOUR)))
            .no_value("0").height(8).span(6))


def _month_per_participant(lang: str) -> table.Panel:
    totals = InfluxQL('SELECT sum("supplied_kwh") AS "supplied", sum("received_kwh") AS "received", '
                      f'sum("export_kwh") AS "exported", sum("grid_kwh") AS "grid import" FROM {SLOTS} AND $timeFilter '
                      'GROUP BY "site", "role"', "A").table()
    provisional = InfluxQL(f'SELECT count("supplied_kwh") AS "provisional slots" FROM {SLOTS} '
                           'AND "provisional" = true AND $timeFilter GROUP BY "site", "role"', "B").table()
    panel = (table.Panel().title(Text("Month to date per participant", "今月の参加者別累計")(lang))
             .description(Text("Since the 1st (JST): kWh supplied to the community (producers), received from it "
                               "(consumers), exported unused and bought from the grid, and how many of the "
                               "participant's slots are provisional. Statements with yen and CO2 avoided: "
                               "GET /api/interchange/communities/{id}/statements?month=YYYY-MM.",
                               "今月1日（日本時間）以降：コミュニティへの供給量（発電者）、受取量（需要家）、未利用の逆潮流、"
                               "系統からの購入、暫定精算のコマ数。金額と CO2 削減量つきの明細は "
                               "GET /api/interchange/communities/{id}/statements?month=YYYY-MM")(lang))
             .datasource(DATASOURCE).with_target(totals).with_target(provisional).time_from("now/M")
             .with_transformation(transformation("merge", {}))
             .with_transformation(transformation("organize", {"excludeByName": {"Time": True}}))
             .sort_by([common_builders.TableSortByFieldState().display_name("role").desc(True)])
             .height(8).span(12))
    for name in ("supplied", "received", "exported", "grid import"):
        panel = panel.override_by_name(name, [_prop("unit", UNIT_KWH), _prop("decimals", 1)])
    return panel.override_by_name("provisional slots", [
        _prop("decimals", 0), _prop("color", {"mode": "fixed", "fixedColor": PROVISIONAL_COLOUR}),
        _prop("custom.cellOptions", {"type": common_models.TableCellDisplayMode.COLOR_TEXT.value})])


def _received_gauge(lang: str) -> bargauge.Panel:
    query = (f'SELECT sum("received_kwh") AS "received" FROM {SLOTS} AND "role" = \'consumer\' AND $timeFilter '
             'GROUP BY "site"')
    return (bargauge.Panel().title(Text("Received this month per consumer", "今月の需要家別受取量")(lang))
            .description(Text("kWh of the producers' PV each consumer took since the 1st (JST).",
                              "今月1日（日本時間）以降に各需要家が受け取った発電者の PV の kWh。")(lang))
            .datasource(DATASOURCE).with_target(InfluxQL(query).alias("$tag_site")).unit(UNIT_KWH).decimals(0)
            .time_from("now/M").orientation(common_models.VizOrientation.HORIZONTAL)
            .display_mode(common_models.BarGaugeDisplayMode.GRADIENT)
            .reduce_options(common_builders.ReduceDataOptions().calcs(["sum"]))
            .height(8).span(12))


def _community_variable(lang: str) -> dash.QueryVariable:
    return (dash.QueryVariable("community").label(Text("Community", "コミュニティ")(lang)).datasource(DATASOURCE)
            .query('SHOW TAG VALUES FROM "interchange_slot" WITH KEY = "community"')
            .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED).sort(model.VariableSort.ALPHABETICAL_ASC))


def build(lang: str) -> dict:
    """The board as Grafana JSON, in ``lang`` ("en" or "ja")."""
    builder = (board(BASE_UID, lang, Text("Hinode: PV interchange", "Hinode：PV 融通"),
                     Text("A renewable interchange community: generation, consumption, sharing and export per "
                          "30-minute slot, flows from producers to consumers, the month per participant.",
                          "再エネ融通コミュニティ：30分コマごとの発電・消費・融通・逆潮流、発電者から需要家への流れ、"
                          "参加者別の今月の累計。"), ["interchange", "greencity"])
               .with_variable(_community_variable(lang))
               .with_panel(_today(lang))
               .with_panel(_flow_graph(lang))
               .with_panel(_flows_per_slot(lang))
               .with_panel(_provisional_today(lang))
               .with_panel(_month_per_participant(lang))
               .with_panel(_received_gauge(lang)))
    return to_json(builder.build())
