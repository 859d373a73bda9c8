// The CO2 view: one site's Scope 1 + 2 by month of a fiscal year (market-based bars, location-based
// beside them), the fiscal-year totals against the FY2030 line, report/export links and the city total.
// A month without data is drawn as missing, a month with gaps as incomplete: never as zero.
"use strict";

const REFRESH_MS = 60_000;
const $ = (selector) => document.querySelector(selector);

GC.addStrings({
  "title": { en: "CO2 per site", ja: "事業所別CO2排出量" },
  "subtitle": { en: "Scope 1 and 2 by month and fiscal year (April–March)", ja: "Scope 1・2 の月別・年度別（4月〜3月）" },
  "nav.live": { en: "Live board", ja: "ライブ" },
  "nav.co2": { en: "CO2", ja: "CO2" },
  "nav.interchange": { en: "Interchange", ja: "電力融通" },
  "pick.site": { en: "Site", ja: "事業所" },
  "pick.fy": { en: "Fiscal year", ja: "年度" },
  "pick.report_month": { en: "Monthly report", ja: "月次レポート" },
  "h.summary": { en: "Fiscal year at a glance", ja: "年度のまとめ" },
  "h.monthly": { en: "CO2 by month", ja: "月別CO2排出量" },
  "h.trajectory": { en: "Fiscal years against the target line", ja: "年度別排出量と削減目標ライン" },
  "h.reports": { en: "Reports and exports", ja: "レポート・データ出力" },
  "h.city": { en: "Hitachi City consortium", ja: "日立市コンソーシアム全体" },
  "card.fy_total": { en: "FY total", ja: "年度合計" },
  "card.baseline": { en: "Baseline", ja: "基準年度" },
  "card.vs_baseline": { en: "Change vs baseline", ja: "基準年度比" },
  "card.target": { en: "FY2030 target (−46 %)", ja: "2030年度目標（−46 %）" },
  "card.factor": { en: "Electricity factor", ja: "電力の排出係数" },
  "col.month": { en: "Month", ja: "月" },
  "col.kwh": { en: "kWh", ja: "電力量 kWh" },
  "col.market": { en: "Market-based kg", ja: "マーケット基準 kg" },
  "col.location": { en: "Location-based kg", ja: "ロケーション基準 kg" },
  "col.scope1": { en: "Scope 1 kg", ja: "Scope 1 kg" },
  "col.completeness": { en: "Data", ja: "データ" },
  "col.site": { en: "Site", ja: "事業所" },
  "col.t_co2": { en: "t-CO2", ja: "t-CO2" },
  "link.report": { en: "Printable monthly report", ja: "月次レポート（印刷用）" },
  "link.csv": { en: "CSV", ja: "CSV" },
  "link.xlsx": { en: "Excel (xlsx)", ja: "Excel（xlsx）" },
  "link.city_csv": { en: "City as CSV", ja: "市全体 CSV" },
  "link.city_xlsx": { en: "City as Excel (xlsx)", ja: "市全体 Excel（xlsx）" },
  "footer.refresh": { en: "refreshed every 60 s", ja: "60秒ごとに更新" },
  "legend.market": { en: "Market-based (Scope 1 + 2)", ja: "マーケット基準（Scope 1＋2）" },
  "legend.location": { en: "Location-based (Scope 1 + 2)", ja: "ロケーション基準（Scope 1＋2）" },
  "legend.incomplete": { en: "Incomplete data", ja: "データ欠損あり" },
  "legend.missing": { en: "No data", ja: "データなし" },
  "legend.actual": { en: "Fiscal-year total", ja: "年度排出量" },
  "legend.target": { en: "Target line (−46 % FY2030, 0 in FY2050)", ja: "目標ライン（2030年度 −46 %、2050年度 0）" },
  "state.complete": { en: "complete", ja: "欠損なし" },
  "state.incomplete": { en: "incomplete {pct}", ja: "欠損あり {pct}" },
  "state.missing": { en: "no data", ja: "データなし" },
  "state.future": { en: "not yet", ja: "未到来" },
  "tip.month": { en: "{month}: {market} kg market-based, {location} kg location-based, {kwh} kWh, data {pct}",
    ja: "{month}: マーケット基準 {market} kg、ロケーション基準 {location} kg、{kwh} kWh、データ {pct}" },
  "tip.missing": { en: "{month}: no data", ja: "{month}: データなし" },
  "tip.future": { en: "{month}: not yet", ja: "{month}: 未到来" },
  "tip.year": { en: "FY{fy}: {t} t-CO2", ja: "{fy}年度: {t} t-CO2" },
  "tip.partial_year": { en: "FY{fy}: {t} t-CO2 for {pct} of the year", ja: "{fy}年度: 年間の{pct}で {t} t-CO2" },
  "legend.partial_year": { en: "Part of a year (running, or with gaps)", ja: "年度途中・欠損あり" },
  "fy": { en: "FY{fy}", ja: "{fy}年度" },
  "t": { en: "{v} t-CO2", ja: "{v} t-CO2" },
  "data": { en: "data {pct}", ja: "データ {pct}" },
  "baseline_of": { en: "FY{fy}", ja: "{fy}年度" },
  "target_gap": { en: "{v} t to go", ja: "あと {v} t 削減" },
  "partial": { en: "year incomplete (data {pct})", ja: "年度途中・欠損あり（データ {pct}）" },
  "target_met": { en: "on target", ja: "目標達成" },
  "so_far": { en: "FY to date: {pct} of the year, data {data}", ja: "年度途中: 年間の{pct}、データ {data}" },
  "pace_note": { en: "against the baseline's first {pct} of a year", ja: "基準年度の{pct}相当と比較" },
  "pace_met": { en: "on pace ({v} t for {pct} of the year)", ja: "目標ペース内（年間の{pct}で {v} t）" },
  "pace_gap": { en: "{v} t above pace", ja: "目標ペースを {v} t 超過" },
  "city.total": { en: "FY{fy}: {v} t-CO2", ja: "{fy}年度: {v} t-CO2" },
  "city.complete": { en: "{n} of {m} sites complete", ja: "{m}事業所中 {n}事業所がデータ完備" },
  "no_sites": { en: "No site is configured for CO2 accounting (domains.co2.sites).",
    ja: "CO2算定の事業所が設定されていません（domains.co2.sites）。" },
  "updated": { en: "Updated {time}", ja: "{time} 更新" },
});

