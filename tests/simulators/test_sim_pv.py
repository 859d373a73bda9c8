"""The PV site model: the clear-sky curve at Hitachi, seeded clouds, the factory load and the grid balance."""

from __future__ import annotations

import asyncio
import socket

import pytest

from simulators.ev_feed import EvPowerFeed, send_ev_power
from simulators.pv import (PvSite, SimClock, clear_sky_pv_w, clearness, grid_meter_values, inverter_values,
                           parse_start, pv_power_w, site_load_w)
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

EQUINOX_NOON = parse_start("2025-03-20T11:40")       # JST


def jst(text: str) -> float:
    return parse_start(text)


def test_start_times_are_tokyo_time_unless_an_offset_is_given():
    assert parse_start("2025-03-20T11:40") == parse_start("2025-03-20T02:40+00:00") == 1742438400.0
    with pytest.raises(ValueError, match="ISO date and time"):
        parse_start("noon")


def test_no_power_at_night():
    for moment in ("2025-06-21T00:00", "2025-06-21T03:30", "2025-06-21T19:45", "2025-12-21T17:00"):
        assert clear_sky_pv_w(jst(moment), kwp=100) == 0.0, moment
        assert pv_power_w(jst(moment), kwp=100, seed=3, cloudiness=0.5) == 0.0


def test_the_clear_sky_peak_is_near_solar_noon_and_of_the_hand_checked_size():
    day = [jst(f"2025-03-20T{h:02d}:{m:02d}") for h in range(9, 15) for m in range(0, 60, 5)]
    power = [clear_sky_pv_w(t, kwp=100) for t in day]
    peak = day[power.index(max(power))]
    # Hitachi is 5.65° east of the 135° E meridian of JST: noon comes 22.6 min early, and the
    # equation of time (-7.5 min on 20 March) makes it 11:45 by the clock.
    assert jst("2025-03-20T11:35") <= peak <= jst("2025-03-20T11:55")
    # Hand check at the equinox: zenith = latitude = 36.6°, air mass 1/cos(36.6°) = 1.25; clear-sky
    # beam ~ 1360 x 0.7^(1.25^0.678) = 898 W/m²; on a 20° south-facing plane the sun is 16.6° off the
    # normal (cos 0.958): 860 W/m² beam + ~90 W/m² diffuse = ~950 W/m². 100 kWp x 0.95 x 0.85 = 81 kW.
    assert max(power) == pytest.approx(81_000, rel=0.10)
    assert clear_sky_pv_w(EQUINOX_NOON, kwp=250) == pytest.approx(2.5 * clear_sky_pv_w(EQUINOX_NOON, kwp=100))
    # summer mornings start earlier than winter ones, and winter noon is lower than the equinox
    assert clear_sky_pv_w(jst("2025-06-21T06:00"), 100) > 5_000 > clear_sky_pv_w(jst("2025-12-21T07:00"), 100)
    assert clear_sky_pv_w(jst("2025-12-21T11:40"), 100) < max(power)


def test_clouds_dim_the_curve_the_same_way_for_the_same_seed():
    day = [jst("2025-05-12T06:00") + 600 * i for i in range(72)]          # 06:00 .. 17:50 every 10 min
    clear = [clear_sky_pv_w(t, 100) for t in day]
    cloudy = [pv_power_w(t, 100, seed=7, cloudiness=0.8) for t in day]
    assert all(c <= s + 1e-9 for c, s in zip(cloudy, clear))
    assert sum(cloudy) < 0.85 * sum(clear)                    # a cloudy day yields clearly less
    assert cloudy == [pv_power_w(t, 100, seed=7, cloudiness=0.8) for t in day]
    assert cloudy != [pv_power_w(t, 100, seed=8, cloudiness=0.8) for t in day]
    assert [pv_power_w(t, 100, seed=7, cloudiness=0.0) for t in day] == clear
    assert all(0.25 <= clearness(t, 7, 1.0) <= 1.0 for t in day)
    with pytest.raises(ValueError, match="cloudiness must be 0..1"):
        clearness(0, 0, 1.5)


