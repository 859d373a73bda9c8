"""/api/forecast/*: make forecasts now (admin), read a day's forecasts and their accuracy."""

from __future__ import annotations

import time
from datetime import date, timedelta

import polars as pl
from fastapi import APIRouter, Depends, HTTPException, Query, Request

from cloud.api import params
from cloud.domains import domain_config
from cloud.domains._greencity.calendar import DAY_MS, date_start_ms, local_date
from cloud.domains.forecast import backtest, data, service
from cloud.domains.forecast.config import ForecastConfig, ForecastTarget
from cloud.domains.forecast.features import issue_time_ms
from cloud.domains.forecast.jobs import run_forecasts
from cloud.domains.forecast.models import MODELS

router = APIRouter()

MAX_RUN_DAYS = 366
MAX_ACCURACY_DAYS = 366
WRITE_CHUNK_POINTS = 5000


async def require_write(request: Request):
    return await request.app.state.auth.require_scope("forecast:write")(request)


def parse_date(name: str, value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise params.InvalidParameter(name, f"expected a date as YYYY-MM-DD, got {value!r}") from None


def configured_target(config: ForecastConfig, site: str, target: str) -> ForecastTarget:
    if target not in ("demand", "pv"):
        raise params.InvalidParameter("target", f"expected demand or pv, got {target!r}")
    found = config.target(site, target)
    if found is None:
        raise HTTPException(404, f"no forecast target {target!r} for site {site!r} "
                                 f"(domains.forecast.targets has {[(t.site, t.target) for t in config.targets]})")
    return found


@router.post("/run", summary="Forecast a day (or several) for every configured target now and store it",
             dependencies=[Depends(require_write)])
async def run(request: Request, date_: str = Query(..., alias="date", description="the forecast day, YYYY-MM-DD (JST)"),
              days: int = Query(1, ge=1, le=MAX_RUN_DAYS, description="forecast this many days from date on")) -> dict:
    first = parse_date("date", date_)
    last = first + timedelta(days=days - 1)
    now_ms = int(time.time() * 1000)
    # A day whose issue time (10:00 JST the day before) has passed is forecast as of that time, from
    # the data that had ended by then (a backfill gives what the job would have written); a later day now.
    issue_times = {day: min(issue_time_ms(day), now_ms) for day in backtest.days_between(first, last)}
    config: ForecastConfig = domain_config(request, "forecast")
    points, summary = await run_forecasts(request.app.state.reader, config, first, last, issue_times)
    for i in range(0, len(points), WRITE_CHUNK_POINTS):
        await request.app.state.reader.write_points(points[i:i + WRITE_CHUNK_POINTS])
    return {"points": len(points), "date": first.isoformat(), "days": days,
            "issued_ms": {d.isoformat(): ms for d, ms in issue_times.items()}, "targets": summary}


@router.get("/{site}", summary="A day's 48 slots: the gbr and seasonal-naive forecasts and the actual when known")
async def day_forecast(request: Request, site: str,
                       target: str = Query("demand", description="demand or pv"),
                       date_: str | None = Query(None, alias="date", description="YYYY-MM-DD (JST); default tomorrow")
                       ) -> dict:
    site = params.check_id("site", site)
    spec = configured_target(domain_config(request, "forecast"), site, target)
    day = parse_date("date", date_) if date_ else local_date(int(time.time() * 1000)) + timedelta(days=1)
    start, end = date_start_ms(day), date_start_ms(day) + DAY_MS
    reader = request.app.state.reader
    forecasts = {model: await data.fetch_forecast(reader, site, target, start, end, model) for model in MODELS}
    actual = await data.fetch_target_energy(reader, spec, start, end)
    slots = service.day_table(day, forecasts, actual)
    return {"site": site, "target": target, "date": day.isoformat(), "unit": "kWh",
            "issued_ms": {m: (int(f["issued_ms"].max()) if f.height else None) for m, f in forecasts.items()},
            "totals": {**{m: (float(f["kwh"].sum()) if f.height else None) for m, f in forecasts.items()},
                       "actual": float(actual["kwh"].sum()) if actual.height == 48 else None},
            "slots": slots}


@router.get("/{site}/accuracy", summary="MAE of the stored forecasts against the actuals, and the skill score")
async def accuracy(request: Request, site: str, target: str = Query("demand", description="demand or pv"),
                   days: int = Query(30, ge=1, le=MAX_ACCURACY_DAYS, description="how many days before end"),
                   end: str | None = Query(None, description="YYYY-MM-DD: the first day NOT counted; default today (JST)")
                   ) -> dict:
    site = params.check_id("site", site)
    spec = configured_target(domain_config(request, "forecast"), site, target)
    end_day = parse_date("end", end) if end else local_date(int(time.time() * 1000))
    end_ms = date_start_ms(end_day)
    start_ms = end_ms - days * DAY_MS
    reader = request.app.state.reader
    forecasts = pl.concat([(await data.fetch_forecast(reader, site, target, start_ms, end_ms, model))
                           .with_columns(pl.lit(model).alias("model")) for model in MODELS])
    actual = await data.fetch_target_energy(reader, spec, start_ms, end_ms)
    result = backtest.scores(forecasts, actual)
    return {"site": site, "target": target, "start": start_ms, "end": end_ms, "days": days, "unit": "kWh per slot",
            "slots": result["slots"], "mae": result["mae"], "skill": result["skill"],
            "baseline": "seasonal_naive (the same slot one week earlier)"}