const MONTH_NAMES = {
  en: ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"],
  ja: ["1月", "2月", "3月", "4月", "5月", "6月", "7月", "8月", "9月", "10月", "11月", "12月"],
};

const params = new URLSearchParams(location.search);
const state = { sites: [], site: params.get("site"), fy: Number(params.get("fy")) || GC.fiscalYearOf(GC.todayJst()),
  summary: null, progress: null, city: null, cityError: null };

function monthLabel(period) {
  const [year, month] = period.split("-").map(Number);
  return `${MONTH_NAMES[GC.lang][month - 1]}${GC.lang === "ja" ? "" : ` ${String(year).slice(2)}`}`;
}

function addKg(a, b) { return a === null || a === undefined || b === null || b === undefined ? null : a + b; }

// What a month looks like: no row -> missing (or future); completeness < 1 -> incomplete.
function monthState(period, row) {
  if (period > GC.todayJst().slice(0, 7)) return "future";
  if (!row) return "missing";
  const billed = (row.kwh_billed ?? 0) > 0 || (row.scope1_kg ?? 0) > 0;
  if (row.completeness === null || row.completeness === undefined) return row.total_kg === null && !billed ? "missing" : "complete";
  if (row.completeness <= 0 && !billed) return "missing";
  return row.completeness < 1 ? "incomplete" : "complete";
}

function monthlyView(summary) {
  const rows = new Map((summary?.rows ?? []).map((row) => [row.period, row]));
  return GC.fiscalMonths(state.fy).map((period) => {
    const row = rows.get(period) ?? null;
    const status = monthState(period, row);
    const market = row ? row.total_kg : null;
    const location = row ? addKg(row.scope1_kg ?? 0, row.scope2_location_kg) : null;
    return { period, row, status, market, location };
  });
}

function stateText(month) {
  if (month.status === "incomplete") return GC.t("state.incomplete", { pct: GC.pct(month.row.completeness) });
  return GC.t(`state.${month.status}`);
}

