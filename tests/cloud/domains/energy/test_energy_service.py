"""Consumption from cumulative counters: hand-checked numbers for normal growth, a meter reset,
a 32-bit roll-over, duplicate timestamps, a rounding-sized dip, gaps and slot boundaries."""

from __future__ import annotations

from datetime import datetime

import polars as pl
import pytest

from cloud.domains.energy.service import consumption, per_slot

MIN = 60_000
ROLLOVER_32BIT = 2**32 * 0.01          # a 32-bit register at scale 0.01 kWh: wraps at 42 949 672.96
JST = 9 * 3600


def readings(*pairs) -> pl.DataFrame:
    return pl.DataFrame(list(pairs), schema={"ts": pl.Int64, "value": pl.Float64}, orient="row")


def rows(frame: pl.DataFrame) -> list[tuple]:
    return [tuple(r.values()) for r in frame.iter_rows(named=True)]


def test_growth_is_the_difference_of_readings():
    out = consumption(readings((0, 100.0), (MIN, 101.0), (2 * MIN, 102.5)))
    assert rows(out) == [(0, MIN, 1.0, None), (MIN, 2 * MIN, 1.5, None)]


def test_a_reset_counts_the_new_value_not_a_huge_negative():
    out = consumption(readings((0, 500.0), (MIN, 502.0), (2 * MIN, 3.0), (3 * MIN, 4.5)))
    assert rows(out) == [(0, MIN, 2.0, None), (MIN, 2 * MIN, 3.0, "reset"), (2 * MIN, 3 * MIN, 1.5, None)]


def test_a_32_bit_rollover_counts_what_wrapped():
    out = consumption(readings((0, 42_949_670.00), (MIN, 42_949_672.50), (2 * MIN, 1.25), (3 * MIN, 2.00)),
                      rollover=ROLLOVER_32BIT)
    # 1.25 + 42 949 672.96 - 42 949 672.50 = 1.71
    assert out["consumption"].to_list() == pytest.approx([2.5, 1.71, 0.75], abs=1e-6)
    assert out["event"].to_list() == [None, "rollover", None]


def test_with_a_rollover_known_a_drop_from_low_in_the_range_is_still_a_reset():
    # wrapped would be 2.0 + 42 949 672.96 - 1000.0: far more than 10 % of the range
    out = consumption(readings((0, 1000.0), (MIN, 2.0)), rollover=ROLLOVER_32BIT)
    assert rows(out) == [(0, MIN, 2.0, "reset")]
    # the top tenth of the range wraps: 0.9 * R + 1 -> 0.5 is a roll-over of 0.1 * R - 0.5
    top = consumption(readings((0, 0.9 * 1000 + 1), (MIN, 0.5)), rollover=1000.0)
    assert rows(top) == [(0, MIN, pytest.approx(99.5), "rollover")]


def test_duplicate_timestamps_are_one_reading_the_last_given_wins():
    out = consumption(readings((0, 10.0), (MIN, 11.0), (MIN, 11.5), (2 * MIN, 12.0)))
    assert rows(out) == [(0, MIN, 1.5, None), (MIN, 2 * MIN, 0.5, None)]


def test_unsorted_input_nulls_and_rounding_dips():
    out = consumption(pl.DataFrame({"ts": [2 * MIN, 0, MIN, 3 * MIN],
                                    "value": [1000.0, 999.0, None, 999.9999999995]}))
    # 999 -> 1000 (the null is skipped), then a dip of 5e-10: float noise, not a reset of 1000 kWh
    assert rows(out) == [(0, 2 * MIN, 1.0, None), (2 * MIN, 3 * MIN, 0.0, None)]
    assert consumption(readings((0, 1.0))).height == 0


def test_per_slot_spreads_a_gap_over_the_slots_it_covers():
    base = int(datetime.fromisoformat("2024-05-01T00:00:00+09:00").timestamp() * 1000)
    deltas = consumption(readings((base, 0.0), (base + 15 * MIN, 3.0), (base + 45 * MIN, 6.0),
                                  (base + 165 * MIN, 18.0)))
    # [0,15) 3 -> slot 0; [15,45) 3 -> half each to slots 0 and 1; [45,165) 12 over 120 min -> 1.5 per 15 min
    assert rows(per_slot(deltas, 1800, JST)) == [
        (base, 4.5, 1), (base + 30 * MIN, 3.0, 1), (base + 60 * MIN, 3.0, 0), (base + 90 * MIN, 3.0, 0),
        (base + 120 * MIN, 3.0, 0), (base + 150 * MIN, 1.5, 1)]


def test_a_reading_on_a_slot_boundary_closes_the_slot_before_it():
    deltas = consumption(readings((0, 0.0), (30 * MIN, 2.0), (40 * MIN, 3.0)))
    assert rows(per_slot(deltas, 1800)) == [(0, 2.0, 1), (30 * MIN, 1.0, 1)]


def test_daily_slots_start_at_tokyo_midnight():
    midnight = int(datetime.fromisoformat("2024-05-02T00:00:00+09:00").timestamp() * 1000)
    deltas = consumption(readings((midnight - 60 * MIN, 0.0), (midnight + 60 * MIN, 4.0)))
    assert rows(per_slot(deltas, 86400, JST)) == [(midnight - 1440 * MIN, 2.0, 0), (midnight, 2.0, 1)]
    # aligned to UTC midnight instead, both hours are in one day (midnight JST is 15:00 UTC)
    assert per_slot(deltas, 86400, 0)["consumption"].to_list() == [4.0]
