"""Pure helpers of the forecast routes and job: a target's measured series, weather slots, the day table."""

from __future__ import annotations

from datetime import date

import polars as pl

from cloud.domains._greencity.calendar import DAY_MS, OFFSET_MS, SLOT_MS, date_start_ms, slot_starts
from cloud.domains._greencity.energy import MeterRef

SERIES_SCHEMA = {"slot_start": pl.Int64, "kwh": pl.Float64}
WEATHER_SCHEMA = {"slot_start": pl.Int64, "ghi_w_m2": pl.Float64, "temp_c": pl.Float64}


def target_series(slot_energy: pl.DataFrame, meters: list[MeterRef]) -> pl.DataFrame:
    """slot_start, kwh = the sum of ``meters`` per slot; a slot where any meter has no row is left out
    (missing, never a partial sum or zero)."""
    wanted = pl.DataFrame({"site": [m.site for m in meters], "device": [m.device for m in meters],
                           "metric": [m.metric for m in meters]}).unique()
    rows = slot_energy.join(wanted, on=["site", "device", "metric"], how="inner")
    return (rows.group_by("slot_start").agg(pl.col("kwh").sum(), pl.len().alias("_meters"))
            .filter(pl.col("_meters") == wanted.height).select(list(SERIES_SCHEMA)).cast(SERIES_SCHEMA)
            .sort("slot_start"))


def weather_slots(readings: pl.DataFrame) -> pl.DataFrame:
    """Weather readings (ts ms, ghi_w_m2, temp_c; hourly or 30-minute, stamped at the start of the
    period they describe) -> one row per 30-minute slot: a reading covers its slot and, until the
    next reading, the following ones (an hourly value fills both half hours)."""
    if readings.height == 0:
        return pl.DataFrame(schema=WEATHER_SCHEMA)
    stamped = (readings.with_columns(((pl.col("ts") + OFFSET_MS) // SLOT_MS * SLOT_MS - OFFSET_MS)
                                     .cast(pl.Int64).alias("slot_start"))
               .group_by("slot_start").agg(pl.col("ghi_w_m2").mean(), pl.col("temp_c").mean()).sort("slot_start"))
    first, last = int(stamped["slot_start"].min()), int(stamped["slot_start"].max())
    grid = pl.DataFrame({"slot_start": slot_starts(first, last + SLOT_MS)})
    step_ms = int(stamped["slot_start"].diff().min() or SLOT_MS)
    return (grid.join_asof(stamped, on="slot_start", strategy="backward", tolerance=max(step_ms - SLOT_MS, 0))
            .select(list(WEATHER_SCHEMA)).cast(WEATHER_SCHEMA))


def day_table(day: date, forecasts: dict[str, pl.DataFrame], actual: pl.DataFrame) -> list[dict]:
    """The 48 slots of ``day``: slot_start, slot, one column per model (kWh or None), issued_ms of each
    model, and the actual (None when not measured)."""
    start = date_start_ms(day)
    table = pl.DataFrame({"slot_start": slot_starts(start, start + DAY_MS)}).with_row_index("slot")
    for model, frame in forecasts.items():
        table = table.join(frame.select("slot_start", pl.col("kwh").alias(model),
                                        pl.col("issued_ms").alias(f"{model}_issued_ms")),
                           on="slot_start", how="left")
    table = table.join(actual.select("slot_start", pl.col("kwh").alias("actual")), on="slot_start", how="left")
    return table.sort("slot_start").with_columns(pl.col("slot").cast(pl.Int64)).to_dicts()
