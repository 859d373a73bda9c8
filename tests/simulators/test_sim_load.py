"""The factory load model: hand-checked numbers and physical properties."""

from __future__ import annotations

import math
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulators.derived import derived_values
from simulators.load import (EnergyIntegrator, energy_kwh, hour_of_week, load_factor, meter_traits,
                             meter_values)
from simulators.meters import MeterBank

pytestmark = pytest.mark.timeout(60)
TOKYO = ZoneInfo("Asia/Tokyo")


def jst(*args) -> float:
    return datetime(*args, tzinfo=TOKYO).timestamp()


# 2025-01-13 is a Monday.
MON, WED, SAT, SUN = 13, 15, 18, 19
times = st.floats(min_value=jst(2024, 6, 1), max_value=jst(2031, 1, 1), allow_nan=False)
indexes = st.integers(min_value=1, max_value=200)


def test_load_shape_follows_tokyo_local_time():
    assert load_factor(jst(2025, 1, WED, 10, 0)) == pytest.approx(0.92)     # day shift
    assert load_factor(jst(2025, 1, WED, 10, 30)) == pytest.approx(0.91)    # halfway 0.92 -> 0.90
    assert load_factor(jst(2025, 1, MON, 7, 30)) == pytest.approx(0.75)     # start-up ramp 0.60 -> 0.90
    assert load_factor(jst(2025, 1, WED, 3, 0)) == pytest.approx(0.25)      # night base load
    assert load_factor(jst(2025, 1, WED, 12, 0)) == pytest.approx(0.70)     # lunch break
    assert load_factor(jst(2025, 1, SAT, 9, 0)) == pytest.approx(0.35)
    assert load_factor(jst(2025, 1, SUN, 14, 0)) == pytest.approx(0.18)
    # 00:30 UTC is 09:30 in Tokyo: the day shift, not the night.
    utc = datetime(2025, 1, WED, 0, 30, tzinfo=ZoneInfo("UTC")).timestamp()
    assert load_factor(utc) == pytest.approx(0.92)
    assert hour_of_week(jst(2025, 1, MON, 0, 10)) == 0
    assert hour_of_week(jst(2025, 1, SUN, 23, 59)) == 167


def test_energy_counter_is_rated_power_times_the_shape_integral():
    index = 7
    rated = meter_traits(index).rated_kw
    # Night hour Tuesday 01:00-02:00 runs flat at 25 % of rated power.
    night = energy_kwh(index, jst(2025, 1, 14, 2)) - energy_kwh(index, jst(2025, 1, 14, 1))
    assert night == pytest.approx(rated * 0.25, rel=1e-9)
    # Monday 07:00-08:00 ramps 0.60 -> 0.90: the average is 0.75.
    ramp = energy_kwh(index, jst(2025, 1, MON, 8)) - energy_kwh(index, jst(2025, 1, MON, 7))
    assert ramp == pytest.approx(rated * 0.75, rel=1e-9)
    # A whole week from any start: 5 weekdays of 12.82 + Saturday 6.2 + Sunday 4.32 = 74.62 rated-hours.
    start = jst(2025, 3, 5, 13, 17, 41)
    week = energy_kwh(index, start + 7 * 86400) - energy_kwh(index, start)
    assert week == pytest.approx(rated * 74.62, rel=1e-9)


def test_meters_differ_in_size_and_phase_balance_but_are_reproducible():
    traits = [meter_traits(i) for i in range(1, 51)]
    assert len({t.rated_kw for t in traits}) >= 5
    assert all(15 <= t.rated_kw <= 250 for t in traits)
    for t in traits:
        assert sum(t.phase_share) == pytest.approx(1.0)
        assert max(t.phase_share) - min(t.phase_share) > 0.001       # never perfectly balanced
        assert max(t.phase_share) / min(t.phase_share) < 1.2
    t0 = jst(2025, 1, WED, 10, 0, 1)
    assert meter_values(3, t0) == meter_values(3, t0)
    assert meter_values(3, t0) != meter_values(4, t0)
    assert meter_values(3, t0, seed=1) != meter_values(3, t0, seed=0)