function renderMonthly() {
  const months = monthlyView(state.summary);
  const hasData = (m) => m.status === "complete" || m.status === "incomplete";
  GC.legend($("[data-role=monthly-legend]"), [
    { cls: "market", labelKey: "legend.market" }, { cls: "location", labelKey: "legend.location" },
    { cls: "incomplete", labelKey: "legend.incomplete" }, { cls: "missing", labelKey: "legend.missing" }]);
  GC.bars($("[data-role=monthly-chart]"), {
    cls: "co2-monthly",
    unit: "kg-CO2",
    categories: months.map((m) => ({
      key: m.period, label: monthLabel(m.period), state: m.status,
      note: m.status === "incomplete" ? GC.pct(m.row.completeness) : null,
      valueLabel: hasData(m) ? GC.num(m.market ?? m.location, 0) : GC.t(`state.${m.status}`),
      title: hasData(m)
        ? GC.t("tip.month", { month: m.period, market: GC.num(m.market, 0), location: GC.num(m.location, 0),
          kwh: GC.num(m.row.kwh, 0), pct: GC.pct(m.row.completeness) })
        : GC.t(`tip.${m.status}`, { month: m.period }),
    })),
    series: [
      { name: "market", cls: "market", values: months.map((m) => (hasData(m) ? m.market : null)) },
      { name: "location", cls: "location", values: months.map((m) => (hasData(m) ? m.location : null)) },
    ],
  });

  const tbody = $("[data-role=monthly-table] tbody");
  tbody.replaceChildren();
  for (const m of months) {
    const tr = GC.el("tr", { "data-period": m.period, "data-state": m.status });
    tr.append(GC.el("th", { scope: "row" }, m.period), GC.el("td", { class: "num" }, GC.num(m.row?.kwh ?? null, 0)),
      GC.el("td", { class: "num market" }, GC.num(m.market, 0)), GC.el("td", { class: "num location" }, GC.num(m.location, 0)),
      GC.el("td", { class: "num" }, GC.num(m.status === "missing" || m.status === "future" ? null : m.row?.scope1_kg ?? null, 0)),
      GC.el("td", { class: "num state" }, stateText(m)));
    tbody.append(tr);
  }
}

function yearTotal() {
  const year = (state.progress?.years ?? []).find((y) => y.fy === state.fy);
  if (year) return { t: year.t_co2, completeness: year.completeness };
  const months = monthlyView(state.summary).filter((m) => m.market !== null);
  if (months.length === 0) return { t: null, completeness: null };
  return { t: months.reduce((a, m) => a + m.market, 0) / 1000, completeness: null };
}

function setStat(name, text) { $(`[data-stat="${name}"]`).textContent = text; }

// The share of fiscal year ``fy`` that has passed (JST), or null when it is over (or not begun).
function yearElapsed(fy, nowMs = Date.now()) {
  const start = Date.UTC(fy, 3, 1) - 9 * 3600e3, end = Date.UTC(fy + 1, 3, 1) - 9 * 3600e3;
  return nowMs > start && nowMs < end ? (nowMs - start) / (end - start) : null;
}

function renderSummary() {
  const summary = state.summary;
  const total = yearTotal();
  // A running year is compared with the same share of the baseline and of the FY2030 target
  // (its pace), never with a whole year as if it were over.
  const elapsed = yearElapsed(state.fy);
  setStat("fy-total", total.t === null ? "–" : GC.t("t", { v: GC.num(total.t, 1) }));
  setStat("fy-completeness", total.completeness === null ? ""
    : elapsed !== null ? GC.t("so_far", { pct: GC.pct(elapsed), data: GC.pct(total.completeness) })
      : GC.t("data", { pct: GC.pct(total.completeness) }));
  const baseline = summary?.baseline ?? state.progress?.baseline ?? null;
  setStat("baseline", baseline?.t_co2 == null ? "–" : GC.t("t", { v: GC.num(baseline.t_co2, 1) }));
  setStat("baseline-fy", baseline?.fy == null ? "" : GC.t("baseline_of", { fy: baseline.fy }));
  const share = elapsed ?? 1;
  const change = total.t !== null && baseline?.t_co2 ? (total.t - baseline.t_co2 * share) / (baseline.t_co2 * share) : null;
  setStat("vs-baseline", change === null ? "–" : `${change > 0 ? "+" : ""}${(change * 100).toFixed(1)} %`);
  const fromLine = (state.progress?.target_line ?? []).find((p) => p.fy === 2030);
  const target = summary?.target_fy2030_t_co2 ?? fromLine?.t_co2 ?? null;
  setStat("target", target === null ? "–" : GC.t("t", { v: GC.num(target, 1) }));
  // A year with gaps is not compared as if it were whole.
  const partial = total.completeness !== null && total.completeness < 1;
  setStat("vs-note", change === null ? "" : partial ? GC.t("partial", { pct: GC.pct(total.completeness) })
    : elapsed !== null ? GC.t("pace_note", { pct: GC.pct(elapsed) }) : "");
  setStat("target-gap", target === null || total.t === null ? "" : partial ? GC.t("partial", { pct: GC.pct(total.completeness) })
    : elapsed !== null ? (total.t <= target * elapsed ? GC.t("pace_met", { v: GC.num(target * elapsed, 1), pct: GC.pct(elapsed) })
      : GC.t("pace_gap", { v: GC.num(total.t - target * elapsed, 1) }))
    : total.t <= target ? GC.t("target_met") : GC.t("target_gap", { v: GC.num(total.t - target, 1) }));
  const factor = summary?.factor;
  const value = factor?.adjusted_kg_per_kwh ?? factor?.basic_kg_per_kwh ?? null;
  setStat("factor", value === null ? "–" : `${GC.num(value, 3)} kg/kWh`);
  // The source in the card, the long note (why this year's value) as the card's tooltip.
  setStat("factor-source", factor ? [factor.retailer, factor.menu, factor.source].filter(Boolean).join(" · ") : "");
  $('[data-stat="factor-source"]').title = factor?.note ?? "";
}

