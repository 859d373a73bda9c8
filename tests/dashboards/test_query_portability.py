"""Which InfluxQL features the generated boards use, against what each InfluxDB version answers.

Only InfluxDB 1.6 runs in these tests (test_board_queries.py). For 2.x and 3.x this is a static
check: every panel query, variable query and alert-rule query of every board is split into
InfluxQL features, and each feature must be in that version's allow-list. A feature that a version
answers only in part must be a named exception, and dashboards/README.md must describe it. A new
panel that uses anything else fails here, with the board, the panel and the feature in the message.

Sources for the lists (InfluxData's documentation, see dashboards/README.md, "Data source per
InfluxDB version"):
- 2.x: InfluxQL through the 1.x-compatible /query with a DBRP mapping, read-only. The same InfluxQL
  as 1.x is documented; SELECT ... INTO, CREATE, ALTER, GRANT and KILL are not supported.
- 3.x (Core, Enterprise, Cloud Dedicated, Clustered, Cloud Serverless): the "InfluxQL feature
  support" page. It does not support SLIMIT/SOFFSET, SHOW DATABASES/SERIES or the cardinality
  metaqueries, SAMPLE(), or the technical-analysis functions. SHOW TAG VALUES without a time
  predicate returns only the last day's values. tz() has been documented for 3.x since
  docs-v2#5689 (2024-11); older Cloud Serverless pages listed tz() and subqueries as not done yet.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from dashboards import catalog
from dashboards.alert_rules import alert_groups

README = Path(__file__).resolve().parents[2] / "dashboards" / "README.md"

VERSIONS = ("1.x", "2.x", "3.x")

_TOKEN = re.compile(r"""
    (?P<ident>"(?:[^"\\]|\\.)*")
  | (?P<string>'(?:[^'\\]|\\.)*')
  | (?P<macro>\$\{?[A-Za-z_][A-Za-z0-9_]*\}?)
  | (?P<cast>::\s*[A-Za-z]+)
  | (?P<number>\d+(?:\.\d+)?(?:ns|us|µs|ms|[smhdw])?)
  | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>=~|!~|!=|<>|<=|>=|[=<>+\-*/%(),;])
  | (?P<space>\s+)
