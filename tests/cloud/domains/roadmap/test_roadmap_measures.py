"""Each measure's yearly kWh, CO2 and yen on small profiles, with the arithmetic beside the numbers.
Defaults of measures.yaml unless said: LED 0.15 x 0.5, compressor 0.2 x 0.2, PV 0.8 x 0.6."""

from __future__ import annotations

from datetime import datetime

import pandas as pd
import polars as pl
import pvlib
import pytest

from cloud.domains.roadmap.library import LIBRARY_FILE, LibraryError, load_library, measure_params
from cloud.domains.roadmap.service import SiteState, Step, apply_measures, check_profile

FACTOR, PRICE = 0.45, 25.0
SLOT = 1_800_000


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1000)


def flat(first: str, slots: int, kwh: float = 100.0) -> SiteState:
    start = ms(first)
    return SiteState(check_profile(pl.DataFrame({"slot_start": [start + i * SLOT for i in range(slots)],
                                                 "kwh": [kwh] * slots})), FACTOR, PRICE)


def step(measure: str, **overrides) -> Step:
    library = load_library()
    return Step(measure, measure_params(library, measure, overrides), measure, library.measures[measure].quantity)


def test_led_on_a_flat_year_and_on_one_day_scaled_to_a_year():
    for state in (flat("2026-04-01T00:00:00+09:00", 17_520), flat("2026-04-01T00:00:00+09:00", 48)):
        (led,), after = apply_measures(state, [step("led")])
        # 100 kWh x 17,520 slots = 1,752,000 kWh/year (one day: 4,800 x 365, the same); x 0.15 x 0.5 = 131,400
        assert led.kwh_saved == pytest.approx(131_400)
        assert led.co2_saved_kg == pytest.approx(59_130)           # 131,400 x 0.45
        assert led.yen_saved == pytest.approx(3_285_000)           # 131,400 x 25
        assert led.investment_yen == pytest.approx(1_500_000)      # 100 fixtures x 15,000
        assert led.payback_years == pytest.approx(0.456621, abs=1e-6)   # 1,500,000 / 3,285,000
        assert after.profile["kwh"].unique().to_list() == [pytest.approx(92.5)]   # 100 x (1 - 0.075)


def test_compressor_payback_is_investment_over_yearly_yen():
    (result,), _ = apply_measures(flat("2026-04-01T00:00:00+09:00", 48), [step("compressor", compressors=2)])
    # 1,752,000 x 0.2 x 0.2 = 70,080 kWh; x 25 = 1,752,000 yen; 2 x 3,000,000 / 1,752,000 = 3.4247 years
    assert (result.kwh_saved, result.yen_saved) == (pytest.approx(70_080), pytest.approx(1_752_000))
    assert result.payback_years == pytest.approx(3.424658, abs=1e-6)


def test_motors_save_share_times_one_minus_efficiency_ratio():
    (result,), _ = apply_measures(flat("2026-04-01T00:00:00+09:00", 48), [step("motors")])
    # 1,752,000 x 0.4 x (1 - 0.876 / 0.914) = 700,800 x 0.0415755 = 29,136.1 kWh
    assert result.kwh_saved == pytest.approx(29_136.1, abs=0.1)


def clear_sky_poa(text: str) -> float:
    """The test's own pvlib call: Ineichen clear sky at Hitachi City, south 30 deg, at the slot's middle."""
    times = pd.DatetimeIndex([pd.Timestamp(text) + pd.Timedelta(minutes=15)])
    place = pvlib.location.Location(36.60, 140.65, tz="Asia/Tokyo", altitude=20)
    sky, sun = place.get_clearsky(times, model="ineichen"), place.get_solarposition(times)
    poa = pvlib.irradiance.get_total_irradiance(30, 180, sun["apparent_zenith"], sun["azimuth"], sky["dni"],
                                                sky["ghi"], sky["dhi"])
    return float(poa["poa_global"].fillna(0).iloc[0])


