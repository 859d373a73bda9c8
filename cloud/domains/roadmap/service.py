"""What each measure saves per year on the site's own 30-minute load profile (pure, no I/O).

A profile is a frame ``slot_start`` (ms), ``kwh`` (grid import of the slot). Its slots stand for
a year: every yearly figure is the profile's sum x SLOTS_PER_YEAR / slots in the profile (a
partial year is scaled up; the caller shows the coverage). Measures are applied in order, each
on the profile the previous ones left (LED lowers the load PV can cover; a renewable menu lowers
the CO2 of every later kWh), so each result is that measure's own margin after the earlier ones.
CO2 here is the site's Scope 1+2 (market-based); EV commuting's gasoline saved on private cars
is Scope 3 (``scope3_saved_kg``), never mixed into it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import polars as pl

from cloud.domains._greencity.calendar import with_calendar
from cloud.domains.roadmap.pv import pv_slot_kwh

SLOTS_PER_YEAR = 365 * 48
KWH_PER_GJ = 1e6 / 3600                     # 277.78 kWh per GJ
EV_CHARGING_SLOTS = range(18, 30)           # 09:00-15:00 JST on weekdays: when workplace PV is up
PROFILE_SCHEMA = {"slot_start": pl.Int64, "kwh": pl.Float64}


@dataclass(frozen=True)
class SiteState:
    """What the measures change, in roadmap order."""

    profile: pl.DataFrame                   # slot_start, kwh: the grid import left
    factor_kg_per_kwh: float                # the site's electricity factor (market-based)
    electricity_yen_per_kwh: float
    factor_share: float = 1.0               # share of bought kWh still at that factor (a renewable menu lowers it)

    @property
    def scale(self) -> float:
        return SLOTS_PER_YEAR / self.profile.height

    @property
    def grid_kg_per_kwh(self) -> float:
        return self.factor_kg_per_kwh * self.factor_share

    def yearly_kwh(self) -> float:
        return float(self.profile["kwh"].sum()) * self.scale


@dataclass
class MeasureResult:
    measure: str
    name: str
    kwh_saved: float                        # grid kWh per year less (negative: added load)
    co2_saved_kg: float                     # the site's Scope 1+2 per year
    yen_saved: float                        # per year, net of added electricity and premiums
    investment_yen: float
    lifetime_years: float
    scope3_saved_kg: float = 0.0
    details: dict = field(default_factory=dict)
    params: dict = field(default_factory=dict)

    @property
    def payback_years(self) -> float | None:
        """investment / yearly yen saved; None when it never pays back (it costs yen every year)."""
        if self.yen_saved > 0:
            return self.investment_yen / self.yen_saved
        return 0.0 if self.investment_yen == 0 and self.yen_saved == 0 else None

    def as_dict(self) -> dict:
        return {"measure": self.measure, "name": self.name, "kwh_saved": self.kwh_saved,
                "co2_saved_kg": self.co2_saved_kg, "scope3_saved_kg": self.scope3_saved_kg,
                "yen_saved": self.yen_saved, "investment_yen": self.investment_yen,
                "lifetime_years": self.lifetime_years, "payback_years": self.payback_years,
                "details": self.details, "params": self.params}


def check_profile(profile: pl.DataFrame) -> pl.DataFrame:
    if profile.height == 0:
        raise ValueError("the load profile has no slots: the site has no measured energy in the range")
    return profile.select(list(PROFILE_SCHEMA)).cast(PROFILE_SCHEMA).sort("slot_start")


def _scaled_load(state: SiteState, fraction: float) -> tuple[SiteState, float]:
    """The load lowered by ``fraction`` in every slot; (new state, kWh saved per year)."""
    saved = state.yearly_kwh() * fraction
    return replace(state, profile=state.profile.with_columns(pl.col("kwh") * (1.0 - fraction))), saved


def _added_load(state: SiteState, yearly_kwh: float, weights: pl.Expr) -> SiteState:
    """``yearly_kwh`` spread over the profile's slots in proportion to ``weights`` (evenly if all 0)."""
    frame = state.profile.with_columns(weights.cast(pl.Float64).alias("_w"))
    total = float(frame["_w"].sum())
    share = pl.col("_w") / total if total > 0 else pl.lit(1.0 / frame.height)
    per_profile = yearly_kwh / state.scale
    return replace(state, profile=frame.with_columns(pl.col("kwh") + share * per_profile).drop("_w"))