function renderTrajectory() {
  const progress = state.progress;
  const svg = $("[data-role=trajectory-chart]");
  GC.legend($("[data-role=trajectory-legend]"), [
    { cls: "actual", labelKey: "legend.actual" }, { cls: "partial", labelKey: "legend.partial_year" },
    { cls: "target", labelKey: "legend.target" }]);
  const years = progress?.years ?? [];
  const line = progress?.target_line ?? [];
  const fys = [...years.map((y) => y.fy), ...line.map((p) => p.fy), state.fy];
  const first = Math.min(...fys);
  const last = Math.max(...fys, 2030);
  const xs = Array.from({ length: last - first + 1 }, (_, i) => first + i);
  // Only a whole year with complete data is on the line; a running year or one with gaps is a
  // separate, pale series (its total is not a year's emissions).
  const whole = (y) => y.t_co2 !== null && yearElapsed(y.fy) === null && (y.completeness ?? 0) >= 0.999;
  const actual = new Map(years.filter(whole).map((y) => [y.fy, y.t_co2]));
  const partial = new Map(years.filter((y) => y.t_co2 !== null && !whole(y)).map((y) => [y.fy, y]));
  const target = new Map(line.map((p) => [p.fy, p.t_co2]));
  GC.lines(svg, {
    cls: "co2-trajectory", unit: "t-CO2", xs, height: 240,
    tickEvery: xs.length > 20 ? 5 : 1,   // FY2015, FY2020, ... on a long line
    xLabel: (fy) => (GC.lang === "ja" ? String(fy) : `FY${String(fy).slice(2)}`),
    series: [
      { name: "target", cls: "target", values: xs.map((fy) => target.get(fy) ?? null) },
      { name: "actual", cls: "actual", dots: true, values: xs.map((fy) => actual.get(fy) ?? null),
        title: (fy, v) => GC.t("tip.year", { fy, t: GC.num(v, 1) }) },
      { name: "partial", cls: "partial", dots: true, values: xs.map((fy) => partial.get(fy)?.t_co2 ?? null),
        title: (fy, v) => GC.t("tip.partial_year", { fy, t: GC.num(v, 1),
          pct: GC.pct(yearElapsed(fy) ?? partial.get(fy)?.completeness ?? 0) }) },
    ],
  });
}

function renderLinks() {
  const site = encodeURIComponent(state.site ?? "");
  const select = $("[data-role=report-month]");
  const thisMonth = GC.todayJst().slice(0, 7);
  const months = GC.fiscalMonths(state.fy).filter((m) => m <= thisMonth);
  // default: the last finished month (the running one is not reported yet)
  const running = months.includes(thisMonth);
  const fallback = months[Math.max(0, months.length - (running ? 2 : 1))] ?? "";
  const keep = months.includes(select.value) ? select.value : fallback;
  select.replaceChildren(...months.map((m) => GC.el("option", { value: m }, m)));
  select.value = keep;
  const report = $("[data-role=report-link]");
  report.href = `/api/co2/sites/${site}/report?month=${encodeURIComponent(select.value)}`;
  report.toggleAttribute("hidden", !select.value);
  const base = `/api/co2/sites/${site}/summary?period=month&fy=${state.fy}`;
  $("[data-role=csv-link]").href = `${base}&format=csv`;
  $("[data-role=xlsx-link]").href = `${base}&format=xlsx`;
}

