"""CSV and Excel of a comparison of two roadmaps: one row per fiscal year, then the summary."""

from __future__ import annotations

import csv
import io

import polars as pl
from openpyxl import Workbook

SUMMARY_KEYS = ("meets_fy2030", "t_co2_fy2030", "target_fy2030_t_co2", "t_co2_fy2050", "net_zero_fy2050",
                "investment_yen", "yen_saved", "net_cost_yen", "avoided_t_co2", "net_cost_per_t_co2",
                "investment_per_t_co2")


def years_frame(comparison: dict) -> pl.DataFrame:
    a, b = comparison["a"]["name"], comparison["b"]["name"]
    frame = pl.DataFrame(comparison["rows"])
    return frame.rename({c: f"A {a}: {c[2:]}" if c.startswith("a_") else f"B {b}: {c[2:]}" if c.startswith("b_")
                         else c for c in frame.columns})


def summary_rows(comparison: dict) -> list[list]:
    return [["", comparison["a"]["name"], comparison["b"]["name"]]] + \
        [[key, comparison["a"][key], comparison["b"][key]] for key in SUMMARY_KEYS]


def comparison_csv(comparison: dict) -> str:
    out = io.StringIO()
    years_frame(comparison).write_csv(out, float_precision=3)
    out.write("\n")
    csv.writer(out, lineterminator="\n").writerows(
        [["summary", f"A {comparison['a']['name']}", f"B {comparison['b']['name']}"], *summary_rows(comparison)[1:]])
    return out.getvalue()


def comparison_xlsx(comparison: dict) -> bytes:
    book = Workbook()
    years = book.active
    years.title = "years"
    frame = years_frame(comparison)
    years.append(frame.columns)
    for row in frame.iter_rows():
        years.append(list(row))
    summary = book.create_sheet("summary")
    for row in summary_rows(comparison):
        summary.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
