// The live board: polls /api/devices and /api/latest every second, /api/sites every few
// seconds, and keeps the last HISTORY values of every metric for the sparklines.
// All text goes through textContent: ids and values come from devices, never trusted as HTML.
"use strict";

const REFRESH_MS = 1000;
const SITES_EVERY = 5;          // refreshes between /api/sites calls
const HISTORY = 60;             // values kept per metric for the sparkline

const state = {
  devices: new Map(),           // "site/device" -> /api/devices entry
  latest: new Map(),            // "site/device" -> /api/latest entry
  history: new Map(),           // "site/device/metric" -> [numbers]
  lastTs: new Map(),            // "site/device" -> ts of the newest point already in history
  sites: null,                  // /api/sites answer
  selected: decodeURIComponent(location.hash.slice(1)),
  tick: 0,
};

const $ = (selector, root = document) => root.querySelector(selector);

function el(tag, attrs = {}, text) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("data-")) node.setAttribute(key, value);
    else node[key] = value;
  }
  if (text !== undefined) node.textContent = text;
  return node;
}

async function getJSON(path) {
  const response = await fetch(path, { cache: "no-store" });
  if (!response.ok) {
    let detail = response.statusText;
    try { detail = (await response.json()).detail || detail; } catch (_) { /* not JSON */ }
    throw new Error(`${path}: ${response.status} ${detail}`);
  }
  return response.json();
}

// ------------------------------------------------------------------ history

function remember(item) {
  const key = `${item.site}/${item.device}`;
  if (state.lastTs.get(key) === item.ts) return;   // nothing new since the last refresh
  state.lastTs.set(key, item.ts);
  for (const [metric, value] of Object.entries(item.values)) {
    if (typeof value !== "number") continue;
    const hkey = `${key}/${metric}`;
    const values = state.history.get(hkey) || [];
    values.push(value);
    if (values.length > HISTORY) values.shift();
    state.history.set(hkey, values);
  }
}

// ------------------------------------------------------------------ rendering

function siteSection(site) {
  const board = $("[data-role=board]");
  let section = board.querySelector(`section[data-site="${CSS.escape(site)}"]`);
  if (section) return section;
  section = el("section", { class: "site", "data-site": site });
  const head = el("div", { class: "site-head" });
  head.append(el("h2", {}, site), el("div", { class: "site-facts", "data-role": "site-facts" }));
  section.append(head, el("div", { class: "grid" }));
  const sections = [...board.querySelectorAll("section.site")];
  const after = sections.find((s) => s.dataset.site > site);
  board.insertBefore(section, after || null);
  return section;
}

function deviceCard(section, dev) {
  const grid = $(".grid", section);
  let card = grid.querySelector(`article[data-device="${CSS.escape(dev.device)}"]`);
  if (card) return card;
  card = el("article", { class: "card", "data-site": dev.site, "data-device": dev.device, "data-kind": dev.kind });
  const head = el("header");
  const title = el("div", { class: "title" });
  title.append(el("h3", {}, dev.device), el("span", { class: "kind" }, dev.kind === "agent" ? "edge agent" : dev.kind));
  head.append(title, el("span", { class: "badge", "data-role": "status" }));
  const meta = el("p", { class: "meta" });
  meta.append(el("span", { "data-role": "source" }), el("span", { "data-role": "last-seen" }));
  const completeness = el("div", { class: "completeness", "data-role": "completeness" });
  const bar = el("div", { class: "bar" });
  bar.append(el("div", { class: "fill" }));
  completeness.append(el("span", { class: "label" }, "Completeness"), bar, el("span", { class: "pct" }));
  const table = el("table", { class: "metrics" });
  table.append(el("tbody"));
  card.append(head, meta, el("p", { class: "reason", "data-role": "reason" }), completeness, table);
  // Keep cards sorted: machines first, the agents' own health last.
  const order = (c) => `${c.dataset.kind === "agent" ? 1 : 0}/${c.dataset.device}`;
  const after = [...grid.children].find((c) => order(c) > order(card));
  grid.insertBefore(card, after || null);
  return card;
}

