"""A factory site in Hitachi City with a PV plant, EV chargers and a grid meter: pure functions and a small class.

- **PV**: clear-sky irradiance from pvlib (Ineichen with the Linke turbidity climatology
  pvlib ships, solar position by SPA) on a plane tilted ``tilt`` degrees facing south,
  times the plant's peak power (kWp per 1000 W/m²) and a performance ratio of 0.85
  (inverter, wiring, soiling and heat losses together). Seeded clouds dim it.
- **Clouds**: smooth value noise (``simulators.load.smooth_noise``) on two time scales, a
  slow "weather" of about 3 h and passing clouds of about 5 min; ``cloudiness`` 0 is
  always clear, 1 an overcast day. The same seed gives the same sky.
- **Factory load**: the weekly shape of ``simulators.load.load_factor`` (day shift,
  nights, weekends) times the site's rated load, with ±4 % noise.
- **Grid meter**: ``load + ev - pv``; import is positive, export (PV surplus) negative.

EV charging power comes from outside: the charge point simulators run in another process
and report their total over UDP (see :class:`EvPowerFeed`), or a caller passes any
``ev_power_w`` callable.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

from simulators.load import NOMINAL_FREQUENCY, NOMINAL_VOLTAGE, load_factor, smooth_noise

LATITUDE, LONGITUDE, TIMEZONE, ALTITUDE_M = 36.6, 140.65, "Asia/Tokyo", 20.0      # Hitachi City
PERFORMANCE_RATIO = 0.85
DEFAULT_TILT = 20.0
INVERTER_EFFICIENCY = 0.97


# ---------------------------------------------------------------- sun and sky

@lru_cache(maxsize=1)
def _location():
    import pvlib           # imported on first use: the meter simulators do not need it (2 s to import)
    return pvlib.location.Location(LATITUDE, LONGITUDE, TIMEZONE, altitude=ALTITUDE_M, name="Hitachi")


def _times(t: float):
    import pandas as pd
    return pd.DatetimeIndex([pd.Timestamp(t, unit="s", tz="UTC")])


def solar_elevation(t: float) -> float:
    """Apparent elevation of the sun above the horizon at Hitachi, degrees, at unix time ``t``."""
    return float(_location().get_solarposition(_times(t))["apparent_elevation"].iloc[0])


@lru_cache(maxsize=366)
def _linke_turbidity(day_of_year: int) -> float:
    """pvlib's climatology for Hitachi on that day (reading it from its HDF5 file is most of the cost)."""
    import pandas as pd
    import pvlib
    day = pd.DatetimeIndex([pd.Timestamp("2025-01-01", tz="UTC") + pd.Timedelta(days=day_of_year - 1)])
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"DatetimeIndex\.dayofyear is deprecated")
        return float(pvlib.clearsky.lookup_linke_turbidity(day, LATITUDE, LONGITUDE).iloc[0])


@lru_cache(maxsize=4096)
def clear_sky_poa(t: float, tilt: float = DEFAULT_TILT, azimuth: float = 180.0) -> float:
    """Clear-sky irradiance on the plant's plane (W/m²) at unix time ``t``; 0 at night."""
    import pvlib
    times = _times(t)
    location = _location()
    sun = location.get_solarposition(times)
    if float(sun["apparent_elevation"].iloc[0]) <= 0:
        return 0.0
    with warnings.catch_warnings():
        # pvlib 0.16 still calls DatetimeIndex.dayofyear, which pandas 3 deprecates: a warning per call.
        warnings.filterwarnings("ignore", message=r"DatetimeIndex\.dayofyear is deprecated")
        turbidity = _linke_turbidity(int(times.day_of_year[0]))
        sky = location.get_clearsky(times, solar_position=sun, linke_turbidity=turbidity)
    poa = pvlib.irradiance.get_total_irradiance(tilt, azimuth, sun["apparent_zenith"], sun["azimuth"],
                                                sky["dni"], sky["ghi"], sky["dhi"])
    value = float(poa["poa_global"].iloc[0])
    return value if math.isfinite(value) and value > 0 else 0.0


def clear_sky_pv_w(t: float, kwp: float, tilt: float = DEFAULT_TILT) -> float:
    """AC power of a ``kwp`` plant under a clear sky: kWp x irradiance / 1000 W/m² x performance ratio."""
    return kwp * clear_sky_poa(t, tilt) * PERFORMANCE_RATIO       # kW per (1000 W/m²) -> W per (W/m²)


def clearness(t: float, seed: int = 0, cloudiness: float = 0.3) -> float:
    """Fraction of the clear-sky power that gets through the clouds, 0.25..1."""
    if not 0 <= cloudiness <= 1:
        raise ValueError(f"cloudiness must be 0..1, got {cloudiness}")
    weather = (1 + smooth_noise(seed, 0, 500, t, 3 * 3600.0)) / 2          # 0 clear .. 1 grey, slowly
    passing = (1 + smooth_noise(seed, 0, 501, t, 300.0)) / 2               # single clouds
    return 1.0 - 0.75 * cloudiness * (0.6 * weather + 0.4 * passing)


def pv_power_w(t: float, kwp: float, seed: int = 0, cloudiness: float = 0.3, tilt: float = DEFAULT_TILT) -> float:
    return clear_sky_pv_w(t, kwp, tilt) * clearness(t, seed, cloudiness)


