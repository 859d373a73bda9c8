// Formatting helpers for the board: metric names, values with units, ages, sparklines.
"use strict";

const UNIT_GUESSES = [
  [/^power_factor/, ""], [/^voltage/, "V"], [/^current/, "A"], [/^(active_)?power/, "W"], [/^reactive_power/, "var"],
  [/^apparent_power/, "VA"], [/^energy/, "kWh"], [/^frequency/, "Hz"], [/temperature/, "°C"],
  [/^(soc|battery|state_of_charge)/, "%"], [/^speed/, "km/h"], [/^heart_rate/, "bpm"],
  [/^spo2/, "%"], [/^readings_per_s$/, "/s"], [/_s$/, "s"],
];

function guessUnit(metric) {
  for (const [pattern, unit] of UNIT_GUESSES) if (pattern.test(metric)) return unit;
  return "";
}

function prettyMetric(metric) {
  return metric.split("_").map((word) => {
    if (/^l[1-3]$/.test(word)) return word.toUpperCase();
    return word.charAt(0).toUpperCase() + word.slice(1);
  }).join(" ");
}

function roundFor(value) {
  const magnitude = Math.abs(value);
  if (magnitude >= 1000 || magnitude === 0) return 0;
  if (magnitude >= 100) return 1;
  if (magnitude >= 1) return 2;
  return 3;
}

// -> {text, unit}; W and Wh scale up to k/M so a factory load reads as "42.5 kW".
function formatValue(value, unit) {
  if (value === null || value === undefined) return { text: "–", unit: "" };
  if (typeof value === "boolean") return { text: value ? "on" : "off", unit: "" };
  if (typeof value === "string") return { text: value, unit: "" };
  let scaled = value;
  let shownUnit = unit;
  if ((unit === "W" || unit === "Wh" || unit === "VA" || unit === "var") && Math.abs(value) >= 1000) {
    const mega = Math.abs(value) >= 1e6;
    scaled = value / (mega ? 1e6 : 1e3);
    shownUnit = (mega ? "M" : "k") + unit;
  }
  // Measured quantities keep a fixed number of decimals so digits do not jump between
  // refreshes; unitless whole numbers (counters, queue depths) show none.
  const digits = Number.isInteger(value) && !unit ? 0 : roundFor(scaled);
  const text = scaled.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
  return { text, unit: shownUnit };
}

function formatAge(seconds) {
  if (seconds === null || seconds === undefined) return "never";
  if (seconds < 2) return "just now";
  if (seconds < 90) return `${Math.round(seconds)} s ago`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min ago`;
  if (seconds < 129600) return `${Math.round(seconds / 3600)} h ago`;
  return `${Math.round(seconds / 86400)} d ago`;
}

function formatPercent(ratio) {
  if (ratio === null || ratio === undefined) return "–";
  const pct = ratio * 100;
  return (pct >= 99.95 ? "100" : pct.toFixed(1)) + " %";
}

const SVG_NS = "http://www.w3.org/2000/svg";

function makeSparkline() {
  const svg = document.createElementNS(SVG_NS, "svg");
  svg.setAttribute("viewBox", "0 0 100 24");
  svg.setAttribute("preserveAspectRatio", "none");
  svg.setAttribute("class", "spark");
  svg.setAttribute("aria-hidden", "true");
  const area = document.createElementNS(SVG_NS, "path");
  area.setAttribute("class", "spark-area");
  const line = document.createElementNS(SVG_NS, "polyline");
  line.setAttribute("class", "spark-line");
  svg.append(area, line);
  return svg;
}

// Draw the numeric history (oldest first, at most HISTORY values) across the whole sparkline.
function drawSparkline(svg, values) {
  const [area, line] = svg.children;
  svg.dataset.points = String(values.length);
  if (values.length < 2) {
    line.setAttribute("points", "");
    area.setAttribute("d", "");
    return;
  }
  let lo = Math.min(...values);
  let hi = Math.max(...values);
  if (hi - lo < 1e-9) { lo -= 1; hi += 1; }
  const step = 100 / (values.length - 1);
  const x0 = 0;
  const points = values.map((v, i) => {
    const x = x0 + i * step;
    const y = 22 - ((v - lo) / (hi - lo)) * 20;
    return `${x.toFixed(2)},${y.toFixed(2)}`;
  });
  line.setAttribute("points", points.join(" "));
  area.setAttribute("d", `M${x0.toFixed(2)},24 L${points.join(" L")} L100,24 Z`);
}
