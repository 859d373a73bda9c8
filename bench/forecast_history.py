"""A year of synthetic-but-realistic 30-minute history for the forecast backtest (seeded).

* Factory demand (kWh per slot): a base load, a day shift on working days (ramp at 08:00,
  lunch dip 12:00-13:00, ramp down after 17:00, some overtime), much less on Saturdays,
  Sundays, national holidays, Obon (8/13-16) and New Year (12/29-1/3) (``_greencity.calendar``),
  air conditioning in summer and heating in winter that follow a temperature process, and
  AR(1) noise plus occasional extra shifts the calendar does not know about.
* PV (kWh per slot): ``_greencity.solar.clear_sky_kwh`` at Hitachi City x a weather process:
  a daily sky state (clear / partly cloudy / overcast / rain) as a Markov chain with
  persistence (cloudy spells, a rainy June-July tsuyu), and 30-minute cloud noise within the day.
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import polars as pl

from cloud.domains._greencity.calendar import DAY_MS, date_start_ms, is_holiday, slot_starts
from cloud.domains._greencity.solar import clear_sky_kwh

SKY_INDEX = {"clear": 0.95, "partly": 0.65, "overcast": 0.30, "rain": 0.12}
SKY_STATES = tuple(SKY_INDEX)
# Tomorrow's sky given today's (rows: today; columns: clear, partly, overcast, rain).
SKY_TRANSITIONS = np.array([[0.60, 0.28, 0.09, 0.03],
                            [0.30, 0.40, 0.20, 0.10],
                            [0.15, 0.30, 0.35, 0.20],
                            [0.10, 0.25, 0.35, 0.30]])
TSUYU_TRANSITIONS = np.array([[0.30, 0.30, 0.25, 0.15],
                              [0.15, 0.30, 0.30, 0.25],
                              [0.05, 0.20, 0.40, 0.35],
                              [0.05, 0.15, 0.35, 0.45]])


def _days(first: date, count: int) -> list[date]:
    return [first + timedelta(days=i) for i in range(count)]


def daily_temperature(days: list[date], rng: np.random.Generator) -> np.ndarray:
    """Mean daily temperature (deg C) at Hitachi: about 4 in January, 26 in August, with AR(1) weather."""
    doy = np.array([d.timetuple().tm_yday for d in days])
    seasonal = 15.0 - 11.0 * np.cos(2 * np.pi * (doy - 20) / 365.0)
    anomaly = np.zeros(len(days))
    for i in range(1, len(days)):
        anomaly[i] = 0.75 * anomaly[i - 1] + rng.normal(0, 1.6)
    return seasonal + anomaly


def factory_demand(first: date, days: int, *, seed: int = 7, base_kw: float = 40.0, shift_kw: float = 180.0) -> pl.DataFrame:
    """slot_start, kwh of a factory with a weekday day shift."""
    rng = np.random.default_rng(seed)
    all_days = _days(first, days)
    temperature = daily_temperature(all_days, rng)
    hours = (np.arange(48) + 0.5) / 2
    shift = np.clip(np.minimum(hours - 7.5, 17.5 - hours), 0, 1)      # ramps 07:30-08:30 and 16:30-17:30
    shift[(hours > 12) & (hours < 13)] *= 0.55                         # lunch
    overtime = np.clip(np.minimum(hours - 17.0, 19.5 - hours), 0, 1) * 0.35
    rows, noise = [], 0.0
    for day, temp in zip(all_days, temperature):
        closed = is_holiday(day)
        saturday_half = day.weekday() == 5 and day.timetuple().tm_yday % 3 == 0   # some Saturdays: a half shift
        extra_shift = not closed and rng.random() < 0.08                          # an unannounced overtime day
        hvac_kw = 2.2 * max(temp - 22.0, 0.0) + 1.6 * max(12.0 - temp, 0.0)
        for slot in range(48):
            kw = base_kw + (0.2 if closed else 1.0) * hvac_kw * (0.4 + 0.6 * shift[slot])
            if not closed:
                kw += shift_kw * shift[slot] + shift_kw * (overtime[slot] * (2.0 if extra_shift else 1.0))
            elif saturday_half:
                kw += 0.5 * shift_kw * shift[slot] * (hours[slot] < 12.5)
            noise = 0.6 * noise + rng.normal(0, 6.0)
            rows.append(max(kw + noise, 0.0) * 0.5)
    starts = slot_starts(date_start_ms(first), date_start_ms(first) + days * DAY_MS)
    return pl.DataFrame({"slot_start": starts, "kwh": rows})


def sky_states(days: list[date], rng: np.random.Generator) -> list[str]:
    state, out = 0, []
    for day in days:
        matrix = TSUYU_TRANSITIONS if (day.month, day.day) >= (6, 8) and (day.month, day.day) <= (7, 20) else SKY_TRANSITIONS
        state = int(rng.choice(4, p=matrix[state]))
        out.append(SKY_STATES[state])
    return out


def pv_generation(first: date, days: int, *, kwp: float = 400.0, seed: int = 11) -> pl.DataFrame:
    """slot_start, kwh, sky (the day's sky state) of a PV system of ``kwp``."""
    rng = np.random.default_rng(seed)
    all_days = _days(first, days)
    starts = slot_starts(date_start_ms(first), date_start_ms(first) + days * DAY_MS)
    clear = clear_sky_kwh(starts, kwp).sort("slot_start")["clear_kwh"].to_numpy()
    states = sky_states(all_days, rng)
    index = np.repeat([SKY_INDEX[s] for s in states], 48)
    spread = np.repeat([0.04 if s == "clear" else 0.18 if s == "partly" else 0.10 for s in states], 48)
    cloud = np.zeros(len(index))
    for i in range(1, len(index)):
        cloud[i] = 0.7 * cloud[i - 1] + rng.normal(0, 1.0)
    factor = np.clip(index + spread * cloud * 0.7, 0.03, 1.1)
    return pl.DataFrame({"slot_start": starts, "kwh": clear * factor, "sky": np.repeat(states, 48)})


def history(first: date, days: int, *, kwp: float = 400.0, seed: int = 7) -> dict[str, pl.DataFrame]:
    """``{"demand": ..., "pv": ...}`` frames (slot_start, kwh) of ``days`` days from ``first``."""
    return {"demand": factory_demand(first, days, seed=seed),
            "pv": pv_generation(first, days, kwp=kwp, seed=seed + 4).select("slot_start", "kwh")}
