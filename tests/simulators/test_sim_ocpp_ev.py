"""The commuter/EV model, a connector's electrics and the clock, by hand-checked numbers (no network)."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone

import pytest

from simulators.ocpp.clock import SimClock, ocpp_time, parse_start
from simulators.ocpp.connector import Connector, Transaction
from simulators.ocpp.ev import LOCAL_TZ, Car, acceptance, accepted_current, car_for, soc_after, visit_on

MONDAY = date(2026, 11, 30)
T0 = datetime(2026, 11, 30, 9, 0, tzinfo=LOCAL_TZ)


def test_weekday_visits_fall_in_the_commute_windows_and_weekends_are_empty():
    for slot in range(1, 41):
        for day in range(5):
            visit = visit_on(MONDAY + timedelta(days=day), slot, seed=3)
            assert time(8, 0) <= visit.arrival.time() <= time(9, 0)
            assert time(17, 0) <= visit.departure.time() <= time(18, 30)
            assert 20.0 <= visit.soc_arrival <= 60.0
            assert visit.car.id_tag == f"EMP{slot:04d}"
            assert 40 <= visit.car.battery_kwh <= 80 and visit.car.phases in (1, 3)
        assert visit_on(MONDAY + timedelta(days=5), slot, seed=3) is None       # Saturday
        assert visit_on(MONDAY + timedelta(days=6), slot, seed=3) is None       # Sunday


def test_visits_are_reproducible_per_seed_and_differ_between_days_and_seeds():
    assert visit_on(MONDAY, 4, seed=1) == visit_on(MONDAY, 4, seed=1)
    arrivals = {visit_on(MONDAY + timedelta(days=d), 4, seed=1).arrival.time() for d in range(5)}
    assert len(arrivals) > 1
    assert [car_for(s, seed=1) for s in range(1, 20)] != [car_for(s, seed=2) for s in range(1, 20)]
    assert car_for(4, seed=1) == visit_on(MONDAY, 4, seed=1).car == visit_on(MONDAY + timedelta(days=1), 4, 1).car


def test_taper_above_80_percent_and_soc_math():
    assert acceptance(20.0) == acceptance(80.0) == 1.0
    assert acceptance(90.0) == pytest.approx(0.55)          # halfway from 1.0 to 0.1
    assert acceptance(99.0) == pytest.approx(0.145)
    assert acceptance(100.0) == 0.0
    car = Car("EMP0001", battery_kwh=50.0, max_current_a=32.0, phases=3)
    assert accepted_current(car, 90.0) == pytest.approx(17.6)
    assert soc_after(car, 40.0, 5000.0) == pytest.approx(50.0)      # 5 kWh of 50 kWh = 10 %
    assert soc_after(car, 98.0, 5000.0) == 100.0


def charging_connector(car: Car, soc: float, ramp_s: float = 0.0) -> Connector:
    conn = Connector(number=1, station_phases=3, max_current_a=32.0, ramp_s=ramp_s, switch_delay_s=120.0,
                     voltages=(230.0, 230.0, 230.0), energy_wh=1000.0, last_t=T0)
    conn.plug_in(T0, car, soc)
    conn.offer(T0, 32.0, None)
    conn.begin(T0, Transaction(1, car.id_tag, T0, conn.energy_wh))
    return conn


def test_one_hour_at_16a_three_phase_meters_11_04_kwh():
    car = Car("EMP0001", battery_kwh=50.0, max_current_a=16.0, phases=3)
    conn = charging_connector(car, soc=40.0)
    conn.advance(T0 + timedelta(hours=1))
    # 3 phases x 230 V x 16 A = 11 040 W for an hour
    assert conn.power_w == pytest.approx(11040.0)
    assert conn.energy_wh == pytest.approx(1000.0 + 11040.0)
    assert conn.soc == pytest.approx(40.0 + 11.04 / 50 * 100)       # 62.08 %
    assert conn.status == "Charging"


def test_charging_slows_above_80_and_stops_full():
    car = Car("EMP0001", battery_kwh=40.0, max_current_a=32.0, phases=1)
    conn = charging_connector(car, soc=79.0)
    conn.advance(T0 + timedelta(minutes=30))
    assert 80.0 < conn.soc < 100.0
    assert conn.current_a == pytest.approx(32.0 * acceptance(conn.soc), rel=1e-6) and conn.current_a < 32.0
    conn.advance(T0 + timedelta(hours=12))
    assert conn.soc == 100.0 and conn.status == "SuspendedEV" and conn.current_a == 0.0
    # 40 kWh from 79 % to 100 % = 8.4 kWh metered
    assert conn.energy_wh == pytest.approx(1000.0 + 8400.0, abs=1.0)


def test_ramp_and_suspension_below_6a():
    car = Car("EMP0001", battery_kwh=60.0, max_current_a=32.0, phases=3)
    conn = charging_connector(car, soc=40.0, ramp_s=10.0)
    conn.advance(T0 + timedelta(seconds=10))
    assert conn.current_a == 32.0
    conn.offer(T0 + timedelta(seconds=10), 16.0, None)
    conn.advance(T0 + timedelta(seconds=15))
    assert conn.current_a == pytest.approx(24.0)         # halfway through the 10 s ramp
    conn.advance(T0 + timedelta(seconds=20))
    assert conn.current_a == 16.0
    conn.offer(T0 + timedelta(seconds=20), 5.9, None)
    assert conn.status == "SuspendedEVSE"
    conn.advance(T0 + timedelta(seconds=31))
    assert conn.current_a == 0.0


def test_phase_switch_pauses_for_the_delay():
    car = Car("EMP0001", battery_kwh=60.0, max_current_a=32.0, phases=3)
    conn = charging_connector(car, soc=40.0)
    conn.offer(T0, 16.0, 1)
    assert conn.status == "SuspendedEVSE" and conn.current_a == 0.0
    conn.advance(T0 + timedelta(seconds=119))
    assert conn.phases_in_use == 3 and conn.current_a == 0.0 and conn.energy_wh == pytest.approx(1000.0)
    conn.advance(T0 + timedelta(seconds=121))
    assert conn.phases_in_use == 1 and conn.current_a == 16.0 and conn.status == "Charging"
    assert conn.phase_currents() == [16.0, 0.0, 0.0]


def test_clock_compresses_time_and_parses_start():
    start = parse_start("07:55", today=MONDAY)
    assert start == datetime(2026, 11, 30, 7, 55, tzinfo=LOCAL_TZ)
    assert ocpp_time(start) == "2026-11-29T22:55:00.000Z"
    assert parse_start("2026-12-01T08:10") == datetime(2026, 12, 1, 8, 10, tzinfo=LOCAL_TZ)
    with pytest.raises(ValueError, match="--start"):
        parse_start("25:00")
    clock = SimClock(start, time_scale=3600)
    assert clock.real_seconds(7200) == 2.0
    assert clock.now().astimezone(timezone.utc) >= start
