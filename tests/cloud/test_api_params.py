"""Input validation for everything that reaches InfluxQL (pure functions, no services)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cloud.api import params
from cloud.api.series import parse_series_request, series_statement

pytestmark = pytest.mark.timeout(30)
NOW = 1_700_000_000_000


@pytest.mark.parametrize("text, ms", [
    ("now", NOW), ("-1h", NOW - 3_600_000), ("-15m", NOW - 900_000), ("-30s", NOW - 30_000),
    ("-2d", NOW - 172_800_000), ("-250ms", NOW - 250),
    ("2023-11-14T22:13:20Z", 1_700_000_000_000),
    ("2023-11-15T07:13:20+09:00", 1_700_000_000_000),          # JST
    ("2023-11-14T22:13:20.123Z", 1_700_000_000_123),
    ("2023-11-14T22:13:20.123456789Z", 1_700_000_000_123),     # nanoseconds cut to ms
])
def test_times(text, ms):
    assert params.parse_time_ms("start", text, now_ms=NOW) == ms


@pytest.mark.parametrize("text", ["", "yesterday", "1h", "-1 h", "-1y", "2023-11-14", "2023-11-14T22:13:20",
                                  "2023-02-30T00:00:00Z", "now()", "-1h OR 1=1", "1700000000000"])
def test_bad_times_name_the_parameter_and_the_expected_forms(text):
    with pytest.raises(params.InvalidParameter) as exc:
        params.parse_time_ms("start", text, now_ms=NOW)
    assert str(exc.value).startswith("start: ") and exc.value.name == "start"


@pytest.mark.parametrize("text, ms", [("10s", 10_000), ("1m", 60_000), ("30m", 1_800_000), ("2h", 7_200_000),
                                      ("1d", 86_400_000), ("500ms", 500), ("1w", 604_800_000)])
def test_windows(text, ms):
    assert params.parse_duration_ms("window", text) == ms


@pytest.mark.parametrize("text", ["0s", "10", "s", "1.5m", "10 s", "-1m", "1m)", "1M", "10s; DROP"])
def test_bad_windows(text):
    with pytest.raises(params.InvalidParameter, match=r"^window: .* like 10s, 1m, 30m"):
        params.parse_duration_ms("window", text)


def test_a_window_too_small_for_the_range_is_refused():
    with pytest.raises(params.InvalidParameter, match="buckets"):
        parse_series_request("s", "d", "m", start="-30d", window="1s", now_ms=NOW)
    assert parse_series_request("s", "d", "m", start="-1d", window="10s", now_ms=NOW).window_ms == 10_000


def test_statement_is_built_from_validated_parts_only():
    req = parse_series_request("plant-a", "pm-1", "power_total", start="-1h", end="now", window="1m",
                               agg="max", now_ms=NOW)
    assert series_statement(req) == (
        'SELECT max("power_total") AS value FROM "meter","charger","vehicle","agent","site" '
        "WHERE \"site\" = 'plant-a' AND \"device\" = 'pm-1' "
        f"AND time >= {NOW - 3_600_000}ms AND time < {NOW}ms GROUP BY time(60000ms) fill(none)")


@pytest.mark.parametrize("check, value", [
    (params.check_metric, "power_total\n"), (lambda v: params.check_id("site", v), "plant-a\n"),
    (lambda v: params.parse_duration_ms("window", v), "10s\n"),
    (lambda v: params.parse_time_ms("start", v, NOW), "-1h\n"),
    (lambda v: params.parse_time_ms("start", v, NOW), "2023-11-14T22:13:20Z\n"),
])
def test_a_trailing_newline_is_refused(check, value):
    # Python's "$" also matches before a final newline; the checks must not.
    with pytest.raises(params.InvalidParameter):
        check(value)


@given(st.text(max_size=80) | st.from_regex(r"[a-z][a-z0-9_]{0,10}\n", fullmatch=True))
def test_no_text_outside_the_patterns_gets_through(text):
    """Whatever is typed, either it matches the strict pattern or it is refused."""
    for check, pattern in ((params.check_metric, r"^[a-z][a-z0-9_]*$"),
                           (lambda v: params.check_id("site", v), r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")):
        try:
            accepted = check(text)
        except params.InvalidParameter:
            continue
        assert re.fullmatch(pattern, accepted) and len(accepted) <= 64
        assert not set(accepted) & set("'\"\\;() \n")
