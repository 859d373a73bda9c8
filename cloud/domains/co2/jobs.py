"""The ``co2.slots`` job and the range recompute: co2_slot points per configured site with meters."""

from __future__ import annotations

import polars as pl

from cloud.domains._greencity.calendar import OFFSET_MS
from cloud.domains._greencity.energy import fetch_slot_energy
from cloud.domains.co2 import accounting
from cloud.domains.co2.config import Co2Config
from cloud.domains.co2.data import SLOT_MEASUREMENT
from cloud.domains.co2.factors import FactorSet, load_factors
from cloud.influx import AsyncInfluxClient
from cloud.points import Point
from cloud.scheduler import Job, JobContext

LINES_PER_WRITE = 10_000


def factors_of(config: Co2Config) -> FactorSet:
    from pathlib import Path
    return load_factors(Path(config.factors_dir) if config.factors_dir else None)


def slot_points(slots_co2: pl.DataFrame) -> list[Point]:
    """One co2_slot point per (site, slot); kWh and kg left out where unknown (a gap stays visible
    through meters_measured < meters_expected)."""
    points = []
    for row in slots_co2.iter_rows(named=True):
        fields: dict = {"meters_expected": int(row["meters_expected"]), "meters_measured": int(row["meters_measured"])}
        for name in ("kwh", "kg_location", "kg_market", "kg_basic"):
            if row[name] is not None:
                fields[name] = float(row[name])
        points.append(Point(SLOT_MEASUREMENT, {"site": row["site"]}, fields, int(row["slot_start"])))
    return points


async def compute_range(reader: AsyncInfluxClient, config: Co2Config, start_ms: int, end_ms: int) -> pl.DataFrame:
    """Slot CO2 of every configured site with meters over [start, end), from energy_slot in bulk."""
    sites = [s for s in config.sites if s.grid_meters]
    if not sites:
        return pl.DataFrame()
    factors = factors_of(config)
    energy = await fetch_slot_energy(reader, [m for s in sites for m in s.meters()], start_ms, end_ms)
    return accounting.sites_slot_co2(energy, config, factors, start_ms, end_ms)


def slot_lines(slots_co2: pl.DataFrame) -> list[str]:
    """The same points as :func:`slot_points`, as line protocol built column-wise (a year of slots of
    many sites in one go). Site ids match the config's id pattern: nothing to escape."""
    if slots_co2.height == 0:
        return []
    floats = [pl.when(pl.col(name).is_not_null()).then(pl.format(f"{name}={{}}", pl.col(name).cast(pl.Float64)))
              for name in ("kwh", "kg_location", "kg_market", "kg_basic")]
    ints = [pl.format(f"{name}={{}}i", pl.col(name)) for name in ("meters_expected", "meters_measured")]
    fields = pl.concat_str([*floats, *ints], separator=",", ignore_nulls=True)
    line = pl.format(f"{SLOT_MEASUREMENT},site={{}} {{}} {{}}", pl.col("site"), fields, pl.col("slot_start"))
    return slots_co2.select(line.alias("line"))["line"].to_list()


async def recompute(reader: AsyncInfluxClient, config: Co2Config, start_ms: int, end_ms: int) -> int:
    lines = slot_lines(await compute_range(reader, config, start_ms, end_ms))
    for i in range(0, len(lines), LINES_PER_WRITE):
        await reader.write_lines(lines[i:i + LINES_PER_WRITE])
    return len(lines)


async def compute_slot(slot_start_ms: int, slot_end_ms: int, ctx: JobContext) -> list[Point]:
    config: Co2Config = ctx.config or Co2Config()
    frame = await compute_range(ctx.influx, config, slot_start_ms, slot_end_ms)
    points = slot_points(frame) if frame.height else []
    ctx.log.info("slot %d: %d co2_slot points for %d sites", slot_start_ms, len(points), len(config.sites))
    return points


# 420 s: after the energy.slots job (delay 300 s) has written the slot's energy_slot points.
SLOTS_JOB = Job(name="co2.slots", every_s=1800, run=compute_slot, delay_s=420, align_offset_s=OFFSET_MS // 1000)
