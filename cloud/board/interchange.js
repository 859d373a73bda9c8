// The interchange view: one community's day in 48 JST slots (generation split into shared, exported
// and the producer's own use; consumption as a line), the day's flows producer -> consumer, and the
// month to date per participant. Provisional slots (settled after the grace period) are marked.
"use strict";

const REFRESH_MS = 60_000;
const SLOT_MS = 30 * 60 * 1000;
const DAY_MS = 24 * 3600 * 1000;
const $ = (selector) => document.querySelector(selector);

GC.addStrings({
  "title": { en: "Renewable interchange", ja: "再エネ電力融通" },
  "subtitle": { en: "Rooftop PV shared per 30-minute slot (JST)", ja: "屋根上太陽光の30分コマごとの融通（日本時間）" },
  "nav.live": { en: "Live board", ja: "ライブ" },
  "nav.co2": { en: "CO2", ja: "CO2" },
  "nav.interchange": { en: "Interchange", ja: "電力融通" },
  "pick.community": { en: "Community", ja: "融通グループ" },
  "pick.date": { en: "Date (JST)", ja: "日付（日本時間）" },
  "pick.today": { en: "Today", ja: "今日" },
  "h.day": { en: "The day in 48 slots", ja: "1日48コマの推移" },
  "h.flows": { en: "Who supplied whom today", ja: "この日の融通（供給元 → 受電先）" },
  "h.month": { en: "Month to date per participant", ja: "参加者別 月累計" },
  "card.generation": { en: "Generation", ja: "発電量" },
  "card.consumption": { en: "Consumption", ja: "消費量" },
  "card.shared": { en: "Shared", ja: "融通量" },
  "card.export": { en: "Exported", ja: "系統へ送電（余剰）" },
  "card.slots": { en: "Slots settled", ja: "精算済みコマ" },
  "col.from": { en: "From", ja: "供給元" },
  "col.to": { en: "To", ja: "受電先" },
  "col.kwh": { en: "kWh", ja: "kWh" },
  "col.site": { en: "Site", ja: "事業所" },
  "col.role": { en: "Role", ja: "役割" },
  "col.supplied": { en: "Supplied kWh", ja: "供給 kWh" },
  "col.received": { en: "Received kWh", ja: "受電 kWh" },
  "col.yen": { en: "Yen", ja: "金額（円）" },
  "col.co2": { en: "CO2 avoided kg", ja: "CO2削減 kg" },
  "role.producer": { en: "producer", ja: "供給側" },
  "role.consumer": { en: "consumer", ja: "需要側" },
  "link.csv": { en: "Statements as CSV", ja: "精算書 CSV" },
  "link.xlsx": { en: "Statements as Excel (xlsx)", ja: "精算書 Excel（xlsx）" },
  "provisional": { en: "provisional", ja: "暫定" },
  "h.breakdown": { en: "Where sharing pays this month", ja: "今月の融通が効く時間帯" },
  "col.when": { en: "When", ja: "時間帯" },
  "col.shared": { en: "Shared kWh", ja: "融通 kWh" },
  "col.exported": { en: "Exported kWh", ja: "余剰 kWh" },
  "col.shared_fraction": { en: "Shared of shareable", ja: "融通できた割合" },
  "col.coverage": { en: "Consumption covered", ja: "需要に占める割合" },
  "when.weekday.day": { en: "Weekday, day (08–22)", ja: "平日・昼間（8〜22時）" },
  "when.weekday.night": { en: "Weekday, night", ja: "平日・夜間" },
  "when.holiday.day": { en: "Holiday, day (08–22)", ja: "休日・昼間（8〜22時）" },
  "when.holiday.night": { en: "Holiday, night", ja: "休日・夜間" },
  "footer.refresh": { en: "refreshed every 60 s", ja: "60秒ごとに更新" },
  "legend.shared": { en: "Shared with the community", ja: "融通（グループ内）" },
  "legend.export": { en: "Exported to the grid", ja: "余剰（系統へ）" },
  "legend.self": { en: "Producer's own use", ja: "自家消費" },
  "legend.consumption": { en: "Consumption (consumers)", ja: "消費量（需要側）" },
  "legend.provisional": { en: "Provisional", ja: "暫定" },
  "legend.missing": { en: "Not settled", ja: "未精算" },
  "rule": { en: "Rule: {rule}", ja: "配分ルール: {rule}" },
  "rule.static": { en: "static key", ja: "固定比率" },
  "rule.pro_rata": { en: "pro rata", ja: "消費量比例" },
  "rule.priority": { en: "priority order", ja: "優先順位" },
  "slots": { en: "{n} of 48", ja: "48コマ中 {n}" },
  "slots.provisional": { en: "{n} provisional", ja: "うち暫定 {n}" },
  "tip.slot": { en: "{time}: generation {g} kWh, consumption {c} kWh, shared {s} kWh, exported {e} kWh",
    ja: "{time}: 発電 {g} kWh、消費 {c} kWh、融通 {s} kWh、余剰 {e} kWh" },
  "tip.missing": { en: "{time}: not settled", ja: "{time}: 未精算" },
  "tip.future": { en: "{time}: not yet", ja: "{time}: 未到来" },
  "no_flows": { en: "No energy was shared on this day.", ja: "この日の融通はありません。" },
  "no_communities": { en: "No interchange community is configured (domains.interchange.communities).",
    ja: "融通グループが設定されていません（domains.interchange.communities）。" },
  "updated": { en: "Updated {time}", ja: "{time} 更新" },
});

