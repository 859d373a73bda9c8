"""CO2 per slot, day and month of one site: pure functions over polars frames (no I/O).

Frames:
* site slots (``site_slots``): site, slot_start, kwh (null: no meter of the site has the slot),
  meters_expected, meters_measured - one row per slot of the range, so a gap is a row, never a 0.
* factor table (``factor_table``): fiscal_year, location/adjusted/basic kg-CO2 per kWh (null = unknown).
* inputs (``INPUT_SCHEMA``): what the site entered or imported per month (co2_input).
"""

from __future__ import annotations

import numpy as np
import polars as pl

from cloud.domains._greencity.calendar import SLOT_MS, month_range_ms, slot_starts, with_calendar
from cloud.domains._greencity.energy import MeterRef, slot_completeness
from cloud.domains.co2.config import Co2Config, Co2Site
from cloud.domains.co2.factors import FactorSet

INPUT_SCHEMA = {"site": pl.String, "kind": pl.String, "item": pl.String, "month": pl.String, "amount": pl.Float64,
                "unit": pl.String, "cost_yen": pl.Float64, "source": pl.String, "entered_by": pl.String}
SITE_SLOT_SCHEMA = {"site": pl.String, "slot_start": pl.Int64, "kwh": pl.Float64, "meters_expected": pl.Int64,
                    "meters_measured": pl.Int64}
FACTOR_SCHEMA = {"fiscal_year": pl.Int32, "location_kg_per_kwh": pl.Float64, "adjusted_kg_per_kwh": pl.Float64,
                 "basic_kg_per_kwh": pl.Float64}
KG_COLUMNS = {"kg_location": "location_kg_per_kwh", "kg_market": "adjusted_kg_per_kwh", "kg_basic": "basic_kg_per_kwh"}


def empty_inputs() -> pl.DataFrame:
    return pl.DataFrame(schema=INPUT_SCHEMA)


def factor_table(config: Co2Config, site: Co2Site, factors: FactorSet, fiscal_years: list[int] | range,
                 retailer: str | None = None, menu: str | None = None) -> pl.DataFrame:
    """Per fiscal year: the location factor and the site's (or the given retailer/menu's) adjusted and basic."""
    rows = []
    for fy in fiscal_years:
        if retailer is None or (retailer, menu) == (site.retailer, site.menu):
            own = site.factor(factors, fy)
        else:
            own = factors.electricity(retailer, menu or "standard", fy)
        rows.append((fy, config.location_factor(factors, fy).adjusted_kg_per_kwh, own.adjusted_kg_per_kwh,
                     own.basic_kg_per_kwh))
    return pl.DataFrame(rows, schema=FACTOR_SCHEMA, orient="row")


def site_slots(slot_energy: pl.DataFrame, meters: list[MeterRef], start_ms: int, end_ms: int) -> pl.DataFrame:
    """One row per (site, slot) in [start, end) for every site that has meters: the summed kWh of its
    meters (null when none has the slot) and how many meters were expected and measured."""
    if not meters or end_ms <= start_ms:
        return pl.DataFrame(schema=SITE_SLOT_SCHEMA)
    complete = slot_completeness(slot_energy, meters, start_ms, end_ms)
    wanted = pl.DataFrame([(m.site, m.device, m.metric) for m in meters], orient="row",
                          schema={"site": pl.String, "device": pl.String, "metric": pl.String})
    energy = slot_energy.join(wanted.unique(), on=["site", "device", "metric"], how="semi")
    kwh = (energy.filter((pl.col("slot_start") >= start_ms) & (pl.col("slot_start") < end_ms))
           .group_by("site", "slot_start").agg(pl.col("kwh").sum()))
    return (complete.join(kwh, on=["site", "slot_start"], how="left")
            .select(list(SITE_SLOT_SCHEMA)).cast(SITE_SLOT_SCHEMA).sort("site", "slot_start"))


