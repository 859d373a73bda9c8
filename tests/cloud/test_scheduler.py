"""The job scheduler: slot alignment (pure), and against a real InfluxDB 1.6 catch-up after a down
time, idempotent reruns, retries, and a failing job not holding back another. The clock is a
variable: nothing waits for a real slot to pass."""

from __future__ import annotations

import asyncio
from datetime import datetime

import pytest

from cloud.config import InfluxConfig, SchedulerConfig
from cloud.influx import AsyncInfluxClient, InfluxUnavailable
from cloud.points import Point
from cloud.scheduler import Job, Scheduler, fixed_utc_offset_s
from hinode.metrics import FamiliesCollector, registry_of, render
from tests.support.prometheus_checks import check_exposition, value

pytestmark = pytest.mark.timeout(60)

HALF_HOUR = 1800
DAY = 86400
JST = 9 * 3600


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1000)


async def _noop(start, end, ctx):
    return []


def test_slots_align_to_tokyo_midnight_and_become_due_after_the_delay():
    assert fixed_utc_offset_s("Asia/Tokyo") == JST
    with pytest.raises(ValueError, match="daylight saving"):
        fixed_utc_offset_s("Europe/Berlin")
    daily = Job("t.daily", DAY, _noop, delay_s=600, align_offset_s=JST)
    # 2024-05-01 19:00 JST is in the day that started at 2024-05-01 00:00 JST = 2024-04-30 15:00 UTC
    assert daily.slot_start(ms("2024-05-01T10:00:00+00:00")) == ms("2024-05-01T00:00:00+09:00")
    assert daily.slot_start(ms("2024-05-01T00:00:00+09:00")) == ms("2024-05-01T00:00:00+09:00")
    assert daily.slot_start(ms("2024-04-30T23:59:59+09:00")) == ms("2024-04-30T00:00:00+09:00")
    # the day of 1 May is due at 2 May 00:10 JST, not a millisecond before
    assert daily.last_due_slot(ms("2024-05-02T00:10:00+09:00")) == ms("2024-05-01T00:00:00+09:00")
    assert daily.last_due_slot(ms("2024-05-02T00:09:59.999+09:00")) == ms("2024-04-30T00:00:00+09:00")
    half = Job("t.half", HALF_HOUR, _noop, delay_s=60, align_offset_s=JST)
    assert half.slot_start(ms("2024-05-01T09:44:00+09:00")) == ms("2024-05-01T09:30:00+09:00")
    assert half.last_due_slot(ms("2024-05-01T10:01:00+09:00")) == ms("2024-05-01T09:30:00+09:00")


class Clock:
    def __init__(self, now_ms: int):
        self.now = now_ms

    def __call__(self) -> int:
        return self.now


NOW = ms("2024-05-01T10:05:00+09:00")       # the newest due 30-min slot starts at 09:30 JST
NEWEST = ms("2024-05-01T09:30:00+09:00")
W = HALF_HOUR * 1000


