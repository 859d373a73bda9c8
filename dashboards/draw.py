"""Matplotlib drawing for ``dashboards.render``: one board = one PNG laid out by the panels' gridPos.

Grafana's look, roughly (dark theme, 24-column grid, classic palette); everything drawn from
InfluxDB's answers. The PNG is quantised to 256 colours so a board stays well under 300 KB.
"""

from __future__ import annotations

import io
import re
from datetime import datetime, timezone
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402

BG, PANEL, TEXT, MUTED, GRID, ERROR = "#111217", "#181b1f", "#ccccdc", "#8e8e9e", "#2c3235", "#f2495c"
PALETTE = ["#7eb26d", "#eab839", "#6ed0e0", "#ef843c", "#e24d42", "#1f78c1", "#ba43a9", "#705da0",
           "#508642", "#cca300", "#447ebc", "#c15c17"]
NAMED = {"green": "#73bf69", "red": "#f2495c", "orange": "#ff9830", "yellow": "#fade2a", "blue": "#5794f2",
         "purple": "#b877d9", "dark-red": "#c4162a", "dark-green": "#37872d", "transparent": PANEL,
         "text": TEXT}
UNITS = {"kwatt": "kW", "watt": "W", "kwatth": "kWh", "watth": "Wh", "volt": "V", "amp": "A", "percent": "%",
         "percentunit": "%", "s": "s", "ms": "ms", "short": "", "none": "", "celsius": "°C", "hertz": "Hz",
         "bps": "b/s", "decbytes": "B", "bytes": "B", "masskg": "kg", "masst": "t", "currencyJPY": "yen"}
PX_W, ROW_PX, HEADER_PX, DPI = 1600, 34, 70, 100
MAX_TABLE_ROWS = 9


def color(name: str | None) -> str:
    if not name:
        return PALETTE[0]
    return NAMED.get(name, name if name.startswith("#") else PALETTE[0])


def _field_defaults(panel: dict) -> dict:
    return ((panel.get("fieldConfig") or {}).get("defaults")) or {}


def fmt(value, panel: dict) -> str:
    """A value the way the panel's unit and decimals show it."""
    if value is None:
        return "–"
    if isinstance(value, bool) or isinstance(value, str):
        return str(value)
    d = _field_defaults(panel)
    unit = d.get("unit") or ""
    if unit == "percentunit":
        value *= 100
    decimals = d.get("decimals")
    if decimals is None:
        decimals = 0 if abs(value) >= 100 or float(value).is_integer() else 2 if abs(value) < 10 else 1
    text = f"{value:,.{int(decimals)}f}"
    suffix = UNITS.get(unit, unit)
    return f"{text} {suffix}".rstrip() if suffix not in ("%",) else f"{text}%"


def threshold_color(value, panel: dict) -> str:
    steps = ((_field_defaults(panel).get("thresholds") or {}).get("steps")) or []
    chosen = steps[0].get("color") if steps else "green"
    if isinstance(value, (int, float)):
        for step in steps[1:]:
            if step.get("value") is not None and value >= step["value"]:
                chosen = step.get("color")
    return color(chosen)


def _legend(series: dict, column: str, target: dict) -> str:
    alias = target.get("alias")
    tags = series.get("tags") or {}
    if alias:
        out = re.sub(r"\$tag_(\w+)", lambda m: str(tags.get(m.group(1), "")), alias)
        return out.replace("$col", column).replace("$m", series.get("name", "")).replace("$measurement",
                                                                                          series.get("name", ""))
    tag_text = ", ".join(f"{k}: {v}" for k, v in sorted(tags.items()))
    return f"{series.get('name', '')}.{column}" + (f" {{{tag_text}}}" if tag_text else "")


def _lines(d: dict):
    """(legend, [datetime], [value]) for every numeric column of every series."""
    for r in d["results"]:
        for s in r.get("series") or []:
            cols = s.get("columns") or []
            for i, col in enumerate(cols):
                if col == "time":
                    continue
                pts = [(datetime.fromtimestamp(row[0] / 1000, timezone.utc), row[i]) for row in s.get("values") or []
                       if isinstance(row[i], (int, float)) and not isinstance(row[i], bool)]
                if pts:
                    yield _legend(s, col, r["target"]), [p[0] for p in pts], [p[1] for p in pts]


