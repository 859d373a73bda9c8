"""PV energy per 30-minute slot at Hitachi City for the rooftop PV measure.

Method (README "PV"): Ineichen clear-sky irradiance at each slot's midpoint, transposed to the
module plane (isotropic sky, south 30 deg by default) with the sun's apparent position, so the
morning/evening and winter/summer shape of a tilted roof is kept; then kWh = POA [kW/m2] x kWp x
performance ratio x weather factor x 0.5 h. The plane-of-array route was chosen over GHI x PR
because a tilted array's winter noon yield is far above GHI, which matters for self-consumption
per slot. The irradiance comes from the shared ``_greencity.solar`` (the forecast's too).
"""

from __future__ import annotations

import polars as pl

from cloud.domains._greencity.calendar import SLOT_MS
from cloud.domains._greencity.solar import clear_sky_irradiance

SLOT_HOURS = SLOT_MS / 3_600_000
# The measure's published figures (README, tests) were made with one sample per slot at a 20 m site
# and pvlib's default ground albedo 0.25; the forecast averages 5-minute samples at 30 m, albedo 0.2.
ROOF_ALTITUDE_M, ROOF_ALBEDO, SAMPLE_MIN = 20.0, 0.25, 30


def clear_sky_poa_w_m2(slot_starts: pl.Series, tilt_deg: float = 30.0, azimuth_deg: float = 180.0) -> pl.Series:
    """Clear-sky plane-of-array irradiance (W/m2) at the midpoint of each slot (ms epoch starts), in order."""
    if slot_starts.len() == 0:
        return pl.Series("poa_w_m2", [], dtype=pl.Float64)
    irradiance = clear_sky_irradiance(slot_starts, altitude_m=ROOF_ALTITUDE_M, tilt_deg=tilt_deg,
                                      azimuth_deg=azimuth_deg, albedo=ROOF_ALBEDO, sample_min=SAMPLE_MIN)
    return (pl.DataFrame({"slot_start": slot_starts.cast(pl.Int64)})
            .join(irradiance, on="slot_start", how="left", maintain_order="left")["poa_w_m2"].fill_null(0.0))


def pv_slot_kwh(slot_starts: pl.Series, kw: float, performance_ratio: float, weather_factor: float,
                tilt_deg: float = 30.0, azimuth_deg: float = 180.0) -> pl.Series:
    """kWh a ``kw`` kWp array yields in each slot."""
    poa = clear_sky_poa_w_m2(slot_starts, tilt_deg, azimuth_deg)
    return (poa / 1000.0 * kw * performance_ratio * weather_factor * SLOT_HOURS).alias("pv_kwh")
