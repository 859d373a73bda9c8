"""Month and fiscal-year figures of a site, progress against its baseline, the city aggregate.
Pure functions over polars frames (no I/O); the rules are in README.md ("Bills and meters",
"Completeness", "Progress")."""

from __future__ import annotations

import polars as pl

from cloud.domains._greencity.calendar import FY2013, FY2030, fiscal_months
from cloud.domains.co2.accounting import KG_COLUMNS

FY2050 = 2050
TARGET_2030_FRACTION = 0.54          # -46 % against the baseline
COMPLETE = 1.0 - 1e-9
SCOPE2 = {"kg_location": "scope2_location_kg", "kg_market": "scope2_market_kg", "kg_basic": "scope2_basic_kg"}

MONTH_ROW_SCHEMA = {
    "period": pl.String, "kwh": pl.Float64, "kwh_metered": pl.Float64, "kwh_billed": pl.Float64,
    "scope1_kg": pl.Float64, "scope2_location_kg": pl.Float64, "scope2_market_kg": pl.Float64,
    "scope2_basic_kg": pl.Float64, "total_kg": pl.Float64, "completeness": pl.Float64, "production": pl.Float64,
    "intensity_kg_per_unit": pl.Float64, "electricity_source": pl.String, "incomplete": pl.Boolean,
    "cost_yen": pl.Float64, "slots": pl.Int64}


def _fiscal_year_of(month: str) -> int:
    year, mon = int(month[:4]), int(month[5:7])
    return year if mon >= 4 else year - 1


def monthly(months: list[str], slots_co2: pl.DataFrame, bills: pl.DataFrame, scope1: pl.DataFrame,
            production: pl.DataFrame, slots_per_month: dict[str, int], has_meters: bool) -> pl.DataFrame:
    """One row per month of ``months`` (see MONTH_ROW_SCHEMA).

    Bills and meters: meters win when the month's meter data is complete; otherwise a bill for the
    month is used (completeness 1: a bill covers the whole month); otherwise the partial meter sum
    with its completeness < 1 (flagged ``incomplete``). ``electricity_source`` says which was used.
    """
    frame = pl.DataFrame({"period": months, "slots": [slots_per_month.get(m, 0) for m in months]},
                         schema={"period": pl.String, "slots": pl.Int64})
    if slots_co2.height:
        metered = (slots_co2.group_by(pl.col("month").alias("period"))
                   .agg(pl.when(pl.col("kwh").is_not_null().any()).then(pl.col("kwh").sum()).alias("kwh_metered"),
                        *[pl.when(pl.col(kg).is_not_null().any()).then(pl.col(kg).sum()).alias(f"meter_{kg}")
                          for kg in KG_COLUMNS],
                        pl.col("meters_expected").sum().alias("expected"),
                        pl.col("meters_measured").sum().alias("measured")))
    else:
        metered = pl.DataFrame(schema={"period": pl.String, "kwh_metered": pl.Float64,
                                       **{f"meter_{kg}": pl.Float64 for kg in KG_COLUMNS},
                                       "expected": pl.Int64, "measured": pl.Int64})
    frame = (frame.join(metered, on="period", how="left")
             .join(bills.rename({"month": "period"}), on="period", how="left")
             .join(scope1.rename({"month": "period"}), on="period", how="left")
             .join(production.rename({"month": "period"}), on="period", how="left"))
    meter_completeness = pl.when(pl.col("expected") > 0).then(pl.col("measured") / pl.col("expected"))
    frame = frame.with_columns(meter_completeness.alias("meter_completeness"))
    meters_complete = pl.lit(has_meters) & (pl.col("meter_completeness") >= COMPLETE)
    has_bill = pl.col("kwh_billed").is_not_null()
    source = (pl.when(meters_complete).then(pl.lit("meters"))
              .when(has_bill).then(pl.lit("bill"))
              .when(pl.lit(has_meters) & pl.col("kwh_metered").is_not_null()).then(pl.lit("meters"))
              .otherwise(pl.lit("none")))
    frame = frame.with_columns(source.alias("electricity_source"))
    by_meter, by_bill = pl.col("electricity_source") == "meters", pl.col("electricity_source") == "bill"
    frame = frame.with_columns(
        pl.when(by_meter).then(pl.col("kwh_metered")).when(by_bill).then(pl.col("kwh_billed")).alias("kwh"),
        *[pl.when(by_meter).then(pl.col(f"meter_{kg}")).when(by_bill).then(pl.col(f"bill_{kg}")).alias(out)
          for kg, out in SCOPE2.items()],
        pl.when(pl.col("slots") == 0).then(None)
        .when(by_bill).then(1.0)
        .when(pl.lit(has_meters)).then(pl.col("meter_completeness").fill_null(0.0))
        .otherwise(0.0).alias("completeness"),
        pl.col("scope1_kg").fill_null(0.0),
        pl.col("kwh_metered").fill_null(0.0),
        pl.col("kwh_billed").fill_null(0.0))
    frame = frame.with_columns(
        (pl.col("scope1_kg") + pl.col("scope2_market_kg")).alias("total_kg"),
        (pl.col("completeness") < COMPLETE).alias("incomplete"))
    frame = frame.with_columns(
        pl.when(pl.col("production") > 0).then(pl.col("total_kg") / pl.col("production"))
        .alias("intensity_kg_per_unit"))
    return frame.select(list(MONTH_ROW_SCHEMA)).cast(MONTH_ROW_SCHEMA)


