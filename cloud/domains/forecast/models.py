"""The forecast models (pure: polars in, polars out, scikit-learn inside).

* ``gbr`` demand: a HistGradientBoostingRegressor of kWh per slot on the calendar, lag and
  level features of ``features.py`` (missing lags are handled natively as NaN).
* ``gbr`` PV: clear-sky energy (``_greencity/solar.py``) x a learned factor: a HistGradientBoostingRegressor
  of the clear-sky index (actual / clear-sky kWh, daylight slots, weighted by clear-sky kWh)
  on the slot, the clear-sky energy and the recent indices (a cloudy spell lowers them), with
  absolute-error loss (the weighted median), clipped to 0 .. 1.3. Night slots (no clear-sky energy) are 0.
* ``seasonal_naive``: the same slot one week earlier (null when that slot was not measured).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import numpy as np
import polars as pl
from sklearn.ensemble import HistGradientBoostingRegressor
from threadpoolctl import threadpool_limits

from cloud.domains._greencity.calendar import DAY_MS

TARGETS = ("demand", "pv")
MODELS = ("gbr", "seasonal_naive")
DEMAND_FEATURES = ("slot", "weekday", "is_holiday", "is_national_holiday", "lag_1d", "lag_2d", "lag_7d", "mean_7d",
                   "last_same_day_type", "level_24h", "level_7d")
PV_FEATURES = ("slot", "clear_kwh", "index_1d", "index_7d", "index_mean_7d", "index_morning", "index_24h", "index_7d_all")
WEATHER_FEATURES = {"demand": ("temp_c",), "pv": ("ghi_ratio", "temp_c")}
MAX_CLEAR_SKY_INDEX = 1.3
# PV's clear-sky index is bimodal (sunny or overcast days): its median (absolute error) scores a better
# MAE than its mean (squared error); demand is unimodal around its pattern.
LOSS = {"demand": "squared_error", "pv": "absolute_error"}
# One OpenMP thread: on a busy 2-core machine HistGradientBoosting's threads spin against other
# processes and a 6 000-row fit took 30 s instead of 1 s; the API and the job have other work too.
OPENMP_THREADS = 1
MIN_TRAIN_DAYS = 14                   # fewer labelled days before the issue: no gbr forecast
GBR_PARAMS = {"max_iter": 200, "learning_rate": 0.08, "max_leaf_nodes": 31, "min_samples_leaf": 20,
              "l2_regularization": 1.0, "early_stopping": False, "random_state": 0}


@dataclass(frozen=True)
class TargetSpec:
    """What is forecast: ``demand`` (kWh drawn per slot) or ``pv`` (kWh generated per slot, ``kwp`` rated)."""

    target: str
    kwp: float | None = None
    extra_holidays: frozenset[date] = field(default_factory=frozenset)

    def __post_init__(self):
        if self.target not in TARGETS:
            raise ValueError(f"target must be one of {TARGETS}, got {self.target!r}")
        if self.target == "pv" and not (self.kwp and self.kwp > 0):
            raise ValueError("a pv target needs kwp > 0 (the rated power of the modules)")


@dataclass
class FittedModel:
    target: str
    columns: tuple[str, ...]
    regressor: HistGradientBoostingRegressor
    trained_rows: int


def feature_columns(target: str, frame: pl.DataFrame) -> tuple[str, ...]:
    base = DEMAND_FEATURES if target == "demand" else PV_FEATURES
    extra = tuple(c for c in WEATHER_FEATURES[target] if c in frame.columns)
    return base + extra


def _matrix(frame: pl.DataFrame, columns: tuple[str, ...]) -> np.ndarray:
    return frame.select([pl.col(c).cast(pl.Float64) for c in columns]).to_numpy()


def fit(target: str, training: pl.DataFrame) -> FittedModel | None:
    """A model from feature rows with a known ``kwh``; None with less than MIN_TRAIN_DAYS of them."""
    labelled = training.filter(pl.col("kwh").is_not_null())
    if labelled.height < MIN_TRAIN_DAYS * 48:
        return None
    columns = feature_columns(target, labelled)
    regressor = HistGradientBoostingRegressor(**GBR_PARAMS, loss=LOSS[target])
    with threadpool_limits(limits=OPENMP_THREADS, user_api="openmp"):
        if target == "demand":
            regressor.fit(_matrix(labelled, columns), labelled["kwh"].to_numpy())
        else:
            daylight = labelled.filter(pl.col("clear_kwh") > 0)
            index = (daylight["kwh"] / daylight["clear_kwh"]).clip(0.0, MAX_CLEAR_SKY_INDEX).to_numpy()
            regressor.fit(_matrix(daylight, columns), index, sample_weight=daylight["clear_kwh"].to_numpy())
    return FittedModel(target, columns, regressor, labelled.height)


def predict(model: FittedModel, rows: pl.DataFrame) -> pl.DataFrame:
    """slot_start, issued_ms, kwh (never negative) for the feature ``rows``."""
    if rows.height == 0:
        return pl.DataFrame(schema={"slot_start": pl.Int64, "issued_ms": pl.Int64, "kwh": pl.Float64})
    with threadpool_limits(limits=OPENMP_THREADS, user_api="openmp"):
        raw = model.regressor.predict(_matrix(rows, model.columns))
    if model.target == "demand":
        kwh = pl.Series("kwh", raw).clip(lower_bound=0.0)
    else:
        kwh = (pl.Series("kwh", raw).clip(0.0, MAX_CLEAR_SKY_INDEX) * rows["clear_kwh"].fill_null(0.0)).alias("kwh")
    return rows.select("slot_start", "issued_ms").with_columns(kwh)


def seasonal_naive(history: pl.DataFrame, rows: pl.DataFrame) -> pl.DataFrame:
    """The same slot one week earlier, for ``rows`` (slot_start, issued_ms); slots without a value are left out."""
    week_before = history.select((pl.col("slot_start") + 7 * DAY_MS).alias("slot_start"),
                                 pl.col("kwh"), (pl.col("slot_start") + 1_800_000).alias("_ends"))
    return (rows.select("slot_start", "issued_ms").join(week_before, on="slot_start", how="inner")
            .filter(pl.col("kwh").is_not_null() & (pl.col("_ends") <= pl.col("issued_ms")))
            .select("slot_start", "issued_ms", pl.col("kwh").cast(pl.Float64)).sort("slot_start"))
