"""Clear-sky PV energy per 30-minute slot at Hitachi City, from pvlib (pure: no I/O). Shared by the
forecast domain (the PV forecast's clear-sky base) and the roadmap domain (a rooftop PV measure).

Method: pvlib's Ineichen clear-sky model (Linke turbidity from pvlib's monthly climatology)
gives GHI, DNI and DHI every 5 minutes (``sample_min``; 30 = once, at the slot's middle); the isotropic-sky model transposes them onto a
module plane (default: facing south, tilted 30 degrees; ground albedo 0.2); the slot's mean
plane-of-array irradiance (W/m2) times ``kwp`` / 1000 W/m2 (the STC rating) times the
performance ratio times 0.5 h is the slot's clear-sky energy in kWh.

The performance ratio 0.80 is a typical assumption for a rooftop system (wiring, inverter,
temperature and soiling losses), not a published value; the forecast multiplies the clear-sky
energy by a factor learned from the site's own measured generation, which absorbs it.
"""

from __future__ import annotations

import warnings

import pandas as pd
import polars as pl
import pvlib

from cloud.domains._greencity.calendar import SLOT_MS

HITACHI_LATITUDE, HITACHI_LONGITUDE, HITACHI_ALTITUDE_M = 36.60, 140.65, 30.0
DEFAULT_TILT_DEG, DEFAULT_AZIMUTH_DEG = 30.0, 180.0
DEFAULT_PERFORMANCE_RATIO = 0.80
ALBEDO = 0.2
SAMPLE_MIN = 5                       # irradiance samples per slot: at 02:30, 07:30, ... 27:30 past its start
STC_IRRADIANCE_W_M2 = 1000.0
SLOT_HOURS = SLOT_MS / 3_600_000


def clear_sky_irradiance(slot_starts: pl.Series, latitude: float = HITACHI_LATITUDE,
                         longitude: float = HITACHI_LONGITUDE, altitude_m: float = HITACHI_ALTITUDE_M,
                         tilt_deg: float = DEFAULT_TILT_DEG, azimuth_deg: float = DEFAULT_AZIMUTH_DEG,
                         albedo: float = ALBEDO, sample_min: int = SAMPLE_MIN) -> pl.DataFrame:
    """Per slot start (ms): mean clear-sky ``ghi_w_m2`` and plane-of-array ``poa_w_m2`` over the slot,
    from irradiance samples every ``sample_min`` minutes (each at the middle of its step)."""
    starts = pl.Series("slot_start", slot_starts, dtype=pl.Int64).unique().sort()
    if starts.len() == 0:
        return pl.DataFrame(schema={"slot_start": pl.Int64, "ghi_w_m2": pl.Float64, "poa_w_m2": pl.Float64})
    per_slot = SLOT_MS // (sample_min * 60_000)
    offsets = [i * sample_min * 60_000 for i in range(per_slot)]
    sample_ms = [s + o for s in starts.to_list() for o in offsets]
    # The samples sit at the start of each step; shift them to its middle (2.5 min for 5-minute steps).
    times = pd.DatetimeIndex(pd.to_datetime(sample_ms, unit="ms", utc=True)) + pd.Timedelta(minutes=sample_min / 2)
    location = pvlib.location.Location(latitude, longitude, tz="UTC", altitude=altitude_m)
    with warnings.catch_warnings():      # pvlib 0.16 calls DatetimeIndex.dayofyear, deprecated in pandas 3
        warnings.simplefilter("ignore", DeprecationWarning)
        sky = location.get_clearsky(times, model="ineichen")
        sun = location.get_solarposition(times)
    poa = pvlib.irradiance.get_total_irradiance(
        surface_tilt=tilt_deg, surface_azimuth=azimuth_deg, solar_zenith=sun["apparent_zenith"],
        solar_azimuth=sun["azimuth"], dni=sky["dni"], ghi=sky["ghi"], dhi=sky["dhi"], albedo=albedo,
        model="isotropic")["poa_global"]
    samples = pl.DataFrame({"slot_start": [s for s in starts.to_list() for _ in offsets],
                            "ghi_w_m2": sky["ghi"].fillna(0.0).to_numpy(),
                            "poa_w_m2": poa.fillna(0.0).clip(lower=0.0).to_numpy()})
    return (samples.group_by("slot_start", maintain_order=True)
            .agg(pl.col("ghi_w_m2").mean(), pl.col("poa_w_m2").mean()))


def clear_sky_kwh(slot_starts: pl.Series, kwp: float, performance_ratio: float = DEFAULT_PERFORMANCE_RATIO,
                  tilt_deg: float = DEFAULT_TILT_DEG, azimuth_deg: float = DEFAULT_AZIMUTH_DEG) -> pl.DataFrame:
    """Per slot start: ``clear_kwh`` = mean POA / 1000 W/m2 x kwp x performance ratio x 0.5 h, and ``clear_ghi_w_m2``."""
    irradiance = clear_sky_irradiance(slot_starts, tilt_deg=tilt_deg, azimuth_deg=azimuth_deg)
    return irradiance.select(
        "slot_start",
        (pl.col("poa_w_m2") / STC_IRRADIANCE_W_M2 * kwp * performance_ratio * SLOT_HOURS).alias("clear_kwh"),
        pl.col("ghi_w_m2").alias("clear_ghi_w_m2"))
