"""Periodic jobs of the domains: fixed, aligned time slots, caught up after a down time.

A :class:`Job` computes the points of one slot ``[slot_start_ms, slot_end_ms)``. Slots are
aligned to multiples of ``every_s`` in the job's local time: ``align_offset_s`` is that time's
UTC offset (Asia/Tokyo: ``9 * 3600``, no daylight saving), so a 1-day job's slots start at
local midnight. A slot is due ``delay_s`` after it ends, so late readings are in.

Idempotent by construction: a job gives its points ``ts`` within the slot (normally the slot
start) and tags that depend only on what they describe, so running a slot again overwrites
the same points with the same (or corrected) values.

Progress lives in InfluxDB, not in the process: after a slot's points are written, one point
of measurement ``hinode_job`` (tag ``job``, time = slot start, fields ``slot_end``,
``points``, ``failed``, ``duration_s``) records it. The newest of them is where the job resumes,
after a restart or in another API process running the same scheduler; several processes
may run the same slot at about the same time, which is harmless for the same reason.

Failures: a slot that raises is retried with exponential, jittered back-off
(``retry_initial_s`` .. ``retry_max_s``, ``hinode.backoff``); while InfluxDB is unavailable
it is retried without limit, for anything else up to ``max_attempts`` times, after which it
is skipped (logged at ERROR, recorded with ``failed=true``) so that one bad slot does not
hold back every newer one. Each job runs in its own task: a failing job never delays another.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Awaitable, Callable, Iterable
from zoneinfo import ZoneInfo

from prometheus_client.core import Metric

from cloud.config import SchedulerConfig
from cloud.influx import AsyncInfluxClient, InfluxUnavailable, quote_identifier, quote_string
from cloud.points import Point
from hinode.backoff import Backoff
from hinode.metrics import labelled_counter, labelled_gauge

log = logging.getLogger(__name__)

PROGRESS_MEASUREMENT = "hinode_job"
WRITE_CHUNK_POINTS = 5000


def fixed_utc_offset_s(tz_name: str) -> int:
    """The UTC offset of a zone without daylight saving (Asia/Tokyo -> 32400), for ``align_offset_s``.

    A zone with DST has no single offset, so its local midnight cannot be one slot grid: ValueError.
    """
    zone = ZoneInfo(tz_name)
    year = datetime.now(timezone.utc).year
    offsets = {datetime(year, month, 1, tzinfo=zone).utcoffset() for month in range(1, 13)}
    if len(offsets) != 1:
        raise ValueError(f"time zone {tz_name!r} has daylight saving time: its slots cannot align to one "
                         f"fixed offset; use UTC or a fixed-offset zone")
    (offset,) = offsets
    return int(offset / timedelta(seconds=1))


@dataclass
class JobContext:
    """What a job's ``run`` gets besides its slot."""

    influx: AsyncInfluxClient        # read telemetry, catalog etc. (``query``)
    config: Any                      # the domain's validated config section (its config_model), or None
    job: "Job"
    log: logging.Logger
    # ``await ctx.send_command(site=, agent=, target=, name=, params=, expires_in_s=)``: a command to an
    # edge agent, recorded like POST /api/commands (issued_by = "job:<name>"); None without MQTT.
    send_command: Callable[..., Awaitable[dict]] | None = None


JobRun = Callable[[int, int, JobContext], Awaitable[list[Point]]]


@dataclass(frozen=True)
class Job:
    name: str                        # "<domain>.<what>"; the ``job`` tag of its progress
    every_s: int                     # slot length, e.g. 1800
    run: JobRun
    delay_s: float = 120.0           # wait after the slot ends for late data
    align_offset_s: int = 0          # UTC offset of the local time slots align to (JST: 9 * 3600)
    timeout_s: float = 600.0         # one slot's run; longer counts as a failure
    database: str | None = None      # where its points go (default: influx.database)
    # Points may lie this far after the slot's end (a day-ahead forecast made for the day after
    # next); by default a job writes only inside its own slot, so a rerun overwrites what it wrote.
    points_ahead_s: int = 0

    def __post_init__(self):
        if self.every_s <= 0 or self.delay_s < 0:
            raise ValueError(f"job {self.name!r}: every_s must be > 0 and delay_s >= 0")

    @property
    def every_ms(self) -> int:
        return self.every_s * 1000

    def slot_start(self, t_ms: int) -> int:
        """Start of the slot containing ``t_ms``."""
        offset_ms = self.align_offset_s * 1000
        return (t_ms + offset_ms) // self.every_ms * self.every_ms - offset_ms

    def last_due_slot(self, now_ms: int) -> int:
        """Start of the newest slot that has ended at least ``delay_s`` ago."""
        return self.slot_start(now_ms - int(self.delay_s * 1000) - self.every_ms)


