// The fleet view: every vehicle live on a map drawn from the data (zones by kind, hubs with the vehicles
// available within walking distance, vehicles by state and battery), with the operator's alerts, the open
// zone violations and the recent events beside it. Polls the fleet API every 2 s; no request leaves the
// API's origin unless a tile URL is given (?tiles=https://tiles.example/{z}/{x}/{y}.png).
"use strict";

const REFRESH_MS = 2000;
const ZONES_EVERY = 30;          // refreshes between zone reloads (zones change rarely)
const EVENTS_LIMIT = 30;
const DEFAULT_BATTERY_LOW_PCT = 15;
const $ = (selector) => document.querySelector(selector);
const errorBox = $("[data-role=error]");
const params = new URLSearchParams(location.search);

GC.addStrings({
  "title": { en: "Mobility fleet", ja: "モビリティ車両" },
  "subtitle": { en: "E-scooters and walking-speed mobility, live every 2 s", ja: "電動キックボードと低速モビリティ（2秒ごとに更新）" },
  "nav.live": { en: "Live board", ja: "ライブ" }, "nav.co2": { en: "CO2", ja: "CO2" },
  "nav.interchange": { en: "Interchange", ja: "電力融通" }, "nav.fleet": { en: "Fleet", ja: "車両" },
  "nav.care": { en: "Care", ja: "ケア" },
  "pick.fleet": { en: "Fleet", ja: "事業者" }, "fleet.all": { en: "All fleets", ja: "すべての事業者" },
  "count.vehicles": { en: "Vehicles", ja: "車両" }, "count.online": { en: "Online", ja: "通信中" },
  "count.on_trip": { en: "On trip", ja: "利用中" }, "count.available": { en: "Available", ja: "利用可能" },
  "count.violations": { en: "Open violations", ja: "継続中の違反" },
  "h.map": { en: "Map", ja: "地図" }, "h.alerts": { en: "Alerts", ja: "アラート" },
  "h.violations": { en: "Open violations", ja: "継続中のゾーン違反" }, "h.events": { en: "Recent events", ja: "最近のイベント" },
  "col.vehicle": { en: "Vehicle", ja: "車両" }, "col.kind": { en: "Kind", ja: "種類" }, "col.zone": { en: "Zone", ja: "ゾーン" },
  "col.since": { en: "Since", ja: "開始" }, "col.duration": { en: "Duration", ja: "継続時間" },
  "col.time": { en: "Time", ja: "時刻" }, "col.event": { en: "Event", ja: "イベント" },
  "col.where": { en: "Zone / detail", ja: "ゾーン・詳細" },
  "footer.refresh": { en: "refreshed every 2 s", ja: "2秒ごとに更新" },
  "footer.offline": { en: "map drawn from the data: no map tiles unless configured (?tiles=)",
    ja: "地図はデータから描画（?tiles= を指定しない限り地図タイルは読み込みません）" },
  "updated": { en: "Updated {time}", ja: "{time} 更新" },
  "none.alerts": { en: "No alerts.", ja: "アラートはありません。" },
  "none.violations": { en: "No open violations.", ja: "継続中の違反はありません。" },
  "none.events": { en: "No events yet.", ja: "イベントはまだありません。" },
  "none.vehicles": { en: "No vehicle has reported yet.", ja: "まだ位置を送った車両はありません。" },
  "unavailable": { en: "Not available: {detail}", ja: "取得できません: {detail}" },
  "tiles.on": { en: "Map tiles: {host}", ja: "地図タイル: {host}" },
  "legend.hub": { en: "Hub (vehicles within walking distance)", ja: "拠点（徒歩圏内の台数）" },
  "legend.gap": { en: "Coverage gap", ja: "空白（徒歩圏内に車両なし）" },
  "legend.battery_low": { en: "Battery low (ring)", ja: "電池残量低下（外周）" },
  "legend.tipped": { en: "! tipped over", ja: "! 転倒" }, "legend.offline": { en: "× comms lost", ja: "× 通信途絶" },
  "legend.slow": { en: "■ walking-speed mobility", ja: "■ 低速モビリティ" },
  "close": { en: "Close", ja: "閉じる" },
  "d.fleet": { en: "Fleet", ja: "事業者" }, "d.type": { en: "Type", ja: "車種" }, "d.state": { en: "State", ja: "状態" },
  "d.speed": { en: "Speed", ja: "速度" }, "d.battery": { en: "Battery", ja: "電池" }, "d.range": { en: "Range", ja: "航続距離" },
  "d.last_fix": { en: "Last fix", ja: "最終受信" }, "d.zones": { en: "In zones", ja: "滞在ゾーン" },
  "d.mode": { en: "Driving mode", ja: "走行モード" }, "d.passenger": { en: "Passenger", ja: "乗客" },
  "d.trips": { en: "Trips", ja: "利用回数" }, "d.last_event": { en: "Last event", ja: "最後のイベント" },
  "d.kind": { en: "Kind", ja: "種類" }, "d.max_speed": { en: "Max speed", ja: "制限速度" },
  "d.available": { en: "Available within reach", ja: "徒歩圏内の利用可能台数" }, "d.nearest": { en: "Nearest vehicle", ja: "最寄りの車両" },
  "d.capacity": { en: "Capacity", ja: "収容台数" }, "yes": { en: "yes", ja: "あり" }, "no": { en: "no", ja: "なし" },
  "offline": { en: "comms lost", ja: "通信途絶" }, "tipped": { en: "tipped over", ja: "転倒" },
  "ago.s": { en: "{n} s", ja: "{n}秒" }, "ago.m": { en: "{n} min", ja: "{n}分" }, "ago.h": { en: "{h} h {m} min", ja: "{h}時間{m}分" },
  // MDS 2.0 vehicle states
  "state.available": { en: "available", ja: "利用可能" }, "state.on_trip": { en: "on trip", ja: "利用中" },
  "state.reserved": { en: "reserved", ja: "予約済み" }, "state.non_operational": { en: "non-operational", ja: "運用停止" },
  "state.stopped": { en: "stopped", ja: "一時停止" }, "state.non_contactable": { en: "non-contactable", ja: "通信不能" },
  "state.missing": { en: "missing", ja: "所在不明" }, "state.removed": { en: "removed", ja: "撤去" },
  "state.elsewhere": { en: "elsewhere", ja: "区域外" }, "state.unknown": { en: "unknown", ja: "不明" },
  "zone.no_ride": { en: "no riding", ja: "走行禁止" }, "zone.no_parking": { en: "no parking", ja: "駐車禁止" },
  "zone.station_parking": { en: "station parking only", ja: "指定場所のみ駐車可" }, "zone.slow": { en: "slow zone", ja: "徐行区域" },
  "type.escooter": { en: "e-scooter", ja: "電動キックボード" }, "type.slowmobility": { en: "walking-speed mobility", ja: "低速モビリティ" },
  "violation.speeding": { en: "speeding", ja: "速度超過" }, "violation.no_ride": { en: "riding in a no-ride zone", ja: "走行禁止区域の走行" },
  "violation.no_parking": { en: "parked in a no-parking zone", ja: "駐車禁止区域での駐車" },
  "violation.station_parking": { en: "parked outside station parking", ja: "指定場所以外での駐車" },
  "alert.battery_low": { en: "battery low", ja: "電池残量低下" }, "alert.comms_lost": { en: "comms lost", ja: "通信途絶" },
  "alert.tipped_over": { en: "tipped over", ja: "転倒" }, "alert.idle_too_long": { en: "idle too long", ja: "長時間放置" },
  "alert.violation": { en: "zone violation", ja: "ゾーン違反" },
  "event.trip_start": { en: "trip start", ja: "利用開始" }, "event.trip_end": { en: "trip end", ja: "利用終了" },
  "event.battery_low": { en: "battery low", ja: "電池残量低下" }, "event.battery_charged": { en: "battery charged", ja: "充電完了" },
  "event.comms_lost": { en: "comms lost", ja: "通信途絶" }, "event.comms_restored": { en: "comms restored", ja: "通信回復" },
  "event.maintenance": { en: "maintenance", ja: "整備" }, "event.unspecified": { en: "other", ja: "その他" },
  "event.zone_enter": { en: "zone entered", ja: "ゾーン進入" }, "event.zone_exit": { en: "zone left", ja: "ゾーン退出" },
  "event.violation_start": { en: "violation started", ja: "違反開始" }, "event.violation_end": { en: "violation ended", ja: "違反終了" },
  "event.tipped_over": { en: "tipped over", ja: "転倒" }, "event.righted": { en: "righted", ja: "転倒から復帰" },
  "event.idle_too_long": { en: "idle too long", ja: "長時間放置" }, "event.emergency_stop": { en: "emergency stop", ja: "非常停止" },
  "event.obstacle": { en: "obstacle", ja: "障害物検知" },
});