""", re.VERBOSE)
_OPERANDS = {"ident", "string", "number", "macro", "word", "close", "regex"}
_BEFORE_REGEX = {"FROM", "WHERE", "AND", "OR", "NOT", "KEY", "BY", "SELECT"}   # words a regex may follow

# Keywords that may stand together; each phrase is one feature.
_PHRASES = ("SHOW TAG VALUES", "SHOW TAG KEYS", "SHOW FIELD KEYS", "SHOW MEASUREMENTS", "SHOW SERIES",
            "SHOW DATABASES", "SHOW RETENTION POLICIES", "WITH KEY", "GROUP BY", "ORDER BY")


@dataclass(frozen=True)
class Token:
    kind: str
    text: str


def tokens(query: str) -> list[Token]:
    """InfluxQL split into tokens; a ``/`` after an operand divides, anywhere else it opens a regex."""
    out: list[Token] = []
    position = 0
    while position < len(query):
        if query[position] == "/" and (not out or out[-1].kind not in _OPERANDS
                                       or (out[-1].kind == "word" and out[-1].text.upper() in _BEFORE_REGEX)):
            end = position + 1
            while end < len(query) and query[end] != "/":
                end += 2 if query[end] == "\\" else 1
            if end >= len(query):
                raise ValueError(f"unterminated regex at {position}: {query}")
            out.append(Token("regex", query[position:end + 1]))
            position = end + 1
            continue
        match = _TOKEN.match(query, position)
        if not match:
            raise ValueError(f"cannot read InfluxQL at {position}: {query[position:position + 30]!r}")
        kind, text = match.lastgroup, match.group()
        position = match.end()
        if kind == "space":
            continue
        if kind == "op" and text == ")":
            kind = "close"
        out.append(Token(kind, text))
    return out


def features(query: str) -> set[str]:
    """The InfluxQL features one query uses, named as in the allow-lists below."""
    found: set[str] = set()
    toks = tokens(query)
    index = 0
    while index < len(toks):
        tok = toks[index]
        following = toks[index + 1] if index + 1 < len(toks) else None
        if (tok.kind == "word" and following is not None and following.text == "("
                and tok.text.upper() not in _BEFORE_REGEX):
            name = tok.text.lower()
            if name == "fill":
                argument = toks[index + 2]
                found.add("fill(number)" if argument.kind == "number" else f"fill({argument.text.lower()})")
                index += 4                       # fill ( option )
                continue
            if name == "time":                   # time() exists only in GROUP BY
                found.add("GROUP BY time()")
            else:
                found.add(f"{name}()")
        elif tok.kind == "word":
            upper = [t.text.upper() if t.kind == "word" else None for t in toks[index:index + 3]]
            phrase = next((p for p in _PHRASES if upper[:len(p.split())] == p.split()), None)
            if phrase:
                found.add(phrase)
                index += len(phrase.split())
                continue
            word = tok.text.upper()
            if word in ("TRUE", "FALSE"):
                found.add("boolean literal")
            elif word == "TIME":
                found.add("time column")
            elif word == "FROM" and following is not None and following.text == "(":
                found.add("FROM (subquery)")
            elif word == "FROM" and following is not None and following.kind == "regex":
                found.add("FROM /regex/")
            else:
                found.add(word)
        elif tok.kind == "op" and tok.text in ("=~", "!~"):
            found.add(f"{tok.text} /regex/")
        elif tok.kind == "op" and tok.text in ("=", "!=", "<>", "<", ">", "<=", ">="):
            found.add("comparison")
        elif tok.kind == "op" and tok.text in ("+", "-", "*", "/", "%"):
            found.add("arithmetic")
        elif tok.kind == "op" and tok.text == ";":
            found.add("multiple statements")
        elif tok.kind == "cast":
            found.add("::" + tok.text[2:].strip().lower())
        elif tok.kind == "macro":
            found.add(f"Grafana {tok.text}" if tok.text in ("$timeFilter", "$__interval") else "Grafana $variable")
        index += 1
    return found


# What every version answers the same way, as far as these boards use it. Grafana replaces $timeFilter
# by `time >= <ms>ms and time <= <ms>ms` and $__interval by a duration before sending: plain InfluxQL.
COMMON = {
    "SELECT", "FROM", "WHERE", "AND", "AS", "GROUP BY", "GROUP BY time()", "ORDER BY", "DESC", "LIMIT",
    "FROM (subquery)", "FROM /regex/", "=~ /regex/", "!~ /regex/", "comparison", "arithmetic", "boolean literal",
    "::tag", "now()", "fill(none)", "fill(null)", "fill(number)",
    "count()", "distinct()", "sum()", "mean()", "max()", "first()", "last()", "spread()",
    "non_negative_difference()", "cumulative_sum()", "floor()", "abs()",
    "time column", "Grafana $timeFilter", "Grafana $__interval", "Grafana $variable",
}
# Known to work on the InfluxQL engine of 1.x and 2.x but not (or not yet) on 3.x; none is used today.
TSM_ONLY = {"SLIMIT", "SOFFSET", "sample()", "holt_winters()", "SHOW SERIES", "SHOW DATABASES"}
ALLOWED = {
    "1.x": COMMON | TSM_ONLY | {"SHOW TAG VALUES", "WITH KEY", "tz()", "INTO"},
    "2.x": COMMON | TSM_ONLY | {"SHOW TAG VALUES", "WITH KEY", "tz()"},           # read-only: no SELECT ... INTO
    # SHOW TAG VALUES is missing on purpose: 3.x answers it for the last day only (exceptions below).
    "3.x": COMMON | {"WITH KEY", "tz()"},
}


@dataclass(frozen=True)
class Caveat:
    where: frozenset[str]         # "board base uid / panel title" or "board base uid / $variable"
    why: str
    readme: str                   # words dashboards/README.md must contain, so the caveat is written down


EXCEPTIONS: dict[tuple[str, str], Caveat] = {
    ("3.x", "SHOW TAG VALUES"): Caveat(
        frozenset({"hinode-site-energy / $site", "hinode-site-energy / $device", "hinode-site-energy / $energy_metric",
                   "hinode-operations / $site", "hinode-charging / $site", "hinode-co2 / $site",
                   "hinode-interchange / $community", "hinode-fleet / $fleet"}),
        "InfluxDB 3 lists only the tag values of the last day unless the WHERE clause bounds time",
        "tag values of the last day"),
}


def _base(uid: str) -> str:
    return uid.rsplit("-", 1)[0]


def board_queries() -> list[tuple[str, str, str]]:
    """(place, refId, query) of every variable and panel target of every English board (the ja boards
    have the same queries); place is "board / panel title" or "board / $variable"."""
    found = []
    for uid, board in catalog.all_dashboards().items():
        if not uid.endswith("-en"):
            continue
        for name, query in catalog.variable_queries(board):
            found.append((f"{_base(uid)} / ${name}", "", query))
        for title, ref_id, query in catalog.panel_queries(board):
            found.append((f"{_base(uid)} / {title}", ref_id, query))
    return found


def alert_queries() -> list[tuple[str, str, str]]:
    rules = alert_groups(site_power_limits_w={"plant-a": 50_000})["groups"][0]["rules"]
    # "$$" is the provisioning file's escape of "$" (Grafana expands environment variables there).
    return [(f"alert rule {rule['uid']}", q["refId"], q["model"]["query"].replace("$$", "$"))
            for rule in rules for q in rule["data"] if "query" in q.get("model", {})]


def portability_failures(queries: list[tuple[str, str, str]]) -> list[str]:
    failures = []
    for place, ref_id, query in queries:
        where = f"{place} / {ref_id}" if ref_id else place
        for version in VERSIONS:
            for feature in sorted(features(query) - ALLOWED[version]):
                caveat = EXCEPTIONS.get((version, feature))
                if caveat and place in caveat.where:
                    continue
                failures.append(f"{where}: {feature!r} is not in the InfluxQL allow-list for InfluxDB {version}"
                                + (f" (a known exception for {sorted(caveat.where)} only: {caveat.why})"
                                   if caveat else ""))
    return failures


def test_every_board_and_alert_query_uses_only_what_each_version_answers():
    queries = board_queries() + alert_queries()
    assert len(queries) > 70
    failures = portability_failures(queries)
    assert not failures, "\n".join(failures)


def test_the_features_used_are_what_the_readme_table_describes():
    used = set().union(*(features(q) for _, _, q in board_queries() + alert_queries()))
    # tz() decides where the day and month cuts fall (JST): the README must say what happens without it.
    assert "tz()" in used and "FROM (subquery)" in used and "SHOW TAG VALUES" in used
    assert not used - ALLOWED["1.x"], "a feature 1.x does not have is used?"
    text = README.read_text(encoding="utf-8")
    for caveat in EXCEPTIONS.values():
        assert caveat.readme in text, f"dashboards/README.md does not describe: {caveat.why}"
    for words in ("tz()", "subquer", "docs-v2#5689", "DBRP"):
        assert words in text, words


@pytest.mark.parametrize("query, feature", [
    ('SELECT sum("p") FROM "meter" WHERE $timeFilter GROUP BY time(1d) tz(\'Asia/Tokyo\')', "tz()"),
    ('SELECT last("seq") FROM "meter" GROUP BY "device" SLIMIT 10', "SLIMIT"),
    ('SELECT last("seq") FROM "meter" GROUP BY "device" SOFFSET 5', "SOFFSET"),
    ('SELECT sample("p", 3) FROM "meter"', "sample()"),
    ('SELECT holt_winters(first("p"), 10, 4) FROM "meter" GROUP BY time(1h)', "holt_winters()"),
    ('SELECT mean("p") INTO "meter_1h" FROM "meter" GROUP BY time(1h)', "INTO"),
    ("SHOW SERIES FROM \"meter\"", "SHOW SERIES"),
    ('SELECT sum("p") / 1000 FROM (SELECT last("p") AS "p" FROM /^(meter|charger)$/ GROUP BY "device")',
     "FROM (subquery)"),
    ('SELECT "a" FROM "m" WHERE "site" =~ /^a\\/b$/ AND "x" / 2 > 1', "=~ /regex/"),
])
def test_features_are_read_from_the_query_text(query, feature):
    assert feature in features(query)


def test_a_new_panel_with_an_unsupported_feature_fails_naming_panel_and_feature():
    new = [("hinode-site-energy / Top 10 meters", "A",
            'SELECT last("power_total") FROM "meter" WHERE $timeFilter GROUP BY "device" SLIMIT 10'),
           ("hinode-fleet / $vehicle", "", 'SHOW TAG VALUES FROM "vehicle" WITH KEY = "device"')]
    failures = portability_failures(new)
    assert failures == [
        "hinode-site-energy / Top 10 meters / A: 'SLIMIT' is not in the InfluxQL allow-list for InfluxDB 3.x",
        "hinode-fleet / $vehicle: 'SHOW TAG VALUES' is not in the InfluxQL allow-list for InfluxDB 3.x"
        f" (a known exception for {sorted(EXCEPTIONS[('3.x', 'SHOW TAG VALUES')].where)} only: "
        "InfluxDB 3 lists only the tag values of the last day unless the WHERE clause bounds time)"]