def two_slots(kwh: float = 10.0) -> SiteState:
    slots = [ms("2026-06-21T12:00:00+09:00"), ms("2026-06-21T00:00:00+09:00")]
    return SiteState(check_profile(pl.DataFrame({"slot_start": slots, "kwh": [kwh, kwh]})), FACTOR, PRICE)


def test_pv_self_consumption_and_export_at_june_noon_and_midnight():
    noon_poa, midnight_poa = clear_sky_poa("2026-06-21T12:00:00+09:00"), clear_sky_poa("2026-06-21T00:00:00+09:00")
    assert 850 < noon_poa < 1050 and midnight_poa == 0.0          # the sun is up at noon JST, not at midnight
    noon_pv = noon_poa / 1000 * 100 * 0.8 * 0.6 * 0.5   # 100 kWp x PR 0.8 x weather 0.6 x 0.5 h: about 22.7 kWh
    (pv,), after = apply_measures(two_slots(), [step("pv", kw=100)])
    scale = 17_520 / 2                                            # two slots stand for a year
    # noon: min(pv, 10 kWh load) = 10 self-consumed, pv - 10 exported; midnight: nothing
    assert pv.details["self_consumed_kwh"] == pytest.approx(10 * scale)            # 87,600
    assert pv.details["exported_kwh"] == pytest.approx((noon_pv - 10) * scale, rel=1e-9)
    assert pv.kwh_saved == pytest.approx(87_600)
    assert pv.co2_saved_kg == pytest.approx(39_420)               # only the self-consumed part: 87,600 x 0.45
    assert pv.yen_saved == pytest.approx(87_600 * 25 + (noon_pv - 10) * scale * 8.0, rel=1e-9)
    assert pv.investment_yen == pytest.approx(25_000_000)         # 100 kW x 250,000
    assert after.profile.sort("slot_start")["kwh"].to_list() == pytest.approx([10.0, 0.0])   # midnight, noon


def test_pv_after_led_covers_the_lower_load():
    (led, pv), _ = apply_measures(two_slots(), [step("led"), step("pv", kw=100)])
    # noon load after LED: 10 x 0.925 = 9.25 kWh self-consumed; x 8,760 = 81,030 kWh/year
    assert pv.details["self_consumed_kwh"] == pytest.approx(81_030)
    alone = apply_measures(two_slots(), [step("pv", kw=100)])[0][0]
    assert pv.details["exported_kwh"] - alone.details["exported_kwh"] == pytest.approx(0.75 * 8_760)


def test_renewable_menu_lowers_the_co2_of_later_measures():
    (menu, led), _ = apply_measures(flat("2026-04-01T00:00:00+09:00", 48),
                                    [step("renewable_menu", switched_share=0.5), step("led")])
    assert menu.co2_saved_kg == pytest.approx(394_200)            # 1,752,000 x 0.5 x 0.45
    assert menu.yen_saved == pytest.approx(-876_000)              # 876,000 kWh x 1 yen premium
    assert menu.payback_years is None                             # costs yen every year
    assert led.co2_saved_kg == pytest.approx(29_565)              # 131,400 x 0.45 x 0.5 left at the factor


def test_ev_commuting_charges_on_weekday_middays_and_its_gasoline_is_scope3():
    week = flat("2026-06-01T00:00:00+09:00", 7 * 48)              # Monday 2026-06-01 to Sunday 06-07
    (ev,), after = apply_measures(week, [step("ev_commuting")])
    # 10 cars x 8,000 km = 80,000 km: x 0.15 = 12,000 kWh charged; x 0.0667 l = 5,336 l x 2.32 = 12,379.52 kg
    assert ev.kwh_saved == pytest.approx(-12_000)
    assert ev.co2_saved_kg == pytest.approx(-5_400)               # the site's Scope 2 grows: 12,000 x 0.45
    assert ev.scope3_saved_kg == pytest.approx(12_379.52)
    assert ev.yen_saved == pytest.approx(-300_000)                # free charging: 12,000 x 25
    added = after.profile.with_columns(pl.col("kwh") - 100.0)
    # 12,000 kWh/year / (17,520 / 336) = 230.14 kWh this week, over 5 days x 12 slots (09:00-15:00)
    assert float(added["kwh"].sum()) == pytest.approx(12_000 * 336 / 17_520)
    assert added.filter(pl.col("kwh") > 1e-9).height == 60
    company = apply_measures(week, [step("ev_commuting", company_cars=True)])[0][0]
    assert company.co2_saved_kg == pytest.approx(12_379.52 - 5_400) and company.scope3_saved_kg == 0


