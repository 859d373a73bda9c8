"""The ``fleet.hubs`` job: every 5 minutes, each hub's coverage as a ``fleet_hub`` point.

For the slot starting at T it takes every vehicle's newest stored fix before T (measurement ``vehicle``,
written by the ingest; last ``HUB_LOOKBACK_S`` only: a vehicle not heard of for longer is not available),
counts the ``available`` ones within ``walking_radius_m`` of each hub (hubs.hub_coverage) and writes
``fleet_hub`` (ts = T; tags hub, hub_kind; fields available, nearest_m (left out when no vehicle is
available anywhere), gap = none available). Computed from stored data, not the live tracker, so a rerun
of a slot or another API process writes the same points, and missed slots are caught up after a down time.
"""

from __future__ import annotations

import polars as pl

from cloud.domains.fleet.config import FleetConfig
from cloud.domains.fleet.hubs import hub_coverage, hubs_frame, load_hubs
from cloud.domains.fleet.worker_points import HUB_MEASUREMENT
from cloud.domains.fleet.worker_service import VEHICLE_COLUMNS
from cloud.points import Point
from cloud.scheduler import Job, JobContext
from hinode.contract import DeviceKind

HUB_LOOKBACK_S = 900


async def last_positions(ctx: JobContext, at_ms: int, lookback_s: float) -> pl.DataFrame:
    """Each vehicle's newest lat, lon, state and battery in ``[at_ms - lookback_s, at_ms)``."""
    (series,) = await ctx.influx.query(
        f'SELECT last("lat") AS "lat", last("lon") AS "lon", last("state") AS "state", '
        f'last("battery") AS "battery_pct" FROM "{DeviceKind.VEHICLE.value}" '
        f'WHERE time >= {at_ms - int(lookback_s * 1000)}ms AND time < {at_ms}ms GROUP BY "fleet", "device"')
    rows = []
    for s in series:
        for row in s.rows():
            rows.append({"vehicle": f"{s.tags.get('fleet', '')}/{s.tags.get('device', '')}", "lat": row.get("lat"),
                         "lon": row.get("lon"), "state": row.get("state"), "battery_pct": row.get("battery_pct")})
    return pl.DataFrame(rows, schema=VEHICLE_COLUMNS)


async def hub_coverage_points(slot_start_ms: int, slot_end_ms: int, ctx: JobContext) -> list[Point]:
    config: FleetConfig = ctx.config or FleetConfig()
    if not config.enabled:
        return []
    hubs = load_hubs(config.resolved_hubs_file())
    if not hubs:
        return []
    vehicles = await last_positions(ctx, slot_start_ms, max(HUB_LOOKBACK_S, config.comms_lost_s))
    coverage = hub_coverage(vehicles, hubs_frame(hubs), config.walking_radius_m)
    kinds = {hub.id: str(hub.kind) for hub in hubs}
    points = []
    for row in coverage.to_dicts():
        fields = {"available": int(row["available"]), "gap": int(row["available"]) == 0}
        if row["nearest_m"] is not None:
            fields["nearest_m"] = float(row["nearest_m"])
        points.append(Point(HUB_MEASUREMENT, {"hub": row["hub"], "hub_kind": kinds[row["hub"]]}, fields,
                            slot_start_ms))
    return points


HUBS_JOB = Job(name="fleet.hubs", every_s=300, run=hub_coverage_points, delay_s=0.0, timeout_s=120.0)
JOBS = [HUBS_JOB]