function metricRow(tbody, metric) {
  let row = tbody.querySelector(`tr[data-metric="${CSS.escape(metric)}"]`);
  if (row) return row;
  row = el("tr", { "data-metric": metric });
  const value = el("td", { class: "value" });
  value.append(el("span", { "data-role": "value" }), el("span", { class: "unit" }));
  const trend = el("td", { class: "trend" });
  trend.append(makeSparkline());
  row.append(el("th", { scope: "row" }, prettyMetric(metric)), value, trend);
  tbody.append(row);
  return row;
}

function metricOrder(dev, values) {
  const fromProfile = Object.keys(dev.units || {}).filter((m) => m in values);
  const rest = Object.keys(values).filter((m) => !fromProfile.includes(m)).sort();
  return [...fromProfile, ...rest];
}

function renderDevice(dev, now) {
  const card = deviceCard(siteSection(dev.site), dev);
  const item = state.latest.get(`${dev.site}/${dev.device}`);
  card.dataset.online = String(dev.online);
  const badge = $("[data-role=status]", card);
  badge.textContent = dev.online ? "Online" : "Offline";
  badge.dataset.online = String(dev.online);
  badge.title = dev.reason || "agent reports the device online and data is fresh";
  $("[data-role=reason]", card).textContent = dev.online ? "" : dev.reason;
  $("[data-role=source]", card).textContent = [dev.profile, dev.agent && `agent ${dev.agent}`].filter(Boolean).join(" · ");
  const age = dev.last_seen === null ? null : Math.max(0, (now - dev.last_seen) / 1000);
  $("[data-role=last-seen]", card).textContent = `updated ${formatAge(age)}`;

  const ratio = dev.completeness.ratio;
  const comp = $("[data-role=completeness]", card);
  comp.dataset.ratio = ratio === null ? "" : String(ratio);
  comp.dataset.level = ratio === null ? "none" : ratio >= 0.99 ? "good" : ratio >= 0.9 ? "fair" : "poor";
  $(".fill", comp).style.width = `${ratio === null ? 0 : Math.min(100, ratio * 100)}%`;
  $(".pct", comp).textContent = formatPercent(ratio);
  comp.title = `${dev.completeness.received} of ${dev.completeness.expected} envelopes received, `
    + `${dev.completeness.missing} missing (last ${Math.round((state.windowS || 3600) / 60)} min)`;

  if (!item) return;
  const tbody = $("tbody", card);
  for (const metric of metricOrder(dev, item.values)) {
    const row = metricRow(tbody, metric);
    const value = item.values[metric];
    // The profile knows the unit (also that power_factor has none); otherwise guess from the name.
    const unit = dev.units && metric in dev.units ? dev.units[metric] : guessUnit(metric);
    const shown = formatValue(value, unit);
    const span = $("[data-role=value]", row);
    span.textContent = shown.text;
    span.dataset.raw = String(value);
    $(".unit", row).textContent = shown.unit;
    row.dataset.quality = (item.quality && item.quality[metric]) || "good";
    const history = state.history.get(`${dev.site}/${dev.device}/${metric}`) || [];
    drawSparkline($("svg", row), history);
  }
}

function renderSites(devices) {
  const bySite = new Map();
  for (const dev of devices) {
    const entry = bySite.get(dev.site) || { total: 0, online: 0 };
    if (dev.kind !== "agent") { entry.total += 1; entry.online += dev.online ? 1 : 0; }
    bySite.set(dev.site, entry);
  }
  const info = new Map(((state.sites && state.sites.sites) || []).map((s) => [s.site, s]));
  for (const [site, counts] of bySite) {
    const facts = $("[data-role=site-facts]", siteSection(site));
    const extra = info.get(site);
    const parts = [`${counts.online}/${counts.total} devices online`];
    if (extra) {
      parts.push(`${extra.agents_online}/${extra.agents.length} agents online`);
      parts.push(`completeness ${formatPercent(extra.completeness.ratio)}`);
      if (extra.readings_per_s !== null) parts.push(`${formatValue(extra.readings_per_s, "").text} readings/s`);
    }
    facts.textContent = parts.join(" · ");
  }
  const tabs = $("[data-role=site-tabs]");
  const names = ["", ...[...bySite.keys()].sort()];
  tabs.replaceChildren(...names.map((name) => {
    const counts = name ? bySite.get(name) : null;
    const tab = el("button", { class: "tab", type: "button", "data-site-tab": name });
    tab.textContent = name || "All sites";
    if (counts) tab.append(el("span", { class: "count" }, `${counts.online}/${counts.total}`));
    tab.setAttribute("aria-pressed", String(state.selected === name));
    tab.addEventListener("click", () => { state.selected = name; location.hash = name; applyFilter(); });
    return tab;
  }));
  applyFilter();
}