def panel_title(d: dict) -> str:
    """The title with template variables replaced, as Grafana shows it."""
    title = d["panel"].get("title", "")
    for name, values in sorted(d["variables"].items(), key=lambda kv: -len(kv[0])):
        title = title.replace(f"${name}", ", ".join(values) if len(values) < 4 else "All")
    return title


def _style(ax) -> None:
    ax.set_facecolor(PANEL)
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.tick_params(colors=MUTED, labelsize=7, length=0)
    ax.grid(True, color=GRID, linewidth=0.6)


def _message(ax, text: str, colour: str = MUTED) -> None:
    ax.text(0.5, 0.5, text, color=colour, fontsize=7.5, ha="center", va="center", wrap=True,
            transform=ax.transAxes)


def draw_timeseries(ax, d: dict, bars: bool = False) -> None:
    panel, tz = d["panel"], d["tz"]
    lines = list(_lines(d))
    if not lines:
        return _message(ax, "No data")
    span = (d["end"] - d["start"]).total_seconds()
    if bars:
        times = sorted({t for _, ts, _ in lines for t in ts})
        width = (min((b - a).total_seconds() for a, b in zip(times, times[1:])) if len(times) > 1 else 3600) / 86400
        n = len(lines)
        for k, (name, ts, vs) in enumerate(lines):
            offset = (k - (n - 1) / 2) * width * 0.8 / n
            ax.bar([mdates.date2num(t) + offset for t in ts], vs, width=width * 0.8 / n, color=PALETTE[k % 12],
                   label=name)
    else:
        for k, (name, ts, vs) in enumerate(lines[:30]):
            ax.plot(ts, vs, color=PALETTE[k % 12], linewidth=1.2, label=name)
            if (panel.get("fieldConfig") or {}).get("defaults", {}).get("custom", {}).get("fillOpacity"):
                ax.fill_between(ts, vs, color=PALETTE[k % 12], alpha=0.12)
    d_ = _field_defaults(panel)
    if d_.get("min") is not None:
        ax.set_ylim(bottom=d_["min"])
    if d_.get("max") is not None:
        ax.set_ylim(top=d_["max"])
    ax.set_xlim(d["start"], d["end"])
    fmt_x = "%H:%M" if span <= 2 * 86400 else "%m-%d"
    ax.xaxis.set_major_formatter(mdates.DateFormatter(fmt_x, tz=tz))
    ax.xaxis.set_major_locator(mdates.AutoDateLocator(tz=tz, maxticks=8))
    unit = UNITS.get(d_.get("unit") or "", d_.get("unit") or "")
    scale = 100 if d_.get("unit") == "percentunit" else 1
    ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(
        lambda v, _p: f"{v * scale:,.6g}" + ("%" if unit == "%" else f" {unit}" if unit else "")))
    style = ((d_.get("custom") or {}).get("thresholdsStyle") or {}).get("mode", "off")
    if style in ("line", "line+area", "dashed", "dashed+area"):
        ylim = ax.get_ylim()                  # like Grafana: thresholds do not stretch the axis
        for step in ((d_.get("thresholds") or {}).get("steps") or [])[1:]:
            if step.get("value") is not None:
                ax.axhline(step["value"], color=color(step.get("color")), linewidth=0.9,
                           linestyle="--" if "dashed" in style else "-", alpha=0.8)
        ax.set_ylim(ylim)
    handles, labels = ax.get_legend_handles_labels()
    if len(handles) > 8:
        more = len(handles) - 7
        from matplotlib.lines import Line2D
        handles, labels = [*handles[:7], Line2D([], [], alpha=0)], [*labels[:7], f"+{more} more"]
    ax.legend(handles, labels, loc="upper left", fontsize=6.5, frameon=False, labelcolor=TEXT,
              ncol=min(4, len(handles)), bbox_to_anchor=(0, -0.09), borderaxespad=0, handlelength=1.5,
              columnspacing=1.2)


