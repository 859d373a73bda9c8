"""The ``energy.slots`` job: 30-minute consumption of every counter, as ``energy_slot`` points."""

from __future__ import annotations

from collections import defaultdict

import polars as pl

from cloud.domains.energy import data, service
from cloud.domains.energy.config import EnergyConfig
from cloud.points import Point
from cloud.scheduler import Job, JobContext, fixed_utc_offset_s

SLOT_MEASUREMENT = "energy_slot"
TIMEZONE = "Asia/Tokyo"
ALIGN_OFFSET_S = fixed_utc_offset_s(TIMEZONE)   # slots (and 1-day API slots) start at JST midnight


def slot_point(site: str, device: str, metric: str, slot_start_ms: int, consumption: float, readings: int) -> Point:
    # float()/int(): the field types must never change between runs (see cloud/points.py).
    return Point(SLOT_MEASUREMENT, {"site": site, "device": device, "metric": metric},
                 {"consumption": float(consumption), "readings": int(readings)}, slot_start_ms)


async def compute_slot(slot_start_ms: int, slot_end_ms: int, ctx: JobContext) -> list[Point]:
    config: EnergyConfig = ctx.config or EnergyConfig()
    entries = await data.counters(ctx.influx)
    if config.metrics is not None:
        entries = [e for e in entries if e.metric in config.metrics]
    by_series: dict[tuple[str, str], list[data.CatalogEntry]] = defaultdict(list)
    for entry in entries:
        by_series[(entry.kind, entry.metric)].append(entry)
    slot_s = (slot_end_ms - slot_start_ms) // 1000
    points = []
    for (kind, metric), group in sorted(by_series.items()):
        for i in range(0, len(group), config.devices_per_query):
            chunk = group[i:i + config.devices_per_query]
            readings = await data.fetch_readings(ctx.influx, kind, metric, [(e.site, e.device) for e in chunk],
                                                 slot_start_ms, slot_end_ms, config.max_gap_s * 1000)
            for entry in chunk:
                frame = readings.get((entry.site, entry.device))
                if frame is None:
                    continue
                slots = (service.per_slot(service.consumption(frame, entry.rollover), slot_s, ALIGN_OFFSET_S)
                         .filter(pl.col("slot_start") == slot_start_ms))
                for row in slots.iter_rows(named=True):
                    points.append(slot_point(entry.site, entry.device, metric, slot_start_ms,
                                             row["consumption"], row["readings"]))
    ctx.log.info("slot %d: %d counters in the catalog, %d slot points", slot_start_ms, len(entries), len(points))
    return points


SLOTS_JOB = Job(name="energy.slots", every_s=1800, run=compute_slot, delay_s=300, align_offset_s=ALIGN_OFFSET_S)
