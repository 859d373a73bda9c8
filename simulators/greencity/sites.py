"""The demo sites of the green industrial city (issue 10): what each one runs and when.

Numbers are demo assumptions sized like the firms they stand for (a 50-60 kW press shop,
a plating shop whose baths never go cold, a food plant starting at 05:00, a city office
annex, a large plant with 400 kWp on its roof); README.md in this folder explains them.
"""

from __future__ import annotations

from dataclasses import dataclass

# The green-city demo's time origin: every counter of the model counts from here (the start of
# FY2024, as simulators.load.COMMISSIONED), so the same instant always has the same counter value.
ORIGIN_MS = 1_711_897_200_000            # 2024-04-01 00:00 JST
TREND_PER_YEAR = 0.03                    # each year uses 3 % less than the one before (efficiency work)


@dataclass(frozen=True)
class MeterSpec:
    device: str
    metrics: tuple[str, ...]              # counters, kWh
    profile: str


@dataclass(frozen=True)
class SiteSpec:
    id: str
    name: str
    base_kw: float                        # always on (baths, refrigeration, servers, standby)
    shift_kw: float                       # production or office load on open days
    shift_hours: tuple[float, float]      # local time the shift runs, e.g. (8, 17)
    open_weekdays: tuple[int, ...]        # 0 = Monday
    open_on_national_holidays: bool = False
    closes_obon: bool = True              # 8/13-8/16
    closes_new_year: bool = True          # 12/29-1/3
    lunch_keep: float = 1.0               # share of the shift load still running 12:00-13:00
    hvac_summer_kw: float = 0.0           # at the peak of summer (early August), during the shift
    hvac_winter_kw: float = 0.0           # at the peak of winter (late January), during the shift
    base_summer: float = 0.0              # the base load's extra share at the summer peak (refrigeration)
    base_winter: float = 0.0              # ... at the winter peak (keeping baths warm)
    closed_base_keep: float = 1.0         # share of the base load still on during Obon / New Year closing
    kwp: float = 0.0                      # rooftop PV
    counter_start_kwh: float = 0.0        # the import counter at ORIGIN_MS
    baseline_t_co2: float | None = None   # FY2013 emissions (t-CO2), from before the platform
    agent: str = ""                       # the agent that publishes its meters
    meters: tuple[MeterSpec, ...] = ()


_MAIN_METER = (MeterSpec("main-meter", ("energy_import",), "greencity-meter"),)

# FY2013 baselines: the site's modelled FY2024 use scaled back at 3 %/year (x1.03**11 = 1.38) times
# 0.57 kg/kWh (the national average emission factor of FY2013, 電気事業連合会 0.570), plus the
# fuel the firms burnt then; rounded. See README.md "History model".
SITES: dict[str, SiteSpec] = {s.id: s for s in (
    SiteSpec("hitachi-omika", "Hitachi Omika works (demo)", base_kw=150.0, shift_kw=150.0, shift_hours=(8.0, 18.0),
             open_weekdays=(0, 1, 2, 3, 4), lunch_keep=0.6, hvac_summer_kw=60.0, hvac_winter_kw=40.0, kwp=400.0,
             baseline_t_co2=1450.0, agent="edge-01",
             meters=(MeterSpec("grid-meter", ("energy_import", "energy_export"), "sunspec-203"),
                     MeterSpec("pv-inverter", ("energy_export",), "sunspec-103"))),
    SiteSpec("sme-press", "Press shop A", base_kw=6.0, shift_kw=55.0, shift_hours=(8.0, 17.0),
             open_weekdays=(0, 1, 2, 3, 4), lunch_keep=0.35, hvac_summer_kw=10.0, hvac_winter_kw=6.0,
             counter_start_kwh=48_210.0, baseline_t_co2=150.0, agent="sme-press-gw", meters=_MAIN_METER),
    SiteSpec("sme-plating", "Plating works B", base_kw=30.0, shift_kw=40.0, shift_hours=(8.0, 17.0),
             open_weekdays=(0, 1, 2, 3, 4), lunch_keep=0.7, hvac_summer_kw=5.0, base_summer=0.05,
             base_winter=0.2, closed_base_keep=0.8, counter_start_kwh=731_940.0, baseline_t_co2=290.0,
             agent="sme-plating-gw", meters=_MAIN_METER),
    SiteSpec("sme-food", "Food processing C", base_kw=18.0, shift_kw=50.0, shift_hours=(5.0, 14.0),
             open_weekdays=(0, 1, 2, 3, 4, 5), open_on_national_holidays=True, lunch_keep=0.85,
             hvac_summer_kw=8.0, base_summer=0.35, closed_base_keep=0.9, counter_start_kwh=402_577.0,
             baseline_t_co2=240.0, agent="sme-food-gw", meters=_MAIN_METER),
    SiteSpec("city-hall-annex", "City hall annex", base_kw=10.0, shift_kw=30.0, shift_hours=(8.5, 17.25),
             open_weekdays=(0, 1, 2, 3, 4), closes_obon=False, lunch_keep=0.7, hvac_summer_kw=35.0,
             hvac_winter_kw=25.0, counter_start_kwh=1_265_003.0, baseline_t_co2=150.0,
             agent="city-hall-annex-gw", meters=_MAIN_METER),
)}
SME_SITES = tuple(s for s in SITES if s != "hitachi-omika")     # metered, no edge agent of their own
UNMETERED_SITE = "sme-machining"                                 # monthly bills and fuel deliveries only
UNMETERED_BASELINE_T_CO2 = 95.0


def site(site_id: str) -> SiteSpec:
    try:
        return SITES[site_id]
    except KeyError:
        raise ValueError(f"unknown green-city demo site {site_id!r}; known: {', '.join(SITES)}") from None