def _result(measure: str, name: str, params: dict, state: SiteState, kwh_saved: float, yen_saved: float,
            *, scope1_saved_kg: float = 0.0, **extra) -> MeasureResult:
    quantity_cost = params.get("yen_per_unit", 0.0) * params.get("_quantity", 1.0)
    return MeasureResult(measure, name, kwh_saved=kwh_saved,
                         co2_saved_kg=kwh_saved * state.grid_kg_per_kwh + scope1_saved_kg,
                         yen_saved=yen_saved, investment_yen=quantity_cost,
                         lifetime_years=params.get("lifetime_years", 0.0),
                         params={k: v for k, v in params.items() if not k.startswith("_")}, **extra)


def led(state: SiteState, p: dict, name: str = "LED lighting") -> tuple[MeasureResult, SiteState]:
    after, saved = _scaled_load(state, p["lighting_share"] * p["saving_fraction"])
    return _result("led", name, p, state, saved, saved * state.electricity_yen_per_kwh), after


def compressor(state: SiteState, p: dict, name: str = "Compressor") -> tuple[MeasureResult, SiteState]:
    after, saved = _scaled_load(state, p["compressor_share"] * p["saving_fraction"])
    return _result("compressor", name, p, state, saved, saved * state.electricity_yen_per_kwh), after


def motors(state: SiteState, p: dict, name: str = "Motors") -> tuple[MeasureResult, SiteState]:
    if not 0 < p["efficiency_old"] <= p["efficiency_new"]:
        raise ValueError("motors.params: expected 0 < efficiency_old <= efficiency_new")
    after, saved = _scaled_load(state, p["motor_share"] * (1.0 - p["efficiency_old"] / p["efficiency_new"]))
    return _result("motors", name, p, state, saved, saved * state.electricity_yen_per_kwh), after


def pv(state: SiteState, p: dict, name: str = "Rooftop PV") -> tuple[MeasureResult, SiteState]:
    generation = pv_slot_kwh(state.profile["slot_start"], p["kw"], p["performance_ratio"], p["weather_factor"],
                             p["tilt_deg"], p["azimuth_deg"])
    frame = state.profile.with_columns(generation).with_columns(
        pl.min_horizontal("pv_kwh", pl.col("kwh").clip(lower_bound=0.0)).alias("self_kwh"))
    scale = state.scale
    self_kwh = float(frame["self_kwh"].sum()) * scale
    generated = float(frame["pv_kwh"].sum()) * scale
    exported = generated - self_kwh
    yen = self_kwh * state.electricity_yen_per_kwh + exported * p["export_price_yen_per_kwh"]
    after = replace(state, profile=frame.select("slot_start", (pl.col("kwh") - pl.col("self_kwh")).alias("kwh")))
    details = {"generation_kwh": generated, "self_consumed_kwh": self_kwh, "exported_kwh": exported,
               "self_consumption_share": self_kwh / generated if generated else None,
               "export_yen": exported * p["export_price_yen_per_kwh"],
               "yield_kwh_per_kwp": generated / p["kw"] if p["kw"] else None}
    return _result("pv", name, p, state, self_kwh, yen, details=details), after


def renewable_menu(state: SiteState, p: dict, name: str = "Renewable menu") -> tuple[MeasureResult, SiteState]:
    new_share = max(0.0, state.factor_share - p["switched_share"])
    switched_kwh = state.yearly_kwh() * (state.factor_share - new_share)
    result = MeasureResult("renewable_menu", name, kwh_saved=0.0,
                           co2_saved_kg=switched_kwh * state.factor_kg_per_kwh,
                           yen_saved=-switched_kwh * p["premium_yen_per_kwh"],
                           investment_yen=p["yen_per_unit"], lifetime_years=p["lifetime_years"],
                           details={"switched_kwh": switched_kwh, "factor_share_after": new_share},
                           params={k: v for k, v in p.items() if not k.startswith("_")})
    return result, replace(state, factor_share=new_share)