def site_load_w(t: float, rated_kw: float, seed: int = 0) -> float:
    """The factory's own consumption: the weekly shape of ``load.load_factor`` times the rated load."""
    noise = 0.03 * smooth_noise(seed, 0, 600, t, 7.0) + 0.01 * smooth_noise(seed, 0, 601, t, 1.3)
    return max(0.0, rated_kw * 1000 * load_factor(t) * (1 + noise))


# ---------------------------------------------------------------- time

class SimClock:
    """Simulated unix time: ``start`` (default now) advancing ``time_scale`` times faster than ``real``."""

    def __init__(self, start: float | None = None, time_scale: float = 1.0, real: Callable[[], float] = time.time):
        if time_scale <= 0:
            raise ValueError(f"time_scale must be > 0, got {time_scale}")
        self.real, self.time_scale = real, time_scale
        self._real0 = real()
        self.start = self._real0 if start is None else start

    def __call__(self) -> float:
        return self.start + (self.real() - self._real0) * self.time_scale


def parse_start(text: str) -> float:
    """``2025-06-21T06:00`` (Asia/Tokyo unless an offset is given) -> unix time."""
    from zoneinfo import ZoneInfo
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"start must be an ISO date and time such as 2025-06-21T06:00, got {text!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(TIMEZONE))
    return moment.timestamp()


# ---------------------------------------------------------------- the site

@dataclass(frozen=True, slots=True)
class SiteSnapshot:
    t: float
    pv_w: float
    load_w: float
    ev_w: float

    @property
    def grid_w(self) -> float:
        """What the grid meter measures: import positive, export negative."""
        return self.load_w + self.ev_w - self.pv_w


class PvSite:
    """One site: a ``kwp`` PV plant, a factory of ``site_load_kw`` and chargers whose power ``ev_power_w`` tells."""

    def __init__(self, kwp: float = 250.0, site_load_kw: float = 400.0, seed: int = 0, cloudiness: float = 0.3,
                 ev_power_w: Callable[[], float] | None = None, tilt: float = DEFAULT_TILT):
        if kwp <= 0:
            raise ValueError(f"kwp must be > 0, got {kwp}")
        if site_load_kw < 0:
            raise ValueError(f"site_load_kw must be >= 0, got {site_load_kw}")
        clearness(0, seed, cloudiness)           # checks cloudiness
        self.kwp, self.site_load_kw, self.seed, self.cloudiness, self.tilt = kwp, site_load_kw, seed, cloudiness, tilt
        self.ev_power_w = ev_power_w or (lambda: 0.0)

    def snapshot(self, t: float) -> SiteSnapshot:
        return SiteSnapshot(t=t, pv_w=pv_power_w(t, self.kwp, self.seed, self.cloudiness, self.tilt),
                            load_w=site_load_w(t, self.site_load_kw, self.seed), ev_w=max(0.0, float(self.ev_power_w())))


def _phase_voltages(t: float, seed: int) -> list[float]:
    drift = 0.008 * smooth_noise(seed, 0, 200, t, 900.0)
    return [NOMINAL_VOLTAGE * (1 + drift + 0.003 * smooth_noise(seed, 0, 210 + p, t, 2.0)) for p in range(3)]


def _frequency(t: float, seed: int) -> float:
    return NOMINAL_FREQUENCY * (1 + 0.0008 * smooth_noise(seed, 0, 400, t, 60.0))


def inverter_values(site: SiteSnapshot, kwp: float, seed: int = 0) -> dict[str, object]:
    """What the PV inverter measures: AC per phase at unity power factor, the DC side, cabinet heat, state."""
    volts = _phase_voltages(site.t, seed)
    ac_w = site.pv_w
    dc_w = ac_w / INVERTER_EFFICIENCY if ac_w > 0 else 0.0
    dc_v = 620.0 - 40.0 * min(1.0, ac_w / (kwp * 1000)) if ac_w > 0 else 0.0     # MPP voltage falls as cells heat
    ambient = 12.0 + 8.0 * smooth_noise(seed, 0, 700, site.t, 6 * 3600.0)
    values: dict[str, object] = {
        "power_total": ac_w, "frequency": _frequency(site.t, seed), "power_factor": 1.0,
        "dc_power": dc_w, "dc_voltage": dc_v, "dc_current": dc_w / dc_v if dc_v else 0.0,
        "temperature_cabinet": ambient + 25.0 * min(1.0, ac_w / (kwp * 1000)),
        "inverter_state": "MPPT" if ac_w > 0 else "SLEEPING",
    }
    for p in range(3):
        values[f"voltage_l{p + 1}"] = volts[p]
        values[f"current_l{p + 1}"] = ac_w / 3 / volts[p]
    return values


def grid_meter_values(site: SiteSnapshot, seed: int = 0, power_factor: float = 0.95) -> dict[str, float]:
    """The grid meter's three phases for ``site.grid_w``, in the metric names of ``load.meter_values``."""
    volts = _phase_voltages(site.t, seed)
    values = {"power_total": site.grid_w, "power_factor": power_factor, "frequency": _frequency(site.t, seed)}
    for p in range(3):
        values[f"voltage_l{p + 1}"] = volts[p]
        values[f"power_l{p + 1}"] = site.grid_w / 3
        values[f"current_l{p + 1}"] = abs(site.grid_w) / 3 / (volts[p] * power_factor)
    return values
