"""The history model: 30-minute energy of the demo sites, pure and deterministic from a seed.

Every value is a function of (seed, site, slot) only, never of the range asked for, so a year
computed today and the slot the live publisher continues tomorrow agree, and a counter (the sum
of slot energies since ``ORIGIN_MS``) has one value per instant. numpy only (plus ``holidays``;
``pvlib`` for the PV plant): the simulators need neither polars nor the cloud.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache

import numpy as np

from simulators.greencity.sites import ORIGIN_MS, TREND_PER_YEAR, SiteSpec, site as site_spec

SLOT_MS = 1_800_000
DAY_MS = 86_400_000
JST_OFFSET_MS = 9 * 3_600_000
SLOT_H = 0.5
YEAR_MS = 365.25 * DAY_MS
SUMMER_PEAK_DOY, WINTER_PEAK_DOY = 218, 22          # ~Aug 6 and ~Jan 22: hottest and coldest weeks in Ibaraki
TSUYU = ((6, 1), (7, 19))                            # 梅雨, Kanto: early June to mid July
SUNNY, CLOUDY, RAINY = 0, 1, 2
# Day-type Markov chains (rows: today sunny/cloudy/rainy -> tomorrow). Pacific-side Kanto: dry sunny
# winters, a wet rainy season, changeable the rest of the year.
TRANSITIONS = {
    "winter": np.array([[0.75, 0.20, 0.05], [0.50, 0.35, 0.15], [0.45, 0.35, 0.20]]),
    "tsuyu": np.array([[0.30, 0.40, 0.30], [0.15, 0.45, 0.40], [0.10, 0.40, 0.50]]),
    "other": np.array([[0.60, 0.30, 0.10], [0.35, 0.40, 0.25], [0.30, 0.40, 0.30]]),
}
CLEARNESS = {SUNNY: (0.85, 0.05), CLOUDY: (0.45, 0.12), RAINY: (0.15, 0.05)}   # (mean, spread) of the day
WEATHER_ORIGIN = date(2023, 1, 1)                                                # the chain starts here, sunny
NOISE_SLOT, NOISE_DAY = 0.04, 0.05                                               # load noise, relative


# ---------------------------------------------------------------- deterministic noise

_M1, _M2, _GOLD = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB), np.uint64(0x9E3779B97F4A7C15)


def _mix(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser over uint64 arrays (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        x = x + _GOLD
        x = (x ^ (x >> np.uint64(30))) * _M1
        x = (x ^ (x >> np.uint64(27))) * _M2
        return x ^ (x >> np.uint64(31))


def uniform(seed: int, stream: str, keys: np.ndarray) -> np.ndarray:
    """Uniform [0, 1) per key, the same for the same (seed, stream, key) whatever else is asked."""
    salt = np.uint64((seed * 1_000_003 + sum(ord(c) * 31 ** i for i, c in enumerate(stream))) % 2**64)
    mixed = _mix(_mix(np.asarray(keys, dtype=np.int64).astype(np.uint64) ^ salt))
    return (mixed >> np.uint64(11)).astype(np.float64) / float(2**53)


def normal(seed: int, stream: str, keys: np.ndarray) -> np.ndarray:
    """Roughly standard normal (sum of three uniforms, sd 1) per key."""
    keys = np.asarray(keys, dtype=np.int64)
    total = sum(uniform(seed, f"{stream}/{i}", keys) for i in range(3))
    return (total - 1.5) * 2.0


# ---------------------------------------------------------------- calendar

def slot_starts(start_ms: int, end_ms: int) -> np.ndarray:
    """Slot starts in [start, end), start aligned down to a JST 30-minute slot."""
    first = (int(start_ms) + JST_OFFSET_MS) // SLOT_MS * SLOT_MS - JST_OFFSET_MS
    return np.arange(first, int(end_ms), SLOT_MS, dtype=np.int64)


@lru_cache(maxsize=32)
def _national_holidays(year: int) -> frozenset[date]:
    import holidays
    return frozenset(holidays.Japan(years=year))


@dataclass(frozen=True)
class Calendar:
    day: np.ndarray            # JST day number since 1970-01-01 (int64)
    hour: np.ndarray           # local hour of the slot's middle, 0.25 .. 23.75
    weekday: np.ndarray        # 0 = Monday
    doy: np.ndarray            # day of year, 1..366
    national: np.ndarray       # a national holiday (bool)
    obon: np.ndarray           # 8/13-8/16
    new_year: np.ndarray       # 12/29-1/3
    tsuyu: np.ndarray


def calendar(slots: np.ndarray) -> Calendar:
    local = slots + JST_OFFSET_MS
    day = local // DAY_MS
    hour = (local % DAY_MS) / 3_600_000 + SLOT_H / 2
    dates = day.astype("datetime64[D]")
    years = dates.astype("datetime64[Y]").astype(np.int64) + 1970
    months = dates.astype("datetime64[M]").astype(np.int64) % 12 + 1
    mday = (dates - dates.astype("datetime64[M]")).astype(np.int64) + 1
    doy = (dates - dates.astype("datetime64[Y]")).astype(np.int64) + 1
    holiday_days = [np.datetime64(d, "D").astype(np.int64)
                    for y in range(int(years.min(initial=2024)), int(years.max(initial=2024)) + 1)
                    for d in _national_holidays(y)]
    md = months * 100 + mday
    start, end = TSUYU[0][0] * 100 + TSUYU[0][1], TSUYU[1][0] * 100 + TSUYU[1][1]
    return Calendar(day=day, hour=hour, weekday=(day + 3) % 7, doy=doy,
                    national=np.isin(day, np.array(holiday_days, dtype=np.int64)),
                    obon=(md >= 813) & (md <= 816), new_year=(md >= 1229) | (md <= 103),
                    tsuyu=(md >= start) & (md <= end))


def seasonal(doy: np.ndarray, peak: int, width_days: float) -> np.ndarray:
    """1 at the ``peak`` day of year, falling off like a bell over ``width_days``, wrapping at New Year."""
    distance = np.abs(((doy - peak + 182) % 365) - 182)
    return np.exp(-((distance / width_days) ** 2))


def window(hour: np.ndarray, start: float, end: float, ramp_h: float = 0.5) -> np.ndarray:
    """0..1 trapezoid: ramps up over ``ramp_h`` from ``start``, down over ``ramp_h`` to ``end``."""
    up = np.clip((hour - start) / ramp_h + 0.5, 0.0, 1.0)
    down = np.clip((end - hour) / ramp_h + 0.5, 0.0, 1.0)
    return np.minimum(up, down)


# ---------------------------------------------------------------- load

def open_days(site: SiteSpec, cal: Calendar) -> np.ndarray:
    is_open = np.isin(cal.weekday, np.array(site.open_weekdays))
    if not site.open_on_national_holidays:
        is_open &= ~cal.national
    if site.closes_obon:
        is_open &= ~cal.obon
    if site.closes_new_year:
        is_open &= ~cal.new_year
    return is_open


def load_kw(site: SiteSpec, slots: np.ndarray, seed: int = 0, cal: Calendar | None = None) -> np.ndarray:
    """Average consumption (kW) of the site in each slot."""
    cal = cal or calendar(slots)
    is_open = open_days(site, cal)
    closed_all_day = (site.closes_obon & cal.obon) | (site.closes_new_year & cal.new_year)
    summer, winter = seasonal(cal.doy, SUMMER_PEAK_DOY, 40.0), seasonal(cal.doy, WINTER_PEAK_DOY, 45.0)
    base = site.base_kw * (1 + site.base_summer * summer + site.base_winter * winter)
    base = np.where(closed_all_day, base * site.closed_base_keep, base)
    on_shift = window(cal.hour, *site.shift_hours) * is_open
    lunch = np.where((cal.hour > 12.0) & (cal.hour < 13.0), site.lunch_keep, 1.0)
    hvac = (site.hvac_summer_kw * summer + site.hvac_winter_kw * winter) * window(cal.hour, site.shift_hours[0] - 0.5,
                                                                                   site.shift_hours[1])
    load = base + on_shift * (site.shift_kw * lunch + hvac * 1.0)
    key = (slots - ORIGIN_MS) // SLOT_MS
    noise = ((1 + NOISE_SLOT * normal(seed, f"{site.id}/slot", key))
             * (1 + NOISE_DAY * normal(seed, f"{site.id}/day", cal.day)))
    trend = (1 + TREND_PER_YEAR) ** (-(slots - ORIGIN_MS) / YEAR_MS)
    return np.maximum(load * noise * trend, 0.0)


# ---------------------------------------------------------------- weather and PV

def _season(day: date) -> str:
    md = (day.month, day.day)
    if TSUYU[0] <= md <= TSUYU[1]:
        return "tsuyu"
    return "winter" if day.month in (12, 1, 2) else "other"


@lru_cache(maxsize=8)
def _day_types(seed: int, last: date) -> np.ndarray:
    """The Markov chain of day types from WEATHER_ORIGIN to ``last`` (one draw per day, seeded)."""
    days = (last - WEATHER_ORIGIN).days + 1
    draws = uniform(seed, "weather/day", np.arange(days))
    states = np.empty(days, dtype=np.int8)
    state, day = SUNNY, WEATHER_ORIGIN
    for i in range(days):
        row = np.cumsum(TRANSITIONS[_season(day)][state])
        state = int(np.searchsorted(row, draws[i], side="right"))
        states[i] = min(state, RAINY)
        day += timedelta(days=1)
    return states


def day_types(seed: int, days: np.ndarray) -> np.ndarray:
    """Sunny (0), cloudy (1) or rainy (2) for each JST day number."""
    origin = np.datetime64(WEATHER_ORIGIN, "D").astype(np.int64)
    last = WEATHER_ORIGIN + timedelta(days=int(days.max(initial=origin) - origin))
    # The cache key rounds up to the next 64 days, so a live process asks for a new chain rarely.
    last += timedelta(days=-(last - WEATHER_ORIGIN).days % 64)
    return _day_types(seed, last)[np.clip(days - origin, 0, None)]


def clearness(seed: int, slots: np.ndarray, cal: Calendar | None = None) -> np.ndarray:
    """Fraction of the clear-sky PV that gets through, per slot: the day's type plus passing clouds."""
    cal = cal or calendar(slots)
    kinds = day_types(seed, cal.day)
    mean = np.choose(kinds, [CLEARNESS[k][0] for k in (SUNNY, CLOUDY, RAINY)])
    spread = np.choose(kinds, [CLEARNESS[k][1] for k in (SUNNY, CLOUDY, RAINY)])
    day_level = mean + spread * normal(seed, "weather/level", cal.day)
    passing = np.where(kinds == CLOUDY, 0.15, 0.04) * normal(seed, "weather/slot", (slots - ORIGIN_MS) // SLOT_MS)
    return np.clip(day_level + passing, 0.05, 1.0)


def clear_sky_kw_per_kwp(slots: np.ndarray) -> np.ndarray:
    """Clear-sky AC power of 1 kWp at the slot's middle (pvlib, as simulators/pv.py: Ineichen, tilt 20 south)."""
    import warnings

    import pandas as pd
    import pvlib

    from simulators.pv import ALTITUDE_M, DEFAULT_TILT, LATITUDE, LONGITUDE, PERFORMANCE_RATIO, TIMEZONE

    times = pd.DatetimeIndex(pd.to_datetime(slots + SLOT_MS // 2, unit="ms", utc=True))
    location = pvlib.location.Location(LATITUDE, LONGITUDE, TIMEZONE, altitude=ALTITUDE_M)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sun = location.get_solarposition(times)
        sky = location.get_clearsky(times, solar_position=sun)
        poa = pvlib.irradiance.get_total_irradiance(DEFAULT_TILT, 180.0, sun["apparent_zenith"], sun["azimuth"],
                                                    sky["dni"], sky["ghi"], sky["dhi"])["poa_global"]
    values = np.nan_to_num(poa.to_numpy(dtype=np.float64), nan=0.0)
    values = np.where(sun["apparent_elevation"].to_numpy() > 0, np.clip(values, 0.0, None), 0.0)
    return values / 1000.0 * PERFORMANCE_RATIO


def pv_kw(site: SiteSpec, slots: np.ndarray, seed: int = 0, cal: Calendar | None = None) -> np.ndarray:
    if site.kwp <= 0:
        return np.zeros(len(slots))
    return site.kwp * clear_sky_kw_per_kwp(slots) * clearness(seed, slots, cal)


# ---------------------------------------------------------------- energy per slot and counters

@dataclass(frozen=True)
class SiteEnergy:
    """kWh per slot: what the site used, its PV made, it took from the grid and gave back."""

    slot_start: np.ndarray
    load_kwh: np.ndarray
    pv_kwh: np.ndarray
    import_kwh: np.ndarray
    export_kwh: np.ndarray

    def counter_energy(self, device: str, metric: str) -> np.ndarray:
        """The kWh per slot a meter's counter advances by."""
        if device == "pv-inverter":
            return self.pv_kwh
        return self.export_kwh if metric == "energy_export" else self.import_kwh


def site_energy(site: SiteSpec | str, start_ms: int, end_ms: int, seed: int = 0) -> SiteEnergy:
    site = site_spec(site) if isinstance(site, str) else site
    slots = slot_starts(start_ms, end_ms)
    cal = calendar(slots)
    load = load_kw(site, slots, seed, cal) * SLOT_H
    pv = pv_kw(site, slots, seed, cal) * SLOT_H
    net = load - pv
    return SiteEnergy(slots, load, pv, np.maximum(net, 0.0), np.maximum(-net, 0.0))


def import_counter(site: SiteSpec | str, ts_ms: int, seed: int = 0) -> float:
    """A meter-only site's ``energy_import`` counter (kWh) at ``ts_ms``: its start value plus every slot
    since ORIGIN_MS, the current slot counted pro rata (the load is even within a slot)."""
    site = site_spec(site) if isinstance(site, str) else site
    if site.kwp:
        raise ValueError(f"{site.id} has PV: its counters are anchored to the live PV site, not to ORIGIN_MS")
    ts_ms = int(ts_ms)
    current = int(slot_starts(ts_ms, ts_ms + 1)[0])
    whole = float(_cumulative(site, current, seed))
    slot_kwh = float(load_kw(site, np.array([current], dtype=np.int64), seed)[0]) * SLOT_H
    return site.counter_start_kwh + whole + slot_kwh * (ts_ms - current) / SLOT_MS


@lru_cache(maxsize=64)
def _cumulative(site: SiteSpec, until_slot_ms: int, seed: int) -> float:
    if until_slot_ms <= ORIGIN_MS:
        return 0.0
    return float(load_kw(site, slot_starts(ORIGIN_MS, until_slot_ms), seed).sum() * SLOT_H)


def import_counters(site: SiteSpec | str, slots: np.ndarray, seed: int = 0) -> np.ndarray:
    """The ``energy_import`` counter of a meter-only site at each of ``slots`` (JST slot starts, ascending)."""
    site = site_spec(site) if isinstance(site, str) else site
    if len(slots) == 0:
        return np.zeros(0)
    first = int(slots[0])
    energy = load_kw(site, slot_starts(first, int(slots[-1])), seed) * SLOT_H
    start = site.counter_start_kwh + _cumulative(site, first, seed)
    return start + np.concatenate([[0.0], np.cumsum(energy)])


def anchored_counters(energy_kwh: np.ndarray, end_value: float) -> np.ndarray:
    """Counter values at the start of each slot of ``energy_kwh`` and at the end of the last, ending at
    ``end_value``: a history that runs into a counter whose value now is given (the live PV site's).
    Never below 0: when the history used more than ``end_value``, it starts at 0 (and ends above)."""
    totals = np.concatenate([[0.0], np.cumsum(energy_kwh)])
    start = max(0.0, float(end_value) - float(totals[-1]))
    return start + totals


def year_kwh(site: SiteSpec | str, fiscal_year: int, seed: int = 0) -> dict[str, float]:
    """The model's totals over one Japanese fiscal year (April-March), for the README and checks."""
    from datetime import datetime, timezone
    jst = timezone(timedelta(hours=9))
    start = int(datetime(fiscal_year, 4, 1, tzinfo=jst).timestamp() * 1000)
    end = int(datetime(fiscal_year + 1, 4, 1, tzinfo=jst).timestamp() * 1000)
    energy = site_energy(site, start, end, seed)
    return {name: float(getattr(energy, f"{name}_kwh").sum()) for name in ("load", "pv", "import", "export")}

