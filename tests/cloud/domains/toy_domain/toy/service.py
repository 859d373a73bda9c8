"""Pure: (site, device, ts, value) rows -> the peak per device and slot."""

import polars as pl

READINGS = {"site": pl.String, "device": pl.String, "ts": pl.Int64, "value": pl.Float64}


def peaks(readings: pl.DataFrame, slot_s: int) -> pl.DataFrame:
    slot_ms = slot_s * 1000
    return (readings.cast(READINGS)
            .group_by("site", "device", (pl.col("ts") // slot_ms * slot_ms).alias("slot_start"))
            .agg(pl.col("value").max().alias("peak"), pl.len().cast(pl.Int64).alias("readings"))
            .sort("site", "device", "slot_start"))