def slot_points(start: int) -> list[Point]:
    """Three devices, values derived from the slot only: a rerun gives identical points."""
    return [Point("test_slot", {"device": f"d{i}"}, {"value": (start // W % 1000) + i / 4, "n": i}, start)
            for i in range(3)]


def recording_job(name: str, ran: list[int], fail_first: int = 0, error=RuntimeError) -> Job:
    async def run(start, end, ctx):
        assert end - start == W
        ran.append(start)
        if len([s for s in ran if s == start]) <= fail_first:
            raise error(f"failure #{len(ran)}")
        return slot_points(start)
    return Job(name, HALF_HOUR, run, delay_s=60, align_offset_s=JST)


def scenario(influx_url: str, body, **scheduler_config):
    async def main():
        client = AsyncInfluxClient(InfluxConfig(url=influx_url, timeout_s=5))
        await client.create_database("hinode")
        try:
            return await body(client, SchedulerConfig(retry_initial_s=0.01, retry_max_s=0.05, **scheduler_config))
        finally:
            await client.aclose()
    return asyncio.run(main())


async def stored(client, q: str) -> list[dict]:
    (series,) = await client.query(q)
    return [{**s.tags, **row} for s in series for row in s.rows()]


def test_catches_up_missed_slots_in_order_after_a_down_time(influx):
    async def body(client, config):
        ran: list[int] = []
        before = Scheduler(client, config, now_ms=Clock(NEWEST - 5 * W + 31 * 60_000))
        before.add(recording_job("test.count", ran))
        assert await before.run_due() == {"test.count": 1}            # first start: only the newest due slot
        assert ran == [NEWEST - 5 * W]
        # "down" for five slots; a new process (nothing in memory) resumes from InfluxDB
        after = Scheduler(client, config, now_ms=Clock(NOW))
        after.add(recording_job("test.count", ran))
        assert await after.last_slot("test.count") == NEWEST - 5 * W
        assert await after.run_due() == {"test.count": 5}
        assert await after.run_due() == {"test.count": 0}              # nothing new is due
        return ran, after.counters()["test.count"], await stored(client, 'SELECT count("value") FROM "test_slot"'), \
            await stored(client, 'SELECT "points", "slot_end", "failed" FROM "hinode_job" WHERE "job" = \'test.count\'')

    ran, counters, count, progress = scenario(influx.url, body)
    assert ran == [NEWEST - k * W for k in (5, 4, 3, 2, 1, 0)]
    assert (counters["runs"], counters["caught_up"], counters["skipped"], counters["last_slot"]) == (5, 4, 0, NEWEST)
    assert count[0]["count"] == 18
    assert [(p["time"], p["points"], p["slot_end"], p["failed"]) for p in progress] == \
        [(NEWEST - k * W, 3, NEWEST - k * W + W, False) for k in (5, 4, 3, 2, 1, 0)]


def test_a_long_down_time_runs_only_the_newest_max_catchup_slots(influx):
    async def body(client, config):
        ran: list[int] = []
        scheduler = Scheduler(client, config, now_ms=Clock(NOW))
        scheduler.add(recording_job("test.capped", ran))
        await scheduler.run_slot("test.capped", NEWEST - 10 * W)
        ran.clear()
        await scheduler.run_due()
        return ran, scheduler.counters()["test.capped"]

    ran, counters = scenario(influx.url, body, max_catchup_slots=3)
    assert ran == [NEWEST - 2 * W, NEWEST - W, NEWEST]
    assert (counters["skipped"], counters["caught_up"]) == (7, 2)


def test_rerunning_a_slot_overwrites_the_same_points(influx):
    async def body(client, config):
        scheduler = Scheduler(client, config, now_ms=Clock(NOW))
        scheduler.add(recording_job("test.rerun", []))
        query = 'SELECT "value", "n" FROM "test_slot" GROUP BY "device"'
        await scheduler.run_slot("test.rerun", NEWEST)
        first = await stored(client, query)
        await scheduler.run_slot("test.rerun", NEWEST)
        return first, await stored(client, query)

    first, second = scenario(influx.url, body)
    assert len(first) == 3 and second == first
    assert first[1] == {"device": "d1", "time": NEWEST, "value": (NEWEST // W % 1000) + 0.25, "n": 1}


def test_a_failing_slot_is_retried_and_other_jobs_are_not_held_back(influx):
    async def body(client, config):
        flaky_ran, steady_ran = [], []
        scheduler = Scheduler(client, config, now_ms=Clock(NOW))
        scheduler.add(recording_job("test.flaky", flaky_ran, fail_first=2))
        scheduler.add(recording_job("test.steady", steady_ran))
        done = await scheduler.run_due()
        return done, flaky_ran, steady_ran, scheduler.counters()

    done, flaky_ran, steady_ran, counters = scenario(influx.url, body)
    assert done == {"test.flaky": 1, "test.steady": 1}
    assert flaky_ran == [NEWEST] * 3 and steady_ran == [NEWEST]
    assert (counters["test.flaky"]["failures"], counters["test.flaky"]["runs"]) == (2, 1)
    assert "failure #2" in counters["test.flaky"]["last_error"]
    assert (counters["test.steady"]["failures"], counters["test.steady"]["runs"]) == (0, 1)


def test_a_job_stuck_on_an_outage_does_not_delay_the_others(influx):
    async def body(client, config):
        stuck_ran, steady_ran = [], []
        scheduler = Scheduler(client, config, now_ms=Clock(NOW))
        scheduler.add(recording_job("test.stuck", stuck_ran, fail_first=10**6, error=InfluxUnavailable))
        scheduler.add(recording_job("test.steady", steady_ran))
        await scheduler.start()
        try:
            for _ in range(200):
                # the steady job's slot is done (written and recorded), not just started
                if scheduler.counters()["test.steady"]["runs"] and len(stuck_ran) >= 3:
                    break
                await asyncio.sleep(0.02)
            return scheduler.counters(), await scheduler.last_slot("test.steady"), \
                await scheduler.last_slot("test.stuck")
        finally:
            await scheduler.stop()

    counters, steady_last, stuck_last = scenario(influx.url, body)
    assert steady_last == NEWEST and counters["test.steady"]["runs"] == 1
    assert stuck_last is None and counters["test.stuck"]["runs"] == 0
    assert counters["test.stuck"]["failures"] >= 3 and counters["test.stuck"]["skipped"] == 0


def test_a_slot_failing_max_attempts_times_is_skipped_and_recorded(influx):
    async def body(client, config):
        ran: list[int] = []
        scheduler = Scheduler(client, config, now_ms=Clock(NOW))
        scheduler.add(recording_job("test.broken", ran, fail_first=10**6, error=ValueError))
        await scheduler.run_due()
        progress = await stored(client, 'SELECT "failed", "points" FROM "hinode_job"')
        text = render(registry_of(FamiliesCollector("jobs", scheduler.metric_families))).decode()
        return ran, scheduler.counters()["test.broken"], progress, text

    ran, counters, progress, text = scenario(influx.url, body, max_attempts=3)
    assert ran == [NEWEST] * 3
    assert (counters["failures"], counters["skipped"], counters["runs"]) == (3, 1, 0)
    assert progress == [{"time": NEWEST, "failed": True, "points": 0}]
    families = check_exposition(text)
    assert value(families, "hinode_job_failures_total", job="test.broken") == 3


def test_points_outside_their_slot_are_refused(influx):
    async def outside(start, end, ctx):
        return [Point("test_slot", {"device": "d"}, {"value": 1.0}, end)]

    async def body(client, config):
        scheduler = Scheduler(client, config, now_ms=Clock(NOW))
        scheduler.add(Job("test.outside", HALF_HOUR, outside))
        with pytest.raises(ValueError, match="outside the slot"):
            await scheduler.run_slot("test.outside", NEWEST)
        return await stored(client, 'SELECT * FROM "test_slot"')

    assert scenario(influx.url, body) == []