const params = new URLSearchParams(location.search);
const state = { communities: [], community: params.get("community"), date: params.get("date") || GC.todayJst(),
  day: null, statements: null, statementsError: null, breakdown: null };

function slotTime(slot) {
  const minutes = slot * 30;
  return `${String(Math.floor(minutes / 60)).padStart(2, "0")}:${String(minutes % 60).padStart(2, "0")}`;
}

function kwh(value) { return `${GC.num(value ?? null, 1)} kWh`; }

function shiftDate(iso, days) {
  return new Date(Date.parse(`${iso}T00:00:00Z`) + days * DAY_MS).toISOString().slice(0, 10);
}

function currentCommunity() { return state.communities.find((c) => c.id === state.community) ?? null; }

// 48 entries: the API's slot or null, and whether the slot still lies ahead (today only).
function daySlots() {
  const bySlot = new Map((state.day?.slots ?? []).map((s) => [s.slot, s]));
  const today = GC.todayJst();
  const nowSlot = Math.floor(((Date.now() + 9 * 3600 * 1000) % DAY_MS) / SLOT_MS);
  return Array.from({ length: 48 }, (_, slot) => {
    const row = bySlot.get(slot) ?? null;
    const ahead = state.date > today || (state.date === today && slot > nowSlot);
    const status = row ? (row.provisional ? "provisional" : "complete") : ahead ? "future" : "missing";
    return { slot, row, status };
  });
}

function renderSlots() {
  const slots = daySlots();
  const value = (s, key) => (s.row ? s.row[key] ?? 0 : null);
  const self = (s) => (s.row ? Math.max(0, (s.row.generation_kwh ?? 0) - (s.row.shared_kwh ?? 0) - (s.row.export_kwh ?? 0)) : null);
  GC.legend($("[data-role=slots-legend]"), [
    { cls: "shared", labelKey: "legend.shared" }, { cls: "export", labelKey: "legend.export" },
    { cls: "self", labelKey: "legend.self" }, { cls: "consumption", labelKey: "legend.consumption" },
    { cls: "provisional", labelKey: "legend.provisional" }, { cls: "missing", labelKey: "legend.missing" }]);
  GC.bars($("[data-role=slots-chart]"), {
    cls: "interchange-slots", unit: "kWh", stacked: true, gap: 0.85, labelEvery: 4, height: 280,
    categories: slots.map((s) => ({
      key: String(s.slot), label: slotTime(s.slot), state: s.status, mark: s.status === "provisional" ? "provisional" : null,
      title: s.row
        ? GC.t("tip.slot", { time: slotTime(s.slot), g: GC.num(s.row.generation_kwh, 1), c: GC.num(s.row.consumption_kwh, 1),
          s: GC.num(s.row.shared_kwh, 1), e: GC.num(s.row.export_kwh, 1) }) + (s.row.provisional ? ` (${GC.t("provisional")})` : "")
        : GC.t(s.status === "future" ? "tip.future" : "tip.missing", { time: slotTime(s.slot) }),
    })),
    series: [
      { name: "shared", cls: "shared", values: slots.map((s) => value(s, "shared_kwh")) },
      { name: "export", cls: "export", values: slots.map((s) => value(s, "export_kwh")) },
      { name: "self", cls: "self", values: slots.map(self) },
    ],
    lines: [{ name: "consumption", cls: "consumption", values: slots.map((s) => value(s, "consumption_kwh")) }],
  });

  const rows = slots.filter((s) => s.row).map((s) => s.row);
  const total = (key) => (rows.length ? rows.reduce((a, r) => a + (r[key] ?? 0), 0) : null);
  $("[data-stat=generation]").textContent = kwh(total("generation_kwh"));
  $("[data-stat=consumption]").textContent = kwh(total("consumption_kwh"));
  $("[data-stat=shared]").textContent = kwh(total("shared_kwh"));
  $("[data-stat=export]").textContent = kwh(total("export_kwh"));
  $("[data-stat=slots]").textContent = GC.t("slots", { n: rows.length });
  const provisional = rows.filter((r) => r.provisional).length;
  $("[data-stat=provisional]").textContent = provisional ? GC.t("slots.provisional", { n: provisional }) : "";
}