def slot_co2(slots: pl.DataFrame, factors: pl.DataFrame) -> pl.DataFrame:
    """``slots`` plus fiscal_year and kg_location/kg_market/kg_basic = kWh x the slot's fiscal-year factor
    (null when the kWh or the factor is unknown)."""
    framed = with_calendar(slots.select(list(SITE_SLOT_SCHEMA))).drop("weekday", "day_type", "period")
    joined = framed.join(factors, on="fiscal_year", how="left")
    return joined.with_columns(*[(pl.col("kwh") * pl.col(f)).alias(kg) for kg, f in KG_COLUMNS.items()]) \
        .drop(list(FACTOR_SCHEMA)[1:])


def _sum_or_null(column: str) -> pl.Expr:
    """Sum of the known values; null when none is known (a gap is never summed as 0)."""
    return pl.when(pl.col(column).is_not_null().any()).then(pl.col(column).sum()).otherwise(None).alias(column)


def daily(slots_co2: pl.DataFrame) -> pl.DataFrame:
    """Per JST day: kWh and kg from the meters, completeness = measured / expected meter-slots."""
    return (slots_co2.group_by("date")
            .agg(_sum_or_null("kwh"), *[_sum_or_null(kg) for kg in KG_COLUMNS],
                 pl.col("meters_expected").sum(), pl.col("meters_measured").sum())
            .with_columns((pl.col("meters_measured") / pl.col("meters_expected")).alias("completeness"))
            .sort("date"))


