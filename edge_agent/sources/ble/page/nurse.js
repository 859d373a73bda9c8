// The nurse's page: sign in, today's visits, the active visit's readings (long poll), devices.
// Everything is built with textContent (names and values never become HTML).
"use strict";

const LANG_KEY = "hinode-nurse-lang";
const UNITS = { "mm[Hg]": "mmHg", Cel: "°C", "kg/m2": "kg/m²" };
let lang = "ja";
let version = -1;
let lastState = null;
let polling = false;

const $ = (id) => document.getElementById(id);

function t(key) {
  const words = window.NURSE_I18N[lang] || window.NURSE_I18N.ja;
  return words[key] !== undefined ? words[key] : key;
}

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (name === "text") node.textContent = value;
    else if (name === "onclick") node.addEventListener("click", value);
    else node.setAttribute(name, value);
  }
  for (const child of children) if (child) node.append(child);
  return node;
}

function applyLanguage() {
  document.documentElement.lang = lang;
  for (const node of document.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
  $("lang-toggle").textContent = t("other_language");
  document.title = t("title");
  if (lastState) render(lastState);
}

async function api(method, path, body) {
  const options = { method, credentials: "same-origin", headers: {} };
  if (method !== "GET") {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body || {});
  }
  const response = await fetch(path, options);
  let data = {};
  try { data = await response.json(); } catch (e) { data = {}; }
  return { status: response.status, data };
}

function showError(target, data) {
  target.textContent = data && data.error ? (t("err_" + data.error) !== "err_" + data.error ? t("err_" + data.error) : data.message) : "";
}

function showLogin() {
  polling = false;
  lastState = null;
  $("main-view").hidden = true;
  $("logout").hidden = true;
  $("who").textContent = "";
  $("login-view").hidden = false;
}

function showMain() {
  $("login-view").hidden = true;
  $("main-view").hidden = false;
  $("logout").hidden = false;
  if (!polling) { polling = true; poll(); }
}