// Producers on the left, consumers on the right, one curve per pair, as wide as its share of the day.
function renderFlows() {
  const svg = $("[data-role=flows-chart]");
  const flows = (state.day?.flows ?? []).filter((f) => f.kwh > 0);
  const participants = currentCommunity()?.participants ?? [];
  const names = (role, side) => {
    const listed = participants.filter((p) => p.role === role).map((p) => p.site);
    const seen = flows.map((f) => f[side]).filter((site) => !listed.includes(site));
    return [...listed, ...new Set(seen)];
  };
  const producers = names("producer", "from");
  const consumers = names("consumer", "to");
  const width = 960;
  const rowHeight = 56;
  const height = Math.max(producers.length, consumers.length, 1) * rowHeight + 24;
  svg.replaceChildren();
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("class", "chart flows");
  const yOf = (list, i) => 12 + (height - 24) * ((i + 0.5) / list.length);
  const left = { x: 24, w: 210 };
  const right = { x: width - 234, w: 210 };
  const biggest = Math.max(1e-9, ...flows.map((f) => f.kwh));
  for (const flow of flows) {
    const y1 = yOf(producers, producers.indexOf(flow.from));
    const y2 = yOf(consumers, consumers.indexOf(flow.to));
    const x1 = left.x + left.w;
    const x2 = right.x;
    const mid = (x1 + x2) / 2;
    const group = GC.svg("g", { class: "flow", "data-from": flow.from, "data-to": flow.to, "data-kwh": flow.kwh });
    group.append(GC.svg("title", {}, `${flow.from} → ${flow.to}: ${kwh(flow.kwh)}`));
    group.append(GC.svg("path", { class: "flow-line", d: `M${x1},${y1} C${mid},${y1} ${mid},${y2} ${x2 - 8},${y2}`,
      "stroke-width": (2 + 12 * (flow.kwh / biggest)).toFixed(1) }));
    group.append(GC.svg("path", { class: "flow-head", d: `M${x2 - 10},${y2 - 6} L${x2},${y2} L${x2 - 10},${y2 + 6} Z` }));
    // the label near the consumer, where the curves have spread apart again
    group.append(GC.svg("text", { class: "flow-kwh", x: x2 - 16, y: y2 - 10, "text-anchor": "end" }, kwh(flow.kwh)));
    svg.append(group);
  }
  const node = (site, role, x, w, y) => {
    const group = GC.svg("g", { class: `node ${role}`, "data-site": site });
    group.append(GC.svg("rect", { x, y: y - 18, width: w, height: 36, rx: 8 }));
    group.append(GC.svg("text", { x: x + w / 2, y: y + 5, "text-anchor": "middle" }, site));
    svg.append(group);
  };
  producers.forEach((site, i) => node(site, "producer", left.x, left.w, yOf(producers, i)));
  consumers.forEach((site, i) => node(site, "consumer", right.x, right.w, yOf(consumers, i)));

  const tbody = $("[data-role=flows-table] tbody");
  tbody.replaceChildren();
  if (flows.length === 0) {
    const tr = GC.el("tr", { class: "empty-row" });
    tr.append(GC.el("td", { colSpan: 3 }, GC.t("no_flows")));
    tbody.append(tr);
  }
  for (const flow of [...flows].sort((a, b) => b.kwh - a.kwh)) {
    const tr = GC.el("tr", { "data-from": flow.from, "data-to": flow.to });
    tr.append(GC.el("td", {}, flow.from), GC.el("td", {}, flow.to), GC.el("td", { class: "num" }, GC.num(flow.kwh, 1)));
    tbody.append(tr);
  }
}

