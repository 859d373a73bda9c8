// Small SVG charts (grouped or stacked bars, lines) and the page helpers the CO2 and interchange
// views share: language switch (日本語 / English), fetch with readable API errors, elements whose
// text always goes through textContent. No libraries: sites run offline.
"use strict";

const GC = (() => {
  const SVG = "http://www.w3.org/2000/svg";
  const JST_MS = 9 * 3600 * 1000;

  // ---------------------------------------------------------------- elements and text

  function el(tag, attrs = {}, text) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (value === undefined || value === null) continue;
      if (key === "class") node.className = value;
      else if (key.startsWith("data-") || key.startsWith("aria-")) node.setAttribute(key, value);
      else node[key] = value;
    }
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function svg(tag, attrs = {}, text) {
    const node = document.createElementNS(SVG, tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (value !== undefined && value !== null) node.setAttribute(key, String(value));
    }
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // ---------------------------------------------------------------- language

  const strings = {};
  let lang = (() => {
    const asked = new URLSearchParams(location.search).get("lang") || localStorage.getItem("hinode-lang");
    if (asked === "ja" || asked === "en") return asked;
    return (navigator.language || "").toLowerCase().startsWith("ja") ? "ja" : "en";
  })();
  const listeners = [];

  function addStrings(table) { Object.assign(strings, table); }

  // t("key", {n: 3}) -> the text in the current language with {n} filled in.
  function t(key, params = {}) {
    const entry = strings[key];
    let text = entry ? (entry[lang] ?? entry.en) : key;
    for (const [name, value] of Object.entries(params)) text = text.split(`{${name}}`).join(String(value));
    return text;
  }

  function has(key) { return key in strings; }

  function applyStrings(root = document) {
    document.documentElement.lang = lang;
    for (const node of root.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
    for (const button of root.querySelectorAll("[data-lang]")) {
      button.setAttribute("aria-pressed", String(button.dataset.lang === lang));
    }
  }

  function setLang(next) {
    lang = next;
    localStorage.setItem("hinode-lang", next);
    applyStrings();
    for (const listener of listeners) listener(next);
  }

  function onLang(listener) { listeners.push(listener); }

  function bindLangButtons() {
    for (const button of document.querySelectorAll("[data-lang]")) {
      button.addEventListener("click", () => setLang(button.dataset.lang));
    }
    applyStrings();
  }

  // ---------------------------------------------------------------- API

  class ApiError extends Error {
    constructor(path, status, detail) {
      super(`${path}: ${status} ${detail}`);
      this.path = path;
      this.status = status;
      this.detail = detail;
    }
  }

  async function getJSON(path) {
    let response;
    try {
      response = await fetch(path, { cache: "no-store", credentials: "same-origin" });
    } catch (error) {
      throw new ApiError(path, 0, error.message);
    }
    if (!response.ok) {
      let detail = response.statusText;
      try {
        const body = await response.json();
        detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail ?? body);
      } catch (_) { /* not JSON */ }
      throw new ApiError(path, response.status, detail);
    }
    return response.json();
  }

  // Show an API error in `box` (a [data-role=error] element): 401 gets a login link.
  function showError(box, error) {
    box.replaceChildren();
    box.hidden = false;
    const status = error instanceof ApiError ? error.status : -1;
    box.dataset.status = String(status);
    if (status === 401) {
      box.append(el("span", {}, t("err.login") + " "), el("a", { href: "/login" }, t("err.login_link")));
    } else if (status === 403) {
      box.append(el("span", {}, t("err.forbidden", { detail: error.detail })));
    } else if (status === 404) {
      box.append(el("span", {}, t("err.not_found", { detail: error.detail })));
    } else if (!(error instanceof ApiError)) {
      box.append(el("span", {}, error.message));
    } else if (status === 0) {
      box.append(el("span", {}, t("err.network", { detail: error.detail })));
    } else {
      box.append(el("span", {}, t("err.other", { detail: error.message })));
    }
  }

  function clearError(box) {
    box.hidden = true;
    box.replaceChildren();
    delete box.dataset.status;
  }

  addStrings({
    "err.login": { en: "Please log in to see this view.", ja: "この画面を見るにはログインしてください。" },
    "err.login_link": { en: "Log in", ja: "ログイン" },
    "err.forbidden": { en: "Your account may not read this ({detail}).", ja: "このアカウントには閲覧権限がありません（{detail}）。" },
    "err.not_found": { en: "Not found: {detail}", ja: "見つかりません: {detail}" },
    "err.network": { en: "The server cannot be reached ({detail}).", ja: "サーバーに接続できません（{detail}）。" },
    "err.other": { en: "Error from the API: {detail}", ja: "APIエラー: {detail}" },
  });

  // ---------------------------------------------------------------- numbers and dates

  function num(value, digits = null) {
    if (value === null || value === undefined || Number.isNaN(value)) return "–";
    const d = digits ?? (Math.abs(value) >= 100 || value === 0 ? 0 : Math.abs(value) >= 10 ? 1 : 2);
    return value.toLocaleString("en-US", { minimumFractionDigits: d, maximumFractionDigits: d });
  }

  function pct(ratio) {
    if (ratio === null || ratio === undefined) return "–";
    const value = ratio * 100;
    return (value >= 99.95 ? "100" : value.toFixed(1)) + " %";
  }

  // Today's date in Japan (UTC+9, no DST) as YYYY-MM-DD, whatever the browser's zone.
  function todayJst(nowMs = Date.now()) {
    return new Date(nowMs + JST_MS).toISOString().slice(0, 10);
  }

  function fiscalYearOf(isoDate) {
    const [year, month] = isoDate.split("-").map(Number);
    return month >= 4 ? year : year - 1;
  }

  function fiscalMonths(fy) {
    const months = [];
    for (let i = 0; i < 12; i += 1) {
      const month = ((3 + i) % 12) + 1;
      const year = month >= 4 ? fy : fy + 1;
      months.push(`${year}-${String(month).padStart(2, "0")}`);
    }
    return months;
  }

  // -> run(): calls `fn` now and then every `ms`; calling run() again (new selection) restarts the
  // cycle, and an older cycle still waiting for its fetch does not schedule another timer.
  // The end of a view's load: figures shown, "updated" stamped and body[data-loaded] set (what the
  // browser tests wait for); on an error the message is shown and, for an unknown id or a missing
  // login, no stale figures of the previous selection stay on screen.
  function loaded(errorBox, key, render) {
    clearError(errorBox);
    document.querySelector("main").hidden = false;
    render();              // after unhiding: the charts take their width from the page
    document.querySelector("[data-role=updated]").textContent = t("updated", { time: new Date().toLocaleTimeString() });
    document.body.dataset.loaded = key;
  }

  function loadFailed(errorBox, error) {
    if (error instanceof ApiError && [401, 403, 404].includes(error.status)) document.querySelector("main").hidden = true;
    showError(errorBox, error);
    document.body.dataset.loaded = "error";
  }

  function every(ms, fn) {
    let timer = null;
    let generation = 0;
    const run = async () => {
      clearTimeout(timer);
      const mine = ++generation;
      try { await fn(); } finally {
        if (mine === generation) timer = setTimeout(run, ms);
      }
    };
    return run;
  }

  // ---------------------------------------------------------------- charts

  // Axis scale for values up to `value`: a round step (1, 2, 2.5 or 5 x 10^k) giving about 4 ticks.
  function niceScale(value) {
    if (!(value > 0)) return { top: 1, step: 0.25 };
    const raw = value / 4;
    const power = 10 ** Math.floor(Math.log10(raw));
    const step = [1, 2, 2.5, 5, 10].map((m) => m * power).find((s) => s >= raw);
    return { top: step * Math.ceil(value / step - 1e-9), step };
  }

  function yAxis(root, box, scale, unit) {
    const ticks = Math.round(scale.top / scale.step);
    for (let i = 0; i <= ticks; i += 1) {
      const value = scale.step * i;
      const y = box.bottom - (box.bottom - box.top) * (value / scale.top);
      root.append(svg("line", { class: "grid-line", x1: box.left, x2: box.right, y1: y, y2: y }));
      root.append(svg("text", { class: "tick", x: box.left - 6, y: y + 4, "text-anchor": "end" },
        num(value, scale.step < 1 ? 2 : scale.step % 1 ? 1 : 0)));
    }
    if (unit) root.append(svg("text", { class: "axis-unit", x: box.left - 6, y: box.top - 10, "text-anchor": "end" }, unit));
  }

  function sum(values) { return values.reduce((a, b) => a + (b ?? 0), 0); }

  // Bars per category: categories [{key, label, state, title, valueLabel}], series [{name, cls, values}],
  // stacked or side by side; lines [{name, cls, values}] drawn over the bars (same y scale).
  // A category whose state is "missing" or "future" gets an outlined placeholder, never a zero bar.
  function bars(root, spec) {
    const width = spec.width ?? 960;
    const height = spec.height ?? 300;
    const box = { left: 64, right: width - 12, top: 28, bottom: height - 40 };
    root.replaceChildren();
    root.setAttribute("viewBox", `0 0 ${width} ${height}`);
    root.setAttribute("class", `chart ${spec.cls ?? ""}`.trim());
    const n = spec.categories.length;
    const heights = spec.categories.map((_, i) => {
      const parts = spec.series.map((s) => s.values[i] ?? 0);
      return spec.stacked ? sum(parts) : Math.max(0, ...parts);
    });
    const lineMax = Math.max(0, ...(spec.lines ?? []).flatMap((l) => l.values.map((v) => v ?? 0)));
    const axis = niceScale(Math.max(...heights, lineMax));
    const top = axis.top;
    yAxis(root, box, axis, spec.unit);
    const slotWidth = (box.right - box.left) / n;
    const barArea = slotWidth * (spec.gap ?? 0.75);
    const barWidth = spec.stacked ? barArea : barArea / spec.series.length;
    const scale = (v) => ((box.bottom - box.top) * v) / top;
    const labelEvery = spec.labelEvery ?? 1;

    spec.categories.forEach((cat, i) => {
      const x0 = box.left + slotWidth * i + (slotWidth - barArea) / 2;
      const group = svg("g", { class: "bar-group", "data-key": cat.key, "data-state": cat.state ?? "complete" });
      if (cat.title) group.append(svg("title", {}, cat.title));
      const empty = cat.state === "missing" || cat.state === "future";
      if (empty) {
        group.append(svg("rect", { class: `placeholder ${cat.state}`, x: x0, y: box.top, width: barArea,
          height: box.bottom - box.top }));
      } else {
        let stackY = box.bottom;
        spec.series.forEach((series, s) => {
          const value = series.values[i];
          if (value === null || value === undefined) return;
          const h = scale(Math.max(0, value));
          const x = spec.stacked ? x0 : x0 + barWidth * s;
          const y = spec.stacked ? stackY - h : box.bottom - h;
          if (spec.stacked) stackY -= h;
          const rect = svg("rect", { class: `bar ${series.cls}`, x, y, width: Math.max(1, barWidth - 1), height: h,
            "data-series": series.name, "data-value": value });
          group.append(rect);
        });
      }
      const labelText = cat.valueLabel ?? (empty ? "" : null);
      if (labelText) {
        const y = empty ? box.bottom - 6 : box.bottom - scale(heights[i]) - 6;
        group.append(svg("text", { class: "bar-value", x: x0 + barArea / 2, y, "text-anchor": "middle" }, labelText));
      }
      if (i % labelEvery === 0) {
        group.append(svg("text", { class: "tick x-tick", x: x0 + barArea / 2, y: box.bottom + 16, "text-anchor": "middle" },
          cat.label));
      }
      if (cat.mark) {   // a strip under the axis, visible even when the bars are zero (e.g. a provisional slot)
        group.append(svg("rect", { class: `mark ${cat.mark}`, x: x0, y: box.bottom + 2, width: barArea, height: 4 }));
      }
      if (cat.note) {
        group.append(svg("text", { class: "bar-note", x: x0 + barArea / 2, y: box.bottom + 30, "text-anchor": "middle" },
          cat.note));
      }
      root.append(group);
    });

    for (const line of spec.lines ?? []) {
      const points = line.values.map((v, i) => (v === null || v === undefined ? null
        : `${(box.left + slotWidth * (i + 0.5)).toFixed(1)},${(box.bottom - scale(v)).toFixed(1)}`));
      for (const run of runs(points)) {
        root.append(svg("polyline", { class: `line ${line.cls}`, points: run.join(" "), "data-series": line.name }));
      }
    }
    root.append(svg("line", { class: "axis", x1: box.left, x2: box.right, y1: box.bottom, y2: box.bottom }));
  }

  // Split a list of "x,y" strings at nulls: a gap in the data is a gap in the line.
  function runs(points) {
    const out = [];
    let current = [];
    for (const p of points) {
      if (p === null) { if (current.length) out.push(current); current = []; } else current.push(p);
    }
    if (current.length) out.push(current);
    return out;
  }

  // Lines over numeric x: xs [numbers], series [{name, cls, values, dots}], xLabel(x) for ticks.
  function lines(root, spec) {
    const width = spec.width ?? 960;
    const height = spec.height ?? 260;
    const box = { left: 64, right: width - 16, top: 28, bottom: height - 34 };
    root.replaceChildren();
    root.setAttribute("viewBox", `0 0 ${width} ${height}`);
    root.setAttribute("class", `chart ${spec.cls ?? ""}`.trim());
    const xs = spec.xs;
    const lo = Math.min(...xs);
    const hi = Math.max(...xs);
    const axis = niceScale(Math.max(0, ...spec.series.flatMap((s) => s.values.map((v) => v ?? 0))));
    const top = axis.top;
    yAxis(root, box, axis, spec.unit);
    const xOf = (x) => box.left + ((box.right - box.left) * (x - lo)) / Math.max(1, hi - lo);
    const yOf = (v) => box.bottom - ((box.bottom - box.top) * v) / top;
    const tickEvery = spec.tickEvery ?? 1;
    for (const x of xs) {
      if (x % tickEvery !== 0 && x !== lo && x !== hi) continue;
      if (x !== lo && x !== hi && (x - lo < tickEvery / 2 || hi - x < tickEvery / 2)) continue;   // no overlapping ticks
      root.append(svg("text", { class: "tick x-tick", x: xOf(x), y: box.bottom + 16, "text-anchor": "middle" },
        spec.xLabel ? spec.xLabel(x) : String(x)));
    }
    for (const series of spec.series) {
      const group = svg("g", { class: `series ${series.cls}`, "data-series": series.name });
      const points = series.values.map((v, i) => (v === null || v === undefined ? null
        : `${xOf(xs[i]).toFixed(1)},${yOf(v).toFixed(1)}`));
      for (const run of runs(points)) group.append(svg("polyline", { class: "line", points: run.join(" ") }));
      if (series.dots) {
        series.values.forEach((v, i) => {
          if (v === null || v === undefined) return;
          const dot = svg("circle", { class: "dot", cx: xOf(xs[i]), cy: yOf(v), r: 4, "data-x": xs[i], "data-value": v });
          dot.append(svg("title", {}, series.title ? series.title(xs[i], v, i) : `${xs[i]}: ${num(v)}`));
          group.append(dot);
        });
      }
      root.append(group);
    }
    root.append(svg("line", { class: "axis", x1: box.left, x2: box.right, y1: box.bottom, y2: box.bottom }));
  }

  // Legend items [{cls, labelKey}] as swatches; text re-rendered with the language.
  function legend(container, items) {
    container.replaceChildren();
    for (const item of items) {
      const entry = el("span", { class: "legend-item" });
      entry.append(el("span", { class: `swatch ${item.cls}` }), el("span", {}, t(item.labelKey)));
      container.append(entry);
    }
  }

  return {
    el, svg, t, has, addStrings, applyStrings, setLang, onLang, bindLangButtons, get lang() { return lang; },
    ApiError, getJSON, showError, clearError, num, pct, todayJst, fiscalYearOf, fiscalMonths, every, loaded, loadFailed,
    bars, lines, legend, niceScale,
  };
})();
