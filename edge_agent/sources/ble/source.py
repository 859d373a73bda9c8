"""The BLE vitals source of one visit kit: devices -> VisitBook -> (nurse confirms) -> outbox.

``connect()`` opens the VisitBook (SQLite in the agent's state_dir), starts the nurse's page, and
starts the radio task: open the link (retried with back-off while the adapter is missing), one
shared scanner, one :class:`DeviceSession` task per allow-listed device. Decoded measurements go
into the VisitBook, never straight out: ``readings()`` yields only what a nurse confirmed inside a
visit, one DeviceBatch per reading with the patient's pseudonym, and marks it forwarded once the
agent has taken it into the outbox.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import AsyncIterator

from edge_agent.sources.base import DeviceBatch, SourceContext, wait_event
from edge_agent.sources.ble.config import Config
from edge_agent.sources.ble.device_session import DeviceSession
from edge_agent.sources.ble.glucose_records import DeviceMemory
from edge_agent.sources.ble.link import GattLink, LinkError, open_link
from edge_agent.sources.ble.measurement import Measurement, to_readings
from edge_agent.sources.ble.models import load_model
from edge_agent.sources.ble.scanner import Scanner
from edge_agent.sources.ble.schedule import ScheduleError
from edge_agent.sources.ble.visits import VisitBook
from hinode.backoff import Backoff
from hinode.contract import DeviceKind, MetricInfo
from hinode.vitals import ABSENT_SUFFIX, STATUS_SUFFIX, TEXT_FIELDS, TIME_SOURCE_FIELD, VISIT_FIELD, \
    VITAL_METRICS, Category, metrics_of

SOURCE_KEY = "_source"
RECHECK_S = 1.0                  # readings() looks at the book at least this often
FIRST_ATTEMPT_WAIT_S = 5.0       # connect() waits this long for the adapter's first answer


def metric_infos(category: Category) -> list[MetricInfo]:
    """What a device of ``category`` sends (units from hinode.vitals), for the cloud's catalog."""
    infos = [MetricInfo(metric=m, unit=VITAL_METRICS[m].unit) for m in metrics_of(category)]
    infos += [MetricInfo(metric=m + ABSENT_SUFFIX) for m in metrics_of(category)]
    infos.append(MetricInfo(metric=category.value + STATUS_SUFFIX))
    infos += [MetricInfo(metric=f) for f, c in TEXT_FIELDS.items() if c == category]
    infos += [MetricInfo(metric=VISIT_FIELD), MetricInfo(metric=TIME_SOURCE_FIELD)]
    return infos