function applyFilter() {
  for (const section of document.querySelectorAll("section.site")) {
    section.hidden = Boolean(state.selected) && section.dataset.site !== state.selected;
  }
  for (const tab of document.querySelectorAll("[data-site-tab]")) {
    tab.setAttribute("aria-pressed", String(tab.dataset.siteTab === state.selected));
  }
}

function renderHeader(devices) {
  const machines = devices.filter((d) => d.kind !== "agent");
  const sites = new Set(devices.map((d) => d.site));
  $("[data-stat=sites]").textContent = String(sites.size);
  $("[data-stat=devices-online]").textContent = `${machines.filter((d) => d.online).length} / ${machines.length}`;
  const list = (state.sites && state.sites.sites) || [];
  const rates = list.map((s) => s.readings_per_s).filter((r) => r !== null);
  $("[data-stat=readings-per-s]").textContent = rates.length ? formatValue(rates.reduce((a, b) => a + b, 0), "").text : "–";
  const expected = list.reduce((a, s) => a + s.completeness.expected, 0);
  const received = list.reduce((a, s) => a + s.completeness.received, 0);
  $("[data-stat=completeness]").textContent = expected ? formatPercent(received / expected) : "–";
}

function removeGone(devices) {
  const keep = new Set(devices.map((d) => `${d.site}/${d.device}`));
  for (const card of document.querySelectorAll("article.card")) {
    if (!keep.has(`${card.dataset.site}/${card.dataset.device}`)) card.remove();
  }
  for (const section of document.querySelectorAll("section.site")) {
    if (!$(".grid", section).children.length) section.remove();
  }
}

// Dead letters per reason, for those allowed to see them (scope ops:read); hidden for everyone else.
function renderOps(deadLetters) {
  const box = $("[data-role=ops]");
  if (!deadLetters) { box.hidden = true; return; }
  const list = $("[data-role=dead-letters]");
  list.replaceChildren();
  const reasons = Object.entries(deadLetters.totals).sort(([, a], [, b]) => b.total - a.total);
  if (reasons.length === 0) list.append(el("li", { "data-reason": "none" }, "none"));
  for (const [reason, info] of reasons) {
    const item = el("li", { "data-reason": reason, title: `last ${new Date(info.last_ts).toLocaleString()}` });
    item.append(el("span", { class: "reason" }, reason), el("span", { class: "count" }, String(info.total)));
    list.append(item);
  }
  box.hidden = false;
}

function setConnection(kind, text) {
  const box = $("[data-role=connection]");
  box.dataset.state = kind;
  $("[data-role=connection-text]").textContent = text;
}

// ------------------------------------------------------------------ loop

async function refresh() {
  const started = performance.now();
  try {
    const wantSites = state.tick % SITES_EVERY === 0;
    const [devices, latest, sites, deadLetters] = await Promise.all([
      getJSON("/api/devices"), getJSON("/api/latest"),
      wantSites ? getJSON("/api/sites").catch(() => null) : Promise.resolve(null),
      wantSites ? getJSON("/api/dead-letters?limit=1").catch(() => null) : Promise.resolve(undefined),
    ]);
    if (sites) state.sites = sites;
    if (deadLetters !== undefined) renderOps(deadLetters);
    state.windowS = devices.window_s;
    for (const item of latest.devices) {
      state.latest.set(`${item.site}/${item.device}`, item);
      remember(item);
    }
    removeGone(devices.devices);
    for (const dev of devices.devices) renderDevice(dev, devices.now);
    renderSites(devices.devices);
    renderHeader(devices.devices);
    $("[data-role=empty]").hidden = devices.devices.length > 0;
    $("[data-role=updated]").textContent = `Updated ${new Date(devices.now).toLocaleTimeString()}`;
    setConnection("live", "Live");
  } catch (error) {
    setConnection("error", `Not updating: ${error.message}`);
  } finally {
    state.tick += 1;
    setTimeout(refresh, Math.max(0, REFRESH_MS - (performance.now() - started)));
  }
}

refresh();
