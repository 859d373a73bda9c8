"""The PV clear-sky part and the models on series whose pattern is exact."""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest

from cloud.domains._greencity.calendar import (DAY_MS, OFFSET_MS, SLOT_MS, date_start_ms, is_holiday, local_date,
                                               slot_starts)
from cloud.domains._greencity import solar
from cloud.domains.forecast import backtest, models


def one_day_clear_sky(day: date, kwp: float = 400.0) -> list[float]:
    start = date_start_ms(day)
    return solar.clear_sky_kwh(slot_starts(start, start + DAY_MS), kwp).sort("slot_start")["clear_kwh"].to_list()


def test_clear_sky_pv_is_zero_at_night_and_peaks_at_solar_noon():
    june = one_day_clear_sky(date(2026, 6, 21))
    # Sunrise at Hitachi on 6/21 is about 04:20 JST and sunset about 19:00: slots 0-7 (00:00-04:00)
    # and 39-47 (19:30-24:00) have no sun.
    assert june[:8] == [0.0] * 8 and june[39:] == [0.0] * 9
    # Solar noon = 12:00 - 4 min/deg x (140.65 - 135) deg + 1.6 min (equation of time, 6/21) = about 11:39:
    # the 11:30-12:00 slot (23) is the peak.
    assert june.index(max(june)) == 23
    # Order of magnitude: about 950 W/m2 on the 30-degree plane x 400 kWp / 1000 W/m2 x PR 0.8 x 0.5 h = 152 kWh;
    # the day is 400 kWp x about 7.4 kWh/m2 on the plane x 0.8 = about 2 370 kWh (5.9 kWh per kWp).
    assert 130 < max(june) < 170
    assert 2000 < sum(june) < 2700
    december = one_day_clear_sky(date(2026, 12, 21))
    # Winter: a shorter day (sunrise about 06:45, sunset about 16:30) and a lower but still high peak on a tilted plane.
    assert december[:13] == [0.0] * 13 and december[34:] == [0.0] * 14
    assert december.index(max(december)) in (22, 23) and 100 < max(december) < max(june)
    assert sum(december) < sum(june)


def exact_factory(first: date, days: int) -> pl.DataFrame:
    """20 kWh per slot 08:00-18:00 and 5 otherwise on working days; 3 all day on holidays."""
    starts = slot_starts(date_start_ms(first), date_start_ms(first) + days * DAY_MS)
    rows = []
    for ts in starts.to_list():
        slot = (ts + OFFSET_MS) % DAY_MS // SLOT_MS
        rows.append(3.0 if is_holiday(local_date(ts)) else (20.0 if 16 <= slot < 36 else 5.0))
    return pl.DataFrame({"slot_start": starts, "kwh": rows})


def test_the_model_beats_seasonal_naive_in_the_week_after_new_year():
    # History from 2025-10-01; the New Year closing (12/29-1/3) and the weekend make 12/29-1/4 a holiday week.
    history = exact_factory(date(2025, 10, 1), 103)           # to 2026-01-11 inclusive
    forecasts = backtest.walk_forward(history, models.TargetSpec("demand"), date(2026, 1, 5), date(2026, 1, 11))
    result = backtest.scores(forecasts, history)
    assert result["slots"] == 7 * 48
    # Seasonal naive for Mon 1/5 - Fri 1/9 repeats the closed days (3 kWh): per day 20 slots off by 17 and
    # 28 off by 2 = 396 kWh, 8.25 per slot; Sat/Sun 1/10-11 repeat 1/3-4 exactly: MAE = 8.25 x 5/7 = 5.892857
    assert result["mae"]["seasonal_naive"] == pytest.approx(5.892857, abs=1e-6)
    assert result["mae"]["gbr"] < 0.5
    assert result["skill"] > 0.9
    gbr = forecasts.filter(pl.col("model") == "gbr").sort("slot_start")
    monday_10am = date_start_ms(date(2026, 1, 5)) + 20 * SLOT_MS
    assert gbr.filter(pl.col("slot_start") == monday_10am)["kwh"][0] == pytest.approx(20.0, abs=1.0)
    assert gbr["issued_ms"][0] == date_start_ms(date(2026, 1, 4)) + 10 * 3_600_000


def test_no_gbr_forecast_without_two_weeks_of_history_and_naive_needs_last_week():
    history = exact_factory(date(2026, 3, 1), 10)
    forecasts = backtest.walk_forward(history, models.TargetSpec("demand"), date(2026, 3, 10), date(2026, 3, 10))
    assert forecasts["model"].unique().to_list() == ["seasonal_naive"]
    # 3/10 - 7 days = 3/3, in the history: 48 naive slots equal to it
    week_before = history.filter(pl.col("slot_start") >= date_start_ms(date(2026, 3, 3))).head(48)["kwh"].to_list()
    assert forecasts.sort("slot_start")["kwh"].to_list() == week_before


def test_pv_forecast_is_clear_sky_times_a_factor_that_a_cloudy_spell_lowers():
    first, kwp = date(2026, 4, 1), 100.0
    starts = slot_starts(date_start_ms(first), date_start_ms(first) + 40 * DAY_MS)
    clear = solar.clear_sky_kwh(starts, kwp).sort("slot_start")
    # Sunny (index 0.9) for 30 days, then overcast (index 0.3) for 10: the factor follows the spell.
    day_index = (pl.col("slot_start") - date_start_ms(first)) // DAY_MS
    history = clear.select("slot_start", (pl.col("clear_kwh") * pl.when(day_index < 30).then(0.9)
                                          .otherwise(0.3)).alias("kwh"))
    spec = models.TargetSpec("pv", kwp=kwp)
    forecasts = backtest.walk_forward(history, spec, date(2026, 4, 29), date(2026, 5, 10), retrain_every_days=1)
    gbr = forecasts.filter(pl.col("model") == "gbr").join(clear, on="slot_start")
    night = gbr.filter(pl.col("clear_kwh") == 0)
    assert night.height > 0 and night["kwh"].max() == 0.0
    sunny = gbr.filter((pl.col("slot_start") < date_start_ms(date(2026, 5, 1))) & (pl.col("clear_kwh") > 5))
    cloudy = gbr.filter((pl.col("slot_start") >= date_start_ms(date(2026, 5, 8))) & (pl.col("clear_kwh") > 5))
    assert (sunny["kwh"] / sunny["clear_kwh"]).mean() == pytest.approx(0.9, abs=0.05)
    assert (cloudy["kwh"] / cloudy["clear_kwh"]).mean() < 0.5