def draw_stat(ax, d: dict) -> None:
    ax.axis("off")
    ax.set_facecolor(PANEL)
    values = [(name, vs[-1]) for name, _ts, vs in _lines(d)]
    if not values:
        return _message(ax, "No data")
    shown = values[:4]
    for k, (name, value) in enumerate(shown):
        y = 0.45 if len(shown) == 1 else 0.8 - k * (0.75 / len(shown))
        size = 30 if len(shown) == 1 else 14
        ax.text(0.5, y, fmt(value, d["panel"]), color=threshold_color(value, d["panel"]), fontsize=size,
                fontweight="bold", ha="center", va="center", transform=ax.transAxes)
        if len(shown) > 1:
            ax.text(0.5, y - 0.12, name, color=MUTED, fontsize=6, ha="center", transform=ax.transAxes)


def table_rows(d: dict) -> tuple[list[str], list[list]]:
    """The panel's answer as Grafana's table: Time, tag columns, fields; then its transformations."""
    header: list[str] = []
    rows: list[dict] = []
    refs: list[str | None] = []          # each row's query (refId), for transformations applied to one query
    for r in d["results"]:
        for s in r.get("series") or []:
            tags = s.get("tags") or {}
            cols = ["Time" if c == "time" else c for c in s.get("columns") or []]
            for name in ([*cols[:1], *tags, *cols[1:]] if cols and cols[0] == "Time" else [*tags, *cols]):
                if name not in header:
                    header.append(name)
            for row in s.get("values") or []:
                r_ = {**tags, **dict(zip(cols, row))}
                if isinstance(r_.get("Time"), (int, float)):
                    r_["Time"] = datetime.fromtimestamp(r_["Time"] / 1000, d["tz"])
                rows.append(r_)
                refs.append((r.get("target") or {}).get("refId"))
    for t in d["panel"].get("transformations") or []:
        matcher = t.get("filter") or {}
        if matcher.get("id") == "byRefId":      # Grafana's "Apply to": only that query's rows
            picked = [i for i, ref in enumerate(refs) if ref == matcher.get("options")]
            _, changed = _transform(t.get("id"), t.get("options") or {}, header, [rows[i] for i in picked], d["tz"])
            for i, row in zip(picked, changed):       # organize: one row out per row in
                rows[i] = {k: v for k, v in row.items() if v is not None}
            continue
        header, rows = _transform(t.get("id"), t.get("options") or {}, header, rows, d["tz"])
        refs = [None] * len(rows)
    sort = (d["panel"].get("options") or {}).get("sortBy") or []
    if sort and sort[0].get("displayName") in header:
        key = sort[0]["displayName"]
        rows.sort(key=lambda r: (r.get(key) is None, r.get(key) if not isinstance(r.get(key), str) else 0),
                  reverse=bool(sort[0].get("desc")))
        if sort[0].get("desc"):
            rows.sort(key=lambda r: r.get(key) is None)
    return header, [[r.get(h) for h in header] for r in rows]