def ev_commuting(state: SiteState, p: dict, name: str = "EV commuting") -> tuple[MeasureResult, SiteState]:
    km = p["cars"] * p["km_per_year"]
    added = km * p["kwh_per_km"]
    gasoline_l = km * p["gasoline_l_per_km"]
    gasoline_kg = gasoline_l * p["gasoline_kg_co2_per_l"]
    company = bool(p["company_cars"])
    cal = with_calendar(state.profile)
    window = ((cal["day_type"] == "weekday") & cal["slot"].is_in(list(EV_CHARGING_SLOTS))).cast(pl.Float64)
    after = _added_load(state, added, pl.lit(window))
    yen = (gasoline_l * p["gasoline_price_yen_per_l"] if company else 0.0) \
        + added * (p["charging_fee_yen_per_kwh"] - state.electricity_yen_per_kwh)
    details = {"charging_kwh": added, "gasoline_l_saved": gasoline_l, "gasoline_kg_co2": gasoline_kg,
               "gasoline_scope": "scope1 (company cars)" if company else "scope3 category 7 (employee commuting)"}
    result = _result("ev_commuting", name, p, state, -added, yen, scope1_saved_kg=gasoline_kg if company else 0.0,
                     scope3_saved_kg=0.0 if company else gasoline_kg, details=details)
    return result, after


def heat_pump(state: SiteState, p: dict, name: str = "Heat pump") -> tuple[MeasureResult, SiteState]:
    if p["cop"] <= 0:
        raise ValueError("heat_pump.params.cop: expected a number > 0")
    heat_kwh = p["fuel_amount_per_year"] * p["fuel_gj_per_unit"] * p["boiler_efficiency"] * KWH_PER_GJ
    electricity = heat_kwh / p["cop"]
    fuel_kg = p["fuel_amount_per_year"] * p["fuel_kg_co2_per_unit"]
    after = _added_load(state, electricity, pl.col("kwh").clip(lower_bound=0.0))
    yen = p["fuel_amount_per_year"] * p["fuel_price_yen_per_unit"] - electricity * state.electricity_yen_per_kwh
    details = {"heat_kwh": heat_kwh, "electricity_kwh": electricity, "fuel_kg_co2_saved": fuel_kg}
    return _result("heat_pump", name, p, state, -electricity, yen, scope1_saved_kg=fuel_kg, details=details), after


MEASURES = {"led": led, "compressor": compressor, "motors": motors, "pv": pv, "renewable_menu": renewable_menu,
            "ev_commuting": ev_commuting, "heat_pump": heat_pump}


@dataclass(frozen=True)
class Step:
    """One measure to apply: its id, display name, parameters and (for investment) its quantity key."""

    measure: str
    params: dict
    name: str = ""
    quantity: str | None = None


def apply_measures(state: SiteState, steps: list[Step]) -> tuple[list[MeasureResult], SiteState]:
    """Each step in order on what the previous ones left; (results, the final state)."""
    results = []
    for step in steps:
        params = dict(step.params)
        params["_quantity"] = float(params[step.quantity]) if step.quantity else 1.0
        result, state = MEASURES[step.measure](state, params, step.name or step.measure)
        result.details.update(params.get("_sources", {}))
        results.append(result)
    return results, state


def baseline_summary(state: SiteState) -> dict:
    """The profile as measured, per year: kWh and Scope 2 CO2 (market-based, at the state's factor)."""
    kwh = state.yearly_kwh()
    return {"slots": state.profile.height, "slots_per_year": SLOTS_PER_YEAR,
            "coverage": state.profile.height / SLOTS_PER_YEAR, "kwh_per_year": kwh,
            "co2_kg_per_year": kwh * state.grid_kg_per_kwh}
