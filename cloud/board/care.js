// The care view: one person's vital signs for a member of their care team, only what consent allows.
// Every figure comes from the vitals API (/api/vitals/...), which checks consent and audits each read;
// this page never holds data the API did not hand to this user. Without consent it shows a clear
// "no consent" message, never an empty chart, a value or an error dump.
"use strict";

// Readings arrive a few times a day (visits), and every load is an audit row: refresh every 5 minutes.
const REFRESH_MS = 300_000;
const CATEGORIES = ["blood_pressure", "spo2", "temperature", "weight", "glucose", "heart_rate"];
const $ = (selector) => document.querySelector(selector);
const errorBox = $("[data-role=error]");

GC.addStrings({
  "title": { en: "Care view", ja: "ケア画面" },
  "subtitle": { en: "Vital signs shared with the care team, with the person's consent", ja: "本人の同意に基づきケアチームで共有するバイタル" },
  "nav.live": { en: "Live board", ja: "ライブボード" },
  "nav.co2": { en: "CO2", ja: "CO2" },
  "nav.interchange": { en: "Interchange", ja: "電力融通" },
  "nav.care": { en: "Care", ja: "ケア" },
  "pick.patient": { en: "Person", ja: "利用者" },
  "role": { en: "Your role: {role}", ja: "あなたの役割: {role}" },
  "consent.title": { en: "You have no consent to see this person's data", ja: "同意がないため表示できません" },
  "consent.body": { en: "The person (or their proxy) has not shared these vital signs with your role. Ask the care office if you think this is wrong.",
    ja: "ご本人（または代理人）は、あなたの役割にこのバイタルの共有を同意していません。誤りと思われる場合はケア事務所にお問い合わせください。" },
  "consent.category": { en: "No consent for this category: not shown.", ja: "この項目は同意がないため表示できません。" },
  "no_patients": { en: "No one has shared their vital signs with you.", ja: "バイタルを共有している利用者はいません。" },
  "h.visit": { en: "Last visit", ja: "最終訪問" },
  "h.alerts": { en: "Alerts", ja: "アラート" },
  "no_visit": { en: "No visit recorded in this period.", ja: "この期間の訪問記録はありません。" },
  "no_alerts": { en: "No alerts in this period.", ja: "この期間のアラートはありません。" },
  "acked": { en: "acknowledged by {who}", ja: "{who} が確認済み" },
  "no_readings": { en: "No readings in this period.", ja: "この期間の測定値はありません。" },
  "latest": { en: "Latest ({time})", ja: "最新（{time}）" },
  "footer.audit": { en: "Every view of this page is recorded in the person's audit log.", ja: "この画面の閲覧はすべて本人の閲覧記録に残ります。" },
  "footer.logout": { en: "Log out", ja: "ログアウト" },
  "updated": { en: "Updated {time}", ja: "{time} 更新" },
  "cat.blood_pressure": { en: "Blood pressure", ja: "血圧" },
  "cat.spo2": { en: "SpO2", ja: "SpO2（酸素飽和度）" },
  "cat.temperature": { en: "Body temperature", ja: "体温" },
  "cat.weight": { en: "Weight", ja: "体重" },
  "cat.glucose": { en: "Blood glucose", ja: "血糖値" },
  "cat.heart_rate": { en: "Heart rate", ja: "心拍数" },
  "role.self": { en: "the person", ja: "本人" }, "role.proxy": { en: "proxy", ja: "代理人" },
  "role.family": { en: "family", ja: "家族" }, "role.doctor": { en: "doctor", ja: "医師" },
  "role.nurse": { en: "visiting nurse", ja: "訪問看護師" }, "role.care_manager": { en: "care manager", ja: "ケアマネジャー" },
  "m.systolic": { en: "Systolic", ja: "収縮期" }, "m.diastolic": { en: "Diastolic", ja: "拡張期" },
  "m.mean_arterial": { en: "Mean arterial", ja: "平均血圧" }, "m.pulse": { en: "Pulse", ja: "脈拍" },
  "m.spo2": { en: "SpO2", ja: "SpO2" }, "m.spo2_pulse": { en: "Pulse", ja: "脈拍" },
  "m.perfusion_index": { en: "Perfusion index", ja: "灌流指標" }, "m.body_temp": { en: "Body temperature", ja: "体温" },
  "m.weight": { en: "Weight", ja: "体重" }, "m.bmi": { en: "BMI", ja: "BMI" }, "m.height": { en: "Height", ja: "身長" },
  "m.glucose": { en: "Glucose", ja: "血糖値" }, "m.heart_rate": { en: "Heart rate", ja: "心拍数" },
  "m.rr_interval": { en: "RR interval", ja: "RR間隔" }, "m.energy_expended": { en: "Energy expended", ja: "消費エネルギー" },
});

