"""Per-slot energy of meters, shared by the green-city domains.

Two ways to get a meter's kWh per 30-minute slot:

* :func:`fetch_slot_energy` reads ``energy_slot`` (what the energy domain's job stored when
  each slot was due; the demo backfill writes it for its year of history). Cheap for a year.
* :func:`recompute_slot_energy` computes the slots again from the raw counter readings with the
  energy domain's counter rules (resets, roll-overs, gaps), so readings that arrived late count.

Both answer the same frame (``SLOT_ENERGY_SCHEMA``): site, device, metric, slot_start, kwh,
readings (0: interpolated across a gap). A slot with no row is missing: never read it as 0.
:func:`slot_completeness` says, per (site, slot), how many of the expected meters were measured.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from cloud.domains._greencity.calendar import OFFSET_MS, SLOT_MS, slot_starts
from cloud.influx import AsyncInfluxClient, quote_string

SLOT_MEASUREMENT = "energy_slot"
SLOT_ENERGY_SCHEMA = {"site": pl.String, "device": pl.String, "metric": pl.String, "slot_start": pl.Int64,
                      "kwh": pl.Float64, "readings": pl.Int64}
COMPLETENESS_SCHEMA = {"site": pl.String, "slot_start": pl.Int64, "meters_expected": pl.Int64,
                       "meters_measured": pl.Int64, "meters_interpolated": pl.Int64, "complete": pl.Boolean}


@dataclass(frozen=True)
class MeterRef:
    """One energy counter: ``metric`` of ``device`` at ``site`` (kWh, cumulative)."""

    site: str
    device: str
    metric: str = "energy_import"


def empty_slot_energy() -> pl.DataFrame:
    return pl.DataFrame(schema=SLOT_ENERGY_SCHEMA)


def _which(meters: list[MeterRef]) -> str:
    return " OR ".join(f'("site" = {quote_string(m.site)} AND "device" = {quote_string(m.device)} '
                       f'AND "metric" = {quote_string(m.metric)})' for m in meters)


async def fetch_slot_energy(reader: AsyncInfluxClient, meters: list[MeterRef], start_ms: int, end_ms: int,
                            *, per_query: int = 50) -> pl.DataFrame:
    """Stored ``energy_slot`` rows of ``meters`` with slot_start in [start, end)."""
    frames = []
    unique = sorted(set(meters), key=lambda m: (m.site, m.device, m.metric))
    for i in range(0, len(unique), per_query):
        chunk = unique[i:i + per_query]
        (series,) = await reader.query(
            f'SELECT "consumption", "readings" FROM "{SLOT_MEASUREMENT}" WHERE ({_which(chunk)}) '
            f'AND time >= {int(start_ms)}ms AND time < {int(end_ms)}ms GROUP BY "site", "device", "metric"')
        for s in series:
            rows = [(int(ts), float(kwh), int(readings or 0)) for ts, kwh, readings in s.values
                    if isinstance(kwh, (int, float)) and not isinstance(kwh, bool)]
            if rows:
                frames.append(pl.DataFrame(rows, schema={"slot_start": pl.Int64, "kwh": pl.Float64,
                                                         "readings": pl.Int64}, orient="row")
                              .with_columns(pl.lit(s.tags.get("site", "")).alias("site"),
                                            pl.lit(s.tags.get("device", "")).alias("device"),
                                            pl.lit(s.tags.get("metric", "")).alias("metric")))
    if not frames:
        return empty_slot_energy()
    return pl.concat(frames).select(list(SLOT_ENERGY_SCHEMA)).cast(SLOT_ENERGY_SCHEMA).sort("site", "device", "slot_start")


async def recompute_slot_energy(reader: AsyncInfluxClient, meters: list[MeterRef], start_ms: int, end_ms: int,
                                *, max_gap_ms: int = 6 * 3_600_000, per_query: int = 50) -> pl.DataFrame:
    """Slots of ``meters`` in [start, end) computed from their raw counter readings now. One catalog
    query, then the readings of up to ``per_query`` meters of one (kind, metric) per request, as
    the energy job batches them."""
    from cloud.domains.energy import data, service    # the energy domain owns the counter rules

    wanted = set(meters)
    entries = [e for e in await data.counters(reader) if MeterRef(e.site, e.device, e.metric) in wanted]
    by_series: dict[tuple[str, str], list] = {}
    for entry in sorted(entries, key=lambda e: (e.kind, e.metric, e.site, e.device)):
        by_series.setdefault((entry.kind, entry.metric), []).append(entry)
    frames = []
    for (kind, metric), group in by_series.items():
        for i in range(0, len(group), per_query):
            chunk = group[i:i + per_query]
            readings = await data.fetch_readings(reader, kind, metric, [(e.site, e.device) for e in chunk],
                                                 start_ms, end_ms, max_gap_ms)
            for entry in chunk:
                frame = readings.get((entry.site, entry.device))
                if frame is None:
                    continue
                slots = (service.per_slot(service.consumption(frame, entry.rollover), SLOT_MS // 1000,
                                          OFFSET_MS // 1000)
                         .filter((pl.col("slot_start") >= start_ms) & (pl.col("slot_start") < end_ms)))
                frames.append(slots.select(pl.lit(entry.site).alias("site"), pl.lit(entry.device).alias("device"),
                                           pl.lit(metric).alias("metric"), "slot_start",
                                           pl.col("consumption").alias("kwh"), "readings"))
    if not frames:
        return empty_slot_energy()
    return pl.concat(frames).cast(SLOT_ENERGY_SCHEMA).sort("site", "device", "slot_start")


def slot_completeness(slot_energy: pl.DataFrame, meters: list[MeterRef], start_ms: int, end_ms: int) -> pl.DataFrame:
    """Per (site, slot_start) in [start, end): how many of the site's ``meters`` have a measured slot
    (readings > 0), an interpolated one (readings == 0) or none; ``complete`` when all are measured."""
    expected = (pl.DataFrame({"site": [m.site for m in meters], "device": [m.device for m in meters],
                              "metric": [m.metric for m in meters]}, schema={"site": pl.String, "device": pl.String,
                                                                             "metric": pl.String})
                .unique())
    if expected.height == 0:
        return pl.DataFrame(schema=COMPLETENESS_SCHEMA)
    grid = expected.join(pl.DataFrame({"slot_start": slot_starts(start_ms, end_ms)}), how="cross")
    have = slot_energy.select("site", "device", "metric", "slot_start", "readings")
    joined = grid.join(have, on=["site", "device", "metric", "slot_start"], how="left")
    return (joined.group_by("site", "slot_start")
            .agg(pl.len().cast(pl.Int64).alias("meters_expected"),
                 (pl.col("readings") > 0).sum().cast(pl.Int64).alias("meters_measured"),
                 (pl.col("readings") == 0).sum().cast(pl.Int64).alias("meters_interpolated"))
            .with_columns((pl.col("meters_measured") == pl.col("meters_expected")).alias("complete"))
            .select(list(COMPLETENESS_SCHEMA)).cast(COMPLETENESS_SCHEMA).sort("site", "slot_start"))
