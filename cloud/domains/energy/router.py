"""/api/energy/*: consumption of one counter, computed on request from its readings."""

from __future__ import annotations

import time

import polars as pl
from fastapi import APIRouter, HTTPException, Query, Request

from cloud.api import params
from cloud.domains import domain_config
from cloud.domains.energy import data, service
from cloud.domains.energy.jobs import ALIGN_OFFSET_S, TIMEZONE

router = APIRouter()

MAX_RANGE_MS = 31 * 86_400_000
DAY_MS = 86_400_000


def slot_range(start: str, end: str, slot: str, now_ms: int) -> tuple[int, int, int]:
    """(start, end, slot) in ms, start/end widened to whole slots; InvalidParameter naming what is wrong."""
    slot_ms = params.parse_duration_ms("slot", slot)
    if slot_ms < 60_000 or slot_ms > DAY_MS or DAY_MS % slot_ms:
        raise params.InvalidParameter("slot", f"{slot!r} must divide a day and be at least 1m "
                                              "(e.g. 15m, 30m, 1h, 1d)")
    start_ms = params.parse_time_ms("start", start, now_ms)
    end_ms = params.parse_time_ms("end", end, now_ms)
    offset_ms = ALIGN_OFFSET_S * 1000
    start_ms = (start_ms + offset_ms) // slot_ms * slot_ms - offset_ms
    end_ms = -((-(end_ms + offset_ms)) // slot_ms) * slot_ms - offset_ms
    params.check_range(start_ms, end_ms, slot_ms)
    if end_ms - start_ms > MAX_RANGE_MS:
        raise params.InvalidParameter("start", f"the range may span at most {MAX_RANGE_MS // DAY_MS} days")
    return start_ms, end_ms, slot_ms


@router.get("/consumption", summary="Consumption per slot of a cumulative counter, across resets and roll-overs")
async def consumption(
    request: Request,
    site: str = Query(..., description="site id"),
    device: str = Query(..., description="device id"),
    metric: str = Query("energy_import", description="a counter metric (the catalog says counter=true)"),
    start: str = Query("-1d", description="RFC3339, relative (-1d, -6h) or now; widened to a slot start"),
    end: str = Query("now", description="RFC3339, relative or now; widened to a slot end"),
    slot: str = Query("30m", description=f"slot length dividing a day; slots align to {TIMEZONE} midnight"),
) -> dict:
    site, device = params.check_id("site", site), params.check_id("device", device)
    metric = params.check_metric(metric)
    start_ms, end_ms, slot_ms = slot_range(start, end, slot, int(time.time() * 1000))
    reader = request.app.state.reader
    entry = await data.catalog_entry(reader, site, device, metric)
    if entry is None:
        raise HTTPException(404, f"no catalog entry for metric {metric!r} of device {device!r} at site {site!r} "
                                 "(agents publish their catalog when they connect)")
    if not entry.counter:
        raise params.InvalidParameter("metric", f"{metric!r} of device {device!r} is not a cumulative counter "
                                                "(catalog: counter=false); consumption needs one, e.g. energy_import")
    config = domain_config(request, "energy")
    readings = await data.fetch_readings(reader, entry.kind, metric, [(site, device)], start_ms, end_ms,
                                         config.max_gap_s * 1000)
    frame = readings.get((site, device), pl.DataFrame(schema=service.READINGS_SCHEMA))
    deltas = service.consumption(frame, entry.rollover)
    slots = (service.per_slot(deltas, slot_ms // 1000, ALIGN_OFFSET_S)
             .filter((pl.col("slot_start") >= start_ms) & (pl.col("slot_start") < end_ms)))
    events = deltas.filter(pl.col("event").is_not_null() & (pl.col("end_ts") >= start_ms)
                           & (pl.col("end_ts") < end_ms))
    return {"site": site, "device": device, "metric": metric, "unit": entry.unit, "rollover": entry.rollover,
            "start": start_ms, "end": end_ms, "slot_ms": slot_ms, "timezone": TIMEZONE,
            "total": float(slots["consumption"].sum()),
            "slots": [{"ts": r["slot_start"], "consumption": r["consumption"], "readings": r["readings"]}
                      for r in slots.iter_rows(named=True)],
            "events": [{"ts": r["end_ts"], "event": r["event"], "consumption": r["consumption"]}
                       for r in events.iter_rows(named=True)]}
