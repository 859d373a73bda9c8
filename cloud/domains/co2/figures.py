"""A site's figures for a range: reads (energy_slot, co2_input) and the pure computations, joined.
Routes and the report call these; the arithmetic lives in accounting.py and summary.py."""

from __future__ import annotations

import polars as pl

from cloud.domains._greencity.calendar import (SLOT_MS, fiscal_months, fiscal_year, fiscal_year_range_ms,
                                               local_date, month_range_ms)
from cloud.domains._greencity.energy import fetch_slot_energy
from cloud.domains.co2 import accounting, data, summary
from cloud.domains.co2.config import Co2Config, Co2Site
from cloud.domains.co2.factors import FactorSet
from cloud.influx import AsyncInfluxClient, quote_string

SETTLE_MS = 600_000          # a slot counts as expected once it ended this long ago (energy job delay + margin)


def cutoff(now_ms: int) -> int:
    return (now_ms - SETTLE_MS) // SLOT_MS * SLOT_MS


async def slots_co2(reader: AsyncInfluxClient, config: Co2Config, site: Co2Site, factors: FactorSet,
                    start_ms: int, end_ms: int, now_ms: int) -> pl.DataFrame:
    """Per slot in [start, min(end, cutoff)): kWh, kg and meters expected/measured, with calendar columns."""
    end_ms = min(end_ms, cutoff(now_ms))
    meters = site.meters()
    if not meters or end_ms <= start_ms:
        empty = accounting.site_slots(pl.DataFrame(), [], 0, 0)
        return accounting.slot_co2(empty, accounting.factor_table(config, site, factors, []))
    energy = await fetch_slot_energy(reader, meters, start_ms, end_ms)
    years = range(fiscal_year(local_date(start_ms)), fiscal_year(local_date(end_ms - 1)) + 1)
    return accounting.slot_co2(accounting.site_slots(energy, meters, start_ms, end_ms),
                               accounting.factor_table(config, site, factors, years))


async def month_rows(reader: AsyncInfluxClient, config: Co2Config, site: Co2Site, factors: FactorSet,
                     months: list[str], now_ms: int, *, inputs: pl.DataFrame | None = None) -> pl.DataFrame:
    """Month rows (summary.MONTH_ROW_SCHEMA) for ``months`` (consecutive, oldest first)."""
    start_ms, end_ms = month_range_ms(months[0])[0], month_range_ms(months[-1])[1]
    slots = await slots_co2(reader, config, site, factors, start_ms, end_ms, now_ms)
    if inputs is None:
        inputs = await data.fetch_inputs(reader, [site.id], start_ms, end_ms)
    inputs = inputs.filter(pl.col("site") == site.id)
    limit = cutoff(now_ms)
    return summary.monthly(months, slots, accounting.billed(inputs, config, site, factors),
                           accounting.fuel_kg(inputs, factors), accounting.production(inputs),
                           {m: accounting.slots_in_month(m, limit) for m in months}, bool(site.grid_meters))


async def fiscal_year_rows(reader: AsyncInfluxClient, config: Co2Config, site: Co2Site, factors: FactorSet,
                           first_fy: int, last_fy: int, now_ms: int) -> pl.DataFrame:
    months = [m for fy in range(first_fy, last_fy + 1) for m in fiscal_months(fy)]
    return summary.fiscal_years(await month_rows(reader, config, site, factors, months, now_ms))


async def first_fiscal_year(reader: AsyncInfluxClient, site: Co2Site) -> int | None:
    """The first fiscal year with a meter slot or an input of the site."""
    firsts = []
    for meter in site.meters():
        (series,) = await reader.query(
            f'SELECT first("consumption") FROM "energy_slot" WHERE "site" = {quote_string(meter.site)} '
            f'AND "device" = {quote_string(meter.device)} AND "metric" = {quote_string(meter.metric)}')
        firsts += [int(s.values[0][0]) for s in series if s.values]
    (series,) = await reader.query(f'SELECT first("amount") FROM "{data.INPUT_MEASUREMENT}" '
                                   f'WHERE "site" = {quote_string(site.id)}')
    firsts += [int(s.values[0][0]) for s in series if s.values]
    return fiscal_year(local_date(min(firsts))) if firsts else None


def fy_range(fy: int) -> tuple[int, int]:
    return fiscal_year_range_ms(fy)