def slots_in_month(month: str, cutoff_ms: int) -> int:
    """Slots of ``month`` that ended before ``cutoff_ms`` (the ones that can have data by now)."""
    start, end = month_range_ms(month)
    return max(0, (min(end, cutoff_ms) - start) // SLOT_MS)


def fuel_kg(inputs: pl.DataFrame, factors: FactorSet) -> pl.DataFrame:
    """Scope 1 per month: fuel amount (already in the fuel's unit) x kg-CO2 per unit."""
    fuels = inputs.filter(pl.col("kind") == "fuel")
    if fuels.height == 0:
        return pl.DataFrame(schema={"month": pl.String, "scope1_kg": pl.Float64})
    per_unit = pl.DataFrame({"item": factors.fuel_ids(),
                             "kg_per_unit": [factors.fuel(f).kg_co2_per_unit for f in factors.fuel_ids()]})
    return (fuels.join(per_unit, on="item", how="left")
            .group_by("month").agg((pl.col("amount") * pl.col("kg_per_unit")).sum().alias("scope1_kg")))


def billed(inputs: pl.DataFrame, config: Co2Config, site: Co2Site, factors: FactorSet) -> pl.DataFrame:
    """Electricity bills per month: kWh and kg with the factor of the bill's retailer/menu (item)."""
    bills = inputs.filter(pl.col("kind") == "electricity")
    schema = {"month": pl.String, "kwh_billed": pl.Float64, "bill_kg_location": pl.Float64,
              "bill_kg_market": pl.Float64, "bill_kg_basic": pl.Float64, "cost_yen": pl.Float64}
    if bills.height == 0:
        return pl.DataFrame(schema=schema)
    bills = bills.with_columns(
        (pl.col("month").str.slice(0, 4).cast(pl.Int32) - (pl.col("month").str.slice(5, 2).cast(pl.Int32) < 4)
         .cast(pl.Int32)).alias("fiscal_year"))
    parts = []
    for item, group in bills.group_by("item"):
        retailer, _, menu = item[0].partition("/")
        table = factor_table(config, site, factors, sorted(set(group["fiscal_year"])), retailer, menu or "standard")
        parts.append(group.join(table, on="fiscal_year", how="left"))
    both = pl.concat(parts).with_columns(
        *[(pl.col("amount") * pl.col(f)).alias(f"bill_{kg}") for kg, f in KG_COLUMNS.items()])
    return (both.group_by("month")
            .agg(pl.col("amount").sum().alias("kwh_billed"),
                 *[_all_or_null(f"bill_{kg}") for kg in KG_COLUMNS], _sum_or_null("cost_yen"))
            .select(list(schema)).cast(schema))


def _all_or_null(column: str) -> pl.Expr:
    """Sum when every value is known; null as soon as one is unknown (no partial factor sums)."""
    return pl.when(pl.col(column).is_null().any()).then(None).otherwise(pl.col(column).sum()).alias(column)


def production(inputs: pl.DataFrame) -> pl.DataFrame:
    """Produced units per month (for intensity)."""
    return (inputs.filter(pl.col("kind") == "production").group_by("month")
            .agg(pl.col("amount").sum().alias("production"))
            .cast({"month": pl.String, "production": pl.Float64}))


def sites_slot_co2(slot_energy: pl.DataFrame, config: Co2Config, factors: FactorSet, start_ms: int,
                   end_ms: int) -> pl.DataFrame:
    """``slot_co2(site_slots(...))`` of every configured site with meters, in one pass over the frame
    (the same rows as concatenating the per-site results, sorted by site and slot).

    A year of 300 sites is 5 M (site, slot) rows: instead of joining a grid of every (site, slot) with
    the measured ones on a string key, each row gets its dense position ``site_index * slots +
    slot_index`` and the measured sums are scattered into arrays of that size (numpy), so a gap stays
    null without any join."""
    sites = sorted((s for s in config.sites if s.grid_meters), key=lambda s: s.id)
    if not sites or end_ms <= start_ms:
        return slot_co2(site_slots(pl.DataFrame(), [], 0, 0), pl.DataFrame(schema=FACTOR_SCHEMA))
    calendar = with_calendar(pl.DataFrame({"slot_start": slot_starts(start_ms, end_ms)})).drop(
        "weekday", "day_type", "period")
    first, n = calendar["slot_start"][0], calendar.height
    site_index = {site.id: i for i, site in enumerate(sites)}
    meter_keys = pl.DataFrame([(site_index[m.site], m.device, m.metric) for s in sites for m in s.meters()],
                              orient="row", schema={"site_index": pl.Int64, "device": pl.String,
                                                    "metric": pl.String}).unique()
    measured = (slot_energy.lazy()
                .filter((pl.col("slot_start") >= first) & (pl.col("slot_start") < end_ms))
                .with_columns(pl.col("site").replace_strict(site_index, default=None, return_dtype=pl.Int64)
                              .alias("site_index"))
                .join(meter_keys.lazy(), on=["site_index", "device", "metric"], how="semi")
                .group_by((pl.col("site_index") * n + (pl.col("slot_start") - first) // SLOT_MS).alias("position"))
                .agg(pl.col("kwh").sum(), (pl.col("readings") > 0).sum().cast(pl.Int64).alias("measured"))
                .collect())
    size = len(sites) * n
    position = measured["position"].to_numpy()
    kwh = np.full(size, np.nan)
    kwh[position] = measured["kwh"].to_numpy()
    meters_measured = np.zeros(size, dtype=np.int64)
    meters_measured[position] = measured["measured"].to_numpy()
    expected = meter_keys.group_by("site_index").agg(pl.len()).sort("site_index")["len"].to_numpy()
    years = sorted(set(calendar["fiscal_year"].to_list()))
    year_of_slot = np.searchsorted(np.array(years), calendar["fiscal_year"].to_numpy())
    site_rows, slot_rows = np.repeat(np.arange(len(sites)), n), np.tile(np.arange(n), len(sites))
    out = {"site": pl.Series([s.id for s in sites]).gather(site_rows),
           "slot_start": calendar["slot_start"].gather(slot_rows),
           "kwh": pl.Series(kwh, nan_to_null=True),
           "meters_expected": pl.Series(np.repeat(expected.astype(np.int64), n)),
           "meters_measured": pl.Series(meters_measured),
           **{name: calendar[name].gather(slot_rows) for name in ("date", "slot", "month", "fiscal_year")}}
    tables = [factor_table(config, site, factors, years) for site in sites]
    for kg, column in KG_COLUMNS.items():
        per_site_year = np.array([[np.nan if v is None else v for v in table[column]] for table in tables])
        out[kg] = pl.Series(kwh * per_site_year[site_rows, year_of_slot[slot_rows]], nan_to_null=True)
    return pl.DataFrame(out)
