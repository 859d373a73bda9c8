"""Feature frames of the day-ahead forecasts (pure polars; no I/O).

Issue time: the forecast of day D is made on D-1 at 10:00 JST (the JEPX day-ahead gate
closure), so a row's features may use only slots that had ENDED by its issue time: the
"same slot one day before" of a slot after 10:00 is still in the future at 10:00 on D-1 and
is left null, never filled. Every row carries its own ``issued_ms``: a training row of day
D' uses what was known at D'-1 10:00, exactly like the row being forecast, so the model
learns with the information it will have.

Features (all per target slot):

* calendar: ``slot`` (0-47), ``weekday`` (1=Monday), ``is_holiday`` (Saturday, Sunday, national
  holiday, Obon 8/13-16, New Year 12/29-1/3, or a site's extra day: ``_greencity.calendar``),
  ``is_national_holiday`` (holidays.Japan only);
* lags of the same slot: ``lag_1d`` .. ``lag_7d`` (null when unknown at the issue time),
  ``mean_7d`` (mean of the known ones), ``last_same_day_type`` (the newest known value of the
  same slot on a day of the same type: after a holiday week, the last working day's value);
* level: ``level_24h`` and ``level_7d`` = mean kWh per slot over the 24 h / 7 days before the issue;
* PV only: ``clear_kwh`` (``solar.clear_sky_kwh``) and the clear-sky index (actual / clear-sky
  energy) ``index_1d`` / ``index_7d`` of the same slot, ``index_morning`` / ``index_24h`` /
  ``index_7d_all`` over the 10 h (D-1's morning) / 24 h / 7 days before the issue (ratio of sums
  over the slots with clear-sky energy);
* weather, when a weather frame is given: ``ghi_w_m2``, ``temp_c`` of the target slot, and
  for PV ``ghi_ratio`` = GHI / clear-sky GHI.
"""

from __future__ import annotations

from datetime import date

import holidays
import numpy as np
import polars as pl

from cloud.domains._greencity.calendar import DAY_MS, OFFSET_MS, SLOT_MS, date_start_ms, with_calendar

ISSUE_HOUR_JST = 10
ISSUE_OFFSET_MS = ISSUE_HOUR_JST * 3_600_000
LAG_DAYS = tuple(range(1, 8))
MIN_CLEAR_SHARE = 0.02                # slots with less clear-sky energy than this share of the peak slot's are
                                      # "night" for the clear-sky index (dawn ratios are noise)
HISTORY_SCHEMA = {"slot_start": pl.Int64, "kwh": pl.Float64}


def issue_time_ms(day: date) -> int:
    """When the day-ahead forecast of ``day`` is made: 10:00 JST the day before."""
    return date_start_ms(day) - DAY_MS + ISSUE_OFFSET_MS


def nominal_issue_expr(ts_col: str = "slot_start") -> pl.Expr:
    """The issue time of the day-ahead forecast covering the slot in ``ts_col``."""
    day_start = (pl.col(ts_col) + OFFSET_MS) // DAY_MS * DAY_MS - OFFSET_MS
    return (day_start - DAY_MS + ISSUE_OFFSET_MS).alias("issued_ms")


def known_before(history: pl.DataFrame, issued_ms: int) -> pl.DataFrame:
    """The history slots that had ended by ``issued_ms``."""
    return history.filter(pl.col("slot_start") + SLOT_MS <= issued_ms)


def _same_slot_lags(rows: pl.DataFrame, history: pl.DataFrame, value: str, prefix: str) -> pl.DataFrame:
    lookup = history.select("slot_start", value)
    for k in LAG_DAYS:
        lag = pl.col("slot_start") - k * DAY_MS
        rows = (rows.with_columns(lag.alias("_lag_ts"))
                .join(lookup.rename({"slot_start": "_lag_ts", value: "_v"}), on="_lag_ts", how="left")
                .with_columns(pl.when(pl.col("_lag_ts") + SLOT_MS <= pl.col("issued_ms")).then(pl.col("_v"))
                              .otherwise(None).alias(f"{prefix}_{k}d"))
                .drop("_lag_ts", "_v"))
    return rows.with_columns(pl.mean_horizontal([f"{prefix}_{k}d" for k in LAG_DAYS]).alias(f"{prefix}_mean_7d"))


def _window_sums(history: pl.DataFrame, columns: list[str], issued: np.ndarray, window_ms: int) -> list[np.ndarray]:
    """Per issue time t: the sum of each column over history slots ending in (t - window, t]."""
    ordered = history.sort("slot_start")
    ends = (ordered["slot_start"] + SLOT_MS).to_numpy()
    hi = np.searchsorted(ends, issued, side="right")
    lo = np.searchsorted(ends, issued - window_ms, side="right")
    out = []
    for column in columns:
        cumulative = np.concatenate([[0.0], np.cumsum(ordered[column].fill_null(0.0).to_numpy())])
        out.append(cumulative[hi] - cumulative[lo])
    return out


def _levels(rows: pl.DataFrame, history: pl.DataFrame) -> pl.DataFrame:
    known = history.filter(pl.col("kwh").is_not_null()).with_columns(pl.lit(1.0).alias("_n"))
    issued = rows["issued_ms"].to_numpy()
    columns = {}
    for name, window in (("level_24h", DAY_MS), ("level_7d", 7 * DAY_MS)):
        total, count = _window_sums(known, ["kwh", "_n"], issued, window)
        columns[name] = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    return rows.with_columns(*(pl.Series(name, values).fill_nan(None) for name, values in columns.items()))