def _known_sum(column: str) -> pl.Expr:
    return pl.when(pl.col(column).is_not_null().any()).then(pl.col(column).sum()).alias(column)


def fiscal_years(month_rows: pl.DataFrame) -> pl.DataFrame:
    """Month rows rolled up per fiscal year; completeness weighted by the months' elapsed slots."""
    schema = {k: v for k, v in MONTH_ROW_SCHEMA.items() if k not in ("electricity_source",)}
    if month_rows.height == 0:
        return pl.DataFrame(schema=schema)
    with_fy = month_rows.with_columns(
        pl.col("period").map_elements(_fiscal_year_of, return_dtype=pl.Int64).cast(pl.String).alias("fy"))
    weighted = pl.col("completeness").fill_null(0.0) * pl.col("slots")
    rolled = (with_fy.group_by("fy").agg(
        *[_known_sum(c) for c in ("kwh", "kwh_metered", "kwh_billed", "scope1_kg", *SCOPE2.values(),
                                  "total_kg", "production", "cost_yen")],
        pl.col("slots").sum(), weighted.sum().alias("weighted"))
        .with_columns(pl.when(pl.col("slots") > 0).then(pl.col("weighted") / pl.col("slots")).alias("completeness"))
        .with_columns((pl.col("completeness") < COMPLETE).alias("incomplete"),
                      pl.when(pl.col("production") > 0).then(pl.col("total_kg") / pl.col("production"))
                      .alias("intensity_kg_per_unit"))
        .rename({"fy": "period"}))
    return rolled.select(list(schema)).cast(schema).sort("period")


def target_line(baseline_fy: int, baseline_t: float, last_fy: int = FY2050) -> list[dict]:
    """Linear from the baseline to -46 % in FY2030, then linear to 0 in FY2050."""
    anchors = [(baseline_fy, baseline_t)]
    if baseline_fy < FY2030:
        anchors.append((FY2030, baseline_t * TARGET_2030_FRACTION))
    anchors.append((FY2050, 0.0))
    line = []
    for fy in range(baseline_fy, last_fy + 1):
        for (fy0, t0), (fy1, t1) in zip(anchors, anchors[1:]):
            if fy0 <= fy <= fy1:
                line.append({"fy": fy, "t_co2": t0 + (t1 - t0) * (fy - fy0) / (fy1 - fy0)})
                break
    return line


def baseline(years: pl.DataFrame, baseline_fy: int | None, baseline_t_co2: float | None) -> dict:
    """{"fy", "t_co2", "source"}: the configured value, else the baseline (or first) year's total."""
    if baseline_t_co2 is not None:
        return {"fy": baseline_fy if baseline_fy is not None else FY2013, "t_co2": baseline_t_co2,
                "source": "configured"}
    known = years.filter(pl.col("total_kg").is_not_null()).sort("period")
    fy = baseline_fy if baseline_fy is not None else (int(known["period"][0]) if known.height else None)
    if fy is None:
        return {"fy": None, "t_co2": None, "source": "no data"}
    row = known.filter(pl.col("period") == str(fy))
    if row.height == 0:
        return {"fy": fy, "t_co2": None, "source": "no data for the baseline year"}
    return {"fy": fy, "t_co2": row["total_kg"][0] / 1000, "source": "computed",
            "completeness": row["completeness"][0]}


def target_2030(base: dict) -> float | None:
    return None if base.get("t_co2") is None else base["t_co2"] * TARGET_2030_FRACTION


def city(fy: int, per_site_months: dict[str, pl.DataFrame]) -> dict:
    """The consortium's fiscal year: total, per month (sites reporting), per site with completeness."""
    per_site, totals, months = [], 0.0, {m: [0.0, 0] for m in fiscal_months(fy)}
    for site, rows in per_site_months.items():
        year = fiscal_years(rows)
        total = year["total_kg"][0] if year.height else None
        completeness = year["completeness"][0] if year.height else None
        per_site.append({"site": site, "t_co2": None if total is None else total / 1000,
                         "completeness": completeness})
        totals += (total or 0.0) / 1000
        for row in rows.iter_rows(named=True):
            if row["period"] in months and row["total_kg"] is not None:
                months[row["period"]][0] += row["total_kg"] / 1000
                months[row["period"]][1] += 1
    complete = sum(1 for s in per_site if s["completeness"] is not None and s["completeness"] >= COMPLETE)
    return {"fy": fy, "sites": len(per_site), "sites_complete": complete, "t_co2": totals,
            "months": [{"period": m, "t_co2": t if n else None, "sites_reporting": n} for m, (t, n) in months.items()],
            "per_site": per_site}