def _transform(kind: str, opts: dict, header: list[str], rows: list[dict], tz) -> tuple[list[str], list[dict]]:
    if kind == "merge":         # rows that agree on every column they share become one row
        merged: list[dict] = []
        for r in rows:
            for m in merged:
                shared = [k for k in r if k in m and r[k] is not None and m[k] is not None]
                if shared and all(r[k] == m[k] for k in shared):
                    m.update({k: v for k, v in r.items() if v is not None})
                    break
            else:
                merged.append(dict(r))
        return header, merged
    if kind == "filterByValue":
        checks = {"isNull": lambda v: v is None, "isNotNull": lambda v: v is not None}
        tests = [(f.get("fieldName"), checks.get((f.get("config") or {}).get("id"))) for f in opts.get("filters") or []]
        tests = [(name, fn) for name, fn in tests if fn]
        combine = all if opts.get("match", "all") == "all" else any
        keep = [r for r in rows if combine(fn(r.get(name)) for name, fn in tests)] if tests else rows
        return header, (keep if opts.get("type", "include") == "include" else [r for r in rows if r not in keep])
    if kind == "organize":
        excluded = {k for k, v in (opts.get("excludeByName") or {}).items() if v}
        rename = opts.get("renameByName") or {}
        header = [h for h in header if h not in excluded]
        rows = [{rename.get(h, h): r.get(h) for h in header} for r in rows]
        return [rename.get(h, h) for h in header], rows
    if kind == "formatTime":
        field = opts.get("timeField", "Time")
        pattern = (opts.get("outputFormat") or "YYYY-MM-DD HH:mm").replace("YYYY", "%Y").replace("MM", "%m") \
            .replace("DD", "%d").replace("HH", "%H").replace("mm", "%M")
        for r in rows:
            if isinstance(r.get(field), datetime):
                r[field] = r[field].strftime(pattern)
        return header, rows
    if kind == "groupBy":
        fields = opts.get("fields") or {}
        keys = [f for f, o in fields.items() if o.get("operation") == "groupby"]
        aggs = {f: (o.get("aggregations") or ["sum"])[0] for f, o in fields.items() if o.get("operation") == "aggregate"}
        groups: dict[tuple, dict] = {}
        for r in rows:
            g = groups.setdefault(tuple(r.get(k) for k in keys), {**{k: r.get(k) for k in keys},
                                                                  **{f: [] for f in aggs}})
            for f in aggs:
                if isinstance(r.get(f), (int, float)):
                    g[f].append(r[f])
        ops = {"sum": sum, "mean": lambda v: sum(v) / len(v), "max": max, "min": min, "count": len,
               "last": lambda v: v[-1], "lastNotNull": lambda v: v[-1]}
        out = []
        for g in groups.values():
            out.append({**{k: g[k] for k in keys},
                        **{f"{f} ({a})": (ops.get(a, sum)(g[f]) if g[f] else None) for f, a in aggs.items()}})
        return [*keys, *(f"{f} ({a})" for f, a in aggs.items())], out
    return header, rows


def column_config(panel: dict, name: str) -> dict:
    """The panel with its ``byName`` overrides for column ``name`` applied (unit, decimals, cell colours)."""
    defaults = {**_field_defaults(panel), "custom": dict(_field_defaults(panel).get("custom") or {})}
    for o in (panel.get("fieldConfig") or {}).get("overrides") or []:
        matcher = o.get("matcher") or {}
        if matcher.get("id") == "byName" and matcher.get("options") == name:
            for prop in o.get("properties") or []:
                key = prop.get("id", "")
                if key.startswith("custom."):
                    defaults["custom"][key[7:]] = prop.get("value")
                else:
                    defaults[key] = prop.get("value")
    return {"fieldConfig": {"defaults": defaults}}


def draw_table(ax, d: dict) -> None:
    ax.axis("off")
    header, rows = table_rows(d)
    if not rows:
        return _message(ax, _field_defaults(d["panel"]).get("noValue") or "No data")
    tz = d["tz"]

    columns = {h: column_config(d["panel"], h) for h in header}

    def cell(h, v):
        if isinstance(v, datetime):
            return v.astimezone(tz).strftime("%m-%d %H:%M")
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return fmt(v, columns[h])
        return "–" if v is None else str(v)
    shown = rows[:MAX_TABLE_ROWS]
    text = [[cell(h, v)[:28] for h, v in zip(header, row)] for row in shown]
    table = ax.table(cellText=text, colLabels=header, loc="upper center", cellLoc="left", colLoc="left",
                     bbox=[0, max(0.0, 1 - 0.11 * (len(shown) + 1)), 1, min(1.0, 0.11 * (len(shown) + 1))])
    table.auto_set_font_size(False)
    table.set_fontsize(6.5)
    for (row, col), c in table.get_celld().items():
        c.set_edgecolor(GRID)
        c.set_facecolor(PANEL)
        c.get_text().set_color(MUTED if row == 0 else TEXT)
        if row == 0:
            c.get_text().set_fontweight("bold")
            continue
        conf = columns[header[col]]
        value = shown[row - 1][col]
        mode = (_field_defaults(conf).get("custom") or {}).get("cellOptions", {}).get("type")
        if mode == "color-background" and isinstance(value, (int, float)):
            c.set_facecolor(threshold_color(value, conf))
            c.get_text().set_color("#111217")
        elif mode == "color-text" and isinstance(value, (int, float)):
            c.get_text().set_color(threshold_color(value, conf))
    if len(rows) > len(shown):
        ax.text(1, -0.02, f"{len(rows) - len(shown)} more rows", color=MUTED, fontsize=6, ha="right",
                va="top", transform=ax.transAxes)


