"""Board-like PNGs rendered from the boards' own InfluxQL, **not by Grafana**.

    python -m dashboards.render --demo OUT_DIR                 private InfluxDB + demo data, English boards
    python -m dashboards.render --influx-url URL [--db hinode] OUT_DIR

No Grafana server runs in this repository's environment, so the screenshots in
``dashboards/screenshots/`` are drawn with matplotlib: every panel's query (from
``dashboards.catalog.panel_queries``) runs against a real InfluxDB 1.x after the same
substitutions Grafana makes (``$timeFilter``, ``$__interval``, ``$site`` and the other
template variables, the panel's relative time and time shift), and the answer is drawn where
the panel's ``gridPos`` puts it: time series as lines, bar charts as bars, stats as big
numbers, tables as text tables. A panel whose query fails shows InfluxDB's error in red,
so the render also checks that every query runs.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

from dashboards import draw

NICE_INTERVALS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400]
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_REL = re.compile(r"^now(?:([-+])(\d+)([smhdwMy]))?(?:/(fy|[smhdwMy]))?$")


# ---------------------------------------------------------------- time, like Grafana

def _round_down(t: datetime, unit: str, fiscal_start_month: int) -> datetime:
    if unit in ("s", "m", "h"):
        keep = {"s": dict(microsecond=0), "m": dict(second=0, microsecond=0),
                "h": dict(minute=0, second=0, microsecond=0)}[unit]
        return t.replace(**keep)
    day = t.replace(hour=0, minute=0, second=0, microsecond=0)
    if unit == "d":
        return day
    if unit == "w":
        return day - timedelta(days=day.weekday())
    if unit == "M":
        return day.replace(day=1)
    if unit == "y":
        return day.replace(month=1, day=1)
    start = day.replace(month=fiscal_start_month + 1, day=1)       # "fy": Grafana's month is 0-based
    return start if start <= day else start.replace(year=start.year - 1)


def grafana_time(expr: str, now: datetime, fiscal_start_month: int = 0) -> datetime:
    """``now``, ``now-7d``, ``now/d``, ``now-30d/d``, ``now/fy`` -> an aware datetime (in ``now``'s zone)."""
    m = _REL.match(expr.strip())
    if not m:
        raise ValueError(f"unsupported Grafana time {expr!r}")
    sign, amount, unit, round_to = m.groups()
    t = now
    if amount:
        n = int(amount) * (1 if sign == "+" else -1)
        if unit in _UNIT_S:
            t = t + timedelta(seconds=n * _UNIT_S[unit])
        else:
            months = n * (12 if unit == "y" else 1) + t.month - 1
            t = t.replace(year=t.year + months // 12, month=months % 12 + 1, day=min(t.day, 28))
    return _round_down(t, round_to, fiscal_start_month) if round_to else t


def panel_range(board: dict, panel: dict, now: datetime) -> tuple[datetime, datetime]:
    """The panel's time range: the board's, or the panel's relative time, moved by its time shift."""
    fy = int(board.get("fiscalYearStartMonth") or 0)
    tr = board.get("time") or {"from": "now-6h", "to": "now"}
    start, end = grafana_time(tr["from"], now, fy), grafana_time(tr["to"], now, fy)
    if panel.get("timeFrom"):
        rel = panel["timeFrom"]
        start, end = grafana_time(rel if rel.startswith("now") else f"now-{rel}", now, fy), now
    if panel.get("timeShift"):
        m = re.fullmatch(r"(\d+)([smhdw])", panel["timeShift"].strip())
        if m:
            shift = timedelta(seconds=int(m.group(1)) * _UNIT_S[m.group(2)])
            start, end = start - shift, end - shift
    return start, end


def interval_for(start: datetime, end: datetime, max_points: int = 240) -> str:
    """Grafana's ``$__interval``: the range over the panel's data points, rounded to a nice step."""
    raw = max((end - start).total_seconds() / max_points, 1)
    step = next((s for s in NICE_INTERVALS if s >= raw), NICE_INTERVALS[-1])
    return f"{step // 86400}d" if step % 86400 == 0 else f"{step // 3600}h" if step % 3600 == 0 \
        else f"{step // 60}m" if step % 60 == 0 else f"{step}s"


# ---------------------------------------------------------------- InfluxDB and variables

class Influx:
    def __init__(self, url: str, db: str):
        self.url, self.db = url.rstrip("/"), db

    def query(self, q: str) -> list[dict]:
        """The series of the first statement; raises ``RuntimeError`` with InfluxDB's error."""
        data = urllib.parse.urlencode({"q": q, "db": self.db, "epoch": "ms"}).encode()
        try:
            with urllib.request.urlopen(f"{self.url}/query", data=data, timeout=30) as resp:
                doc = json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            doc = json.loads(exc.read() or b"{}")
        if doc.get("error"):
            raise RuntimeError(doc["error"])
        result = (doc.get("results") or [{}])[0]
        if result.get("error"):
            raise RuntimeError(result["error"])
        return result.get("series") or []


def _regex_escape(value: str) -> str:
    return re.sub(r"([\\/^$.|?*+()\[\]{}-])", r"\\\1", value)


def substitute(query: str, variables: dict[str, list[str]], start: datetime, end: datetime, interval: str) -> str:
    """Grafana's InfluxQL interpolation: time filter, interval, and variables (regex-escaped,
    several values as ``(a|b)`` as Grafana writes them inside ``/^$var$/``)."""
    ms = lambda t: int(t.timestamp() * 1000)  # noqa: E731
    out = query.replace("$timeFilter", f"time >= {ms(start)}ms and time <= {ms(end)}ms")
    out = out.replace("$__interval_ms", str(_seconds(interval) * 1000)).replace("$__interval", interval)
    for name in sorted(variables, key=len, reverse=True):
        values = variables[name]

        def value(regex: bool) -> str:
            if not regex:
                return values[0] if values else ""
            escaped = [_regex_escape(v) for v in values]
            return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"
        out = re.sub(r"/\^\$" + name + r"\$/", lambda _m: f"/^{value(True)}$/", out)
        out = re.sub(r"\$\{" + name + r"\}|\$" + name + r"\b", lambda _m: value(False), out)
    return out


def _seconds(interval: str) -> int:
    return int(interval[:-1]) * _UNIT_S[interval[-1]]


def resolve_variables(board: dict, influx: Influx, start: datetime, end: datetime) -> dict[str, list[str]]:
    """Each variable's current value as Grafana would pick it on first load: constants and custom
    values as written, query variables run in order (first value, or every value when "All")."""
    values: dict[str, list[str]] = {}
    for var in (board.get("templating") or {}).get("list") or []:
        name, kind = var.get("name"), var.get("type")
        if kind in ("constant", "textbox"):
            values[name] = [str(var.get("query") or (var.get("current") or {}).get("value") or "")]
        elif kind == "custom":
            values[name] = [v.strip() for v in str(var.get("query") or "").split(",") if v.strip()][:1]
        elif kind == "interval":
            values[name] = [str(var.get("query") or "1h").split(",")[0]]
        elif kind == "query":
            q = var.get("query")
            q = q.get("query") if isinstance(q, dict) else q
            try:
                series = influx.query(substitute(q or "", values, start, end, interval_for(start, end)))
            except RuntimeError:
                series = []
            found = sorted({str(row[-1]) for s in series for row in s.get("values") or []})
            values[name] = found if var.get("includeAll") else found[:1]
    return values


# ---------------------------------------------------------------- boards

def _panels(board: dict) -> list[dict]:
    out = []
    for panel in board.get("panels") or []:
        if panel.get("type") == "row":
            out.extend(panel.get("panels") or [])
        else:
            out.append(panel)
    return out


def _queries(board: dict) -> dict[tuple[str, str], str]:
    try:
        from dashboards.catalog import panel_queries
    except ImportError:            # the catalog not there yet: read the targets directly
        return {(p.get("title", ""), t.get("refId", "A")): t.get("query", "")
                for p in _panels(board) for t in p.get("targets") or []}
    return {(title, ref): q for title, ref, q in panel_queries(board)}


def panel_data(board: dict, influx: Influx, now: datetime) -> list[dict]:
    """For each panel: its JSON, its time range and every target's series (or error)."""
    tz = ZoneInfo(board.get("timezone") or "UTC") if board.get("timezone") not in (None, "", "browser") else timezone.utc
    now = now.astimezone(tz)
    queries = _queries(board)
    board_start, board_end = panel_range(board, {}, now)
    variables = resolve_variables(board, influx, board_start, board_end)
    out = []
    for panel in _panels(board):
        start, end = panel_range(board, panel, now)
        interval = interval_for(start, end)
        results = []
        for target in panel.get("targets") or []:
            if target.get("hide"):
                continue
            query = queries.get((panel.get("title", ""), target.get("refId", "A")), target.get("query", ""))
            q = substitute(query, variables, start, end, interval)
            try:
                results.append({"target": target, "query": q, "series": influx.query(q)})
            except (RuntimeError, OSError) as exc:
                results.append({"target": target, "query": q, "error": str(exc)})
        out.append({"panel": panel, "start": start, "end": end, "results": results, "tz": tz,
                    "variables": variables})
    return out


def render_board(board: dict, influx: Influx, out_path: Path, now: datetime | None = None) -> list[str]:
    """Write one PNG for ``board``; returns the errors of the panels whose query failed."""
    data = panel_data(board, influx, now or datetime.now(timezone.utc))
    draw.board_png(board, data, Path(out_path))
    return [f"{board.get('uid')}: {d['panel'].get('title')}: {r['error']}"
            for d in data for r in d["results"] if "error" in r]


def render_all(influx: Influx, out_dir: Path, languages: tuple[str, ...] = ("en",),
               now: datetime | None = None) -> tuple[list[Path], list[str]]:
    from dashboards.catalog import all_dashboards
    out_dir.mkdir(parents=True, exist_ok=True)
    written, errors = [], []
    for uid, board in sorted(all_dashboards().items()):
        if not any(uid.endswith(f"-{lang}") for lang in languages):
            continue
        path = out_dir / f"{uid}.png"
        errors += render_board(board, influx, path, now)
        written.append(path)
    return written, errors


def render_demo(out_dir: Path, languages: tuple[str, ...] = ("en",)) -> tuple[list[Path], list[str]]:
    """Start a private InfluxDB, write the demo data, render, stop it."""
    import tempfile

    from dashboards import demo
    from hinode import services
    with tempfile.TemporaryDirectory(prefix="hinode-render-") as tmp:
        influx = services.influxdb(Path(tmp) / "influxdb")
        influx.start()
        try:
            now = datetime.now(timezone.utc)
            demo.write_demo_data(influx.url, now=now)
            return render_all(Influx(influx.url, demo.DATABASE), Path(out_dir), languages, now)
        finally:
            influx.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dashboards.render", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--demo", action="store_true", help="private InfluxDB with demo data (needs influxd)")
    parser.add_argument("--influx-url", help="an InfluxDB 1.x (or a 2.x/3.x /query endpoint) that has data")
    parser.add_argument("--db", default="hinode")
    parser.add_argument("--lang", action="append", choices=["en", "ja"],
                        help="board languages (default en; ja needs a CJK font)")
    args = parser.parse_args(argv)
    languages = tuple(args.lang or ["en"])
    if args.demo:
        written, errors = render_demo(args.out_dir, languages)
    elif args.influx_url:
        written, errors = render_all(Influx(args.influx_url, args.db), args.out_dir, languages)
    else:
        parser.error("give --demo or --influx-url")
    for path in written:
        print(f"{path} ({path.stat().st_size // 1024} KB)")
    for error in errors:
        print(f"query failed: {error}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
