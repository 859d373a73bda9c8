"""Scheduling: one task per endpoint polls its devices one request at a time.

Each device is polled every ``interval_s`` against the monotonic clock: the next due
time advances by whole intervals from the previous one (no drift); devices sharing an
interval are read back to back in one burst per interval, and ticks that a
slow poll made us miss are skipped and counted as ``overrun`` instead of burst-read.
A failing device is retried after an exponentially growing, jittered back-off
(``hinode.backoff``, from the source's ``backoff`` keys) while the other devices on the
endpoint keep their schedule; a lost connection takes every device of the endpoint
offline until a reconnect (again with back-off) succeeds.

A poll (all block reads of one device) and a reconnect hold the link's lock, so a write
command waits for the poll in flight and the next poll waits for the write's read-back.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import AsyncIterator, Awaitable, Callable, Protocol

from edge_agent.sources.base import DeviceBatch, SourceContext, now_ms
from edge_agent.sources.modbus.config import Backoff as BackoffConfig, TransportConfig
from edge_agent.sources.modbus.link import DeviceError, Endpoint, LinkDown, ModbusLink
from hinode.backoff import Backoff

QUEUE_BATCHES = 10_000      # batches held for a slow consumer before the pollers wait for it


class DevicePoller(Protocol):
    device: str
    interval_s: float

    def on_reconnect(self) -> None:
        """The link was (re)opened: forget anything learned from the device (e.g. its model map)."""

    async def poll(self, link: ModbusLink, ts: int) -> DeviceBatch:
        """Read the device once; every reading stamped ``ts``. Raises DeviceError or LinkDown."""


def retry_delay(config: BackoffConfig) -> Backoff:
    """The delays of one retry loop (a device or the link): ``initial_s`` doubling up to ``max_s``,
    each drawn in the upper half of its step so the devices of many agents do not retry in lockstep;
    ``reset()`` after a success."""
    return Backoff(initial_s=config.initial_s, max_s=config.max_s)


@dataclass
class _DeviceSchedule:
    poller: DevicePoller
    retry: Backoff
    next_due: float = 0.0
    failing: bool = False


@dataclass
class EndpointRunner:
    link: ModbusLink
    pollers: list[DevicePoller]
    backoff: BackoffConfig
    context: SourceContext
    emit: Callable[[DeviceBatch], Awaitable[None]]
    schedules: list[_DeviceSchedule] = field(init=False)

    def __post_init__(self) -> None:
        self.schedules = [_DeviceSchedule(p, retry_delay(self.backoff)) for p in self.pollers]
        self._link_retry = retry_delay(self.backoff)
        self.stopped = False

    async def run(self) -> None:
        try:
            while not self.stopped:
                if not self.link.connected:
                    await self._reconnect()
                await self._poll_next()
        finally:
            self.link.close()

    async def _connect(self) -> bool:
        async with self.link.lock:
            return await self.link.connect()

    async def _reconnect(self) -> None:
        while not await self._connect():
            for schedule in self.schedules:
                self.context.count_error(schedule.poller.device, "connect")
                self.context.device_down(schedule.poller.device, f"cannot connect to {self.link.endpoint}")
            await asyncio.sleep(self._link_retry.next())
        self._link_retry.reset()
        self.context.log.info("%s: connected to %s", self.context.source_name, self.link.endpoint)
        now = time.monotonic()
        for schedule in self.schedules:
            schedule.poller.on_reconnect()
            schedule.retry.reset()
            schedule.failing = False
            # Devices with the same interval are polled back to back, one burst per interval:
            # the link is sequential either way, and one wake-up per interval instead of one
            # per device costs about a fifth of the CPU (a cold event-loop wake-up per request
            # costs ~490 us of CPU against ~90 us for a request in a burst, bench/README.md).
            schedule.next_due = now

    async def _poll_next(self) -> None:
        schedule = min(self.schedules, key=_due)
        delay = schedule.next_due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        poller = schedule.poller
        started = time.monotonic()
        try:
            async with self.link.lock:
                batch = await poller.poll(self.link, now_ms())
        except LinkDown as exc:
            self.link.close()
            for other in self.schedules:
                self.context.count_error(other.poller.device, "connect")
                self.context.device_down(other.poller.device, f"connection lost: {exc}")
            return
        except DeviceError as exc:
            self._failed(schedule, exc.code, str(exc))
            return
        except Exception as exc:       # a library surprise must not stop the whole endpoint
            self.context.log.exception("%s: device %s: unexpected error while polling", self.context.source_name,
                                       poller.device)
            self._failed(schedule, "internal", f"unexpected error: {exc!r}")
            return
        self.context.device_up(poller.device)
        schedule.retry.reset()
        interval = poller.interval_s
        if schedule.failing:
            schedule.failing = False
            schedule.next_due = started + interval
        else:
            schedule.next_due += interval
            now = time.monotonic()
            if schedule.next_due <= now:
                missed = int((now - schedule.next_due) // interval) + 1
                schedule.next_due += missed * interval
                self.context.count_error(poller.device, "overrun", missed)
        if batch.readings:
            await self.emit(batch)

    def _failed(self, schedule: _DeviceSchedule, code: str, message: str) -> None:
        self.context.count_error(schedule.poller.device, code)
        self.context.device_down(schedule.poller.device, message)
        schedule.failing = True
        schedule.next_due = time.monotonic() + schedule.retry.next()


def _due(schedule: _DeviceSchedule) -> float:
    return schedule.next_due


class PollingSource:
    """Shared body of the modbus and sunspec sources: endpoint tasks feeding one queue.

    Subclasses build ``self.groups``: endpoint -> pollers, and register their devices.
    """

    type_name = ""

    def __init__(self, config: TransportConfig, context: SourceContext):
        self.config = config
        self.context = context
        self.groups: dict[Endpoint, list[DevicePoller]] = {}
        self.links: list[ModbusLink] = []
        self.link_of: dict[str, ModbusLink] = {}          # device id -> the link it is polled on
        self._queue: asyncio.Queue[DeviceBatch | None] = asyncio.Queue(maxsize=QUEUE_BATCHES)
        self._tasks: list[asyncio.Task] = []
        self._runners: list[EndpointRunner] = []
        self._closing = False

    async def connect(self) -> None:
        """Start one polling task per endpoint; unreachable endpoints retry in the background."""
        if self._tasks:
            return
        for endpoint, pollers in self.groups.items():
            link = ModbusLink(endpoint, self.config.timeout_s, self.config.retries,
                              self.config.pause_between_requests_ms / 1000, self.context.log)
            self.links.append(link)
            self.link_of.update((poller.device, link) for poller in pollers)
            runner = EndpointRunner(link, pollers, self.config.backoff, self.context, self._queue.put)
            self._runners.append(runner)
            task = asyncio.create_task(runner.run(), name=f"{self.context.source_name}:{endpoint}")
            task.add_done_callback(self._runner_done)
            self._tasks.append(task)

    def _runner_done(self, task: asyncio.Task) -> None:
        if not task.cancelled() and task.exception() is not None:
            self.context.log.error("%s: endpoint task %s stopped: %r", self.context.source_name,
                                   task.get_name(), task.exception())

    async def readings(self) -> AsyncIterator[DeviceBatch]:
        while True:
            if self._closing and self._queue.empty():
                return
            batch = await self._queue.get()
            if batch is None:
                return
            yield batch

    async def close(self) -> None:
        self._closing = True
        for runner in self._runners:
            runner.stopped = True
        # Python 3.11's wait_for (used inside pymodbus) can swallow a cancellation that
        # arrives as a response lands; cancel again until every task has really ended.
        while pending := [task for task in self._tasks if not task.done()]:
            for task in pending:
                task.cancel()
            await asyncio.wait(pending, timeout=0.5)
        self._tasks.clear()
        for link in self.links:
            link.close()
        try:
            self._queue.put_nowait(None)
        except asyncio.QueueFull:
            pass        # the reader drains what is left and then sees _closing
