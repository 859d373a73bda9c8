"""Factory load model for the simulated 3-phase meters: pure functions of (meter, time).

A meter's active power follows a weekly shape in local time (Asia/Tokyo): a day shift
from 08:00 to 17:00 on weekdays runs near the meter's rated power, nights keep a base
load (compressors, lighting, standby), and weekends stay low. Every meter index gets
its own rated power, phase imbalance and power-factor offset, fixed by ``seed``.

Values are physically consistent: ``power_lN = voltage_lN * current_lN * power_factor``
and ``power_total`` is the sum of the phases. ``energy_import`` is the exact integral
of the noise-free load shape since the meter's commissioning, so it never decreases as
``t`` grows; :class:`EnergyIntegrator` keeps a served counter monotonic even when the
wall clock steps backwards.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from itertools import accumulate

NOMINAL_VOLTAGE = 230.0
NOMINAL_FREQUENCY = 50.0          # eastern Japan (Hitachi) runs at 50 Hz
TOKYO_UTC_OFFSET = 9 * 3600       # Asia/Tokyo has no daylight saving time
HOUR = 3600
WEEK = 7 * 24 * HOUR
# 1970-01-01 was a Thursday: shifting local time by 3 days puts 0 on a Monday 00:00.
_MONDAY_SHIFT = 3 * 24 * HOUR

METRICS = (
    "voltage_l1", "voltage_l2", "voltage_l3",
    "current_l1", "current_l2", "current_l3",
    "power_l1", "power_l2", "power_l3", "power_total",
    "power_factor", "frequency", "energy_import",
)

# Fraction of rated power at the start of each local hour; linear in between.
WEEKDAY_SHAPE = (
    0.25, 0.25, 0.25, 0.25, 0.25, 0.25,   # 00-05 night base load
    0.35, 0.60,                           # 06-07 start-up
    0.90, 0.92, 0.92, 0.90,               # 08-11 day shift
    0.70,                                 # 12 lunch break
    0.90, 0.92, 0.92, 0.88,               # 13-16 day shift
    0.60, 0.40, 0.32, 0.30, 0.28, 0.26, 0.25,  # 17-23 wind-down to night
)
SATURDAY_SHAPE = (0.22,) * 8 + (0.35,) * 4 + (0.30,) * 5 + (0.22,) * 7
SUNDAY_SHAPE = (0.18,) * 24
WEEK_SHAPE = WEEKDAY_SHAPE * 5 + SATURDAY_SHAPE + SUNDAY_SHAPE      # 168 points, Monday 00:00 first

# Energy (in rated-power-hours) used from Monday 00:00 up to the start of each hour of the week.
_HOUR_ENERGY = [(WEEK_SHAPE[h] + WEEK_SHAPE[(h + 1) % 168]) / 2 for h in range(168)]
_WEEK_PREFIX = [0.0, *accumulate(_HOUR_ENERGY)]
WEEK_ENERGY = _WEEK_PREFIX[-1]

COMMISSIONED = 1711897200.0          # 2024-04-01 00:00 JST, start of the fiscal year
_RATED_STEPS_KW = (15.0, 22.0, 30.0, 45.0, 55.0, 75.0, 90.0, 110.0, 160.0, 200.0, 250.0)


def _mix64(x: int) -> int:
    """SplitMix64 finaliser: a fast, well-spread 64-bit hash."""
    x = (x + 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return x ^ (x >> 31)


def _unit(*keys: int) -> float:
    """Deterministic number in [-1, 1) from integer keys."""
    h = 0
    for key in keys:
        h = _mix64(h ^ (key & 0xFFFFFFFFFFFFFFFF))
    return (h >> 11) / float(1 << 52) - 1.0


def smooth_noise(seed: int, index: int, channel: int, t: float, period: float) -> float:
    """Smooth value noise in [-1, 1]: random points every ``period`` s, linear in between."""
    x = t / period
    k = math.floor(x)
    frac = x - k
    a = _unit(seed, index, channel, k)
    b = _unit(seed, index, channel, k + 1)
    return a + (b - a) * frac


@dataclass(frozen=True, slots=True)
class MeterTraits:
    """What makes one meter different from the next: fixed per (index, seed)."""

    rated_kw: float                         # total active power at load factor 1.0
    phase_share: tuple[float, float, float]  # fraction of the total on each phase, sums to 1
    voltage_offset: tuple[float, float, float]  # per-phase static deviation from nominal, fraction
    pf_offset: float
    commissioned: float                     # unix time the counter started at 0 kWh


@lru_cache(maxsize=4096)
def meter_traits(index: int, seed: int = 0) -> MeterTraits:
    rated = _RATED_STEPS_KW[int((_unit(seed, index, 1) + 1) / 2 * len(_RATED_STEPS_KW))]
    skew = [0.08 * _unit(seed, index, 10 + p) for p in range(3)]     # up to ±8 % imbalance
    mean = sum(skew) / 3
    share = tuple((1 + s - mean) / 3 for s in skew)
    voltage = tuple(0.003 * _unit(seed, index, 20 + p) for p in range(3))
    return MeterTraits(
        rated_kw=rated,
        phase_share=share,  # type: ignore[arg-type]
        voltage_offset=voltage,  # type: ignore[arg-type]
        pf_offset=0.01 * _unit(seed, index, 30),
        commissioned=COMMISSIONED + 86400 * (index % 90),
    )


def _week_position(t: float) -> tuple[int, float]:
    """(whole weeks, seconds into the week) of unix time ``t`` in Tokyo local time."""
    local = t + TOKYO_UTC_OFFSET + _MONDAY_SHIFT
    weeks = math.floor(local / WEEK)
    return weeks, local - weeks * WEEK


def load_factor(t: float) -> float:
    """Noise-free fraction of rated power at unix time ``t`` (same shape for every meter)."""
    _, into_week = _week_position(t)
    hour = int(into_week // HOUR)
    frac = (into_week - hour * HOUR) / HOUR
    a, b = WEEK_SHAPE[hour], WEEK_SHAPE[(hour + 1) % 168]
    return a + (b - a) * frac


def _shape_hours(t: float) -> float:
    """Integral of the load shape, in rated-power-hours, from the epoch week start to ``t``."""
    weeks, into_week = _week_position(t)
    hour = int(into_week // HOUR)
    frac = (into_week - hour * HOUR) / HOUR
    a, b = WEEK_SHAPE[hour], WEEK_SHAPE[(hour + 1) % 168]
    partial = frac * (a + (a + (b - a) * frac)) / 2
    return weeks * WEEK_ENERGY + _WEEK_PREFIX[hour] + partial


def energy_kwh(index: int, t: float, seed: int = 0) -> float:
    """Import counter of meter ``index`` at ``t``: rated power times the shape's integral."""
    traits = meter_traits(index, seed)
    if t <= traits.commissioned:
        return 0.0
    return traits.rated_kw * (_shape_hours(t) - _shape_hours(traits.commissioned))


