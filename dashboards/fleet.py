"""The **Fleet** board, for whoever runs the e-scooter and walking-speed mobility fleets: every vehicle
at its last position on a map with the zones drawn over it, open zone violations, recent fleet events
(MDS 2.0 names), battery per vehicle, trips per day and per vehicle, and vehicles available at each hub.

Names are those the ingest and the fleet domain write (cloud/domains/fleet/README.md):
- ``vehicle``: the ingest's telemetry (tags site, agent, device, fleet, vehicle_type; fields lat, lon,
  speed km/h, battery %, range m, state, ...), one point per fix;
- ``fleet_event`` (tags fleet, vehicle, vehicle_type, event_type, zone), ``fleet_violation`` (ts = the
  violation's start, rewritten at its end with ``open`` false), ``fleet_trip`` (ts = the trip's start)
  and ``fleet_hub`` (tags hub, hub_kind; every 5 minutes) from the fleet worker.

The zones layer is GeoJSON fetched by the viewer's browser from ``$zones_url`` (a constant, default the
API's public ``/public/fleet/zones.geojson`` of ``hinode up``: change it in the board's settings or the
exported JSON for another host; ``/api/fleet/zones`` needs a token, which Grafana's map layer cannot send).
Grafana interpolates variables in a GeoJSON layer's URL from version 12.0 (grafana/grafana#104587); an
older Grafana needs the URL written in. The basemap is Grafana's default (configured in Grafana).
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as dash, geomap, stat, table, timeseries
from grafana_foundation_sdk.models import common as common_models
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models import geomap as geomap_models

from dashboards.common import (
    DATASOURCE, OFFLINE_AFTER, UNIT_COUNT, UNIT_PERCENT, InfluxQL, Text, board, constant_variable, thresholds,
    transformation, to_json,
)

BASE_UID = "hinode-fleet"

FLEET = '"fleet" =~ /^$fleet$/'
VEHICLES = f'"vehicle" WHERE {FLEET}'
BATTERY_LOW_PCT = 15             # the fleet domain's default battery_low_pct
BATTERY_WARN_PCT = 30
ZONES_URL = "http://127.0.0.1:8080/public/fleet/zones.geojson"   # `hinode up`'s API; public, no token
HITACHI = (36.57, 140.64)        # between JR Hitachi and JR Omika: where the map opens
# Zone kinds (cloud/domains/fleet zones GeoJSON, property "kind") and their colours on the map.
ZONE_COLOURS = {"no_ride": "red", "no_parking": "orange", "station_parking": "blue", "slow": "yellow"}


def _at(x: int, y: int, w: int, h: int) -> model.GridPos:
    return model.GridPos(x=x, y=y, w=w, h=h)


def _column(name: str, unit: str | None = None, decimals: int | None = None,
            colour_text: bool = False) -> tuple[str, list[model.DynamicConfigValue]]:
    properties = []
    if unit is not None:
        properties.append(model.DynamicConfigValue(id_val="unit", value=unit))
    if decimals is not None:
        properties.append(model.DynamicConfigValue(id_val="decimals", value=decimals))
    if colour_text:      # red when true (1), green when false (0): booleans compare as numbers
        properties.append(model.DynamicConfigValue(
            id_val="custom.cellOptions", value={"type": common_models.TableCellDisplayMode.COLOR_TEXT.value}))
        properties.append(model.DynamicConfigValue(id_val="thresholds", value=thresholds(
            (None, "green"), (1, "red")).build()))
    return name, properties


def _with_columns(panel, *columns: tuple[str, list[model.DynamicConfigValue]]):
    for name, properties in columns:
        panel = panel.override_by_name(name, properties)
    return panel


def _battery_thresholds():
    return thresholds((None, "red"), (BATTERY_LOW_PCT, "orange"), (BATTERY_WARN_PCT, "green"))


def _zones_layer(lang: str) -> common_builders.MapLayerOptions:
    rules = [{"check": {"property": "kind", "operation": "eq", "value": kind},
              "style": {"color": {"fixed": colour}, "opacity": 0.35, "lineWidth": 1}}
             for kind, colour in ZONE_COLOURS.items()]
    return (common_builders.MapLayerOptions().type("geojson").name(Text("Zones", "ゾーン")(lang))
            .config({"src": "$zones_url", "rules": rules,
                     "style": {"color": {"fixed": "purple"}, "opacity": 0.25, "lineWidth": 1}})
            .tooltip(True))


def _vehicles_layer(lang: str) -> common_builders.MapLayerOptions:
    style = {"color": {"field": "battery", "fixed": "green"}, "opacity": 0.9, "size": {"fixed": 6},
             "symbol": {"mode": "fixed", "fixed": "img/icons/marker/circle.svg"},
             "text": {"mode": "field", "field": "device", "fixed": ""},
             "textConfig": {"fontSize": 9, "offsetY": -10, "textAlign": "center", "textBaseline": "bottom"}}
    location = (common_builders.FrameGeometrySource().mode(common_models.FrameGeometrySourceMode.COORDS)
                .latitude("lat").longitude("lon"))
    return (common_builders.MapLayerOptions().type("markers").name(Text("Vehicles", "車両")(lang))
            .config({"style": style, "showLegend": True}).location(location).tooltip(True))


def _map(lang: str) -> geomap.Panel:
    query = ('SELECT last("lat") AS "lat", last("lon") AS "lon", last("battery") AS "battery", '
             'last("state") AS "state", last("speed") AS "speed" '
             f'FROM {VEHICLES} AND $timeFilter GROUP BY "device", "vehicle_type"')
    lat, lon = HITACHI
    return (geomap.Panel().title(Text("Vehicles and zones", "車両とゾーン")(lang))
            .description(Text(
                "Each vehicle at its newest position (measurement vehicle, last lat/lon per device in the range), "
                "coloured by battery (red below 15 %, orange below 30 %); zones from $zones_url coloured by kind: "
                "no-ride red, no-parking orange, station parking blue, slow yellow.",
                "各車両の最新位置（vehicle 計測、範囲内の機器ごとの最後の緯度経度）。色は電池残量（15 % 未満は赤、30 % 未満は橙）。"
                "ゾーンは $zones_url から取得し種類で色分け：走行禁止は赤、駐車禁止は橙、駅前指定駐車は青、徐行は黄。")(lang))
            .datasource(DATASOURCE).with_target(InfluxQL(query).table())
            .with_transformation(transformation("organize", {"excludeByName": {"Time": True}}))
            .view(geomap.MapViewConfig().id("coords").lat(lat).lon(lon).zoom(13))
            .controls(geomap.ControlsOptions().show_zoom(True).mouse_wheel_zoom(True).show_scale(True))
            .layers([_zones_layer(lang), _vehicles_layer(lang)])
            .basemap(common_builders.MapLayerOptions().type("default").name(Text("Basemap", "背景地図")(lang)))
            .tooltip(geomap.TooltipOptions().mode(geomap_models.TooltipMode.DETAILS))
            .thresholds(_battery_thresholds())
            .override_by_name("battery", [model.DynamicConfigValue(id_val="unit", value=UNIT_PERCENT)])
            .override_by_name("speed", [model.DynamicConfigValue(id_val="unit", value="velocitykmh")])
            .grid_pos(_at(0, 0, 16, 14)))


def _count_stat(lang: str, position: model.GridPos, title: Text, description: Text, query: str,
                time_from: str | None = None, colours=None) -> stat.Panel:
    panel = (stat.Panel().title(title(lang)).description(description(lang)).datasource(DATASOURCE)
             .with_target(InfluxQL(query)).unit(UNIT_COUNT).decimals(0).no_value("0")
             .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]))
             .thresholds(colours or thresholds((None, "green"))).grid_pos(position))
    return panel.time_from(time_from) if time_from else panel


def _online(lang: str) -> stat.Panel:
    return _count_stat(
        lang, _at(16, 0, 4, 7), Text("Vehicles reporting", "通信中の車両"),
        Text("Vehicles with a fix in the last $offline_after.", "直近 $offline_after に位置を送った車両の数。"),
        f'SELECT count("b") AS "vehicles" FROM (SELECT last("lat") AS "b" FROM {VEHICLES} '
        'AND time > now() - $offline_after GROUP BY "device")')


def _low_battery(lang: str) -> stat.Panel:
    return _count_stat(
        lang, _at(20, 0, 4, 7), Text("Low battery", "電池残量低下"),
        Text(f"Vehicles whose newest battery reading (last 24 h) is below {BATTERY_LOW_PCT} %: swap these.",
             f"直近24時間の最新の電池残量が {BATTERY_LOW_PCT} % 未満の車両：交換対象。"),
        f'SELECT count("b") AS "vehicles" FROM (SELECT last("battery") AS "b" FROM {VEHICLES} '
        f'AND $timeFilter GROUP BY "device") WHERE "b" < {BATTERY_LOW_PCT}', "now-24h",
        thresholds((None, "green"), (1, "orange")))


def _open_violations_count(lang: str) -> stat.Panel:
    return _count_stat(
        lang, _at(16, 7, 4, 7), Text("Violations open now", "継続中の違反数"),
        Text("Zone violations started in the last 7 days that have not ended.",
             "直近7日間に始まり、まだ終わっていないゾーン違反の数。"),
        f'SELECT count("violation_id") AS "open" FROM "fleet_violation" WHERE {FLEET} AND "open" = true '
        'AND $timeFilter', "7d", thresholds((None, "green"), (1, "red")))


def _trips_today(lang: str) -> stat.Panel:
    return _count_stat(
        lang, _at(20, 7, 4, 7), Text("Trips today", "本日の利用回数"),
        Text("Trips started since midnight (JST).", "本日0時（日本時間）以降に始まった利用の数。"),
        f'SELECT count("duration_s") AS "trips" FROM "fleet_trip" WHERE {FLEET} AND $timeFilter', "now/d")


def _open_violations(lang: str) -> table.Panel:
    query = ('SELECT "violation_id", "start_ms", "max_speed_kmh" AS "max km/h", "lat", "lon" '
             f'FROM "fleet_violation" WHERE {FLEET} AND "open" = true AND $timeFilter '
             'GROUP BY "vehicle", "zone", "violation_kind"')
    panel = (table.Panel().title(Text("Open violations", "継続中のゾーン違反")(lang))
             .description(Text("Violations that started in the last 7 days and have not ended: vehicle, zone, kind "
                               "(speeding, no_ride, no_parking, station_parking), start, top speed. Ended ones are "
                               "rewritten with open = false and drop out.",
                               "直近7日間に始まり継続中の違反：車両・ゾーン・種類（速度超過・走行禁止・駐車禁止・指定外駐車）・"
                               "開始時刻・最高速度。終了した違反は open = false で上書きされ表から消える。")(lang))
             .datasource(DATASOURCE).with_target(InfluxQL(query).table()).time_from("7d")
             .with_transformation(transformation("organize", {
                 "excludeByName": {"start_ms": True, "violation_id": True},
                 "renameByName": {"Time": Text("Since", "開始")(lang), "violation_kind": "kind"}}))
             .sort_by([common_builders.TableSortByFieldState().display_name(Text("Since", "開始")(lang)).desc(True)])
             .grid_pos(_at(0, 14, 8, 9)))
    return _with_columns(panel, _column("max km/h", None, 1), _column("lat", None, 5),
                         _column("lon", None, 5))


def _events(lang: str) -> table.Panel:
    query = ('SELECT "vehicle", "event_type", "zone", "vehicle_state", "battery_pct" AS "battery", "detail" '
             f'FROM "fleet_event" WHERE {FLEET} AND $timeFilter ORDER BY time DESC LIMIT 100')
    panel = (table.Panel().title(Text("Recent events", "最近のイベント")(lang))
             .description(Text("The newest 100 fleet events: MDS 2.0 event types (trip_start, battery_low, "
                               "comms_lost, ...) and our extensions (zone_enter, violation_start, tipped_over, ...), "
                               "with the vehicle state after the event. GET /api/fleet/events filters by vehicle, "
                               "zone and time.",
                               "最新100件のフリートイベント：MDS 2.0 のイベント種別（trip_start、battery_low、comms_lost など）と"
                               "独自拡張（zone_enter、violation_start、tipped_over など）、イベント後の車両状態。"
                               "GET /api/fleet/events で車両・ゾーン・期間を指定して取得できる。")(lang))
             .datasource(DATASOURCE).with_target(InfluxQL(query).table())
             .with_transformation(transformation("organize", {"renameByName": {
                 "Time": Text("Time", "時刻")(lang), "event_type": "event", "vehicle_state": "state"}}))
             .grid_pos(_at(8, 14, 16, 9)))
    return _with_columns(panel, _column("battery", UNIT_PERCENT, 0))


def _battery(lang: str) -> timeseries.Panel:
    query = (f'SELECT mean("battery") AS "battery" FROM {VEHICLES} AND $timeFilter '
             'GROUP BY time($__interval), "device" fill(none)')
    return (timeseries.Panel().title(Text("Battery per vehicle", "車両別の電池残量")(lang))
            .description(Text(f"Mean battery % per interval; the line at {BATTERY_LOW_PCT} % is the low-battery "
                              "alert. A jump up is a battery swap.",
                              f"区間平均の電池残量（%）。{BATTERY_LOW_PCT} % が電池残量低下の基準。急な上昇は電池交換。")(lang))
            .datasource(DATASOURCE).with_target(InfluxQL(query).alias("$tag_device"))
            .unit(UNIT_PERCENT).min(0).max(100).thresholds(_battery_thresholds())
            .thresholds_style(common_builders.GraphThresholdsStyleConfig().mode(
                common_models.GraphTresholdsStyleMode.LINE))
            .grid_pos(_at(0, 23, 8, 9)))


def _trips_per_day(lang: str) -> timeseries.Panel:
    query = ('SELECT count("duration_s") AS "trips", sum("distance_m") / 1000 AS "km" '
             f'FROM "fleet_trip" WHERE {FLEET} AND $timeFilter GROUP BY time(1d) fill(0) tz(\'Asia/Tokyo\')')
    return (timeseries.Panel().title(Text("Trips per day", "日別の利用回数")(lang))
            .description(Text("Trips started per day (JST) and the distance ridden, last 30 days.",
                              "日本時間の日ごとの利用開始数と走行距離（直近30日間）。")(lang))
            .datasource(DATASOURCE).with_target(InfluxQL(query).alias("$col")).time_from("now-30d/d")
            .draw_style(common_models.GraphDrawStyle.BARS).fill_opacity(60).grid_pos(_at(8, 23, 8, 9)))


def _per_vehicle(lang: str) -> table.Panel:
    query = ('SELECT count("duration_s") AS "trips", sum("distance_m") / 1000 AS "km", '
             'sum("duration_s") / 3600 AS "hours", max("max_speed_kmh") AS "top km/h" '
             f'FROM "fleet_trip" WHERE {FLEET} AND $timeFilter GROUP BY "vehicle"')
    panel = (table.Panel().title(Text("Utilisation per vehicle (7 days)", "車両別の稼働（7日間）")(lang))
             .description(Text("Trips, distance, hours on trip and top speed per vehicle over the last 7 days; "
                               "a vehicle missing here made no trip.",
                               "直近7日間の車両別の利用回数・走行距離・利用時間・最高速度。表にない車両は利用なし。")(lang))
             .datasource(DATASOURCE).with_target(InfluxQL(query).table()).time_from("7d")
             .with_transformation(transformation("organize", {"excludeByName": {"Time": True}}))
             .sort_by([common_builders.TableSortByFieldState().display_name("trips").desc(True)])
             .grid_pos(_at(16, 23, 8, 9)))
    return _with_columns(panel, _column("trips", UNIT_COUNT, 0), _column("km", None, 1),
                         _column("hours", None, 1), _column("top km/h", None, 1))


def _hubs(lang: str) -> table.Panel:
    query = ('SELECT last("available") AS "available", last("nearest_m") AS "nearest m", last("gap") AS "gap" '
             'FROM "fleet_hub" WHERE $timeFilter GROUP BY "hub", "hub_kind"')
    gap = model.ValueMap(options={"true": model.ValueMappingResult(color="red", text=Text("gap", "空白")(lang), index=0),
                                  "false": model.ValueMappingResult(color="green", text="ok", index=1)})
    panel = (table.Panel().title(Text("Vehicles available at hubs", "拠点周辺の利用可能台数")(lang))
             .description(Text("Per hub (JR stations, bus stops, hillside estates): vehicles available within the "
                               "walking radius at the newest check in the range (every 5 minutes), the nearest one's distance, and "
                               "a coverage gap when none is in reach.",
                               "拠点（JR駅・バス停・丘陵の団地）ごとの徒歩圏内の利用可能台数（5分ごと）、最寄り車両までの距離、"
                               "圏内に1台もない場合の空白。")(lang))
             .datasource(DATASOURCE).with_target(InfluxQL(query).table())
             .with_transformation(transformation("organize", {"excludeByName": {"Time": True},
                                                              "renameByName": {"hub_kind": "kind"}}))
             .mappings([gap]).sort_by([common_builders.TableSortByFieldState().display_name("available")])
             .grid_pos(_at(0, 32, 8, 9)))
    return _with_columns(panel, _column("available", UNIT_COUNT, 0), _column("nearest m", None, 0),
                         _column("gap", colour_text=True))


def _hub_history(lang: str) -> timeseries.Panel:
    query = ('SELECT mean("available") AS "available" FROM "fleet_hub" WHERE $timeFilter '
             'GROUP BY time($__interval), "hub" fill(none)')
    return (timeseries.Panel().title(Text("Availability per hub", "拠点別の利用可能台数の推移")(lang))
            .description(Text("Vehicles available within the walking radius of each hub; a line at 0 during the "
                              "morning peak (07:00–09:00) is an estate left without a vehicle.",
                              "各拠点の徒歩圏内の利用可能台数。朝のピーク（7〜9時）に0の拠点は車両のない空白地帯。")(lang))
            .datasource(DATASOURCE).with_target(InfluxQL(query).alias("$tag_hub"))
            .unit(UNIT_COUNT).min(0).grid_pos(_at(8, 32, 16, 9)))


def build(lang: str) -> dict:
    """The board as Grafana JSON, in ``lang`` ("en" or "ja")."""
    builder = (board(BASE_UID, lang, Text("Hinode: mobility fleet", "Hinode：モビリティ車両"),
                     Text("E-scooters and walking-speed mobility: positions, zones and violations, events, battery, "
                          "trips and hub availability.",
                          "電動キックボード・低速モビリティ：位置・ゾーンと違反・イベント・電池・利用・拠点の利用可能台数。"),
                     ["fleet", "mobility"])
               .time("now-6h", "now")
               .with_variable(_fleet_variable(lang))
               .with_variable(constant_variable("offline_after", OFFLINE_AFTER,
                                                "no fix for this long counts as not reporting"))
               .with_variable(constant_variable("zones_url", ZONES_URL,
                                                "GeoJSON of the zones the map draws (the fleet API's public /public/fleet/zones.geojson)"))
               .with_panel(_map(lang))
               .with_panel(_online(lang))
               .with_panel(_low_battery(lang))
               .with_panel(_open_violations_count(lang))
               .with_panel(_trips_today(lang))
               .with_panel(_open_violations(lang))
               .with_panel(_events(lang))
               .with_panel(_battery(lang))
               .with_panel(_trips_per_day(lang))
               .with_panel(_per_vehicle(lang))
               .with_panel(_hubs(lang))
               .with_panel(_hub_history(lang)))
    return to_json(builder.build())


def _fleet_variable(lang: str) -> dash.QueryVariable:
    return (dash.QueryVariable("fleet").label(Text("Fleet", "事業者")(lang)).datasource(DATASOURCE)
            .query('SHOW TAG VALUES FROM "vehicle" WITH KEY = "fleet"')
            .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED).sort(model.VariableSort.ALPHABETICAL_ASC))