const STATES = ["available", "on_trip", "reserved", "stopped", "non_operational", "non_contactable", "missing"];
const ZONE_KINDS = ["no_ride", "no_parking", "station_parking", "slow"];
const BAD_EVENTS = new Set(["violation_start", "tipped_over", "emergency_stop", "comms_lost", "battery_low", "obstacle", "idle_too_long"]);
const GOOD_EVENTS = new Set(["violation_end", "righted", "comms_restored", "battery_charged"]);

// Only an http(s) URL template is used for tiles; anything else is ignored (no request at all).
function tileTemplate(raw) {
  if (!raw) return null;
  try {
    const url = new URL(raw.replace(/[{}]/g, ""));
    return ["http:", "https:"].includes(url.protocol) ? raw : null;
  } catch (_) { return null; }
}

const state = {
  fleet: params.get("fleet") ?? "", tiles: tileTemplate(params.get("tiles")), polls: 0, fleets: new Set(),
  vehicles: [], zones: [], hubs: [], events: [], violations: [], alerts: [], failed: {},
  lowPct: DEFAULT_BATTERY_LOW_PCT, bounds: FleetMap.emptyBounds(), selected: null,
};

// ---------------------------------------------------------------- the API's answers, tolerantly read

const listOf = (body, key) => (Array.isArray(body) ? body : body?.[key] ?? []);
const label = (key, fallback) => (GC.has(key) ? GC.t(key) : fallback);
function named(thing) {
  const name = thing?.name;
  if (name && typeof name === "object") return name[GC.lang] ?? name.en ?? name.ja ?? thing.id;
  return name ?? thing?.id ?? "";
}
function hubOf(raw) {
  const coverage = raw.coverage ?? {};
  const available = raw.available ?? coverage.available ?? null;
  return { ...raw, available, nearest_m: raw.nearest_m ?? coverage.nearest_m ?? null,
    gap: raw.gap ?? coverage.gap ?? (available === 0) };
}
const zoneId = (x) => x.zone ?? x.zone_id ?? "";
const tsOf = (x) => x.ts_ms ?? x.ts ?? x.time ?? null;
const violationKind = (v) => v.violation_kind ?? v.kind ?? "";
const key = (v) => `${v.fleet}/${v.vehicle}`;
function zoneName(id) {
  const zone = state.zones.find((f) => f.properties?.id === id);
  return zone ? named(zone.properties) : id;
}

