"""The interchange.settle job against a real InfluxDB 1.6: a slot whose data is late is settled
provisionally, re-settled when the late readings arrive, and every stored statement equals one
recomputed from the raw counters. The charging-target job without MQTT logs and skips."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime

import polars as pl
import pytest

from cloud.config import InfluxConfig, SchedulerConfig
from cloud.domains._greencity.calendar import day_start
from cloud.domains._greencity.energy import recompute_slot_energy
from cloud.domains.interchange import DOMAIN, data, slots, statements
from cloud.domains.interchange.config import InterchangeConfig
from cloud.domains.interchange.service import flows
from cloud.influx import AsyncInfluxClient
from cloud.scheduler import JobContext, Scheduler
from tests.cloud.test_api_kit import write_lines

pytestmark = pytest.mark.timeout(60)

MIN = 60_000
SLOT = 30 * MIN
X = int(datetime.fromisoformat("2026-06-05T09:00:00+09:00").timestamp() * 1000)   # a Friday slot
CONFIG = InterchangeConfig.model_validate({"communities": [{
    "id": "omika-pv", "price_yen_per_kwh": 16.0, "grace_s": 600,
    "rules": [{"from_month": "2025-04", "rule": "pro_rata"}],
    "participants": [
        {"site": "plant", "role": "producer", "meters": {"generation": {"device": "pv", "metric": "energy_export"},
                                                         "export": {"device": "grid", "metric": "energy_export"}},
         "charging": {"agent": "edge-01", "source": "chargers", "max_kw": 60}},
        {"site": "shop", "role": "consumer", "meters": {"consumption": {"device": "main"}}},
        {"site": "hall", "role": "consumer", "meters": {"consumption": {"device": "main"}}},
    ]}]})
COMMUNITY = CONFIG.communities[0]
PARTICIPANTS = [{"site": p.site, "role": p.role} for p in COMMUNITY.participants]


def catalog(site: str, device: str, metric: str) -> str:
    return (f"hinode_catalog,site={site},agent=edge-1,device={device},kind=meter,profile=p,metric={metric} "
            f'unit="kWh",counter=true,rollover=0,writable=false {X - 86_400_000}')


def counter(site: str, device: str, metric: str, per_10_min: float, minutes: range) -> list[str]:
    """Readings every 10 minutes from X - 10 min; the counter grows by ``per_10_min``."""
    return [f"meter,site={site},agent=edge-1,device={device},profile=p {metric}={1000 + per_10_min * (m + 10) / 10} "
            f"{X + m * MIN}" for m in minutes]


ON_TIME = range(-10, 71, 10)                   # 08:50 .. 10:10
LATE_START = 20                                # hall's readings from 09:20 on arrive late


def initial_lines() -> list[str]:
    lines = [catalog("plant", "pv", "energy_export"), catalog("plant", "grid", "energy_export"),
             catalog("shop", "main", "energy_import"), catalog("hall", "main", "energy_import")]
    # per slot: generation 30, export (shareable) 18, shop 15, hall 9
    lines += counter("plant", "pv", "energy_export", 10.0, ON_TIME)
    lines += counter("plant", "grid", "energy_export", 6.0, ON_TIME)
    lines += counter("shop", "main", "energy_import", 5.0, ON_TIME)
    lines += counter("hall", "main", "energy_import", 3.0, range(-10, LATE_START, 10))
    return lines


async def month_statements(client: AsyncInfluxClient) -> dict[str, dict]:
    start, end = X, X + 2 * SLOT      # the slot before X is provisional: the readings start at 08:50
    rows = statements.statements(await data.fetch_settled(client, COMMUNITY.id, start, end),
                                 await data.fetch_flows(client, COMMUNITY.id, start, end), PARTICIPANTS, 16.0, {})
    return {r["site"]: (r["received_kwh"], r["supplied_kwh"], r["yen"], r["slots"], r["slots_provisional"])
            for r in rows}


def test_late_data_turns_a_provisional_slot_final_and_recomputing_gives_the_stored_numbers(influx, caplog):
    write_lines(influx.url, initial_lines())
    settle_job, charging_job = DOMAIN.jobs

    async def scenario():
        client = AsyncInfluxClient(InfluxConfig(url=influx.url))
        scheduler = Scheduler(client, SchedulerConfig(), now_ms=lambda: X + 2 * SLOT + 600_000)
        scheduler.add(settle_job, CONFIG)
        scheduler.add(charging_job, CONFIG)
        try:
            await scheduler.run_slot(settle_job.name, X)
            before = await month_statements(client)
            write_lines(influx.url, counter("hall", "main", "energy_import", 3.0, range(LATE_START, 71, 10)))
            await scheduler.run_slot(settle_job.name, X + SLOT)
            after = await month_statements(client)
            stored = await data.fetch_settled(client, COMMUNITY.id, X, X + 2 * SLOT)
            stored_flows = await data.fetch_flows(client, COMMUNITY.id, X, X + 2 * SLOT)
            energy = await recompute_slot_energy(client, COMMUNITY.meters(), X, X + 3 * SLOT)
            chosen = pl.DataFrame({"slot_start": [X, X + SLOT], "provisional": [False, False]})
            recomputed = slots.settle(COMMUNITY, energy, chosen)
            with caplog.at_level(logging.INFO):
                await scheduler.run_slot(charging_job.name, X - 9 * 3_600_000)
            return before, after, stored, stored_flows, recomputed, flows(recomputed)
        finally:
            await client.aclose()

    before, after, stored, stored_flows, recomputed, recomputed_flows = asyncio.run(scenario())
    # First run (as of 09:40): hall has readings only up to 09:10, so slot X is incomplete and, past its
    # 600 s grace, settled provisionally with hall's 3 kWh (09:00-09:10): demand 15 + 3 = 18 = shareable 18,
    # everyone covered: shop 15 (240 yen), hall 3 (48 yen), plant supplies 18 (288 yen).
    assert before == {"plant": (0.0, 18.0, 288.0, 1, 1), "shop": (15.0, 0.0, 240.0, 1, 1),
                      "hall": (3.0, 0.0, 48.0, 1, 1)}
    # Late readings, second run (as of 10:10): X is complete now and re-settled final; X+1 too (every meter
    # was read at 10:10). Per slot: shareable 18 < demand 15 + 9 = 24, pro rata 18/24 = 0.75:
    # shop 11.25, hall 6.75. Two slots: shop 22.5 kWh (360 yen), hall 13.5 (216 yen), plant 36 (576 yen).
    assert after == {"plant": (0.0, 36.0, 576.0, 2, 0), "shop": (22.5, 0.0, 360.0, 2, 0),
                     "hall": (13.5, 0.0, 216.0, 2, 0)}
    columns = ["slot_start", "site", *data.STORED_FIELDS, "provisional", "rule"]
    assert stored.select(columns).equals(recomputed.with_columns(pl.col("role").cast(pl.String)).select(columns))
    assert stored_flows.equals(recomputed_flows)
    assert "no MQTT" in caplog.text or "no expected surplus" in caplog.text


def test_the_charging_target_from_last_weeks_slots_is_sent_once_or_logged_without_mqtt(influx, caplog):
    # Last week's Friday at 11:00-12:30 JST (3 slots): the plant offered 40, 50, 40 kWh; demand 10 + 10 each
    # -> surplus 20, 30, 20 kWh; the mean 70 / 3 kWh per half hour = 46.667 kW (under max_kw 60).
    run_day = day_start(int(time.time() * 1000)) + 86_400_000      # the job's day [D-1, D) ends tomorrow
    tomorrow = run_day + 86_400_000                                 # its target day: still to come
    week_before = tomorrow - 7 * 86_400_000
    lines = []
    for i, offer in enumerate((40.0, 50.0, 40.0)):
        ts = week_before + (22 + i) * SLOT
        lines.append(f"interchange_slot,community=omika-pv,site=plant,role=producer generation_kwh={offer},"
                     f"supplied_kwh=20.0,received_kwh=0.0,self_kwh=0.0,export_kwh={offer - 20},grid_kwh=0.0,"
                     f'provisional=false,rule="pro_rata" {ts}')
        for site in ("shop", "hall"):
            lines.append(f"interchange_slot,community=omika-pv,site={site},role=consumer consumption_kwh=10.0,"
                         f"supplied_kwh=0.0,received_kwh=10.0,self_kwh=0.0,export_kwh=0.0,grid_kwh=0.0,"
                         f'provisional=false,rule="pro_rata" {ts}')
    write_lines(influx.url, lines)
    _, charging_job = DOMAIN.jobs
    sent = []

    async def send_command(**command):
        sent.append(command)
        return {"id": "c1", "status": "sent"}

    async def scenario():
        client = AsyncInfluxClient(InfluxConfig(url=influx.url))
        try:
            log = logging.getLogger("test.interchange")
            with caplog.at_level(logging.INFO, logger="test.interchange"):
                await charging_job.run(run_day - 86_400_000, run_day, JobContext(client, CONFIG, charging_job, log,
                                                                                 send_command))
                await charging_job.run(run_day - 86_400_000, run_day, JobContext(client, CONFIG, charging_job, log,
                                                                                 None))
        finally:
            await client.aclose()

    asyncio.run(scenario())
    assert len(sent) == 1
    command = sent[0]
    assert (command["site"], command["agent"], command["target"], command["name"]) == \
        ("plant", "edge-01", "chargers", "site_target")
    assert command["params"] == {"power_kw": 46.667, "from_ts": tomorrow + 22 * SLOT, "until_ts": tomorrow + 25 * SLOT}
    assert "no MQTT" in caplog.text