@dataclass
class JobCounters:
    runs: int = 0                    # slots completed
    failures: int = 0                # failed attempts (each retry counts)
    caught_up: int = 0               # slots run late, after a down time or a failure
    skipped: int = 0                 # slots given up after max_attempts, or older than max_catchup_slots
    points: int = 0
    last_slot: int | None = None     # start of the newest completed slot (ms)
    last_error: str = ""


@dataclass
class _Entry:
    job: Job
    config: Any
    counters: JobCounters = field(default_factory=JobCounters)


def _now_ms() -> int:
    return int(time.time() * 1000)


class Scheduler:
    def __init__(self, influx: AsyncInfluxClient, config: SchedulerConfig | None = None, *,
                 now_ms: Callable[[], int] = _now_ms, database: str | None = None,
                 create_database: bool = False, command_state: Any = None):
        self.influx = influx
        # app.state (its ``status`` tracker publishes, its ``reader`` records): jobs may send commands
        self.command_state = command_state
        self.config = config or SchedulerConfig()
        self.now_ms = now_ms
        self.database = database or influx.database
        self._create_database = create_database
        self._entries: dict[str, _Entry] = {}
        self._tasks: list[asyncio.Task] = []

    def add(self, job: Job, config: Any = None) -> None:
        if job.name in self._entries:
            raise ValueError(f"job {job.name!r} is already scheduled")
        self._entries[job.name] = _Entry(job, config)

    @property
    def jobs(self) -> list[Job]:
        return [entry.job for entry in self._entries.values()]

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        if self._tasks:
            return
        if self._create_database:
            try:
                await self.influx.create_database(self.database)
            except Exception as exc:  # the job loops retry their writes anyway
                log.warning("scheduler: CREATE DATABASE %s failed: %s", self.database, exc)
        self._tasks = [asyncio.create_task(self._loop(entry), name=f"job {name}")
                       for name, entry in self._entries.items()]
        log.info("scheduler started: %s", ", ".join(self._entries) or "no jobs")

    async def stop(self) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _loop(self, entry: _Entry) -> None:
        while True:
            try:
                await self._catch_up(entry)
            except asyncio.CancelledError:
                raise
            except Exception:  # e.g. progress unreadable: try again on the next pass
                log.exception("job %s: pass failed", entry.job.name)
            job = entry.job
            next_due_ms = job.last_due_slot(self.now_ms()) + job.every_ms * 2 + int(job.delay_s * 1000)
            wait_s = (next_due_ms - self.now_ms()) / 1000
            await asyncio.sleep(min(max(wait_s, 0.05), self.config.poll_max_s))

    # ------------------------------------------------------------ one pass

    async def run_due(self) -> dict[str, int]:
        """Run every due slot of every job now (concurrently per job); slots completed per job."""
        names = list(self._entries)
        done = await asyncio.gather(*(self._catch_up(self._entries[n]) for n in names))
        return dict(zip(names, done))

    async def _catch_up(self, entry: _Entry) -> int:
        job, counters = entry.job, entry.counters
        due = job.last_due_slot(self.now_ms())
        last = await self.last_slot(job.name)
        if last is not None:
            counters.last_slot = max(counters.last_slot or last, last)
        # Never run before: start with the newest due slot rather than backfilling history.
        first = due if last is None else last + job.every_ms
        if first > due:
            return 0
        missing = (due - first) // job.every_ms + 1
        if missing > self.config.max_catchup_slots:
            left_out = missing - self.config.max_catchup_slots
            first += left_out * job.every_ms
            counters.skipped += left_out
            log.warning("job %s: %d slots missed; running the newest %d (scheduler.max_catchup_slots), "
                        "leaving out %s .. %s", job.name, missing, self.config.max_catchup_slots,
                        _iso(first - left_out * job.every_ms), _iso(first - job.every_ms))
        completed = 0
        for slot in range(first, due + 1, job.every_ms):
            await self._run_with_retries(entry, slot)
            completed += 1
            if slot < due:
                counters.caught_up += 1
        return completed

    async def _run_with_retries(self, entry: _Entry, slot_start_ms: int) -> None:
        job, counters = entry.job, entry.counters
        backoff = Backoff(self.config.retry_initial_s, self.config.retry_max_s)
        attempts = 0
        while True:
            attempts += 1
            started = time.perf_counter()
            try:
                points = await self.run_slot(job.name, slot_start_ms)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                counters.failures += 1
                counters.last_error = f"{type(exc).__name__}: {exc}"[:500]
                unavailable = isinstance(exc, InfluxUnavailable)
                if not unavailable and attempts >= self.config.max_attempts:
                    log.error("job %s slot %s: failed %d times, skipping it: %s", job.name, _iso(slot_start_ms),
                              attempts, counters.last_error)
                    counters.skipped += 1
                    await self._record(job, slot_start_ms, 0, time.perf_counter() - started, failed=True)
                    return
                delay = backoff.next()
                log.warning("job %s slot %s: attempt %d failed (%s); retrying in %.1f s", job.name,
                            _iso(slot_start_ms), attempts, counters.last_error, delay,
                            exc_info=not unavailable)
                await asyncio.sleep(delay)
                continue
            counters.runs += 1
            counters.points += len(points)
            counters.last_slot = max(counters.last_slot or slot_start_ms, slot_start_ms)
            return

    def _command_sender(self, job: Job) -> Callable[..., Awaitable[dict]] | None:
        if self.command_state is None or getattr(self.command_state, "status", None) is None:
            return None
        from cloud.api.commands import issue_command   # late: the API imports the scheduler

        async def send(**command) -> dict:
            command.setdefault("issued_by", f"job:{job.name}")
            return await issue_command(self.command_state, **command)
        return send

    async def run_slot(self, job_name: str, slot_start_ms: int) -> list[Point]:
        """Run one slot once (no retries), write its points and its progress; the points written."""
        entry = self._entries[job_name]
        job = entry.job
        if job.slot_start(slot_start_ms) != slot_start_ms:
            raise ValueError(f"job {job.name}: {slot_start_ms} is not a slot start")
        slot_end_ms = slot_start_ms + job.every_ms
        context = JobContext(self.influx, entry.config, job, logging.getLogger(f"cloud.jobs.{job.name}"),
                             self._command_sender(job))
        started = time.perf_counter()
        points = list(await asyncio.wait_for(job.run(slot_start_ms, slot_end_ms, context), job.timeout_s))
        outside = [p for p in points if not slot_start_ms <= p.ts_ms < slot_end_ms + job.points_ahead_s * 1000]
        if outside:
            raise ValueError(f"job {job.name} slot {_iso(slot_start_ms)}: {len(outside)} point(s) outside the slot, "
                             f"e.g. {outside[0].measurement} at {outside[0].ts_ms}")
        for i in range(0, len(points), WRITE_CHUNK_POINTS):
            await self.influx.write_points(points[i:i + WRITE_CHUNK_POINTS], database=job.database)
        await self._record(job, slot_start_ms, len(points), time.perf_counter() - started)
        return points

    # ------------------------------------------------------------ progress in InfluxDB

    async def _record(self, job: Job, slot_start_ms: int, points: int, duration_s: float, *,
                      failed: bool = False) -> None:
        progress = Point(PROGRESS_MEASUREMENT, {"job": job.name},
                         {"slot_end": slot_start_ms + job.every_ms, "points": points, "failed": failed,
                          "duration_s": round(float(duration_s), 6)}, slot_start_ms)
        await self.influx.write_points([progress], database=self.database)

    async def last_slot(self, job_name: str) -> int | None:
        """Start of the newest slot recorded as done (by any process), or None."""
        (series,) = await self.influx.query(
            f'SELECT last("slot_end") FROM {quote_identifier(PROGRESS_MEASUREMENT)} '
            f'WHERE "job" = {quote_string(job_name)}', database=self.database)
        rows = [row for s in series for row in s.rows()]
        return int(rows[0]["time"]) if rows else None

    # ------------------------------------------------------------ metrics

    def counters(self) -> dict[str, dict]:
        return {name: dict(vars(entry.counters)) for name, entry in self._entries.items()}

    def metric_families(self) -> Iterable[Metric]:
        """The jobs' Prometheus families (joined into the API's /metrics registry)."""
        entries = sorted(self._entries.items())
        for metric, help_text in (("runs", "Slots completed, by job"),
                                  ("failures", "Failed slot attempts, by job"),
                                  ("caught_up", "Slots run late (after a down time or failure), by job"),
                                  ("skipped", "Slots left out or given up, by job"),
                                  ("points", "Points written, by job")):
            yield labelled_counter(f"hinode_job_{metric}_total", help_text, ("job",),
                                   (((name,), getattr(e.counters, metric)) for name, e in entries))
        yield labelled_gauge("hinode_job_last_slot_timestamp_seconds", "Start of the newest completed slot "
                             "(Unix time), by job", ("job",),
                             (((name,), e.counters.last_slot / 1000) for name, e in entries
                              if e.counters.last_slot is not None))


def _iso(ms: int | None) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
