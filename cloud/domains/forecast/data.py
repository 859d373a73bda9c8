"""What the forecast domain reads and writes: the ``forecast`` measurement, the targets' measured
energy (``energy_slot`` via ``_greencity.energy``) and the optional weather CSV."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import polars as pl

from cloud.domains._greencity.calendar import JST
from cloud.domains._greencity.energy import fetch_slot_energy
from cloud.domains.forecast import service
from cloud.domains.forecast.config import ForecastTarget
from cloud.influx import AsyncInfluxClient, quote_string
from cloud.points import Point

FORECAST_MEASUREMENT = "forecast"
FETCH_SCHEMA = {"slot_start": pl.Int64, "kwh": pl.Float64, "issued_ms": pl.Int64}


def forecast_points(site: str, target: str, forecasts: pl.DataFrame) -> list[Point]:
    """One point per (model, slot): tags site, target, model; fields kwh (float), issued_ms (int); time = slot start.
    Writing the same slot again replaces it (same series, same time)."""
    return [Point(FORECAST_MEASUREMENT, {"site": site, "target": target, "model": row["model"]},
                  {"kwh": float(row["kwh"]), "issued_ms": int(row["issued_ms"])}, int(row["slot_start"]))
            for row in forecasts.iter_rows(named=True)]


async def fetch_forecast(reader: AsyncInfluxClient, site: str, target: str, start_ms: int, end_ms: int,
                         model: str = "gbr") -> pl.DataFrame:
    """Stored forecasts (slot_start, kwh, issued_ms) of ``site``/``target``/``model`` with slot_start in [start, end)."""
    (series,) = await reader.query(
        f'SELECT "kwh", "issued_ms" FROM "{FORECAST_MEASUREMENT}" WHERE "site" = {quote_string(site)} '
        f'AND "target" = {quote_string(target)} AND "model" = {quote_string(model)} '
        f"AND time >= {int(start_ms)}ms AND time < {int(end_ms)}ms")
    rows = [(int(ts), float(kwh), int(issued)) for s in series for ts, kwh, issued in s.values
            if isinstance(kwh, (int, float)) and isinstance(issued, (int, float))]
    return pl.DataFrame(rows, schema=FETCH_SCHEMA, orient="row").sort("slot_start")


async def fetch_target_energy(reader: AsyncInfluxClient, target: ForecastTarget, start_ms: int,
                              end_ms: int) -> pl.DataFrame:
    """The target's measured kWh per slot (slot_start, kwh) in [start, end); slots missing a meter are left out."""
    meters = target.meter_refs()
    return service.target_series(await fetch_slot_energy(reader, meters, start_ms, end_ms), meters)


def load_weather(path: Path) -> pl.DataFrame:
    """The weather CSV (time, ghi_w_m2, temp_c; ISO 8601 times, JST when without offset) as 30-minute slots.
    ValueError naming the file and what was expected."""
    try:
        raw = pl.read_csv(path, columns=["time", "ghi_w_m2", "temp_c"],
                          schema_overrides={"time": pl.String, "ghi_w_m2": pl.Float64, "temp_c": pl.Float64})
    except Exception as exc:
        raise ValueError(f"weather_csv {path}: expected the columns time,ghi_w_m2,temp_c ({exc})") from None
    ts = []
    for i, text in enumerate(raw["time"].to_list(), start=2):
        try:
            moment = datetime.fromisoformat(text)
        except (TypeError, ValueError):
            raise ValueError(f"weather_csv {path}: line {i}: time {text!r} is not ISO 8601") from None
        ts.append(int((moment if moment.tzinfo else moment.replace(tzinfo=JST)).timestamp() * 1000))
    readings = raw.with_columns(pl.Series("ts", ts, dtype=pl.Int64)).select("ts", "ghi_w_m2", "temp_c")
    return service.weather_slots(readings)