function renderStatements() {
  const month = state.date.slice(0, 7);
  $("[data-role=month]").textContent = month;
  const statements = state.statements;
  $("[data-role=month-provisional]").hidden = !statements?.provisional;
  const tbody = $("[data-role=statements-table] tbody");
  tbody.replaceChildren();
  if (state.statementsError) {
    const tr = GC.el("tr", { class: "empty-row" });
    tr.append(GC.el("td", { colSpan: 6 }, state.statementsError.message));
    tbody.append(tr);
  }
  for (const p of statements?.participants ?? []) {
    const tr = GC.el("tr", { "data-site": p.site, "data-participant-role": p.role });
    tr.append(GC.el("th", { scope: "row" }, p.site), GC.el("td", {}, GC.has(`role.${p.role}`) ? GC.t(`role.${p.role}`) : p.role),
      GC.el("td", { class: "num" }, GC.num(p.supplied_kwh, 1)), GC.el("td", { class: "num" }, GC.num(p.received_kwh, 1)),
      GC.el("td", { class: "num" }, GC.num(p.yen, 0)), GC.el("td", { class: "num" }, GC.num(p.co2_avoided_kg, 1)));
    tbody.append(tr);
  }
  const groups = $("[data-role=breakdown-table] tbody");
  groups.replaceChildren();
  for (const g of state.breakdown?.groups ?? []) {
    const key = `when.${g.day_type}.${g.period}`;
    const tr = GC.el("tr", { "data-day-type": g.day_type, "data-period": g.period });
    tr.append(GC.el("th", { scope: "row" }, GC.has(key) ? GC.t(key) : `${g.day_type} ${g.period}`),
      GC.el("td", { class: "num" }, GC.num(g.shared_kwh, 1)), GC.el("td", { class: "num" }, GC.num(g.export_kwh, 1)),
      GC.el("td", { class: "num" }, GC.pct(g.shared_fraction)), GC.el("td", { class: "num" }, GC.pct(g.coverage)));
    groups.append(tr);
  }
  const base = `/api/interchange/communities/${encodeURIComponent(state.community ?? "")}/statements?month=${month}`;
  $("[data-role=csv-link]").href = `${base}&format=csv`;
  $("[data-role=xlsx-link]").href = `${base}&format=xlsx`;
}

function renderPickers() {
  const select = $("[data-role=community]");
  select.replaceChildren(...state.communities.map((c) =>
    GC.el("option", { value: c.id }, c.name && c.name !== c.id ? `${c.name} (${c.id})` : c.id)));
  if (state.community && !currentCommunity()) select.append(GC.el("option", { value: state.community }, state.community));
  select.value = state.community ?? "";
  $("[data-role=date]").value = state.date;
  const rule = state.day?.rule ?? currentCommunity()?.rule;
  const ruleName = GC.has(`rule.${rule}`) ? GC.t(`rule.${rule}`) : rule;
  $("[data-role=rule]").textContent = rule ? GC.t("rule", { rule: ruleName }) : "";
}

function renderAll() {
  renderPickers();
  renderSlots();
  renderFlows();
  renderStatements();
}

function remember() {
  const query = new URLSearchParams(location.search);
  if (state.community) query.set("community", state.community);
  query.set("date", state.date);
  history.replaceState(null, "", `${location.pathname}?${query}`);
}

async function load() {
  const errorBox = $("[data-role=error]");
  try {
    const answer = await GC.getJSON("/api/interchange/communities");
    state.communities = answer.communities;
    if (!state.community) state.community = state.communities[0]?.id ?? null;
    remember();
    renderPickers();
    if (!state.community) {
      state.day = null;
      renderAll();
      GC.showError(errorBox, new Error(GC.t("no_communities")));
      return;
    }
    const id = encodeURIComponent(state.community);
    const statements = GC.getJSON(`/api/interchange/communities/${id}/statements?month=${state.date.slice(0, 7)}`)
      .then((body) => { state.statements = body; state.statementsError = null; })
      .catch((error) => { state.statements = null; state.statementsError = error; });
    // the breakdown is extra: without it the rest of the view still shows
    const breakdown = GC.getJSON(`/api/interchange/communities/${id}/breakdown?month=${state.date.slice(0, 7)}`)
      .then((body) => { state.breakdown = body; }).catch(() => { state.breakdown = null; });
    const [day] = await Promise.all([GC.getJSON(`/api/interchange/communities/${id}/day?date=${state.date}`),
      statements, breakdown]);
    state.day = day;
    GC.loaded(errorBox, `${state.community}/${state.date}`, renderAll);
  } catch (error) {
    GC.loadFailed(errorBox, error);
  }
}

const refresh = GC.every(REFRESH_MS, load);

function pickDate(iso) {
  if (!/^\d{4}-\d{2}-\d{2}$/.test(iso)) return;
  state.date = iso;
  refresh();
}

$("[data-role=community]").addEventListener("change", (event) => { state.community = event.target.value; refresh(); });
$("[data-role=date]").addEventListener("change", (event) => pickDate(event.target.value));
$("[data-role=prev-day]").addEventListener("click", () => pickDate(shiftDate(state.date, -1)));
$("[data-role=next-day]").addEventListener("click", () => pickDate(shiftDate(state.date, 1)));
$("[data-role=today]").addEventListener("click", () => pickDate(GC.todayJst()));
GC.onLang(() => { if (state.communities.length) renderAll(); });
GC.bindLangButtons();
refresh();