function renderCity() {
  const city = state.city;
  const box = $("[data-role=city-error]");
  box.hidden = !state.cityError;
  box.textContent = state.cityError ? state.cityError.message : "";
  $("[data-role=city-csv-link]").href = `/api/co2/city?fy=${state.fy}&format=csv`;
  $("[data-role=city-xlsx-link]").href = `/api/co2/city?fy=${state.fy}&format=xlsx`;
  setStat("city-total", city ? GC.t("city.total", { fy: city.fy, v: GC.num(city.t_co2, 1) }) : "–");
  setStat("city-complete", city ? GC.t("city.complete", { n: city.sites_complete, m: city.sites }) : "");
  const tbody = $("[data-role=city-table] tbody");
  tbody.replaceChildren();
  for (const row of city?.per_site ?? []) {
    const tr = GC.el("tr", { "data-site": row.site });
    tr.append(GC.el("th", { scope: "row" }, row.site), GC.el("td", { class: "num" }, GC.num(row.t_co2, 1)),
      GC.el("td", { class: "num" }, GC.pct(row.completeness)));
    tbody.append(tr);
  }
}

function renderPickers() {
  const siteSelect = $("[data-role=site]");
  siteSelect.replaceChildren(...state.sites.map((s) =>
    GC.el("option", { value: s.site }, s.name && s.name !== s.site ? `${s.name} (${s.site})` : s.site)));
  if (state.site && !state.sites.some((s) => s.site === state.site)) {
    siteSelect.append(GC.el("option", { value: state.site }, state.site));   // asked for in the URL: the API says 404
  }
  siteSelect.value = state.site ?? "";
  const fySelect = $("[data-role=fy]");
  const current = GC.fiscalYearOf(GC.todayJst());
  const years = new Set([state.fy, ...Array.from({ length: 6 }, (_, i) => current - i),
    ...(state.progress?.years ?? []).map((y) => y.fy)]);
  const sorted = [...years].filter((y) => y >= 2000 && y <= current + 1).sort((a, b) => b - a);
  fySelect.replaceChildren(...sorted.map((fy) => GC.el("option", { value: String(fy) }, GC.t("fy", { fy }))));
  fySelect.value = String(state.fy);
}

function renderAll() {
  renderPickers();
  renderSummary();
  renderMonthly();
  renderTrajectory();
  renderLinks();
  renderCity();
}

function remember() {
  const query = new URLSearchParams(location.search);
  if (state.site) query.set("site", state.site);
  query.set("fy", String(state.fy));
  history.replaceState(null, "", `${location.pathname}?${query}`);
}

async function load() {
  const errorBox = $("[data-role=error]");
  try {
    const sites = await GC.getJSON("/api/co2/sites");
    state.sites = sites.sites;
    if (!state.site) state.site = state.sites[0]?.site ?? null;
    remember();
    renderPickers();   // before the site's figures: a wrong site in the URL can be changed right away
    const cityPromise = GC.getJSON(`/api/co2/city?fy=${state.fy}`)
      .then((city) => { state.city = city; state.cityError = null; })
      .catch((error) => { state.city = null; state.cityError = error; });
    if (!state.site) {
      await cityPromise;
      state.summary = null;
      state.progress = null;
      renderAll();
      GC.showError(errorBox, new Error(GC.t("no_sites")));
      return;
    }
    const site = encodeURIComponent(state.site);
    const [summary, progress] = await Promise.all([
      GC.getJSON(`/api/co2/sites/${site}/summary?period=month&fy=${state.fy}`),
      GC.getJSON(`/api/co2/sites/${site}/progress`), cityPromise]);
    state.summary = summary;
    state.progress = progress;
    GC.loaded(errorBox, `${state.site}/${state.fy}`, renderAll);
  } catch (error) {
    GC.loadFailed(errorBox, error);
  }
}

const refresh = GC.every(REFRESH_MS, load);

$("[data-role=site]").addEventListener("change", (event) => { state.site = event.target.value; refresh(); });
$("[data-role=fy]").addEventListener("change", (event) => { state.fy = Number(event.target.value); refresh(); });
$("[data-role=report-month]").addEventListener("change", renderLinks);
GC.onLang(() => { if (state.sites.length || state.summary) renderAll(); });
GC.bindLangButtons();
refresh();