def test_heat_pump_replaces_boiler_fuel():
    (hp,), _ = apply_measures(flat("2026-04-01T00:00:00+09:00", 48), [step("heat_pump")])
    # 20 kL x 39.1 GJ x 0.85 = 664.7 GJ heat = 184,638.9 kWh; / COP 3 = 61,546.3 kWh electricity
    assert hp.kwh_saved == pytest.approx(-61_546.3, abs=0.1)
    # 20 kL x 2,709.6 kg = 54,192 kg fuel CO2 - 61,546.3 x 0.45 = 27,695.8 kg -> 26,496.2 kg
    assert hp.co2_saved_kg == pytest.approx(26_496.2, abs=0.1)
    assert hp.yen_saved == pytest.approx(2_000_000 - 1_538_657, abs=1)   # fuel 20 x 100,000 - 61,546.3 x 25


def test_library_refuses_unknown_and_mistyped_parameters(tmp_path):
    library = load_library()
    with pytest.raises(ValueError, match=r"led.params.watts: no such parameter"):
        measure_params(library, "led", {"watts": 3})
    with pytest.raises(ValueError, match=r"led.params.lighting_share: expected a fraction"):
        measure_params(library, "led", {"lighting_share": 15})
    with pytest.raises(ValueError, match=r"unknown measure 'solar'"):
        measure_params(library, "solar")
    broken = tmp_path / "measures.yaml"
    text = LIBRARY_FILE.read_text()
    broken.write_text(text.replace("      yen_per_unit: {value: 15000", "      cost: {value: 15000", 1))
    with pytest.raises(LibraryError, match=r"measures.led: Value error, params.yen_per_unit is missing"):
        load_library(broken)
    assert all(p.source for m in library.measures.values() for p in m.params.values())


def test_fuel_factors_come_from_the_lookup_and_another_fuel_needs_its_amount_and_price():
    from cloud.domains.roadmap.build import make_step

    def lookup(fuel_id: str):
        factors = {"kerosene": (36.7, 2_490.0, "kL", "test"), "gasoline": (34.6, 2_321.6, "kL", "test")}
        if fuel_id not in factors:
            raise KeyError(f"unknown fuel {fuel_id!r} (known: gasoline, kerosene)")
        return factors[fuel_id]

    library = load_library()
    with pytest.raises(ValueError, match=r"heat_pump.params.fuel_amount_per_year: give it in the unit of fuel "):
        make_step(library, "heat_pump", {"fuel_id": "kerosene"}, lookup)
    kerosene = make_step(library, "heat_pump", {"fuel_id": "kerosene", "fuel_amount_per_year": 10,
                                                "fuel_price_yen_per_unit": 110_000}, lookup)
    assert (kerosene.params["fuel_gj_per_unit"], kerosene.params["fuel_kg_co2_per_unit"]) == (36.7, 2_490.0)
    with pytest.raises(ValueError, match=r"heat_pump.params.fuel_id: unknown fuel 'coal' \(known: gasoline"):
        make_step(library, "heat_pump", {"fuel_id": "coal", "fuel_amount_per_year": 1,
                                         "fuel_price_yen_per_unit": 1}, lookup)
    ev = make_step(library, "ev_commuting", {}, lookup)
    assert ev.params["gasoline_kg_co2_per_l"] == pytest.approx(2.3216)          # 2,321.6 kg/kL / 1,000
