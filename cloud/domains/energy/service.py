"""Consumption from cumulative energy counters. Pure functions over polars frames, no I/O.

A meter's ``energy_import`` only grows, so the energy used between two readings is the
difference of the readings, except when the counter goes down. Then it either

* **rolled over**: a fixed-width register (e.g. 32 bits at scale 0.01 wraps at
  ``2**32 * 0.01 = 42 949 672.96`` kWh) passed its top and started again at 0. The
  interval's consumption is ``value + rollover - previous``.
* **was reset**: the meter was replaced or its memory cleared; it counts again from 0.
  The interval's consumption is the new value (what was counted since the reset).

The rule that tells them apart: a drop is a roll-over when the catalog gives the metric a
``rollover`` and the wrapped difference ``value + rollover - previous`` is at most
``ROLLOVER_MAX_FRACTION`` (10 %) of the range, i.e. the counter was in the top tenth of its
range and is now near 0. Any other drop is a reset. A genuine roll-over uses far less than a
tenth of the range between two readings (4.3 GWh for the 32-bit register above), while a
reset from the lower 90 % of the range would give an absurd wrapped difference.
A drop no larger than float rounding (``NOISE_RELATIVE`` of the value) is neither: 0.

Readings with the same timestamp are one reading (the last one given wins); nulls and
non-finite values are ignored.
"""

from __future__ import annotations

import polars as pl

READINGS_SCHEMA = {"ts": pl.Int64, "value": pl.Float64}
INTERVALS_SCHEMA = {"start_ts": pl.Int64, "end_ts": pl.Int64, "consumption": pl.Float64, "event": pl.String}
SLOTS_SCHEMA = {"slot_start": pl.Int64, "consumption": pl.Float64, "readings": pl.Int64}
ROLLOVER_MAX_FRACTION = 0.1
NOISE_RELATIVE = 1e-9
SLOT_DECIMALS = 9


def clean_readings(frame: pl.DataFrame) -> pl.DataFrame:
    """(ts, value) sorted by ts, one row per ts (the last given), finite values only."""
    return (
        frame.select(pl.col("ts").cast(pl.Int64), pl.col("value").cast(pl.Float64))
        .drop_nulls()
        .filter(pl.col("value").is_finite())
        .sort("ts", maintain_order=True)
        .unique(subset="ts", keep="last", maintain_order=True)
    )


def consumption(frame: pl.DataFrame, rollover: float | None = None) -> pl.DataFrame:
    """Per interval between consecutive readings: start_ts, end_ts, consumption, event.

    ``frame`` has columns ``ts`` (ms) and ``value`` (the counter). ``rollover``: the value at
    which the counter wraps to 0 (None or 0: it never wraps). ``event`` is ``"reset"``,
    ``"rollover"`` or null. See the module docstring for the rule.
    """
    readings = clean_readings(frame)
    if readings.height < 2:
        return pl.DataFrame(schema=INTERVALS_SCHEMA)
    value, previous = pl.col("value"), pl.col("value").shift(1)
    dropped = (value - previous) < -(previous.abs().clip(lower_bound=1.0) * NOISE_RELATIVE)
    if rollover:
        wrapped = value + rollover - previous
        rolled = dropped & (wrapped <= rollover * ROLLOVER_MAX_FRACTION)
    else:
        wrapped = pl.lit(None, dtype=pl.Float64)
        rolled = pl.lit(False)
    reset = dropped & ~rolled
    used = (pl.when(rolled).then(wrapped)
            .when(reset).then(value.clip(lower_bound=0.0))
            .otherwise((value - previous).clip(lower_bound=0.0)))   # growth, or a rounding-sized dip: 0
    event = pl.when(rolled).then(pl.lit("rollover")).when(reset).then(pl.lit("reset")).otherwise(pl.lit(None))
    return (
        readings
        .with_columns(pl.col("ts").shift(1).alias("start_ts"), used.alias("consumption"), event.alias("event"))
        .slice(1)
        .select(pl.col("start_ts"), pl.col("ts").alias("end_ts"), "consumption", "event")
        .cast(INTERVALS_SCHEMA)
    )


def slot_start_expr(ts: pl.Expr, slot_ms: int, offset_ms: int) -> pl.Expr:
    """Start of the slot containing ``ts``; slots start where ``(t + offset) % slot == 0``."""
    return (ts + offset_ms) // slot_ms * slot_ms - offset_ms


def per_slot(deltas: pl.DataFrame, slot_s: int, offset_s: int = 0) -> pl.DataFrame:
    """Interval consumption summed into slots: slot_start, consumption, readings.

    Slots are ``slot_s`` long and aligned to local time with UTC offset ``offset_s`` (JST:
    32400, so 1-day slots start at local midnight). An interval that spans several slots -
    one crossing a slot boundary, or a gap in the readings - is shared among them in
    proportion to its time in each (the counter is interpolated linearly between
    readings), so a gap's consumption is spread over the slots it covers instead of
    landing in one. ``readings``: intervals that end in the slot, i.e. readings at
    ``slot_start < ts <= slot_start + slot``; a slot covered only by a gap has 0.
    """
    slot_ms, offset_ms = int(slot_s) * 1000, int(offset_s) * 1000
    if slot_ms <= 0:
        raise ValueError("slot_s must be positive")
    intervals = deltas.select("start_ts", "end_ts", "consumption").filter(pl.col("end_ts") > pl.col("start_ts"))
    if intervals.height == 0:
        return pl.DataFrame(schema=SLOTS_SCHEMA)
    start, end = pl.col("start_ts"), pl.col("end_ts")
    shares = (
        intervals
        .with_columns(pl.int_ranges(slot_start_expr(start, slot_ms, offset_ms),
                                    slot_start_expr(end - 1, slot_ms, offset_ms) + slot_ms, slot_ms,
                                    dtype=pl.Int64).alias("slot_start"))
        .explode("slot_start")
        .with_columns(
            (pl.min_horizontal(end, pl.col("slot_start") + slot_ms) - pl.max_horizontal(start, pl.col("slot_start")))
            .alias("overlap_ms"))
        .with_columns((pl.col("consumption") * pl.col("overlap_ms") / (end - start)).alias("share"))
    )
    # Rounded to 1e-9 (a µWh in kWh): polars divides by a repeated value through its reciprocal, so
    # 4.0 * 0.5 h / 1 h may come out as 1.9999999999999998; reruns must give the same numbers.
    used = shares.group_by("slot_start").agg(pl.col("share").sum().round(SLOT_DECIMALS).alias("consumption"))
    # An interval's reading counts in the last slot the interval covers (one exactly on a boundary
    # closes the slot before it), so no slot appears that no interval overlaps.
    ends = (intervals.group_by(slot_start_expr(end - 1, slot_ms, offset_ms).alias("slot_start"))
            .agg(pl.len().cast(pl.Int64).alias("readings")))
    return (
        used.join(ends, on="slot_start", how="full", coalesce=True)
        .with_columns(pl.col("consumption").fill_null(0.0), pl.col("readings").fill_null(0))
        .select(list(SLOTS_SCHEMA)).cast(SLOTS_SCHEMA)
        .sort("slot_start")
    )
