"""Grafana's node graph panel for ``dashboards.draw`` (the interchange board's flows): nodes and edges
read from the panel's ``nodes`` and ``edges`` frames, the fields Grafana's node graph reads."""

from __future__ import annotations

from dashboards.draw import MUTED, PALETTE, PANEL, TEXT, _message, fmt


def _frame_rows(d: dict, ref: str) -> list[dict]:
    return [{**(s.get("tags") or {}), **dict(zip(s.get("columns") or [], row))}
            for r in d["results"] if r["target"].get("refId") == ref for s in r.get("series") or []
            for row in s.get("values") or []]


def draw_node_graph(ax, d: dict) -> None:
    """Grafana's node graph, laid out simply: producers (or sources) on the left, the others on the
    right; nodes from the ``nodes`` frame (id, title, subtitle, mainstat), arrows from ``edges``
    (source, target, mainstat) labelled with their mainstat."""
    ax.axis("off")
    nodes, edges = _frame_rows(d, "nodes"), _frame_rows(d, "edges")
    if not nodes:
        return _message(ax, "No data")
    options = (d["panel"].get("options") or {})
    node_unit = {"fieldConfig": {"defaults": {"unit": (options.get("nodes") or {}).get("mainStatUnit") or "", "decimals": 0}}}
    edge_unit = {"fieldConfig": {"defaults": {"unit": (options.get("edges") or {}).get("mainStatUnit") or "", "decimals": 0}}}
    sources = {e["source"] for e in edges}
    left = [n for n in nodes if n["id"] in sources or n.get("subtitle") == "producer"]
    right = [n for n in nodes if n not in left]
    where = {}
    for x, column in ((0.18, left), (0.78, right)):
        for i, node in enumerate(column):
            where[node["id"]] = (x, 1 - (i + 1) / (len(column) + 1))
    for e in edges:
        if e["source"] in where and e["target"] in where:
            (x0, y0), (x1, y1) = where[e["source"]], where[e["target"]]
            ax.annotate("", xy=(x1 - 0.05, y1), xytext=(x0 + 0.05, y0), xycoords="axes fraction",
                        arrowprops={"arrowstyle": "-|>", "color": MUTED, "lw": 1.2})
            ax.text(x0 + (x1 - x0) * 0.62, y0 + (y1 - y0) * 0.62, fmt(e.get("mainstat"), edge_unit), color=TEXT,
                    fontsize=7, ha="center", va="center", transform=ax.transAxes,
                    bbox={"facecolor": PANEL, "edgecolor": "none", "pad": 1})
    for node in nodes:
        x, y = where[node["id"]]
        ax.scatter([x], [y], s=900, facecolor=PANEL, edgecolor=PALETTE[0 if node in left else 2], linewidth=2,
                   transform=ax.transAxes, zorder=3)
        ax.text(x, y, fmt(node.get("mainstat"), node_unit), color=TEXT, fontsize=6.5, ha="center", va="center",
                transform=ax.transAxes, zorder=4)
        label = node.get("title") or node["id"]
        ax.text(x + (-0.06 if node in left else 0.06), y, f"{label}\n{node.get('subtitle') or ''}".strip(),
                color=MUTED, fontsize=7, ha="right" if node in left else "left", va="center", transform=ax.transAxes)
