"""Grafana's variable substitution for InfluxQL, done the way Grafana does it, for the tests.

No Grafana server can run in these tests, so this stands in for the browser: each query variable's
own query runs against InfluxDB, its options are picked like Grafana's defaults (first value; "All"
= every value as a regex alternation), and panel queries get ``$timeFilter`` from the dashboard or
panel range, ``$__interval`` = 1m, constants their values.
"""

from __future__ import annotations

import re

INTERVAL = "1m"
# Grafana relative ranges used by the boards -> the InfluxQL range it sends (upper bound: now).
RANGES = {"now/d": "24h", "now-6h": "6h", "now-30d/d": "30d", "now/fy": "365d", "now-24h": "24h", "7d": "7d",
          "now/M": "31d"}
SHIFTS = {"7d": "7d"}
_SELECT_ALIASES = re.compile(r'AS "([^"]+)"')


def regex_escape(value: str) -> str:
    """Grafana's InfluxQL regex escaping of a variable value (kbn.regexEscape)."""
    return re.sub(r"[\\^$*+?.()|[\]{}/]", lambda m: "\\" + m.group(0), value)


def time_filter(dashboard_from: str, panel: dict) -> str:
    span = RANGES[panel.get("timeFrom") or dashboard_from]
    shift = panel.get("timeShift")
    if shift:
        return f"time >= now() - {SHIFTS[shift]} - {span} AND time <= now() - {SHIFTS[shift]}"
    return f"time >= now() - {span}"


def substitute(query: str, values: dict[str, str], time_range: str) -> str:
    query = query.replace("$timeFilter", time_range).replace("$__interval", INTERVAL)
    for name in sorted(values, key=len, reverse=True):         # $device before $dev...
        query = query.replace(f"${{{name}}}", values[name]).replace(f"${name}", values[name])
    return query


def resolve_variables(dashboard: dict, run_query) -> tuple[dict[str, str], dict[str, list[str]]]:
    """Variable name -> substituted text, and name -> the options its own query returned.

    ``run_query(influxql) -> list of series`` (cloud.influx.InfluxClient.query)."""
    values: dict[str, str] = {}
    options: dict[str, list[str]] = {}
    dashboard_from = dashboard["time"]["from"]
    for variable in dashboard.get("templating", {}).get("list", []):
        name = variable["name"]
        if variable["type"] == "constant":
            values[name] = variable["query"]
            continue
        query = substitute(variable["query"], values, f"time >= now() - {RANGES[dashboard_from]}")
        found = sorted({row[1] for series in run_query(query) for row in series["values"]})
        options[name] = found
        if not found:
            values[name] = "__no_value__"
        elif variable.get("includeAll") and variable.get("multi"):
            values[name] = "(" + "|".join(regex_escape(v) for v in found) + ")"
        else:
            values[name] = regex_escape(found[0])
    return values, options


def expected_columns(query: str) -> list[str]:
    """The column names the outermost SELECT promises (its ``AS "..."`` aliases)."""
    outer = query
    if " FROM (" in query:
        outer = query.split(" FROM (", 1)[0]
    else:
        outer = query.split(" FROM ", 1)[0]
    return _SELECT_ALIASES.findall(outer)
