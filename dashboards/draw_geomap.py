"""Grafana's geomap panel for ``dashboards.draw`` (the fleet board's map): the markers layer's rows
(table rows of the panel's query, positioned by the layer's ``location`` latitude/longitude fields,
coloured by its colour field through the panel's thresholds, labelled by its text field) over the GeoJSON
layer's polygons, coloured by the layer's style rules.

The GeoJSON comes from the layer's ``src`` when it is a local file, else from the zones shipped with the
fleet domain (what ``$zones_url`` serves by default); no basemap is drawn (no network here).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from dashboards.draw import GRID, MUTED, PANEL, TEXT, _message, color, table_rows, threshold_color

SHIPPED_ZONES = Path(__file__).resolve().parent.parent / "cloud" / "domains" / "fleet" / "data" / "zones_hitachi.geojson"


def _geojson(layer: dict) -> dict:
    src = str((layer.get("config") or {}).get("src") or "")
    for path in (Path(src), SHIPPED_ZONES):
        if "://" not in str(path) and "$" not in str(path) and path.is_file():
            try:
                return json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
    return {"features": []}


def _polygons(geometry: dict | None) -> list:
    if not geometry:
        return []
    if geometry.get("type") == "Polygon":
        return [geometry["coordinates"]]
    if geometry.get("type") == "MultiPolygon":
        return geometry["coordinates"]
    return []


def _style_for(layer: dict, properties: dict) -> dict:
    config = layer.get("config") or {}
    for rule in config.get("rules") or []:
        check = rule.get("check") or {}
        if check.get("operation", "eq") == "eq" and properties.get(check.get("property")) == check.get("value"):
            return rule.get("style") or {}
    return config.get("style") or {}


def _number(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def draw_geomap(ax, d: dict) -> None:
    layers = (d["panel"].get("options") or {}).get("layers") or []
    header, rows = table_rows(d)
    markers = [layer for layer in layers if layer.get("type") == "markers"]
    points = []
    for layer in markers[:1]:
        where = layer.get("location") or {}
        style = (layer.get("config") or {}).get("style") or {}
        lat_f, lon_f = where.get("latitude", "lat"), where.get("longitude", "lon")
        colour_f = (style.get("color") or {}).get("field")
        text_f = (style.get("text") or {}).get("field")
        for row in rows:
            record = dict(zip(header, row))
            lat, lon = _number(record.get(lat_f)), _number(record.get(lon_f))
            if lat is None or lon is None:
                continue
            value = record.get(colour_f) if colour_f else None
            points.append((lon, lat, threshold_color(value, d["panel"]) if colour_f else
                           color((style.get("color") or {}).get("fixed")), str(record.get(text_f) or "")))
    shapes = []
    for layer in layers:
        if layer.get("type") != "geojson":
            continue
        for feature in _geojson(layer).get("features") or []:
            style = _style_for(layer, feature.get("properties") or {})
            for polygon in _polygons(feature.get("geometry")):
                shapes.append((polygon[0], color((style.get("color") or {}).get("fixed")), style.get("opacity", 0.3)))
    ax.set_facecolor(PANEL)
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_color(GRID)
    if not points:
        return _message(ax, "No data")
    # frame the vehicles with a margin, true to scale (a degree of longitude is cos(lat) of one of latitude)
    lon0, lon1 = min(p[0] for p in points), max(p[0] for p in points)
    lat0, lat1 = min(p[1] for p in points), max(p[1] for p in points)
    k = math.cos(math.radians((lat0 + lat1) / 2))
    width_px, height_px = ax.get_window_extent().width, ax.get_window_extent().height
    ratio = height_px / width_px if width_px else 1.0
    dx, dy = max(lon1 - lon0, 0.002) * 1.2, max(lat1 - lat0, 0.002) * 1.2
    if dy / (dx * k) < ratio:
        dy = ratio * dx * k
    else:
        dx = dy / (ratio * k)
    cx, cy = (lon0 + lon1) / 2, (lat0 + lat1) / 2
    ax.set_xlim(cx - dx / 2, cx + dx / 2)
    ax.set_ylim(cy - dy / 2, cy + dy / 2)
    for ring, colour, opacity in shapes:
        ax.fill([x for x, _ in ring], [y for _, y in ring], facecolor=colour, alpha=float(opacity),
                edgecolor=colour, linewidth=0.8)
    ax.scatter([p[0] for p in points], [p[1] for p in points], s=28, c=[p[2] for p in points], edgecolors=TEXT,
               linewidths=0.5, zorder=3)
    for lon, lat, _colour, text in points:
        if text:
            ax.annotate(text, (lon, lat), xytext=(0, 5), textcoords="offset points", fontsize=5.5, color=MUTED,
                        ha="center", zorder=4)
