"""Roadmap trajectories against the FY2030 line and two roadmaps compared, by hand.

Baseline FY2025 = 100 t; the line: -46 % by FY2030 (54 t), 0 in FY2050. Current emissions 100 t.
A: saves 50 t/year from FY2027 (10 M yen, 1 M yen/year). B: 40 t/year from FY2028 (5 M yen, 0.5 M/year)."""

from __future__ import annotations

import polars as pl
import pytest

from cloud.domains.roadmap import plan
from cloud.domains.roadmap.export import comparison_csv, comparison_xlsx
from cloud.domains.roadmap.service import MeasureResult


def saving(t_co2: float, investment: float, yen: float) -> MeasureResult:
    return MeasureResult("led", "LED", kwh_saved=0.0, co2_saved_kg=t_co2 * 1000, yen_saved=yen,
                         investment_yen=investment, lifetime_years=15)


def roadmap_a() -> pl.DataFrame:
    return plan.trajectory([plan.Placed(2027, saving(50, 10_000_000, 1_000_000))], 100_000, 2026, 2025, 100.0)


def roadmap_b() -> pl.DataFrame:
    return plan.trajectory([plan.Placed(2028, saving(40, 5_000_000, 500_000))], 100_000, 2026, 2025, 100.0)


def test_target_line_from_the_baseline_to_fy2030_and_2050():
    assert plan.target_t_co2(2026, 2025, 100.0) == pytest.approx(90.8)    # 100 - 46 x 1/5
    assert plan.target_t_co2(2030, 2025, 100.0) == pytest.approx(54.0)
    assert plan.target_t_co2(2040, 2025, 100.0) == pytest.approx(27.0)    # 54 x (1 - 10/20)
    assert plan.target_t_co2(2050, 2025, 100.0) == 0.0
    assert plan.target_t_co2(2040, 2035, 100.0) == pytest.approx(66.6667, abs=1e-4)   # after 2030: 100 -> 0 in 15 years


def test_a_trajectory_that_meets_fy2030():
    rows = roadmap_a()
    assert rows["fy"].to_list() == list(range(2026, 2051))
    assert rows.filter(pl.col("fy").is_in([2026, 2027, 2030]))["t_co2"].to_list() == [100.0, 50.0, 50.0]
    summary = plan.summary(rows)
    assert (summary["meets_fy2030"], summary["t_co2_fy2030"], summary["target_fy2030_t_co2"]) == (True, 50.0, 54.0)
    # FY2026: 100 > 90.8; FY2027-2031 under the line (FY2031: 54 x 19/20 = 51.3); from FY2032 (48.6) above it
    assert summary["years_off_target"] == [2026, *range(2032, 2051)]
    assert summary["net_zero_fy2050"] is False and summary["t_co2_fy2050"] == 50.0
    # FY2027-2050 = 24 years: 24 M yen saved, 1,200 t avoided; net -14 M yen -> -11,666.67 yen/t
    assert summary["yen_saved"] == pytest.approx(24_000_000)
    assert summary["avoided_t_co2"] == pytest.approx(1_200)
    assert summary["net_cost_per_t_co2"] == pytest.approx(-11_666.667, abs=1e-3)
    assert summary["investment_per_t_co2"] == pytest.approx(8_333.333, abs=1e-3)
    assert rows.filter(pl.col("fy") == 2027)["measures_added"].item() == "led"


def test_a_trajectory_that_misses_fy2030():
    summary = plan.summary(roadmap_b())
    assert (summary["meets_fy2030"], summary["t_co2_fy2030"]) == (False, 60.0)     # 60 t > 54 t
    # FY2028-2050 = 23 years: 11.5 M yen saved, 920 t avoided; 5 M - 11.5 M = -6.5 M -> -7,065.22 yen/t
    assert summary["net_cost_per_t_co2"] == pytest.approx(-7_065.217, abs=1e-3)
    # FY2028 (60 <= 72.4) and FY2029 (60 <= 63.2) on the line, off again from FY2030
    assert summary["years_off_target"] == [2026, 2027, *range(2030, 2051)]


def test_two_roadmaps_side_by_side():
    result = plan.compare("A", roadmap_a(), "B", roadmap_b())
    assert result["reaches_fy2030"] == ["A"]
    assert result["cheaper_per_t_co2"] == "A"                      # -11,667 < -7,065 yen/t
    fy2030 = next(r for r in result["rows"] if r["fy"] == 2030)
    assert (fy2030["a_t_co2"], fy2030["b_t_co2"], fy2030["target_t_co2"]) == (50.0, 60.0, pytest.approx(54.0))
    fy2028 = next(r for r in result["rows"] if r["fy"] == 2028)
    assert (fy2028["a_investment_yen"], fy2028["b_investment_yen"]) == (0.0, 5_000_000.0)
    assert (fy2028["a_net_cost_yen"], fy2028["b_net_cost_yen"]) == (-1_000_000.0, 4_500_000.0)
    csv = comparison_csv(result)
    assert csv.splitlines()[0].startswith("fy,target_t_co2,A A: t_co2,")
    assert "meets_fy2030,True,False" in csv
    assert comparison_xlsx(result)[:2] == b"PK"