// ---------------------------------------------------------------- formatting

function clock(ms) {
  if (ms === null || ms === undefined) return "–";
  return new Date(ms).toLocaleTimeString(GC.lang === "ja" ? "ja-JP" : "en-GB", { timeZone: "Asia/Tokyo", hour12: false });
}
function duration(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return GC.t("ago.s", { n: s });
  if (s < 3600) return GC.t("ago.m", { n: Math.floor(s / 60) });
  return GC.t("ago.h", { h: Math.floor(s / 3600), m: Math.floor((s % 3600) / 60) });
}
const pct = (v) => (v === null || v === undefined ? "–" : `${GC.num(v, 0)} %`);
const metres = (v) => (v === null || v === undefined ? "–" : v >= 1000 ? `${GC.num(v / 1000, 1)} km` : `${GC.num(v, 0)} m`);

function describeVehicle(v) {
  const parts = [`${v.vehicle} (${label(`type.${v.vehicle_type}`, v.vehicle_type ?? "")})`,
    label(`state.${v.state}`, v.state ?? ""), `${GC.t("d.battery")} ${pct(v.battery_pct)}`,
    `${GC.t("d.speed")} ${GC.num(v.speed_kmh ?? null, 1)} km/h`];
  if (v.tipped_over) parts.push(GC.t("tipped"));
  if (v.online === false) parts.push(GC.t("offline"));
  return parts.join(" · ");
}
function describeZone(props) {
  const limit = props.max_speed_kmh ? ` · ${GC.t("d.max_speed")} ${props.max_speed_kmh} km/h` : "";
  return `${named(props)} (${label(`zone.${props.kind}`, props.kind ?? "")})${limit}`;
}
function describeHub(hub) {
  return `${named(hub)}: ${GC.t("d.available")} ${hub.available ?? "–"} · ${GC.t("d.nearest")} ${metres(hub.nearest_m)}`;
}

