"""Charging profiles as the simulated chargers keep and combine them (no network)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from simulators.ocpp import ChargerOptions, SimClock, V16Charger
from simulators.ocpp.ev import LOCAL_TZ, Car
from simulators.ocpp.profiles import Period, Profile, ProfileStore
from simulators.ocpp.smart import composite_schedule, limit_at, parse_profile

T0 = datetime(2026, 11, 30, 9, 0, tzinfo=LOCAL_TZ)


def test_profile_stack_tx_beats_default_and_station_max_caps():
    store = ProfileStore()
    store.install(Profile(1, 0, "TxDefaultProfile", 0, "Absolute", "A", [Period(0, 20.0)], start=T0))
    store.install(Profile(2, 0, "TxDefaultProfile", 3, "Absolute", "A", [Period(0, 10.0), Period(3600, 14.0)],
                          start=T0))
    store.install(Profile(3, 0, "ChargingStationMaxProfile", 0, "Absolute", "W", [Period(0, 11000.0)], start=T0))
    station, limit = store.constraints(1, T0 + timedelta(minutes=5))
    assert (station.limit, station.unit, limit.limit, limit.profile_id) == (11000.0, "W", 10.0, 2)
    assert store.constraints(1, T0 + timedelta(hours=2))[1].limit == 14.0
    store.install(Profile(4, 1, "TxProfile", 0, "Relative", "A", [Period(0, 7.0)], transaction_id="42"))
    assert store.constraints(1, T0, transaction_id="42", tx_start=T0)[1].limit == 7.0
    assert store.constraints(1, T0, transaction_id="43", tx_start=T0)[1].limit == 10.0
    assert store.clear(stack_level=3, purpose="TxDefaultProfile") == 1
    assert store.constraints(1, T0)[1].limit == 20.0
    assert store.install(Profile(5, 1, "ChargePointMaxProfile", 0, "Absolute", "A", [Period(0, 1.0)])) == "Rejected"


def test_recurring_daily_and_relative_schedules():
    daily = Profile(1, 0, "TxDefaultProfile", 0, "Recurring", "A", [Period(0, 16.0), Period(8 * 3600, 6.0)],
                    start=T0.replace(hour=0), recurrency="Daily", duration_s=86400)
    assert daily.constraint_at(T0 + timedelta(days=3)).limit == 6.0          # 09:00, after the 08:00 period
    assert daily.constraint_at(T0 + timedelta(days=3, hours=-2)).limit == 16.0  # 07:00
    relative = Profile(2, 1, "TxProfile", 0, "Relative", "W", [Period(0, 7400.0), Period(1800, 3700.0)],
                       duration_s=3600)
    tx_start = T0 + timedelta(minutes=10)
    assert relative.constraint_at(tx_start + timedelta(minutes=20), tx_start).limit == 7400.0
    assert relative.constraint_at(tx_start + timedelta(minutes=40), tx_start).limit == 3700.0
    assert relative.constraint_at(tx_start + timedelta(minutes=61), tx_start) is None


def test_limit_in_amps_and_composite_schedule_of_a_charger():
    clock = SimClock(T0, time_scale=1)
    charger = V16Charger("CP01", "ws://127.0.0.1:1", clock, 1, ChargerOptions(max_current_a=32.0))
    now = clock.now()
    raw = {"charging_profile_id": 9, "stack_level": 0, "charging_profile_purpose": "TxDefaultProfile",
           "charging_profile_kind": "Relative",
           "charging_schedule": {"charging_rate_unit": "W", "duration": 600,
                                 "charging_schedule_period": [{"start_period": 0, "limit": 11040},
                                                              {"start_period": 300, "limit": 4140}]}}
    assert charger.profiles.install(parse_profile(raw, 1, charger.from_peer, now)) == "Accepted"
    conn = charger.connector(1)
    conn.car = Car("EMP0001", 50.0, 32.0, 3)
    assert limit_at(charger, conn, now) == (pytest.approx(16.0), None, 3)        # 11040 W / (230 V x 3)
    schedule = composite_schedule(charger, 1, 900, "A")
    assert [(p["start_period"], p["limit"]) for p in schedule["periods"]] == [(0, 16.0), (300, 6.0), (600, 32.0)]