class Source:
    type_name = "ble"

    def __init__(self, config: Config, context: SourceContext):
        self.config = config
        self.context = context
        self.log = context.log
        self.state_dir = Path(context.state_dir) if context.state_dir is not None else Path.cwd()
        self.profiles = {d.id: d.model or f"ble-{d.category.value}" for d in config.devices}
        for device in config.devices:
            context.register(device.id, DeviceKind.VITALS)
            context.describe(device.id, self.profiles[device.id], metric_infos(device.category))
        self.book: VisitBook | None = None
        self.page = None
        self.link: GattLink | None = None
        self.scanner: Scanner | None = None
        self.sessions: dict[str, DeviceSession] = {}
        self._tasks: list[asyncio.Task] = []
        self._radio_task: asyncio.Task | None = None
        self._attempted = asyncio.Event()
        self._closed = False

    # ------------------------------------------------------------------ life cycle

    async def connect(self) -> None:
        if self.book is not None:
            return
        name = self.config.name
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.book = self._open_book()
        if self.config.page.enabled:
            from edge_agent.sources.ble.page import NursePage

            self.page = NursePage(self.config.page, self.book, self.device_status, self.log)
            await self.page.start()
        self._radio_task = asyncio.create_task(self._radio(), name=f"ble:{name}")
        await wait_event(self._attempted, FIRST_ATTEMPT_WAIT_S)

    def _open_book(self) -> VisitBook:
        """The VisitBook; a schedule file broken since the config was checked leaves the kit usable
        (unscheduled visits only) instead of stopping it."""
        path = self.state_dir / f"ble-{self.config.name}-visits.sqlite"
        page = self.config.page
        try:
            return VisitBook(path, self.config.kit, schedule_file=page.schedule_file, timezone=self.config.timezone,
                             keep_days=page.keep_days)
        except ScheduleError as exc:
            self.context.count_error(SOURCE_KEY, "schedule")
            self.log.error("%s: %s; only unscheduled visits until it is fixed and the agent restarted",
                           self.config.name, exc)
            return VisitBook(path, self.config.kit, timezone=self.config.timezone, keep_days=page.keep_days)

    async def readings(self) -> AsyncIterator[DeviceBatch]:
        while not self._closed:
            if self._radio_task is not None and self._radio_task.done() and not self._radio_task.cancelled():
                exc = self._radio_task.exception()
                if exc is not None:
                    raise exc                    # a bug in the radio task: the agent restarts the source
            self.book.changed.clear()            # before taking: a confirm while we yield wakes the wait
            for confirmed in self.book.take_confirmed():
                yield DeviceBatch(confirmed.device, DeviceKind.VITALS, confirmed.profile,
                                  to_readings(confirmed.measurement, confirmed.ts_ms, visit_id=confirmed.visit_id,
                                              time_source=confirmed.time_source),
                                  meta={"subject": confirmed.pseudonym})
                self.book.mark_forwarded([confirmed.id])
            await wait_event(self.book.changed, RECHECK_S)

    async def close(self) -> None:
        self._closed = True
        tasks = [t for t in [self._radio_task, *self._tasks] if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        await self._stop_radio()
        if self.page is not None:
            page, self.page = self.page, None
            await page.stop()
        if self.book is not None:
            self.book.close()

    # ------------------------------------------------------------------ radio

    async def _radio(self) -> None:
        """Open the link, run the scanner and the sessions; when the radio is lost, start over."""
        memory = DeviceMemory(self.state_dir / f"ble-{self.config.name}-devices.json")
        while True:
            link = await self._open_link()
            self.link = link
            self.scanner = Scanner(link, self.log, self._adapter_failed)
            self.scanner.start()
            self.sessions = {}
            for device in self.config.devices:
                session = DeviceSession(device, self.config, link, self.scanner, self.context, self._intake,
                                        memory, self.profiles[device.id])
                self.sessions[device.id] = session
                self._tasks.append(asyncio.create_task(self._supervise(session), name=f"ble:{device.id}"))
            self._attempted.set()
            await self.scanner.lost.wait()
            self.context.count_error(SOURCE_KEY, "radio_lost")
            tasks, self._tasks = self._tasks, []
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self._stop_radio()
            for device in self.config.devices:
                self.context.device_down(device.id, "adapter: the radio stopped answering; opening it again")

    async def _open_link(self) -> GattLink:
        backoff = Backoff(self.config.reconnect.initial_s, self.config.reconnect.max_s)
        while True:
            link = open_link(self.config.stack, hci=self.config.hci, adapter=self.config.adapter,
                             key_store=self.state_dir / f"ble-{self.config.name}-keys.json",
                             use_start_notify=self._use_start_notify())
            try:
                await link.open()
                return link
            except LinkError as exc:
                self._adapter_failed(exc)
                self._attempted.set()
                await asyncio.sleep(backoff.next())

    async def _supervise(self, session: DeviceSession) -> None:
        """A session never ends; if it has a bug, the device is offline and the session starts again."""
        while True:
            try:
                await session.run()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.context.count_error(session.device.id, "internal")
                self.context.device_down(session.device.id, f"internal: {type(exc).__name__}")
                self.log.error("%s: device %s: session failed; restarting it", self.config.name,
                               session.device.id, exc_info=True)
                await asyncio.sleep(self.config.reconnect.max_s)

    def _use_start_notify(self) -> bool:
        """bleak: a configured model that needs StartNotify switches it on for the kit's link."""
        return any(load_model(d.model, self.config._profile_dirs).bleak.use_start_notify
                   for d in self.config.devices if d.model)

    def _adapter_failed(self, exc: LinkError) -> None:
        self.context.count_error(SOURCE_KEY, exc.code)
        for device in self.config.devices:
            self.context.device_down(device.id, f"{exc.code}: {exc.message}"[:400])

    async def _stop_radio(self) -> None:
        if self.scanner is not None:
            await self.scanner.stop()
            self.scanner = None
        if self.link is not None:
            link, self.link = self.link, None
            try:
                await link.close()
            except Exception:
                self.log.debug("closing the BLE link", exc_info=True)

    # ------------------------------------------------------------------ the VisitBook side

    def _intake(self, device: str, profile: str, measurement: Measurement, ts_ms: int, time_source: str) -> None:
        """Hold a reading for the nurse. A heart-rate strap notifies every second: its newest reading
        replaces the one still waiting, so the nurse sees one heart-rate reading per device."""
        self.book.offer(device, profile, measurement, ts_ms, time_source,
                        replace_held=measurement.category is Category.HEART_RATE)

    def device_status(self) -> list[dict]:
        """The kit's devices for the nurse's page: id, category, online, what is wrong."""
        status = []
        for device in self.config.devices:
            health = self.context.devices.get(device.id)
            status.append({"device": device.id, "category": device.category.value,
                           "online": bool(health and health.online), "error": health.error if health else "",
                           "since_ms": health.since_ms if health else 0})
        return status