def _last_same_day_type(rows: pl.DataFrame, history: pl.DataFrame) -> pl.DataFrame:
    """Newest history value at the same slot and day type whose slot ended by the row's issue time."""
    right = (history.filter(pl.col("kwh").is_not_null())
             .select(pl.col("slot_start").alias("_known_ts"), "slot", "is_holiday",
                     pl.col("kwh").alias("last_same_day_type")).sort("_known_ts"))
    left = rows.with_columns((pl.col("issued_ms") - SLOT_MS).alias("_latest_start")).sort("_latest_start")
    joined = left.join_asof(right, left_on="_latest_start", right_on="_known_ts", by=["slot", "is_holiday"],
                            strategy="backward", check_sortedness=False)    # both sorted just above
    return joined.drop("_latest_start", "_known_ts")


def _national_holidays(dates: pl.Series) -> pl.Series:
    years = sorted({d.year for d in (dates.min(), dates.max()) if d is not None})
    found = holidays.Japan(years=range(years[0], years[-1] + 1)) if years else {}
    return pl.Series("national", sorted(found), dtype=pl.Date)


def calendar_columns(frame: pl.DataFrame, extra_holidays: frozenset[date] = frozenset()) -> pl.DataFrame:
    """``slot``, ``weekday``, ``is_holiday`` and ``is_national_holiday`` (ints) for ``slot_start``."""
    dated = with_calendar(frame, "slot_start", extra_holidays)
    national = _national_holidays(dated["date"])
    return dated.with_columns(
        pl.col("slot").cast(pl.Int32), pl.col("weekday").cast(pl.Int32),
        (pl.col("day_type") == "holiday").cast(pl.Int32).alias("is_holiday"),
        pl.col("date").is_in(national.implode()).cast(pl.Int32).alias("is_national_holiday"),
    ).drop("month", "fiscal_year", "day_type", "period")


def feature_frame(history: pl.DataFrame, rows: pl.DataFrame, *, extra_holidays: frozenset[date] = frozenset(),
                  clear_sky: pl.DataFrame | None = None, weather: pl.DataFrame | None = None) -> pl.DataFrame:
    """Features of ``rows`` (slot_start, issued_ms; issued_ms missing: the nominal day-ahead issue time).

    ``history`` (slot_start, kwh) is the measured series; ``clear_sky`` (slot_start, clear_kwh,
    clear_ghi_w_m2) makes the PV features; ``weather`` (slot_start, ghi_w_m2, temp_c) is optional.
    The result keeps ``kwh`` (the actual, null when unknown) only for scoring and training labels.
    """
    if "issued_ms" not in rows.columns:
        rows = rows.with_columns(nominal_issue_expr())
    rows = rows.select(pl.col("slot_start").cast(pl.Int64), pl.col("issued_ms").cast(pl.Int64))
    latest_issue = int(rows["issued_ms"].max()) if rows.height else 0
    history = known_before(history.select("slot_start", "kwh").cast(HISTORY_SCHEMA), latest_issue)
    history = calendar_columns(history, extra_holidays)
    out = calendar_columns(rows, extra_holidays)
    out = _same_slot_lags(out, history, "kwh", "lag").rename({"lag_mean_7d": "mean_7d"})
    out = _last_same_day_type(out, history)
    out = _levels(out, history)
    if clear_sky is not None:
        out = _pv_columns(out, history, clear_sky)
    if weather is not None:
        out = out.join(weather.select("slot_start", "ghi_w_m2", "temp_c"), on="slot_start", how="left")
        if clear_sky is not None:
            out = out.with_columns(pl.when(pl.col("clear_ghi_w_m2") > 1.0)
                                   .then(pl.col("ghi_w_m2") / pl.col("clear_ghi_w_m2")).otherwise(None)
                                   .alias("ghi_ratio"))
    actual = history.select("slot_start", "kwh")
    return out.join(actual, on="slot_start", how="left").sort("slot_start")


def _pv_columns(out: pl.DataFrame, history: pl.DataFrame, clear_sky: pl.DataFrame) -> pl.DataFrame:
    clear = clear_sky.select("slot_start", "clear_kwh", "clear_ghi_w_m2")
    floor = MIN_CLEAR_SHARE * float(clear["clear_kwh"].max() or 0.0) if clear.height else 0.0
    indexed = (history.join(clear, on="slot_start", how="inner")
               .with_columns(pl.when(pl.col("clear_kwh") > floor).then(pl.col("kwh") / pl.col("clear_kwh"))
                             .otherwise(None).alias("index")))
    out = out.join(clear, on="slot_start", how="left")
    out = _same_slot_lags(out, indexed, "index", "index").drop(
        [f"index_{k}d" for k in LAG_DAYS if k not in (1, 7)])
    daylight = indexed.filter(pl.col("index").is_not_null())
    issued = out["issued_ms"].to_numpy()
    columns = {}
    for name, window in (("index_morning", ISSUE_OFFSET_MS), ("index_24h", DAY_MS), ("index_7d_all", 7 * DAY_MS)):
        actual, possible = _window_sums(daylight, ["kwh", "clear_kwh"], issued, window)
        columns[name] = np.where(possible > 0, actual / np.maximum(possible, 1e-9), np.nan)
    return out.with_columns(*(pl.Series(name, values).fill_nan(None) for name, values in columns.items()))