// ---------------------------------------------------------------- rendering

function visible(list) { return state.fleet ? list.filter((x) => x.fleet === state.fleet) : list; }

function renderPicker() {
  const select = $("[data-role=fleet]");
  const options = [["", GC.t("fleet.all")], ...[...state.fleets].sort().map((f) => [f, f])];
  if (state.fleet && !state.fleets.has(state.fleet)) options.push([state.fleet, state.fleet]);
  select.replaceChildren(...options.map(([value, text]) => GC.el("option", { value, selected: value === state.fleet }, text)));
}

function renderCounts(vehicles) {
  const set = (name, value) => { $(`[data-stat=${name}]`).textContent = String(value); };
  set("vehicles", vehicles.length);
  set("online", vehicles.filter((v) => v.online !== false).length);
  set("on_trip", vehicles.filter((v) => v.state === "on_trip").length);
  set("available", vehicles.filter((v) => v.state === "available").length);
  set("violations", visible(state.violations).length);
}

function renderLegend() {
  const box = $("[data-role=legend]");
  box.replaceChildren();
  const item = (cls, text) => {
    const entry = GC.el("span", { class: "legend-item" });
    entry.append(GC.el("span", { class: `swatch ${cls}` }), GC.el("span", {}, text));
    box.append(entry);
  };
  for (const kind of ZONE_KINDS) item(`zone-${kind}`, GC.t(`zone.${kind}`));
  for (const s of STATES) item(`state-${s}`, GC.t(`state.${s}`));
  item("battery-low", GC.t("legend.battery_low"));
  item("hub", GC.t("legend.hub"));
  item("hub-gap", GC.t("legend.gap"));
  for (const k of ["legend.slow", "legend.tipped", "legend.offline"]) box.append(GC.el("span", { class: "legend-item" }, GC.t(k)));
}

function emptyRow(tbody, columns, text) {
  const row = GC.el("tr", { class: "empty-row" });
  row.append(GC.el("td", { colSpan: columns }, text));
  tbody.append(row);
}

function failedNote(container, name, columns) {
  const error = state.failed[name];
  if (!error) return false;
  const text = GC.t("unavailable", { detail: error.message });
  if (columns) emptyRow(container, columns, text);
  else container.append(GC.el("li", { class: "empty" }, text));
  return true;
}

function selectable(node, fleet, vehicle) {
  node.dataset.select = `${fleet}/${vehicle}`;
  node.tabIndex = 0;
}

function renderAlerts() {
  const list = $("[data-role=alerts]");
  list.replaceChildren();
  const alerts = visible(state.alerts);
  $("[data-role=alerts-count]").textContent = alerts.length ? `(${alerts.length})` : "";
  if (failedNote(list, "alerts")) return;
  if (!alerts.length) { list.append(GC.el("li", { class: "empty" }, GC.t("none.alerts"))); return; }
  for (const a of alerts) {
    const li = GC.el("li", { "data-kind": a.kind, "data-vehicle": a.vehicle });
    const since = a.since_ms ? duration(Date.now() - a.since_ms) : "";
    const what = a.kind === "violation" ? `${label(`violation.${violationKind(a)}`, violationKind(a))} · ${zoneName(zoneId(a))}`
      : a.kind === "battery_low" ? pct(a.battery_pct) : "";
    li.append(GC.el("strong", {}, a.vehicle), GC.el("span", { class: "fl-kind" }, label(`alert.${a.kind}`, a.kind)),
      GC.el("span", {}, what), GC.el("span", { class: "fl-age" }, since));
    selectable(li, a.fleet, a.vehicle);
    list.append(li);
  }
}