def draw_panel(ax, d: dict) -> None:
    panel = d["panel"]
    kind = panel.get("type")
    _style(ax)
    errors = [r["error"] for r in d["results"] if "error" in r]
    if errors:
        ax.axis("off")
        ax.set_facecolor(PANEL)
        return _message(ax, "query failed:\n" + "\n".join(e[:160] for e in errors[:2]), ERROR)
    if kind in ("timeseries", "graph", "state-timeline", "trend"):
        draw_timeseries(ax, d)
    elif kind == "barchart":
        draw_timeseries(ax, d, bars=True)
    elif kind in ("stat", "gauge", "bargauge", "singlestat"):
        draw_stat(ax, d)
    elif kind == "table":
        draw_table(ax, d)
    elif kind == "nodeGraph":
        from dashboards.draw_graph import draw_node_graph
        draw_node_graph(ax, d)
    elif kind == "geomap":
        from dashboards.draw_geomap import draw_geomap
        draw_geomap(ax, d)
    elif kind == "text":
        ax.axis("off")
        _message(ax, ((panel.get("options") or {}).get("content") or "")[:300])
    else:
        ax.axis("off")
        _message(ax, f"({kind} panel: not drawn here)")


def board_png(board: dict, data: list[dict], out_path: Path) -> None:
    bottom = max((p["panel"].get("gridPos", {}).get("y", 0) + p["panel"].get("gridPos", {}).get("h", 8)
                  for p in data), default=8)
    height_px = HEADER_PX + bottom * ROW_PX + 10
    fig = plt.figure(figsize=(PX_W / DPI, height_px / DPI), dpi=DPI, facecolor=BG)
    fig.text(12 / PX_W, 1 - 22 / height_px, board.get("title", ""), color=TEXT, fontsize=15, fontweight="bold",
             va="center")
    variables = data[0]["variables"] if data else {}
    shown = "   ".join(f"{k} = {', '.join(v) if len(v) < 4 else 'All'}" for k, v in variables.items() if v)
    fig.text(12 / PX_W, 1 - 48 / height_px, f"rendered from the same queries, not by Grafana   |   {shown}",
             color=MUTED, fontsize=8.5, va="center")
    when = data[0]["end"].strftime("%Y-%m-%d %H:%M %Z") if data else ""
    fig.text(1 - 12 / PX_W, 1 - 22 / height_px, f"{board.get('uid', '')}   {when}", color=MUTED, fontsize=8,
             ha="right", va="center")
    for d in data:
        g = d["panel"].get("gridPos") or {"x": 0, "y": 0, "w": 12, "h": 8}
        plot = d["panel"].get("type") in ("timeseries", "barchart")
        pad_x, pad_top, pad_bottom = 10, 26, 44 if plot else 8
        x0 = g["x"] / 24 * PX_W + pad_x
        w = g["w"] / 24 * PX_W - 2 * pad_x
        top = HEADER_PX + g["y"] * ROW_PX
        h = g["h"] * ROW_PX
        # the panel's card, then the plot inside it
        card = fig.add_axes([(x0 - 6) / PX_W, 1 - (top + h - 3) / height_px, (w + 12) / PX_W, (h - 6) / height_px])
        card.set_facecolor(PANEL)
        card.set_xticks([])
        card.set_yticks([])
        for spine in card.spines.values():
            spine.set_color(GRID)
        fig.text((x0 + 2) / PX_W, 1 - (top + 13) / height_px, panel_title(d), color=TEXT, fontsize=9,
                 fontweight="bold", va="center")
        ax = fig.add_axes([(x0 + (58 if plot else 0)) / PX_W,
                           1 - (top + h - pad_bottom - 6) / height_px,
                           (w - (64 if plot else 0)) / PX_W,
                           (h - pad_top - pad_bottom - 6) / height_px])
        draw_panel(ax, d)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, facecolor=BG)
    plt.close(fig)
    from PIL import Image
    buf.seek(0)
    Image.open(buf).convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(
        out_path, optimize=True)
