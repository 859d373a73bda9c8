"""InfluxQL of the roadmap domain: a site's load profile from ``energy_slot`` and the saved
roadmaps in measurement ``roadmap`` (tags site, name; fields spec = the roadmap as JSON,
saved_by). Saving again adds a newer point; the newest per (site, name) is the roadmap."""

from __future__ import annotations

import json

import polars as pl

from cloud.domains._greencity.energy import MeterRef, fetch_slot_energy
from cloud.influx import AsyncInfluxClient, quote_string
from cloud.points import Point

ROADMAP_MEASUREMENT = "roadmap"
PROFILE_SCHEMA = {"slot_start": pl.Int64, "kwh": pl.Float64}


async def fetch_profile(reader: AsyncInfluxClient, meters: list[MeterRef], start_ms: int, end_ms: int) -> pl.DataFrame:
    """kWh per slot summed over ``meters``; only slots every meter has (a missing one is unknown, not 0)."""
    slots = await fetch_slot_energy(reader, meters, start_ms, end_ms)
    expected = len(set(meters))
    if slots.height == 0 or expected == 0:
        return pl.DataFrame(schema=PROFILE_SCHEMA)
    return (slots.group_by("slot_start").agg(pl.col("kwh").sum(), pl.len().alias("meters"))
            .filter(pl.col("meters") == expected).select("slot_start", "kwh").cast(PROFILE_SCHEMA).sort("slot_start"))


def roadmap_point(site: str, name: str, spec: dict, saved_by: str, ts_ms: int) -> Point:
    return Point(ROADMAP_MEASUREMENT, {"site": site, "name": name},
                 {"spec": json.dumps(spec, ensure_ascii=False, sort_keys=True), "saved_by": saved_by}, ts_ms)


async def fetch_roadmaps(reader: AsyncInfluxClient, site: str, name: str | None = None) -> list[dict]:
    """The newest saved version of each roadmap of ``site`` (or only ``name``), by name."""
    which = f'"site" = {quote_string(site)}' + (f' AND "name" = {quote_string(name)}' if name else "")
    (series,) = await reader.query(f'SELECT "spec", "saved_by" FROM "{ROADMAP_MEASUREMENT}" WHERE {which} '
                                   'GROUP BY "name" ORDER BY time DESC LIMIT 1')
    found = []
    for s in series:
        for ts, spec, saved_by in s.values:
            found.append({"name": s.tags.get("name", ""), "saved_at": int(ts), "saved_by": saved_by,
                          "roadmap": json.loads(spec)})
    return sorted(found, key=lambda r: r["name"])
