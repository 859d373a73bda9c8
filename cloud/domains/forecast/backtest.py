"""Walking forward day by day, and the scores (pure: polars in, polars out).

:func:`walk_forward` makes the day-ahead forecasts of a range of days the way they would
have been made live: day D is forecast at its issue time (D-1 10:00 JST unless told
otherwise), from history that had ended by then, with a model retrained every
``retrain_every_days`` days on the rows known at that issue time. The job (one day), the
``POST /api/forecast/run`` route and the backtest bench all use it.

:func:`scores`: MAE per model over the slots where the actual and every model's forecast
exist (the same slots for all), and the skill score 1 - MAE_gbr / MAE_seasonal_naive
(> 0: better than the baseline; 1: perfect).
"""

from __future__ import annotations

from datetime import date, timedelta

import polars as pl

from cloud.domains._greencity.calendar import DAY_MS, date_start_ms, slot_starts
from cloud.domains._greencity import solar
from cloud.domains.forecast import features, models

FORECAST_SCHEMA = {"slot_start": pl.Int64, "model": pl.String, "kwh": pl.Float64, "issued_ms": pl.Int64}


def days_between(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def _clear_sky(spec: models.TargetSpec, history: pl.DataFrame, targets: pl.Series) -> pl.DataFrame | None:
    if spec.target != "pv":
        return None
    every = pl.concat([history["slot_start"].cast(pl.Int64), targets]).unique()
    return solar.clear_sky_kwh(every, spec.kwp)


def walk_forward(history: pl.DataFrame, spec: models.TargetSpec, first_day: date, last_day: date, *,
                 issue_times: dict[date, int] | None = None, retrain_every_days: int = 7,
                 weather: pl.DataFrame | None = None) -> pl.DataFrame:
    """Forecasts (slot_start, model, kwh, issued_ms) of every slot of ``first_day`` .. ``last_day``
    for both models; ``history`` (slot_start, kwh) is the measured series (missing slots: no row)."""
    days = days_between(first_day, last_day)
    issue_times = {day: (issue_times or {}).get(day, features.issue_time_ms(day)) for day in days}
    targets = pl.DataFrame({
        "slot_start": pl.concat([slot_starts(date_start_ms(d), date_start_ms(d) + DAY_MS) for d in days]),
        "issued_ms": [issue_times[d] for d in days for _ in range(48)]}, schema={"slot_start": pl.Int64,
                                                                                "issued_ms": pl.Int64})
    history = history.select("slot_start", "kwh").cast(features.HISTORY_SCHEMA).filter(
        pl.col("slot_start") + 1_800_000 <= max(issue_times.values()))
    clear_sky = _clear_sky(spec, history, targets["slot_start"])
    kwargs = {"extra_holidays": spec.extra_holidays, "clear_sky": clear_sky, "weather": weather}
    training = features.feature_frame(history, history.select("slot_start"), **kwargs)
    to_predict = features.feature_frame(history, targets, **kwargs)
    out = [models.seasonal_naive(history, targets).with_columns(pl.lit("seasonal_naive").alias("model"))]
    model, trained_for = None, None
    for day in days:
        issued = issue_times[day]
        if model is None or trained_for is None or (day - trained_for).days >= retrain_every_days:
            model = models.fit(spec.target, training.filter(pl.col("slot_start") + 1_800_000 <= issued))
            trained_for = day if model is not None else None
        if model is None:
            continue
        start = date_start_ms(day)
        rows = to_predict.filter((pl.col("slot_start") >= start) & (pl.col("slot_start") < start + DAY_MS))
        out.append(models.predict(model, rows).with_columns(pl.lit("gbr").alias("model")))
    return pl.concat([f.select(list(FORECAST_SCHEMA)) for f in out]).cast(FORECAST_SCHEMA).sort("model", "slot_start")


def scores(forecasts: pl.DataFrame, actual: pl.DataFrame) -> dict:
    """``{"slots": n, "mae": {model: kWh per slot}, "skill": float | None}`` over the slots where
    the actual and both models are known. skill = 1 - MAE_gbr / MAE_seasonal_naive."""
    wide = (forecasts.select("slot_start", "model", "kwh")
            .pivot(on="model", index="slot_start", values="kwh")
            .join(actual.select("slot_start", pl.col("kwh").alias("actual")), on="slot_start", how="inner"))
    present = [m for m in models.MODELS if m in wide.columns]
    wide = wide.drop_nulls(["actual", *present])
    if len(present) < len(models.MODELS) or wide.height == 0:
        return {"slots": 0, "mae": {m: None for m in models.MODELS}, "skill": None}
    mae = {m: float((wide[m] - wide["actual"]).abs().mean()) for m in models.MODELS}
    skill = 1.0 - mae["gbr"] / mae["seasonal_naive"] if mae["seasonal_naive"] > 0 else None
    return {"slots": wide.height, "mae": mae, "skill": skill}