function renderViolations() {
  const tbody = $("[data-role=violations] tbody");
  tbody.replaceChildren();
  const rows = visible(state.violations);
  $("[data-role=violations-count]").textContent = rows.length ? `(${rows.length})` : "";
  if (failedNote(tbody, "violations", 5)) return;
  if (!rows.length) { emptyRow(tbody, 5, GC.t("none.violations")); return; }
  for (const v of [...rows].sort((a, b) => (a.start_ms ?? 0) - (b.start_ms ?? 0))) {
    const row = GC.el("tr", { "data-violation": v.violation_id ?? "", "data-kind": violationKind(v) });
    row.append(GC.el("td", {}, v.vehicle), GC.el("td", {}, label(`violation.${violationKind(v)}`, violationKind(v))),
      GC.el("td", {}, zoneName(zoneId(v))), GC.el("td", {}, clock(v.start_ms)),
      GC.el("td", { class: "num", "data-role": "duration" }, v.start_ms ? duration(Date.now() - v.start_ms) : "–"));
    selectable(row, v.fleet, v.vehicle);
    tbody.append(row);
  }
}

function renderEvents() {
  const tbody = $("[data-role=events] tbody");
  tbody.replaceChildren();
  if (failedNote(tbody, "events", 4)) return;
  const events = [...visible(state.events)].sort((a, b) => (tsOf(b) ?? 0) - (tsOf(a) ?? 0)).slice(0, EVENTS_LIMIT);
  if (!events.length) { emptyRow(tbody, 4, GC.t("none.events")); return; }
  for (const e of events) {
    const tone = BAD_EVENTS.has(e.event_type) ? "bad" : GOOD_EVENTS.has(e.event_type) ? "good" : "";
    const row = GC.el("tr", { "data-event": e.event_type, "data-tone": tone });
    const where = [zoneId(e) ? zoneName(zoneId(e)) : "", e.detail ?? ""].filter(Boolean).join(" · ");
    row.append(GC.el("td", {}, clock(tsOf(e))), GC.el("td", {}, e.vehicle),
      GC.el("td", { class: "fl-event" }, label(`event.${e.event_type}`, e.event_type)), GC.el("td", {}, where));
    selectable(row, e.fleet, e.vehicle);
    tbody.append(row);
  }
}

function detailRows(pairs) {
  const dl = GC.el("dl");
  for (const [name, value] of pairs) {
    if (value === undefined) continue;
    dl.append(GC.el("dt", {}, GC.t(name)), GC.el("dd", {}, value === null ? "–" : String(value)));
  }
  return dl;
}

function renderDetails() {
  const box = $("[data-role=details]");
  const sel = state.selected;
  let title = null, dl = null;
  if (sel?.type === "vehicle") {
    const v = state.vehicles.find((x) => key(x) === sel.id);
    if (v) {
      title = v.vehicle;
      dl = detailRows([["d.fleet", v.fleet], ["d.type", label(`type.${v.vehicle_type}`, v.vehicle_type)],
        ["d.state", label(`state.${v.state}`, v.state) + (v.tipped_over ? ` · ${GC.t("tipped")}` : "") + (v.online === false ? ` · ${GC.t("offline")}` : "")],
        ["d.speed", `${GC.num(v.speed_kmh ?? null, 1)} km/h`], ["d.battery", pct(v.battery_pct)], ["d.range", metres(v.range_m)],
        ["d.last_fix", v.ts_ms ? `${clock(v.ts_ms)} (${duration(Date.now() - v.ts_ms)})` : null],
        ["d.zones", (v.zones ?? []).map(zoneName).join(", ") || "–"],
        ["d.mode", v.driving_mode ?? undefined], ["d.passenger", v.passenger === undefined || v.passenger === null ? undefined : GC.t(v.passenger ? "yes" : "no")],
        ["d.trips", v.trip_count ?? undefined], ["d.last_event", v.last_event_type ? label(`event.${v.last_event_type}`, v.last_event_type) : undefined]]);
    }
  } else if (sel?.type === "zone") {
    const zone = state.zones.find((f) => f.properties?.id === sel.id);
    if (zone) {
      title = named(zone.properties);
      dl = detailRows([["d.kind", label(`zone.${zone.properties.kind}`, zone.properties.kind)],
        ["d.max_speed", zone.properties.max_speed_kmh ? `${zone.properties.max_speed_kmh} km/h` : undefined]]);
    }
  } else if (sel?.type === "hub") {
    const hub = state.hubs.find((h) => h.id === sel.id);
    if (hub) {
      title = named(hub);
      dl = detailRows([["d.available", hub.available], ["d.nearest", metres(hub.nearest_m)], ["d.capacity", hub.capacity ?? undefined]]);
    }
  }
  box.hidden = !title;
  box.replaceChildren();
  if (!title) return;
  const close = GC.el("button", { type: "button", class: "fl-close", "aria-label": GC.t("close") }, "×");
  close.addEventListener("click", () => { state.selected = null; renderAll(); });
  box.dataset.selected = sel.id;
  box.append(close, GC.el("h3", {}, title), dl);
}