def meter_values(index: int, t: float, seed: int = 0) -> dict[str, float]:
    """Every metric of the ``hinode-sim-meter`` profile for meter ``index`` at unix time ``t``."""
    traits = meter_traits(index, seed)
    load = load_factor(t) * (1 + 0.04 * smooth_noise(seed, index, 100, t, 7.0) + 0.02 * smooth_noise(seed, index, 101, t, 1.3))
    total_w = max(0.0, traits.rated_kw * 1000 * load)
    # Grid voltage: slow drift, dip under the meter's own load, small flicker; stays within ±2 %.
    drift = 0.008 * smooth_noise(seed, 0, 200, t, 900.0)
    pf = 0.86 + 0.11 * min(1.0, load) + traits.pf_offset + 0.005 * smooth_noise(seed, index, 300, t, 5.0)
    pf = min(0.99, max(0.85, pf))
    out: dict[str, float] = {}
    total = 0.0
    for p in range(3):
        n = p + 1
        flicker = 0.003 * smooth_noise(seed, index, 210 + p, t, 2.0)
        voltage = NOMINAL_VOLTAGE * (1 + drift + traits.voltage_offset[p] - 0.005 * min(1.0, load) + flicker)
        current = total_w * traits.phase_share[p] / (voltage * pf)
        power = voltage * current * pf
        out[f"voltage_l{n}"] = voltage
        out[f"current_l{n}"] = current
        out[f"power_l{n}"] = power
        total += power
    out["power_total"] = total
    out["power_factor"] = pf
    out["frequency"] = NOMINAL_FREQUENCY * (1 + 0.0008 * smooth_noise(seed, 0, 400, t, 60.0) + 0.0003 * smooth_noise(seed, 0, 401, t, 3.0))
    out["energy_import"] = energy_kwh(index, t, seed)
    return {name: out[name] for name in METRICS}


class EnergyIntegrator:
    """An import counter that integrates served power and never runs backwards.

    ``update(power_w, t)`` adds ``power_w`` over the time since the previous update
    (rectangle rule with the new power). A clock step backwards, a repeated ``t`` or a
    negative power adds nothing, so the counter a client reads is monotonic.
    """

    def __init__(self, start_kwh: float = 0.0, t: float | None = None) -> None:
        if start_kwh < 0:
            raise ValueError(f"start_kwh must be >= 0, got {start_kwh}")
        self.kwh = float(start_kwh)
        self._last_t = t

    def update(self, power_w: float, t: float) -> float:
        if self._last_t is not None and t > self._last_t and power_w > 0:
            self.kwh += power_w * (t - self._last_t) / 3_600_000
        if self._last_t is None or t > self._last_t:
            self._last_t = t
        return self.kwh


def hour_of_week(t: float) -> int:
    """0 = Monday 00:00-01:00 JST ... 167 = Sunday 23:00-24:00 JST."""
    return int(_week_position(t)[1] // HOUR)

