"""The interchange jobs: ``interchange.settle`` (every 30 minutes: settle the newest slot, re-settle
provisional ones with late data) and ``interchange.charging_target`` (daily at 20:00 JST:
tomorrow's expected surplus as a charging participant's site target). README.md has the rules."""

from __future__ import annotations

import time

import polars as pl

from cloud.domains._greencity.calendar import DAY_MS, SLOT_MS, slot_starts
from cloud.domains._greencity.energy import fetch_slot_energy, recompute_slot_energy
from cloud.domains.interchange import charging, data, service, slots
from cloud.domains.interchange.config import Community, InterchangeConfig
from cloud.influx import AsyncInfluxClient
from cloud.points import Point
from cloud.scheduler import Job, JobContext

ALIGN_OFFSET_S = 9 * 3600                 # JST
SETTLE_DELAY_S = 600                      # after energy.slots (delay 300 s) has written the slot
CHARGING_DELAY_S = 20 * 3600              # the day [D-1, D) runs at D 20:00 JST and targets D+1
KEY = ["site", "device", "metric", "slot_start"]


async def meter_energy(reader: AsyncInfluxClient, community: Community, start_ms: int, end_ms: int) -> pl.DataFrame:
    """Per-slot kWh of the community's meters from raw counters (late readings count), completed by
    stored ``energy_slot`` rows for meters without raw readings there (e.g. a backfilled history)."""
    meters = community.meters()
    raw = await recompute_slot_energy(reader, meters, start_ms, end_ms)
    stored = await fetch_slot_energy(reader, meters, start_ms, end_ms)
    return pl.concat([raw, stored.join(raw.select(KEY), on=KEY, how="anti")]).sort(KEY)


async def settle_recent(reader: AsyncInfluxClient, community: Community, slot_end_ms: int,
                        as_of_ms: int) -> list[Point]:
    """Points of the slots in the last ``resettle_days`` (up to ``slot_end_ms``) that are due: not
    settled yet or provisional, and complete or past the grace period."""
    window_start = slot_end_ms - SLOT_MS - community.resettle_days * DAY_MS
    stored = await data.settled_status(reader, community.id, window_start, slot_end_ms)
    final = set(stored.filter(~pl.col("provisional"))["slot_start"].to_list())
    pending = [s for s in slot_starts(window_start, slot_end_ms).to_list() if s not in final]
    if not pending:
        return []
    energy = await meter_energy(reader, community, pending[0] - SLOT_MS, slot_end_ms + SLOT_MS)
    status = slots.slot_status(energy, slots.meters_frame(community), pending)
    chosen = slots.to_settle(status, stored, as_of_ms, community.grace_s)
    settled = slots.settle(community, energy, chosen)
    pairs = await data.flow_pairs(reader, community.id)
    return data.settled_points(community.id, settled, service.flows(settled, zero_pairs=pairs))


async def settle_range(reader: AsyncInfluxClient, community: Community, start_ms: int, end_ms: int,
                       as_of_ms: int) -> tuple[list[Point], pl.DataFrame]:
    """Every slot of [start, end) from stored ``energy_slot`` in one go (final when complete,
    provisional when not and past the grace period); (points, chosen slots)."""
    energy = await fetch_slot_energy(reader, community.meters(), start_ms - SLOT_MS, end_ms + SLOT_MS)
    starts = slot_starts(start_ms, end_ms).to_list()
    status = slots.slot_status(energy, slots.meters_frame(community), starts)
    chosen = slots.to_settle(status, pl.DataFrame(schema={"slot_start": pl.Int64, "provisional": pl.Boolean}),
                             as_of_ms, community.grace_s)
    settled = slots.settle(community, energy, chosen)
    pairs = await data.flow_pairs(reader, community.id)
    return data.settled_points(community.id, settled, service.flows(settled, zero_pairs=pairs)), chosen


