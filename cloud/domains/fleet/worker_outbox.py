"""Points waiting for InfluxDB: a bounded queue of line-protocol lines and the task that writes them.

InfluxDB down (unreachable, 5xx, 404 database not found, refused credentials) is waited out: the same
batch is retried with jittered back-off (hinode.backoff) and nothing is taken off the queue meanwhile.
The queue holds at most ``max_lines``; beyond it the oldest lines are dropped and counted
(``hinode_fleet_points_dropped_total{reason="queue_full"}``), so memory stays bounded in a long outage.
A batch InfluxDB refuses (400: e.g. a field type conflict) is retried line by line so only the refused
lines are dropped (``reason="refused"``), never the good ones with them.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, deque
from typing import Iterable

from cloud.influx import AsyncInfluxClient, InfluxAuthError, InfluxRejected, InfluxUnavailable
from cloud.points import Point, encode_point
from hinode.backoff import Backoff

log = logging.getLogger(__name__)


class PointOutbox:
    def __init__(self, influx: AsyncInfluxClient, *, max_lines: int, batch_max: int, retry_initial_s: float,
                 retry_max_s: float, create_database: bool = True):
        self.influx = influx
        self.max_lines = max_lines
        self.batch_max = batch_max
        self._lines: deque[str] = deque()
        self._backoff = Backoff(retry_initial_s, retry_max_s)
        self._create_database = create_database
        self._ready = asyncio.Event()
        self.written_total = 0
        self.dropped: Counter[str] = Counter()     # reason -> lines
        self.retries_total = 0
        self.influx_up = True
        self._in_flight = 0      # lines at the head of the queue being written now

    def __len__(self) -> int:
        return len(self._lines)

    def add(self, points: Iterable[Point]) -> None:
        for point in points:
            try:
                line = encode_point(point)
            except (TypeError, ValueError) as exc:
                self.dropped["unencodable"] += 1
                log.error("fleet point not stored: %s", exc)
                continue
            self._lines.append(line)
        self._trim()
        if self._lines:
            self._ready.set()

    def restore(self, lines: list[str]) -> None:
        """Lines saved by a previous run go first."""
        self._lines.extendleft(reversed([line for line in lines if isinstance(line, str)]))
        self._trim()
        if self._lines:
            self._ready.set()

    def pending(self) -> list[str]:
        return list(self._lines)

    def _trim(self) -> None:
        excess = len(self._lines) - self.max_lines
        if excess > 0:
            for _ in range(excess):
                self._lines.popleft()
            self._in_flight = max(0, self._in_flight - excess)   # those were dropped, not to be popped again
            self.dropped["queue_full"] += excess
            log.warning("fleet outbox full (%d points): dropped the %d oldest", self.max_lines, excess)

    async def run(self) -> None:
        """Write until cancelled."""
        while True:
            await self._ready.wait()
            if not self._lines:
                self._ready.clear()
                continue
            batch = [self._lines[i] for i in range(min(self.batch_max, len(self._lines)))]
            self._in_flight = len(batch)
            try:
                await self.influx.write_lines(batch)
            except (InfluxUnavailable, InfluxAuthError) as exc:
                await self._wait_out(exc)
                continue
            except InfluxRejected as exc:
                log.warning("InfluxDB refused a batch of %d fleet points (%s); writing them one by one", len(batch),
                            exc)
                await self._one_by_one(batch)
            else:
                self.written_total += len(batch)
            self._done()

    async def _wait_out(self, exc: Exception) -> None:
        self.retries_total += 1
        if self.influx_up:
            log.warning("fleet points not written (%s); %d waiting, retrying with back-off", exc, len(self._lines))
        self.influx_up = False
        if self._create_database and getattr(exc, "status", None) == 404:
            try:
                await self.influx.create_database(self.influx.database)
            except Exception as create_exc:   # noqa: BLE001 - still unavailable: the retry below says so
                log.debug("CREATE DATABASE failed: %s", create_exc)
        await asyncio.sleep(self._backoff.next())

    async def _one_by_one(self, batch: list[str]) -> None:
        for line in batch:
            while True:
                try:
                    await self.influx.write_lines([line])
                    self.written_total += 1
                    break
                except InfluxRejected as exc:
                    self.dropped["refused"] += 1
                    log.error("InfluxDB refused a fleet point (%s): %s", exc, line[:200])
                    break
                except (InfluxUnavailable, InfluxAuthError) as exc:
                    await self._wait_out(exc)

    def _done(self) -> None:
        for _ in range(min(self._in_flight, len(self._lines))):
            self._lines.popleft()
        self._in_flight = 0
        if not self.influx_up:
            log.info("fleet points are written again")
        self.influx_up = True
        self._backoff.reset()

    async def flush(self, timeout_s: float) -> bool:
        """Wait until the queue is empty (True) or ``timeout_s`` passed (False)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while self._lines and loop.time() < deadline:
            await asyncio.sleep(0.05)
        return not self._lines