def test_the_factory_load_follows_the_weekly_shape_scaled_to_the_site():
    weekday_morning = site_load_w(jst("2025-03-19T10:00"), rated_kw=400)      # a Wednesday
    night = site_load_w(jst("2025-03-19T03:00"), rated_kw=400)
    sunday = site_load_w(jst("2025-03-23T10:00"), rated_kw=400)
    assert weekday_morning == pytest.approx(0.92 * 400_000, rel=0.05)
    assert night == pytest.approx(0.25 * 400_000, rel=0.05)
    assert sunday == pytest.approx(0.18 * 400_000, rel=0.05)


def test_the_grid_meter_sees_load_plus_ev_minus_pv():
    site = PvSite(kwp=250, site_load_kw=400, seed=1, cloudiness=0.0, ev_power_w=lambda: 22_000.0)
    snap = site.snapshot(EQUINOX_NOON)
    assert snap.pv_w == pytest.approx(clear_sky_pv_w(EQUINOX_NOON, 250))
    assert snap.load_w == pytest.approx(site_load_w(EQUINOX_NOON, 400, 1))
    assert snap.grid_w == pytest.approx(snap.load_w + 22_000 - snap.pv_w)
    meter = grid_meter_values(snap)
    assert sum(meter[f"power_l{n}"] for n in (1, 2, 3)) == pytest.approx(snap.grid_w)
    assert meter["current_l1"] == pytest.approx(snap.grid_w / 3 / (meter["voltage_l1"] * 0.95))
    # a sunny Sunday: the factory uses less than the plant makes, the meter runs backwards (export)
    sunday = PvSite(kwp=250, site_load_kw=100, cloudiness=0.0).snapshot(jst("2025-03-23T11:40"))
    assert sunday.grid_w < 0 and grid_meter_values(sunday)["current_l1"] > 0
    inverter = inverter_values(snap, kwp=250)
    assert inverter["power_total"] == snap.pv_w and inverter["inverter_state"] == "MPPT"
    assert inverter["dc_power"] > inverter["power_total"]
    assert inverter_values(site.snapshot(jst("2025-03-20T23:00")), kwp=250)["inverter_state"] == "SLEEPING"


def test_simulated_time_runs_from_start_at_the_time_scale():
    real = [1000.0]
    clock = SimClock(start=EQUINOX_NOON, time_scale=60, real=lambda: real[0])
    assert clock() == EQUINOX_NOON
    real[0] += 2.5
    assert clock() == EQUINOX_NOON + 150
    with pytest.raises(ValueError, match="time_scale"):
        SimClock(time_scale=0)


async def test_the_ev_feed_takes_the_chargers_total_over_udp_and_forgets_it_when_stale():
    now = [0.0]
    feed = EvPowerFeed(port=0, stale_after_s=30, clock=lambda: now[0])
    await feed.start()
    try:
        site = PvSite(kwp=100, site_load_kw=200, cloudiness=0.0, ev_power_w=feed)
        before = site.snapshot(EQUINOX_NOON)
        assert before.ev_w == 0.0
        send_ev_power(7400, feed.port)
        await asyncio.to_thread(wait_until, lambda: feed() == 7400.0, "7400 W received", 5)
        after = site.snapshot(EQUINOX_NOON)
        assert after.ev_w == 7400.0 and after.grid_w == pytest.approx(before.grid_w + 7400)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for junk in (b"lots", b"-5", b"nan", b"\xff"):
                sock.sendto(junk, ("127.0.0.1", feed.port))
        await asyncio.to_thread(wait_until, lambda: feed.rejected == 4, "junk rejected", 5)
        assert feed() == 7400.0
        now[0] += 31                                   # the chargers' process went quiet
        assert feed() == 0.0 and site.snapshot(EQUINOX_NOON).grid_w == pytest.approx(before.grid_w)
        send_ev_power(11040.5, feed.port)
        await asyncio.to_thread(wait_until, lambda: feed() == 11040.5, "11040.5 W received", 5)
    finally:
        await feed.stop()