// Metrics drawn per category (the trend) and their display units; others are listed, not drawn.
const TREND_METRICS = {
  blood_pressure: ["systolic", "diastolic", "pulse"], spo2: ["spo2", "spo2_pulse"], temperature: ["body_temp"],
  weight: ["weight"], glucose: ["glucose"], heart_rate: ["heart_rate"],
};
const UNITS = { "mm[Hg]": "mmHg", "Cel": "°C", "/min": "/min", "kg/m2": "kg/m²" };

const state = { patients: [], patient: new URLSearchParams(location.search).get("patient"), summary: null,
  alerts: null };

// Digits shown per UCUM unit: whole mmHg, beats and percent; tenths of a degree and a kilogram.
const DIGITS = { "mm[Hg]": 0, "/min": 0, "%": 0, "mg/dL": 0, "kJ": 0, "Cel": 1, "kg": 1, "cm": 1, "kg/m2": 1, "s": 2 };
function vitalNum(value, unit) { return GC.num(value, DIGITS[unit] ?? null); }

function metricLabel(metric) { return GC.has(`m.${metric}`) ? GC.t(`m.${metric}`) : metric; }
function unitLabel(unit) { return UNITS[unit] ?? unit ?? ""; }

function timeLabel(ms) {
  return new Date(ms).toLocaleString(GC.lang === "ja" ? "ja-JP" : "en-GB",
    { timeZone: "Asia/Tokyo", year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit" });
}

function dateLabel(ms) {
  return new Date(ms).toLocaleDateString(GC.lang === "ja" ? "ja-JP" : "en-GB",
    { timeZone: "Asia/Tokyo", month: "2-digit", day: "2-digit" });
}

// ---------------------------------------------------------------- the no-consent page

function showNoConsent(reason) {
  $("main").hidden = true;
  GC.clearError(errorBox);
  const box = $("[data-role=no-consent]");
  box.hidden = false;
  // The API's reason names a role and a category ("no consent for role family to see blood_pressure"): never a value.
  $("[data-role=no-consent-reason]").textContent = reason ?? "";
  document.body.dataset.loaded = "no-consent";
}

function hideNoConsent() { $("[data-role=no-consent]").hidden = true; }

// ---------------------------------------------------------------- rendering

function renderPicker() {
  const select = $("[data-role=patient]");
  select.replaceChildren();
  for (const patient of state.patients) {
    const label = patient.display_name ? `${patient.display_name} (${patient.pseudonym})` : patient.pseudonym;
    select.append(GC.el("option", { value: patient.pseudonym, selected: patient.pseudonym === state.patient }, label));
  }
  select.closest("label").hidden = !state.patients.length;
  const mine = state.patients.find((p) => p.pseudonym === state.patient);
  $("[data-role=care-role]").textContent = mine ? GC.t("role", { role: GC.t(`role.${mine.care_role}`) }) : "";
}

function renderVisit() {
  const visit = state.summary.last_visit;
  const text = visit ? `${timeLabel(visit.ts)} · ${visit.visit_id ?? ""}` : GC.t("no_visit");
  $("[data-role=last-visit]").textContent = text;
}

function renderAlerts() {
  const section = $("[data-role=alerts-section]");
  section.hidden = state.alerts === null;     // no alert API (404) or not allowed: no section at all
  if (state.alerts === null) return;
  const list = $("[data-role=alerts]");
  list.replaceChildren();
  if (!state.alerts.length) list.append(GC.el("li", { class: "care-note" }, GC.t("no_alerts")));
  for (const alert of state.alerts) {
    const category = GC.has(`cat.${alert.category}`) ? GC.t(`cat.${alert.category}`) : alert.category;
    const value = `${metricLabel(alert.metric)} ${vitalNum(alert.value, alert.unit)} ${unitLabel(alert.unit)}`;
    const acked = alert.acked_by ? ` · ${GC.t("acked", { who: alert.acked_by })}` : "";
    list.append(GC.el("li", { class: alert.acked_by ? "care-note" : "care-alert", "data-alert": alert.id },
      `${timeLabel(alert.ts)} · ${category}: ${value} (${alert.rule})${acked}`));
  }
}

function renderCategory(container, category, data) {
  const section = GC.el("section", { class: "gc-panel", "data-category": category });
  section.append(GC.el("h2", {}, GC.t(`cat.${category}`)));
  if (!data) {
    section.dataset.consent = "none";
    section.append(GC.el("p", { class: "care-note", "data-role": "category-no-consent" }, GC.t("consent.category")));
    container.append(section);
    return;
  }
  section.dataset.consent = "yes";
  const units = data.units ?? {};
  const latest = data.latest ?? null;
  if (latest && latest.values) {
    const row = GC.el("p", { class: "care-latest", "data-role": "latest" });
    row.append(GC.el("span", { class: "care-note" }, GC.t("latest", { time: timeLabel(latest.ts) })));
    for (const [metric, value] of Object.entries(latest.values)) {
      if (value === null || value === undefined) continue;
      const item = GC.el("span", { "data-metric": metric });
      item.append(GC.el("span", {}, `${metricLabel(metric)} `), GC.el("strong", {}, vitalNum(value, units[metric])),
        GC.el("span", {}, ` ${unitLabel(units[metric])}`));
      row.append(item);
    }
    section.append(row);
  }
  // trends: metric -> [[ts, value], ...]; drawn on the union of their times (a gap where one is missing)
  const trends = data.trends ?? {};
  const times = [...new Set(Object.values(trends).flatMap((points) => points.map(([ts]) => ts)))].sort((a, b) => a - b);
  const trend = times.map((time) => ({ time }));
  const index = new Map(times.map((time, i) => [time, i]));
  for (const [metric, points] of Object.entries(trends)) {
    for (const [ts, value] of points) trend[index.get(ts)][metric] = value;
  }
  if (!trend.length) {
    section.append(GC.el("p", { class: "care-note" }, GC.t("no_readings")));
    container.append(section);
    return;
  }
  const metrics = (TREND_METRICS[category] ?? []).filter((m) => trend.some((p) => typeof p[m] === "number"));
  const legend = GC.el("div", { class: "gc-legend" });
  metrics.forEach((metric, i) => {
    const entry = GC.el("span", { class: "legend-item" });
    entry.append(GC.el("span", { class: `swatch m${i}` }), GC.el("span", {}, metricLabel(metric)));
    legend.append(entry);
  });
  const chart = GC.svg("svg", { "data-role": "trend", role: "img", "aria-label": GC.t(`cat.${category}`) });
  section.append(legend, chart);
  container.append(section);
  trendChart(chart, trend, metrics, units[metrics[0]]);
}

// A vital's trend needs its own y range (a body temperature drawn from 0 °C is a flat line), so this
// chart scales to the values' range with round ticks; the look (classes) is charts.js's line chart.
function trendChart(root, trend, metrics, unit) {
  const width = 960;
  const height = 240;
  const box = { left: 64, right: width - 16, top: 28, bottom: height - 34 };
  root.replaceChildren();
  root.setAttribute("viewBox", `0 0 ${width} ${height}`);
  root.setAttribute("class", "chart");
  const values = trend.flatMap((p) => metrics.map((m) => p[m])).filter((v) => typeof v === "number");
  const low = Math.min(...values);
  const high = Math.max(...values);
  const step = GC.niceScale(Math.max(high - low, Math.abs(high) * 0.02, 1e-6)).step;
  const bottom = Math.floor(low / step - 0.5) * step;
  const top = Math.ceil(high / step + 0.5) * step;
  const yOf = (v) => box.bottom - ((box.bottom - box.top) * (v - bottom)) / (top - bottom);
  const xOf = (i) => box.left + ((box.right - box.left) * (trend.length === 1 ? 0.5 : i / (trend.length - 1)));
  const digits = Number.isInteger(step) ? 0 : Number.isInteger(Math.round(step * 1e6) / 1e5) ? 1 : 2;
  for (let v = bottom; v <= top + step / 1000; v += step) {
    root.append(GC.svg("line", { class: "grid-line", x1: box.left, x2: box.right, y1: yOf(v), y2: yOf(v) }));
    root.append(GC.svg("text", { class: "tick", x: box.left - 6, y: yOf(v) + 4, "text-anchor": "end" }, GC.num(v, digits)));
  }
  root.append(GC.svg("text", { class: "axis-unit", x: box.left - 6, y: box.top - 10, "text-anchor": "end" }, unitLabel(unit)));
  const every = Math.max(1, Math.ceil(trend.length / 6));
  trend.forEach((point, i) => {
    if (i % every === 0 || i === trend.length - 1) {
      root.append(GC.svg("text", { class: "tick x-tick", x: xOf(i), y: box.bottom + 16, "text-anchor": "middle" },
        dateLabel(point.time)));
    }
  });
  metrics.forEach((metric, m) => {
    const group = GC.svg("g", { class: `series m${m}`, "data-series": metric });
    let run = [];
    const flush = () => {
      if (run.length) group.append(GC.svg("polyline", { class: "line", points: run.join(" ") }));
      run = [];
    };
    trend.forEach((point, i) => {
      const v = point[metric];
      if (typeof v !== "number") { flush(); return; }
      run.push(`${xOf(i).toFixed(1)},${yOf(v).toFixed(1)}`);
      const dot = GC.svg("circle", { class: "dot", cx: xOf(i), cy: yOf(v), r: 4, "data-value": v });
      dot.append(GC.svg("title", {}, `${timeLabel(point.time)} ${metricLabel(metric)} ${GC.num(v)}`));
      group.append(dot);
    });
    flush();
    root.append(group);
  });
  root.append(GC.svg("line", { class: "axis", x1: box.left, x2: box.right, y1: box.bottom, y2: box.bottom }));
}

function renderAll() {
  renderPicker();
  if (!state.summary) return;
  renderVisit();
  renderAlerts();
  const container = $("[data-role=categories]");
  container.replaceChildren();
  for (const category of CATEGORIES) renderCategory(container, category, state.summary.categories?.[category] ?? null);
}

// ---------------------------------------------------------------- loading

async function loadAlerts(patient) {
  try {
    const answer = await GC.getJSON(`/api/vitals/alerts?patient=${encodeURIComponent(patient)}`);
    return (answer.alerts ?? []).filter((a) => a.pseudonym === patient);
  } catch (error) {
    return null;      // no alert route (404) or not allowed: the section is left out
  }
}

async function load() {
  try {
    const listed = await GC.getJSON("/api/vitals/patients");
    state.patients = listed.patients ?? [];
    if (!state.patient && state.patients.length) state.patient = state.patients[0].pseudonym;
    renderPicker();
    if (!state.patient) {
      $("[data-role=no-patients]").hidden = false;
      document.body.dataset.loaded = "no-patients";
      return;
    }
    const patient = encodeURIComponent(state.patient);
    const [summary, alerts] = await Promise.all([
      GC.getJSON(`/api/vitals/patients/${patient}/summary`), loadAlerts(state.patient)]);
    state.summary = summary;
    state.alerts = alerts;
    hideNoConsent();
    GC.loaded(errorBox, state.patient, renderAll);
  } catch (error) {
    state.summary = null;
    if (error instanceof GC.ApiError && error.status === 403) {
      showNoConsent(error.detail);     // no vitals:read, not in the care team, or no consent
      return;
    }
    GC.loadFailed(errorBox, error);
  }
}

const refresh = GC.every(REFRESH_MS, load);

$("[data-role=patient]").addEventListener("change", (event) => {
  state.patient = event.target.value;
  const url = new URL(location.href);
  url.searchParams.set("patient", state.patient);
  history.replaceState(null, "", url);
  refresh();
});
GC.onLang(() => { if (state.summary) renderAll(); });
GC.bindLangButtons();
refresh();