async def run_settle(slot_start_ms: int, slot_end_ms: int, ctx: JobContext) -> list[Point]:
    config: InterchangeConfig = ctx.config or InterchangeConfig()
    as_of_ms = slot_end_ms + SETTLE_DELAY_S * 1000       # deterministic: a rerun settles the same way
    in_slot: list[Point] = []
    for community in config.communities:
        points = await settle_recent(ctx.influx, community, slot_end_ms, as_of_ms)
        earlier = [p for p in points if p.ts_ms < slot_start_ms]
        await data.write(ctx.influx, earlier)            # the scheduler writes only the slot's own points
        in_slot += [p for p in points if p.ts_ms >= slot_start_ms]
        ctx.log.info("community %s: %d points (%d for earlier slots)", community.id, len(points), len(earlier))
    return in_slot


async def expected_surplus(reader: AsyncInfluxClient, community: Community, day_start_ms: int) -> pl.DataFrame:
    """EXPECTED_SCHEMA of the day: forecasts (producer: pv - its own demand; consumer: demand), else
    the same slots one week earlier from interchange_slot (producer: supplied + export)."""
    day_end = day_start_ms + DAY_MS
    rows = []
    for p in community.participants:
        demand = await data.fetch_expected(reader, p.site, "demand", day_start_ms, day_end)
        if p.role == "producer":
            pv = await data.fetch_expected(reader, p.site, "pv", day_start_ms, day_end)
            if pv.height == 0:
                continue
            frame = (pv.join(demand.rename({"kwh": "own"}), on="slot_start", how="left")
                     .select("slot_start", (pl.col("kwh") - pl.col("own").fill_null(0.0)).clip(lower_bound=0.0)
                             .alias("kwh")))
        else:
            frame = demand
        rows.append(frame.select(pl.lit(p.site).alias("site"), pl.lit(p.role).alias("role"), "slot_start", "kwh"))
    schema = {"site": pl.String, "role": pl.String, "slot_start": pl.Int64, "kwh": pl.Float64}
    forecast = pl.concat(rows).cast(schema) if rows else pl.DataFrame(schema=schema)
    before = await data.fetch_settled(reader, community.id, day_start_ms - 7 * DAY_MS, day_end - 7 * DAY_MS)
    week_before = before.select("site", "role", "slot_start", pl.when(pl.col("role") == "producer")
                                .then(pl.col("supplied_kwh") + pl.col("export_kwh"))
                                .otherwise(pl.col("consumption_kwh")).alias("kwh")).cast(schema)
    return charging.combine_expected(slot_starts(day_start_ms, day_end).to_list(), forecast, week_before)


async def run_charging_target(slot_start_ms: int, slot_end_ms: int, ctx: JobContext) -> list[Point]:
    config: InterchangeConfig = ctx.config or InterchangeConfig()
    tomorrow = slot_end_ms + DAY_MS
    as_of_ms = slot_end_ms + CHARGING_DELAY_S * 1000
    for community in config.communities:
        for p in community.participants:
            if p.charging is None:
                continue
            expected = await expected_surplus(ctx.influx, community, tomorrow)
            target = charging.choose_window(expected, p.charging.max_kw)
            if target is None:
                ctx.log.info("%s/%s: no expected surplus tomorrow; no target", community.id, p.site)
                continue
            if target.until_ms <= time.time() * 1000:      # a day caught up after a down time: too late
                ctx.log.info("%s/%s: target %s is over already; not sent", community.id, p.site, target.params())
                continue
            if ctx.send_command is None:
                ctx.log.warning("%s/%s: no MQTT, target %s not sent", community.id, p.site, target.params())
                continue
            from cloud.api.commands import CommandUnavailable
            try:
                await ctx.send_command(site=p.site, agent=p.charging.agent, target=p.charging.source,
                                       name="site_target", params=target.params(),
                                       expires_in_s=max(60, (target.until_ms - as_of_ms) // 1000))
                ctx.log.info("%s/%s: site_target %s sent", community.id, p.site, target.params())
            except CommandUnavailable as exc:
                ctx.log.warning("%s/%s: site_target not sent: %s", community.id, p.site, exc)
    return []


SETTLE_JOB = Job(name="interchange.settle", every_s=1800, run=run_settle, delay_s=SETTLE_DELAY_S,
                 align_offset_s=ALIGN_OFFSET_S)
CHARGING_JOB = Job(name="interchange.charging_target", every_s=86400, run=run_charging_target,
                   delay_s=CHARGING_DELAY_S, align_offset_s=ALIGN_OFFSET_S)
