"""From a request's measures (library ids + overrides) to evaluated steps and a roadmap's
trajectory. Pure: fuel factors come in through ``fuel_lookup`` (the co2 domain's in the router)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import polars as pl

from cloud.domains.roadmap import plan
from cloud.domains.roadmap.library import Library, measure_params
from cloud.domains.roadmap.service import SiteState, Step, apply_measures

# fuel id -> (GJ per unit, kg-CO2 per unit, unit, source); KeyError for an unknown fuel
FuelLookup = Callable[[str], tuple[float, float, str, str]]
GASOLINE = "gasoline"


def make_step(library: Library, measure_id: str, overrides: dict, fuel_lookup: FuelLookup | None) -> Step:
    """The library's parameters with ``overrides``; fuel heat values and CO2 factors from the co2
    domain's files unless the request gives them. ValueError naming the measure and key."""
    params = measure_params(library, measure_id, overrides)
    sources = {}
    default_fuel = library.measures["heat_pump"].params["fuel_id"].value
    if measure_id == "heat_pump" and params["fuel_id"] != default_fuel:
        for key in ("fuel_amount_per_year", "fuel_price_yen_per_unit"):
            if key not in overrides:
                raise ValueError(f"heat_pump.params.{key}: give it in the unit of fuel {params['fuel_id']!r} "
                                 f"(the library's value is for {default_fuel!r})")
    if fuel_lookup is not None and measure_id == "heat_pump":
        if "fuel_gj_per_unit" not in overrides or "fuel_kg_co2_per_unit" not in overrides:
            try:
                gj, kg, unit, source = fuel_lookup(str(params["fuel_id"]))
            except KeyError as exc:
                raise ValueError(f"heat_pump.params.fuel_id: {exc.args[0]}") from None
            if "fuel_gj_per_unit" not in overrides:
                params["fuel_gj_per_unit"] = gj
            if "fuel_kg_co2_per_unit" not in overrides:
                params["fuel_kg_co2_per_unit"] = kg
            sources["fuel_factor"] = f"co2 domain fuel {params['fuel_id']} ({unit}): {source}"
    if fuel_lookup is not None and measure_id == "ev_commuting" and "gasoline_kg_co2_per_l" not in overrides:
        try:
            _, kg_per_kl, unit, source = fuel_lookup(GASOLINE)
            params["gasoline_kg_co2_per_l"] = kg_per_kl / 1000 if unit == "kL" else params["gasoline_kg_co2_per_l"]
            sources["gasoline_factor"] = f"co2 domain fuel gasoline ({unit}): {source}"
        except KeyError:
            pass
    measure = library.measures[measure_id]
    return Step(measure_id, {**params, **({"_sources": sources} if sources else {})}, measure.name, measure.quantity)


def evaluate(state: SiteState, steps: list[Step]) -> list[dict]:
    results, _ = apply_measures(state, steps)
    return [r.as_dict() for r in results]


@dataclass
class RoadmapOutcome:
    name: str
    current_kg: float
    placed: list[plan.Placed]
    rows: pl.DataFrame
    summary: dict

    def as_dict(self) -> dict:
        return {"name": self.name, "current_t_co2": self.current_kg / 1000,
                "measures": [{"fy": p.fy, **p.result.as_dict()} for p in self.placed],
                "summary": self.summary, "years": self.rows.to_dicts()}


def implied_scope1_kg(steps: list[tuple[int, Step]]) -> float:
    """Fuel CO2 the roadmap's heat pumps and company EVs replace: part of today's Scope 1 by definition."""
    total = 0.0
    for _, step in steps:
        p = step.params
        if step.measure == "heat_pump":
            total += p["fuel_amount_per_year"] * p["fuel_kg_co2_per_unit"]
        elif step.measure == "ev_commuting" and p["company_cars"]:
            total += p["cars"] * p["km_per_year"] * p["gasoline_l_per_km"] * p["gasoline_kg_co2_per_l"]
    return total


def roadmap(state: SiteState, name: str, steps: list[tuple[int, Step]], start_fy: int,
            scope1_kg_per_year: float | None, baseline_fy: int | None, baseline_t_co2: float | None) -> RoadmapOutcome:
    """Steps applied in (fy, listed) order; the trajectory from ``start_fy`` to FY2050.
    Without a known baseline the current emissions at ``start_fy`` are the baseline."""
    ordered = sorted(enumerate(steps), key=lambda pair: (pair[1][0], pair[0]))
    ordered_steps = [step for _, step in ordered]
    results, _ = apply_measures(state, [step for _, step in ordered_steps])
    scope1 = implied_scope1_kg(ordered_steps) if scope1_kg_per_year is None else scope1_kg_per_year
    current_kg = state.yearly_kwh() * state.grid_kg_per_kwh + scope1
    if baseline_t_co2 is None or baseline_fy is None:
        baseline_fy, baseline_t_co2 = start_fy, current_kg / 1000
    placed = [plan.Placed(max(fy, start_fy), result) for (fy, _), result in zip(ordered_steps, results)]
    rows = plan.trajectory(placed, current_kg, start_fy, baseline_fy, baseline_t_co2)
    return RoadmapOutcome(name, current_kg, placed, rows, plan.summary(rows))
