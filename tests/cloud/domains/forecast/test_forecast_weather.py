"""The optional weather CSV: read into 30-minute slots, and used by the PV model when given."""

from __future__ import annotations

from datetime import date

import numpy as np
import polars as pl
import pytest

from cloud.domains._greencity.calendar import DAY_MS, SLOT_MS, date_start_ms, slot_starts
from cloud.domains._greencity import solar
from cloud.domains.forecast import backtest, data, models


def test_an_hourly_csv_fills_both_half_hours_and_times_without_offset_are_jst(tmp_path):
    path = tmp_path / "weather.csv"
    path.write_text("time,ghi_w_m2,temp_c\n"
                    "2026-05-01T10:00:00,500,18.5\n"
                    "2026-05-01T11:00:00+09:00,650,19.0\n"
                    "2026-05-01T03:00:00Z,700,19.5\n")          # 03:00 UTC = 12:00 JST
    slots = data.load_weather(path)
    ten = date_start_ms(date(2026, 5, 1)) + 20 * SLOT_MS
    assert slots["slot_start"].to_list() == [ten + i * SLOT_MS for i in range(5)]
    assert slots["ghi_w_m2"].to_list() == [500.0, 500.0, 650.0, 650.0, 700.0]
    assert slots["temp_c"].to_list() == [18.5, 18.5, 19.0, 19.0, 19.5]


def test_a_csv_without_the_columns_is_refused_naming_them(tmp_path):
    path = tmp_path / "weather.csv"
    path.write_text("when,ghi\n2026-05-01T10:00:00,500\n")
    with pytest.raises(ValueError, match="time,ghi_w_m2,temp_c"):
        data.load_weather(path)


def test_with_a_weather_forecast_pv_follows_the_announced_clouds():
    # Each day's sky is random (clear-sky index 0.15 .. 0.95, independent days), so history alone cannot know
    # tomorrow; the weather frame carries GHI = index x clear-sky GHI, and the model learns to use it.
    first, kwp = date(2026, 4, 1), 100.0
    starts = slot_starts(date_start_ms(first), date_start_ms(first) + 50 * DAY_MS)
    clear = solar.clear_sky_kwh(starts, kwp).sort("slot_start")
    index_of_day = np.random.default_rng(3).uniform(0.15, 0.95, 50)
    day = (pl.col("slot_start") - date_start_ms(first)) // DAY_MS
    sky = clear.with_columns(day.map_elements(lambda d: float(index_of_day[d]), return_dtype=pl.Float64).alias("index"))
    history = sky.select("slot_start", (pl.col("clear_kwh") * pl.col("index")).alias("kwh"))
    weather = sky.select("slot_start", (pl.col("clear_ghi_w_m2") * pl.col("index")).alias("ghi_w_m2"),
                         pl.lit(15.0).alias("temp_c"))
    spec = models.TargetSpec("pv", kwp=kwp)
    days = (date(2026, 5, 11), date(2026, 5, 20))
    with_weather = backtest.scores(backtest.walk_forward(history, spec, *days, weather=weather), history)
    without = backtest.scores(backtest.walk_forward(history, spec, *days), history)
    assert with_weather["mae"]["gbr"] < 0.5 * without["mae"]["gbr"]
    assert with_weather["skill"] > 0.7