@settings(max_examples=300, deadline=None)
@given(index=indexes, t=times, seed=st.integers(0, 5))
def test_values_are_physically_consistent(index, t, seed):
    v = meter_values(index, t, seed)
    assert set(v) == {"voltage_l1", "voltage_l2", "voltage_l3", "current_l1", "current_l2", "current_l3",
                      "power_l1", "power_l2", "power_l3", "power_total", "power_factor", "frequency",
                      "energy_import"}
    assert 0.85 <= v["power_factor"] <= 0.99
    assert 49.9 <= v["frequency"] <= 50.1
    for n in (1, 2, 3):
        assert 230 * 0.98 <= v[f"voltage_l{n}"] <= 230 * 1.02
        assert v[f"current_l{n}"] > 0
        assert v[f"power_l{n}"] == pytest.approx(v[f"voltage_l{n}"] * v[f"current_l{n}"] * v["power_factor"], rel=1e-12)
    assert v["power_total"] == pytest.approx(v["power_l1"] + v["power_l2"] + v["power_l3"], rel=1e-12)
    assert v["energy_import"] >= 0


def test_day_shift_is_high_nights_are_base_load_and_weekends_low():
    for index in range(1, 21):
        day = meter_values(index, jst(2025, 1, WED, 10, 0))["power_total"]
        night = meter_values(index, jst(2025, 1, WED, 3, 0))["power_total"]
        sunday = meter_values(index, jst(2025, 1, SUN, 10, 0))["power_total"]
        rated_w = meter_traits(index).rated_kw * 1000
        assert 0.85 * rated_w < day < rated_w
        assert day > 3 * night
        assert sunday < 0.25 * day


@settings(max_examples=200, deadline=None)
@given(index=indexes, t1=times, dt=st.floats(min_value=0, max_value=30 * 86400))
def test_model_energy_never_decreases(index, t1, dt):
    assert energy_kwh(index, t1 + dt) >= energy_kwh(index, t1)


def test_energy_integrator_hand_checked():
    counter = EnergyIntegrator(100.0, t=0.0)
    assert counter.update(1000.0, 3600.0) == pytest.approx(101.0)       # 1 kW for 1 h
    assert counter.update(1500.0, 5400.0) == pytest.approx(101.75)      # 1.5 kW for 30 min
    assert counter.update(5000.0, 5000.0) == pytest.approx(101.75)      # clock stepped back: nothing added
    assert counter.update(-300.0, 9000.0) == pytest.approx(101.75)      # no export counted as import
    assert counter.update(2000.0, 10800.0) == pytest.approx(102.75)     # measured from 9000 s, not 5000 s
    with pytest.raises(ValueError, match="start_kwh"):
        EnergyIntegrator(-1.0)


def test_meter_bank_counter_is_monotonic_when_the_clock_steps_back():
    bank = MeterBank(3)
    t = jst(2025, 1, WED, 10, 0)
    bank.refresh(t)
    first = bank.values(2)["energy_import"]
    assert first == pytest.approx(energy_kwh(2, t))
    bank.refresh(t + 60)
    after_minute = bank.values(2)["energy_import"]
    power = bank.values(2)["power_total"]
    assert after_minute == pytest.approx(first + power * 60 / 3_600_000)
    bank.refresh(t - 3600)                      # NTP step backwards by an hour
    assert bank.values(2)["energy_import"] == after_minute
    with pytest.raises(KeyError, match="meter 4 does not exist"):
        bank.values(4)
    assert not math.isnan(bank.values(1)["power_total"])


def test_vendor_metrics_are_derived_consistently():
    core = meter_values(5, jst(2025, 1, WED, 14, 0))
    d = derived_values(core)
    for n in (1, 2, 3):
        assert d[f"apparent_power_l{n}"] ** 2 == pytest.approx(core[f"power_l{n}"] ** 2 + d[f"reactive_power_l{n}"] ** 2)
        assert math.cos(math.radians(d[f"phase_angle_l{n}"])) == pytest.approx(core["power_factor"])
    assert d["voltage_l1_l2"] == pytest.approx(math.sqrt(3) * 230, rel=0.03)
    assert d["voltage_ll_avg"] == pytest.approx(math.sqrt(3) * d["voltage_ln_avg"], rel=0.001)
    assert d["current_sum"] == pytest.approx(3 * d["current_avg"])
    assert 0 < d["current_neutral"] < 0.2 * d["current_avg"]          # a few % imbalance, small neutral current
    assert d["reactive_energy_import"] == pytest.approx(0.4 * core["energy_import"])
    assert d["energy_export"] == 0.0
