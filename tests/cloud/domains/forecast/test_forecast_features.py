"""Features of the day-ahead forecast: what is known at the issue time (D-1 10:00 JST) and nothing later."""

from __future__ import annotations

from datetime import date

import numpy as np
import polars as pl
import pytest

from cloud.domains._greencity.calendar import DAY_MS, SLOT_MS, date_start_ms, slot_starts
from cloud.domains.forecast import features

DAY = date(2026, 3, 10)                  # a Tuesday
START = date_start_ms(DAY)


def random_history(days: int = 30, seed: int = 1) -> pl.DataFrame:
    first = START - days * DAY_MS
    starts = slot_starts(first, START + DAY_MS)
    return pl.DataFrame({"slot_start": starts, "kwh": np.random.default_rng(seed).uniform(10, 50, starts.len())})


def test_the_issue_time_is_10_jst_the_day_before():
    # 2026-03-10 00:00 JST = 2026-03-09 15:00 UTC; minus 1 day plus 10 h = 2026-03-09 10:00 JST = 01:00 UTC
    assert features.issue_time_ms(DAY) == START - DAY_MS + 10 * 3_600_000 == 1_773_018_000_000


@pytest.mark.parametrize("days_of_rows", [1, 5])
def test_features_do_not_change_when_the_data_after_the_issue_time_does(days_of_rows):
    # Several days in one frame (as the training rows are): each row has its own issue time, and the
    # history reaches past the first day's, so only the per-row cut keeps the future out.
    history = random_history()
    rows = pl.DataFrame({"slot_start": slot_starts(START, START + days_of_rows * DAY_MS)})
    issued = features.issue_time_ms(DAY)
    before = features.feature_frame(history, rows).filter(pl.col("slot_start") < START + DAY_MS)
    # Everything from DAY's issue time on becomes absurd; a feature of DAY using any of it would change.
    poisoned = history.with_columns(pl.when(pl.col("slot_start") + SLOT_MS > issued).then(pl.col("kwh") * 1000 + 7)
                                    .otherwise(pl.col("kwh")))
    after = features.feature_frame(poisoned, rows).filter(pl.col("slot_start") < START + DAY_MS)
    feature_cols = [c for c in before.columns if c != "kwh"]     # kwh is the actual (the label), not a feature
    assert before.height == 48
    assert before.select(feature_cols).equals(after.select(feature_cols))
    assert before["issued_ms"].unique().to_list() == [issued]


def test_the_one_day_lag_is_known_only_for_slots_ended_by_10_00():
    history = random_history()
    frame = features.feature_frame(history, pl.DataFrame({"slot_start": slot_starts(START, START + 3 * DAY_MS)}))
    frame = frame.filter(pl.col("slot_start") < START + DAY_MS)
    value_at = dict(history.iter_rows())
    lag_1d = frame["lag_1d"].to_list()
    # slot 19 of D-1 is 09:30-10:00: ended at the issue time, so known; slot 20 (10:00-10:30) is not
    assert lag_1d[19] == value_at[START - DAY_MS + 19 * SLOT_MS]
    assert lag_1d[:20] == [value_at[START - DAY_MS + s * SLOT_MS] for s in range(20)]
    assert lag_1d[20:] == [None] * 28
    assert frame["lag_7d"].to_list() == [value_at[START - 7 * DAY_MS + s * SLOT_MS] for s in range(48)]
    # mean_7d of slot 30 averages the 6 known lags 2d..7d (1d is unknown at 10:00)
    expected = sum(value_at[START - k * DAY_MS + 30 * SLOT_MS] for k in range(2, 8)) / 6
    assert frame["mean_7d"][30] == pytest.approx(expected)


def test_calendar_and_last_value_of_the_same_day_type_after_new_year():
    # 2026-01-05 (Monday) follows the New Year closing 12/29-1/3 and a weekend: the last working day
    # before it is 2025-12-26 (Friday); its same slot is what last_same_day_type carries.
    day = date(2026, 1, 5)
    start = date_start_ms(day)
    starts = slot_starts(start - 20 * DAY_MS, start)
    history = pl.DataFrame({"slot_start": starts, "kwh": [float(i) for i in range(starts.len())]})
    frame = features.feature_frame(history, pl.DataFrame({"slot_start": slot_starts(start, start + DAY_MS)}))
    friday = date_start_ms(date(2025, 12, 26))
    assert frame["last_same_day_type"][16] == float((friday + 16 * SLOT_MS - starts[0]) // SLOT_MS)
    assert frame["is_holiday"].unique().to_list() == [0] and frame["weekday"].unique().to_list() == [1]
    new_year = features.calendar_columns(pl.DataFrame({"slot_start": [date_start_ms(date(2026, 1, 1)),
                                                                      date_start_ms(date(2025, 12, 30))]}))
    # 1/1 is a national holiday and a closing day; 12/30 (Tuesday) is a closing day only
    assert new_year.select("is_holiday", "is_national_holiday").rows() == [(1, 1), (1, 0)]