async function poll() {
  while (polling) {
    try {
      const { status, data } = await api("GET", `/api/state?since=${version}&wait=8`);
      $("offline").hidden = true;
      if (status === 401) { showLogin(); return; }
      if (status === 200) render(data);
      else await sleep(1000);
    } catch (e) {
      $("offline").hidden = false;
      await sleep(2000);
    }
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function act(method, path, body) {
  $("message").textContent = "";
  let result;
  try { result = await api(method, path, body); } catch (e) { $("message").textContent = t("err_network"); return null; }
  if (result.status === 401) { showLogin(); return null; }
  if (result.status >= 400) { showError($("message"), result.data); }
  await refresh();
  return result;
}

async function refresh() {
  const { status, data } = await api("GET", "/api/state");
  if (status === 401) showLogin();
  else if (status === 200) render(data);
}

function valueLines(reading) {
  const list = el("ul", { class: "values" });
  for (const v of reading.values) {
    const label = lang === "ja" ? v.label_ja : v.label_en;
    let text;
    if (v.absent) text = `${label}: — (${t("absent_" + v.absent)})`;
    else {
      let unit = UNITS[v.unit] || v.unit;
      if (unit === "/min" && lang === "ja") unit = "/分";
      text = `${label}: ${v.value} ${unit}`;
    }
    list.append(el("li", { class: v.absent ? "absent" : "", "data-metric": v.metric, text }));
  }
  return list;
}

function readingItem(reading, buttons) {
  const when = `${reading.time} (${t(reading.time_source === "device" ? "time_device" : "time_gateway")})`;
  const head = el("div", { class: "reading-head" },
    el("strong", { text: t("cat_" + reading.category) }), el("span", { text: ` ${when} · ${reading.device}` }));
  const item = el("li", { class: "reading", "data-reading-id": reading.id }, head, valueLines(reading));
  if (reading.status.length) item.append(el("p", { class: "status", text: `${t("status")}: ${reading.status.join(", ")}` }));
  item.append(el("div", { class: "buttons" }, ...buttons));
  return item;
}

function renderActive(state) {
  const active = state.active;
  $("no-active").hidden = !!active;
  $("active-visit").hidden = !active;
  const list = $("readings");
  list.replaceChildren();
  if (!active) { $("pending-warning").hidden = true; return; }
  const name = active.display_name || active.pseudonym;
  $("active-patient").textContent = `${name} (${active.pseudonym}) · ${t("started_at")} ${active.started}`;
  $("no-readings").hidden = state.readings.length > 0;
  for (const reading of state.readings) {
    list.append(readingItem(reading, [
      el("button", { type: "button", class: "confirm", text: t("confirm"), onclick: () => act("POST", `/api/readings/${reading.id}/confirm`) }),
      el("button", { type: "button", class: "discard", text: t("discard"), onclick: () => act("POST", `/api/readings/${reading.id}/discard`) }),
    ]));
  }
  if (!state.readings.length) $("pending-warning").hidden = true;
}

function renderToday(state) {
  const body = $("today").tBodies[0];
  body.replaceChildren();
  $("no-visits").hidden = state.today.length > 0;
  $("schedule-error").hidden = !state.schedule_error;
  for (const visit of state.today) {
    const patient = el("td", {}, el("span", { class: "name", text: visit.display_name || visit.pseudonym }),
      el("small", { text: ` ${visit.pseudonym}` }));
    const action = el("td");
    if (visit.state === "scheduled" && !state.active) {
      action.append(el("button", { type: "button", class: "start", text: t("start"),
        onclick: () => act("POST", "/api/visits", { pseudonym: visit.pseudonym }) }));
    }
    body.append(el("tr", { "data-pseudonym": visit.pseudonym, class: "state-" + visit.state },
      el("td", { text: visit.time }), patient, el("td", { class: "state", text: t("state_" + visit.state) }), action));
  }
}

function renderUnassigned(state) {
  const list = $("unassigned");
  list.replaceChildren();
  $("no-unassigned").hidden = state.unassigned.length > 0;
  for (const reading of state.unassigned) {
    const select = el("select", { class: "assign-to", "aria-label": t("assign_to") });
    for (const visit of state.visits) {
      select.append(el("option", { value: visit.id, text: `${visit.display_name || visit.pseudonym} (${visit.id})` }));
    }
    const assign = el("button", { type: "button", class: "assign", text: t("assign"),
      onclick: () => act("POST", `/api/readings/${reading.id}/assign`, { visit_id: select.value }) });
    if (!state.visits.length) { assign.disabled = true; assign.title = t("no_visit_to_assign"); }
    if (state.active) select.value = state.active.id;
    list.append(readingItem(reading, [select, assign,
      el("button", { type: "button", class: "discard", text: t("discard"), onclick: () => act("POST", `/api/readings/${reading.id}/discard`) })]));
  }
}

function renderDevices(state) {
  const list = $("devices");
  list.replaceChildren();
  for (const device of state.devices) {
    const since = device.since ? ` (${lang === "ja" ? device.since + " " + t("since") : t("since") + " " + device.since})` : "";
    const text = `${device.id} · ${t("cat_" + device.category)} · ${t(device.connected ? "connected" : "disconnected")}${since}`;
    list.append(el("li", { class: device.connected ? "device connected" : "device", "data-device": device.id, text }));
  }
}

function render(state) {
  lastState = state;
  version = state.version;
  $("who").textContent = state.nurse.name;
  renderActive(state);
  renderToday(state);
  renderUnassigned(state);
  renderDevices(state);
  showMain();
}

async function endVisit(discardPending) {
  if (!lastState || !lastState.active) return;
  const result = await act("POST", `/api/visits/${lastState.active.id}/end`, { discard_pending: discardPending });
  if (result && result.status === 409 && result.data.error === "pending_readings") {
    $("message").textContent = "";
    $("pending-text").textContent = t("pending_block").replace("{n}", result.data.pending.length);
    $("pending-warning").hidden = false;
  } else {
    $("pending-warning").hidden = true;
  }
}

async function boot() {
  let config = { language: "ja", nurses: [] };
  try { config = (await api("GET", "/api/config")).data; } catch (e) { $("offline").hidden = false; }
  const stored = localStorage.getItem(LANG_KEY);
  lang = stored === "ja" || stored === "en" ? stored : config.language;
  const select = $("nurse-select");
  for (const nurse of config.nurses) select.append(el("option", { value: nurse.id, text: nurse.name }));
  applyLanguage();

  $("lang-toggle").addEventListener("click", () => {
    lang = lang === "ja" ? "en" : "ja";
    localStorage.setItem(LANG_KEY, lang);
    applyLanguage();
  });
  $("login-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    $("login-error").textContent = "";
    const { status, data } = await api("POST", "/api/login", { nurse: select.value, pin: $("pin").value });
    $("pin").value = "";
    if (status === 200) { version = -1; await refresh(); } else showError($("login-error"), data);
  });
  $("logout").addEventListener("click", async () => { await api("POST", "/api/logout"); showLogin(); });
  $("end-visit").addEventListener("click", () => endVisit(false));
  $("discard-rest-and-end").addEventListener("click", () => endVisit(true));
  $("unscheduled-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const result = await act("POST", "/api/visits", { pseudonym: $("unscheduled-pseudonym").value.trim(), unscheduled: true });
    if (result && result.status === 201) $("unscheduled-pseudonym").value = "";
  });

  const { status, data } = await api("GET", "/api/state");
  if (status === 200) render(data); else showLogin();
}

document.addEventListener("DOMContentLoaded", boot);
