"""The green-city history model (simulators/greencity/model.py): shapes a factory manager would
recognise (weekdays, Sundays, Obon, New Year, seasons, rainy season), plausible yearly totals, and
the same numbers for the same seed whatever range is asked."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import numpy as np
import pytest

from simulators.greencity import model
from simulators.greencity.sites import SITES

JST = timezone(timedelta(hours=9))


def day_ms(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=JST).timestamp() * 1000)


def day_kwh(site: str, day: date, seed: int = 0) -> float:
    start = day_ms(day)
    return float(model.site_energy(site, start, start + model.DAY_MS, seed).load_kwh.sum())


def test_a_press_shop_works_weekdays_and_rests_on_sundays_holidays_and_obon():
    wednesday, sunday = day_kwh("sme-press", date(2025, 7, 9)), day_kwh("sme-press", date(2025, 7, 13))
    obon_wednesday = day_kwh("sme-press", date(2025, 8, 13))
    culture_day = day_kwh("sme-press", date(2025, 11, 3))             # 文化の日, a Monday
    new_year = day_kwh("sme-press", date(2026, 1, 2))                  # a Friday
    # weekday: 24 h x 6 kW base + ~8.5 h x 55 kW shift (lunch at 35 %) + HVAC ~ 144 + 440 = ~600 kWh
    assert 450 < wednesday < 750
    # Sunday: the 6 kW base only, 24 x 6 = 144 kWh
    assert 120 < sunday < 170
    for closed in (obon_wednesday, culture_day, new_year):
        assert closed == pytest.approx(sunday, rel=0.2)


def test_each_site_keeps_its_own_hours():
    saturday, sunday = date(2025, 10, 11), date(2025, 10, 12)
    # food: refrigeration 24 x 18 = 432 kWh every day, plus ~8.6 h x 50 kW = ~430 kWh on a production day
    assert day_kwh("sme-food", saturday) > 1.6 * day_kwh("sme-food", sunday)           # Saturdays too
    assert day_kwh("sme-food", date(2025, 11, 3)) > 1.6 * day_kwh("sme-food", sunday)  # open on national holidays
    # the city office is open at Obon (8/13, a Wednesday) like any weekday; 8/17 is a Sunday
    assert day_kwh("city-hall-annex", date(2025, 8, 13)) > 2 * day_kwh("city-hall-annex", date(2025, 8, 17))
    start = day_ms(date(2025, 10, 12))
    plating_night = model.site_energy("sme-plating", start, start + 4 * 3_600_000).load_kwh    # Sunday 00-04
    assert plating_night.min() / model.SLOT_H > 25                     # the baths stay warm: ~30 kW
    food = model.site_energy("sme-food", day_ms(date(2025, 10, 8)), day_ms(date(2025, 10, 9))).load_kwh
    assert food[10:28].mean() > 2.5 * food[32:].mean()                # 05:00-14:00 vs after 16:00


def test_heating_and_cooling_make_summer_and_winter_peaks():
    may, august, january = (day_kwh("city-hall-annex", d) for d in (date(2025, 5, 14), date(2025, 8, 6),
                                                                     date(2026, 1, 21)))
    assert august > 1.2 * may and january > 1.15 * may


def test_pv_is_zero_at_night_and_the_rainy_season_is_cloudier_than_may():
    start = day_ms(date(2025, 5, 1))
    energy = model.site_energy("hitachi-omika", start, day_ms(date(2025, 7, 20)))
    hours = ((energy.slot_start + model.JST_OFFSET_MS) % model.DAY_MS) / 3_600_000
    assert energy.pv_kwh[(hours < 3.5) | (hours >= 20.0)].max() == 0.0
    assert energy.pv_kwh.max() / model.SLOT_H < 400                    # never above the 400 kWp
    days = (energy.slot_start - start) // model.DAY_MS
    may, tsuyu = days < 31, days >= 31
    clear = model.clear_sky_kw_per_kwp(energy.slot_start) * 400 * model.SLOT_H
    assert energy.pv_kwh[tsuyu].sum() / clear[tsuyu].sum() < 0.85 * energy.pv_kwh[may].sum() / clear[may].sum()
    kinds = model.day_types(0, model.calendar(energy.slot_start).day[::48])
    assert (kinds[31:] != model.SUNNY).mean() > (kinds[:31] != model.SUNNY).mean()


@pytest.mark.parametrize("site, low_mwh, high_mwh", [
    ("sme-press", 120, 220), ("sme-plating", 280, 420), ("sme-food", 220, 380), ("city-hall-annex", 120, 220),
    ("hitachi-omika", 1400, 2000),
])
def test_a_years_total_is_plausible_for_the_site_and_a_little_lower_each_year(site, low_mwh, high_mwh):
    fy2024, fy2025 = model.year_kwh(site, 2024), model.year_kwh(site, 2025)
    assert low_mwh * 1000 < fy2025["load"] < high_mwh * 1000
    assert fy2025["load"] / fy2024["load"] == pytest.approx(1 / 1.03, abs=0.01)   # the 3 %/year trend
    if SITES[site].kwp:
        # ~1 200 kWh per kWp a year in Ibaraki; most of it used on site, the rest exported on days off
        assert 1050 < fy2025["pv"] / SITES[site].kwp < 1350
        assert 0 < fy2025["export"] < 0.2 * fy2025["pv"]
        assert fy2025["import"] == pytest.approx(fy2025["load"] - fy2025["pv"] + fy2025["export"], rel=1e-9)


def test_the_same_seed_gives_the_same_numbers_whatever_range_is_asked():
    year = model.site_energy("hitachi-omika", day_ms(date(2025, 4, 1)), day_ms(date(2026, 4, 1)), seed=3)
    day = model.site_energy("hitachi-omika", day_ms(date(2025, 9, 2)), day_ms(date(2025, 9, 3)), seed=3)
    offset = (day_ms(date(2025, 9, 2)) - day_ms(date(2025, 4, 1))) // model.SLOT_MS
    assert np.array_equal(year.load_kwh[offset:offset + 48], day.load_kwh)
    assert np.array_equal(year.pv_kwh[offset:offset + 48], day.pv_kwh)
    other = model.site_energy("hitachi-omika", day_ms(date(2025, 9, 2)), day_ms(date(2025, 9, 3)), seed=4)
    assert not np.array_equal(other.pv_kwh, day.pv_kwh)


def test_a_counter_is_the_sum_of_its_slots_at_every_instant():
    slots = model.slot_starts(day_ms(date(2026, 3, 30)), day_ms(date(2026, 4, 2)))
    counters = model.import_counters("sme-press", slots)
    energy = model.site_energy("sme-press", int(slots[0]), int(slots[-1])).import_kwh
    assert np.diff(counters) == pytest.approx(energy)
    assert model.import_counter("sme-press", int(slots[5])) == pytest.approx(counters[5])
    halfway = model.import_counter("sme-press", int(slots[20]) + model.SLOT_MS // 2)
    assert halfway == pytest.approx((counters[20] + counters[21]) / 2)
    with pytest.raises(ValueError, match="has PV"):
        model.import_counter("hitachi-omika", int(slots[0]))


def test_anchored_counters_end_at_the_given_value_and_never_go_below_zero():
    # 1 + 2 + 3 = 6 kWh ending at 100: 94, 95, 97, 100
    assert model.anchored_counters(np.array([1.0, 2.0, 3.0]), 100.0).tolist() == [94.0, 95.0, 97.0, 100.0]
    # more history than the end value: starts at 0 and ends above it
    assert model.anchored_counters(np.array([1.0, 2.0, 3.0]), 4.0).tolist() == [0.0, 1.0, 3.0, 6.0]
