"""A small factor directory for tests: two fiscal years of one retailer, so a fiscal-year boundary shows."""

from __future__ import annotations

from pathlib import Path

from cloud.domains.co2.factors import FACTORS_DIR

ELECTRICITY = """
version: "test-1"
retrieved: "2026-11-29"
retailers:
  default:
    name: "national default (test)"
    menus:
      standard:
        - {results_fy: 2023, basic_kg_per_kwh: 0.500, adjusted_kg_per_kwh: 0.500, source: "test default"}
  testco:
    name: "Test Power"
    menus:
      standard:
        - {results_fy: 2023, basic_kg_per_kwh: 0.400, adjusted_kg_per_kwh: 0.450, source: "test doc FY2023"}
        - {results_fy: 2024, basic_kg_per_kwh: 0.300, adjusted_kg_per_kwh: 0.350, source: "test doc FY2024"}
location:
  - {results_fy: 2023, kg_per_kwh: 0.440, source: "test national average"}
"""


def write_factor_dir(directory: Path, electricity: str = ELECTRICITY) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "electricity.yaml").write_text(electricity, encoding="utf-8")
    (directory / "fuels.yaml").write_text((FACTORS_DIR / "fuels.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    return directory
