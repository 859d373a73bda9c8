"""A roadmap: measures placed on fiscal years, the CO2 trajectory to FY2050 against the -46 %
FY2030 line and net zero, its cost; and two roadmaps side by side (pure, no I/O).

A measure counts from the whole fiscal year it is placed in and stays (replacement at the end
of its lifetime is not costed). Emissions of a FY = current - sum of the savings of the measures
in place; the savings are those apply_measures computed in roadmap order.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from cloud.domains.roadmap.service import MeasureResult

FY2030, FY2050 = 2030, 2050
FY2030_CUT = 0.46
TRAJECTORY_SCHEMA = {"fy": pl.Int64, "t_co2": pl.Float64, "target_t_co2": pl.Float64, "avoided_t_co2": pl.Float64,
                     "investment_yen": pl.Float64, "yen_saved": pl.Float64, "net_cost_yen": pl.Float64,
                     "cumulative_investment_yen": pl.Float64, "cumulative_yen_saved": pl.Float64,
                     "cumulative_net_cost_yen": pl.Float64, "cumulative_avoided_t_co2": pl.Float64,
                     "measures_added": pl.String}


@dataclass(frozen=True)
class Placed:
    fy: int
    result: MeasureResult


def target_t_co2(fy: int, baseline_fy: int, baseline_t_co2: float) -> float:
    """The line from the baseline to -46 % in FY2030 and 0 in FY2050 (straight from the baseline to 0
    when the baseline is FY2030 or later); the baseline itself before its year."""
    if fy <= baseline_fy:
        return baseline_t_co2
    if baseline_fy >= FY2030:
        return max(0.0, baseline_t_co2 * (1 - (fy - baseline_fy) / (FY2050 - baseline_fy)))
    at_2030 = baseline_t_co2 * (1 - FY2030_CUT)
    if fy <= FY2030:
        return baseline_t_co2 - (baseline_t_co2 - at_2030) * (fy - baseline_fy) / (FY2030 - baseline_fy)
    return max(0.0, at_2030 * (1 - (fy - FY2030) / (FY2050 - FY2030)))


def trajectory(placed: list[Placed], current_kg: float, start_fy: int, baseline_fy: int,
               baseline_t_co2: float) -> pl.DataFrame:
    """One row per fiscal year from ``start_fy`` to FY2050 (see TRAJECTORY_SCHEMA)."""
    rows = []
    cum_inv = cum_saved = cum_avoided = 0.0
    for fy in range(start_fy, FY2050 + 1):
        active = [p.result for p in placed if p.fy <= fy]
        added = [p.result for p in placed if p.fy == fy]
        kg = current_kg - sum(r.co2_saved_kg for r in active)
        investment = sum(r.investment_yen for r in added)
        saved = sum(r.yen_saved for r in active)
        avoided = (current_kg - kg) / 1000
        cum_inv, cum_saved, cum_avoided = cum_inv + investment, cum_saved + saved, cum_avoided + avoided
        rows.append({"fy": fy, "t_co2": kg / 1000, "target_t_co2": target_t_co2(fy, baseline_fy, baseline_t_co2),
                     "avoided_t_co2": avoided, "investment_yen": investment, "yen_saved": saved,
                     "net_cost_yen": investment - saved, "cumulative_investment_yen": cum_inv,
                     "cumulative_yen_saved": cum_saved, "cumulative_net_cost_yen": cum_inv - cum_saved,
                     "cumulative_avoided_t_co2": cum_avoided,
                     "measures_added": ", ".join(r.measure for r in added)})
    return pl.DataFrame(rows, schema=TRAJECTORY_SCHEMA)


def summary(rows: pl.DataFrame) -> dict:
    """FY2030 and FY2050 against the targets, totals to FY2050 and the cost per t-CO2 avoided."""
    def at(fy: int) -> dict | None:
        hit = rows.filter(pl.col("fy") == fy)
        return hit.row(0, named=True) if hit.height else None

    fy2030, last = at(FY2030), rows.row(-1, named=True)
    avoided = last["cumulative_avoided_t_co2"]
    off_target = rows.filter(pl.col("t_co2") > pl.col("target_t_co2") + 1e-9)["fy"].to_list()
    return {
        "t_co2_fy2030": fy2030["t_co2"] if fy2030 else None,
        "target_fy2030_t_co2": fy2030["target_t_co2"] if fy2030 else None,
        "meets_fy2030": (fy2030["t_co2"] <= fy2030["target_t_co2"] + 1e-9) if fy2030 else None,
        "t_co2_fy2050": last["t_co2"],
        "net_zero_fy2050": last["t_co2"] <= 1e-9,
        "years_off_target": off_target,
        "investment_yen": last["cumulative_investment_yen"],
        "yen_saved": last["cumulative_yen_saved"],
        "net_cost_yen": last["cumulative_net_cost_yen"],
        "avoided_t_co2": avoided,
        "net_cost_per_t_co2": last["cumulative_net_cost_yen"] / avoided if avoided > 0 else None,
        "investment_per_t_co2": last["cumulative_investment_yen"] / avoided if avoided > 0 else None,
    }


def compare(name_a: str, rows_a: pl.DataFrame, name_b: str, rows_b: pl.DataFrame) -> dict:
    """Two roadmaps of one site side by side: per FY CO2 and cost, and which reaches FY2030."""
    cols = ["t_co2", "net_cost_yen", "cumulative_net_cost_yen", "investment_yen"]
    side = (rows_a.select("fy", "target_t_co2", *[pl.col(c).alias(f"a_{c}") for c in cols])
            .join(rows_b.select("fy", *[pl.col(c).alias(f"b_{c}") for c in cols]), on="fy", how="full",
                  coalesce=True)
            .sort("fy"))
    summary_a, summary_b = summary(rows_a), summary(rows_b)
    per_t = {name: s["net_cost_per_t_co2"] for name, s in ((name_a, summary_a), (name_b, summary_b))
             if s["net_cost_per_t_co2"] is not None}
    return {"a": {"name": name_a, **summary_a}, "b": {"name": name_b, **summary_b},
            "reaches_fy2030": [n for n, s in ((name_a, summary_a), (name_b, summary_b)) if s["meets_fy2030"]],
            "cheaper_per_t_co2": min(per_t, key=per_t.get) if per_t else None,
            "rows": side.to_dicts()}