function renderMap() {
  const vehicles = visible(state.vehicles);
  FleetMap.draw($("[data-role=map]"), { zones: state.zones, hubs: state.hubs, vehicles }, {
    bounds: state.bounds, tiles: state.tiles, lowPct: state.lowPct,
    selected: state.selected?.type === "vehicle" ? state.selected.id : null,
    describe: { zone: describeZone, hub: describeHub, vehicle: describeVehicle }, hubLabel: named,
  });
  const note = $("[data-role=map-note]");
  note.textContent = !vehicles.length ? GC.t("none.vehicles")
    : state.tiles ? GC.t("tiles.on", { host: new URL(state.tiles.replace(/[{}]/g, "")).host }) : "";
}

function renderAll() {
  renderPicker();
  renderCounts(visible(state.vehicles));
  renderLegend();
  renderMap();
  renderAlerts();
  renderViolations();
  renderEvents();
  renderDetails();
}

// ---------------------------------------------------------------- loading

async function optional(name, path, apply) {
  try {
    apply(await GC.getJSON(path));
    delete state.failed[name];
  } catch (error) {
    if (error instanceof GC.ApiError && [401, 403].includes(error.status)) throw error;
    state.failed[name] = error;
  }
}

async function load() {
  try {
    const fleetParam = state.fleet ? `&fleet=${encodeURIComponent(state.fleet)}` : "";
    const vehicles = GC.getJSON("/api/fleet/vehicles").then((body) => {
      state.vehicles = listOf(body, "vehicles");
      state.lowPct = body?.battery_low_pct ?? state.lowPct;
      for (const v of state.vehicles) state.fleets.add(v.fleet);
    });
    const tasks = [vehicles,
      optional("hubs", "/api/fleet/hubs", (body) => { state.hubs = listOf(body, "hubs").map(hubOf); }),
      optional("events", `/api/fleet/events?limit=${EVENTS_LIMIT}${fleetParam}`, (body) => { state.events = listOf(body, "events"); }),
      optional("violations", `/api/fleet/violations?open=true${fleetParam}`, (body) => { state.violations = listOf(body, "violations"); }),
      optional("alerts", "/api/fleet/alerts", (body) => { state.alerts = listOf(body, "alerts"); })];
    if (state.polls % ZONES_EVERY === 0 || state.failed.zones) {
      tasks.push(optional("zones", "/api/fleet/zones", (body) => { state.zones = listOf(body, "features"); }));
    }
    await Promise.all(tasks);
    state.polls += 1;
    GC.loaded(errorBox, String(state.polls), renderAll);
    document.body.dataset.polls = String(state.polls);
  } catch (error) {
    GC.loadFailed(errorBox, error);
  }
}

const refresh = GC.every(REFRESH_MS, load);

$("[data-role=fleet]").addEventListener("change", (event) => {
  state.fleet = event.target.value;
  state.bounds = FleetMap.emptyBounds();
  const url = new URL(location.href);
  if (state.fleet) url.searchParams.set("fleet", state.fleet); else url.searchParams.delete("fleet");
  history.replaceState(null, "", url);
  refresh();
});

// One listener for the map and the side lists: a click (or Enter) selects a vehicle, a hub or a zone.
function onPick(event) {
  if (event.type === "keydown" && event.key !== "Enter") return;
  const target = event.target.closest("[data-select], g.vehicle, g.hub, path.zone");
  if (!target) return;
  if (target.dataset.select) state.selected = { type: "vehicle", id: target.dataset.select };
  else if (target.matches("g.vehicle")) state.selected = { type: "vehicle", id: `${target.dataset.fleet}/${target.dataset.vehicle}` };
  else if (target.matches("g.hub")) state.selected = { type: "hub", id: target.dataset.hub };
  else state.selected = { type: "zone", id: target.dataset.zone };
  renderAll();
}
for (const type of ["click", "keydown"]) $(".fl-main").addEventListener(type, onPick);

GC.onLang(() => { if (state.polls) renderAll(); });
GC.bindLangButtons();
refresh();
