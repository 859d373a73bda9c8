"""The OCPP source: a local central system whose chargers connect to the agent.

``connect()`` opens the session store and the WebSocket port (a missing charger is no
error; a port that cannot be bound is). Batches come from the chargers' events through
one queue. A session record is deleted from the store only after ``readings()`` handed it
to the agent and the outbox had time to commit it (``RECORD_COMMIT_S``); a restart before
that emits it again with the same timestamp and values (the cloud stores the same point).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import AsyncIterator, ClassVar

from edge_agent.sources.base import CommandOutcome, DeviceBatch, SourceContext
from edge_agent.sources.ocpp.charger import Charger, session_batch
from edge_agent.sources.ocpp.commands import OcppCommands
from edge_agent.sources.ocpp.config import ChargerConfig, Config
from edge_agent.sources.ocpp.model import OcppVersion
from edge_agent.sources.ocpp.server import SOURCE_KEY, Admission, CentralSystem
from edge_agent.sources.ocpp.sessions import SessionStore
from hinode.contract import Command, DeviceKind

# The agent's outbox commits what readings() yields within ~100 ms; keep a record this long after.
RECORD_COMMIT_S = 2.0
BOOT_STATUS = {"pending": "Pending", "rejected": "Rejected", "accept": "Accepted"}
COALESCE_S = 0.02      # how long a batch waits for another of the same instant before it goes


def same_point(a: DeviceBatch, b: DeviceBatch) -> bool:
    """Whether ``b`` would land on a point of ``a`` in InfluxDB (same series, a shared timestamp)."""
    return (a.device == b.device and a.kind == b.kind and a.meta == b.meta and a.profile == b.profile
            and not {r.ts for r in a.readings}.isdisjoint(r.ts for r in b.readings))


def merged(a: DeviceBatch, b: DeviceBatch) -> DeviceBatch:
    """``a`` with ``b``'s readings; where both have a metric at the same ts, ``b``'s (the later) wins."""
    newer = {(r.ts, r.metric) for r in b.readings}
    readings = [r for r in a.readings if (r.ts, r.metric) not in newer] + list(b.readings)
    return DeviceBatch(device=a.device, kind=a.kind, profile=a.profile, readings=readings, meta=a.meta)


class Source:
    type_name: ClassVar[str] = "ocpp"

    def __init__(self, config: Config, context: SourceContext):
        self.config = config
        self.context = context
        self.store = SessionStore(config.default_sessions_db(context.state_dir))
        self.chargers: dict[str, Charger] = {}
        self.central = CentralSystem(config, self._admit, context.count_error, self._on_disconnect)
        self.commands = OcppCommands(self)
        self.control = None
        self._queue: asyncio.Queue[DeviceBatch | None] = asyncio.Queue()
        self._delivered: list[tuple[float, str]] = []     # (monotonic, transaction id) of yielded records
        self._stop = asyncio.Event()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        for charger in config.chargers:
            context.register(charger.id, DeviceKind.CHARGER)

    @property
    def port(self) -> int:
        return self.central.port

    @property
    def db_path(self) -> Path:
        return self.store.path

    async def connect(self) -> None:
        self.store.open()
        self.store.seed_tags_once(self.config.auth_list)
        for charger in self.config.chargers:        # known before they connect: commands can set modes
            self.chargers[charger.id] = self._new_charger(charger, OcppVersion.V16.value, accepted=True)
        for record in self.store.pending_records():
            self._queue.put_nowait(session_batch(record))
        if self.config.controller is not None:
            from edge_agent.sources.ocpp.control_loop import ControlLoop
            self.control = ControlLoop(self.config, self.context, self.chargers, self.store, self._emit)
        try:
            await self.central.start()
        except OSError:
            self.store.close()
            raise
        if self.control is not None:
            self._tasks.append(asyncio.create_task(self.control.run(self._stop, self._wake), name="ocpp-controller"))

    async def readings(self) -> AsyncIterator[DeviceBatch]:
        """Batches as the chargers' events make them; two of one connector with the same timestamp
        (a StatusNotification and a TransactionEvent of the same instant) are merged into one: two
        envelopes would be one InfluxDB point, and the second's seq would hide the first's."""
        held: DeviceBatch | None = None
        while True:
            self._forget_committed_records()
            try:
                async with asyncio.timeout(COALESCE_S if held else RECORD_COMMIT_S):
                    batch = await self._queue.get()
            except TimeoutError:
                batch = False
            if held is not None and batch and same_point(held, batch):
                held = merged(held, batch)
                continue
            if held is not None:
                yield held
                if held.kind == DeviceKind.CHARGING_SESSION:
                    self._delivered.append((time.monotonic(), held.readings[0].value))
            held = batch or None
            if batch is None:
                return

    def _forget_committed_records(self, everything: bool = False) -> None:
        cutoff = time.monotonic() - RECORD_COMMIT_S
        keep = []
        for at, transaction_id in self._delivered:
            if everything or at <= cutoff:
                self.store.record_delivered(str(transaction_id))
            else:
                keep.append((at, transaction_id))
        self._delivered = keep

    async def close(self) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        self._wake.set()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.central.stop()
        if self.store._db is not None:
            # Records yielded at least RECORD_COMMIT_S ago are in the outbox; the rest go out again next start.
            self._forget_committed_records()
            self.store.close()
        self._queue.put_nowait(None)

    async def handle_command(self, command: Command, device: str | None) -> CommandOutcome:
        return await self.commands.handle(command, device)

    # ------------------------------------------------------------ for the controller and commands

    def add_pv_energy(self, charger: str, connector: int, kwh: float) -> bool:
        return self.store.add_pv_energy(charger, connector, kwh)

    async def control_now(self) -> None:
        self._wake.set()

    @property
    def control_idle(self) -> bool:
        """No controller step running or asked for (tests step with simulated time once it is)."""
        return self.control is None or not (self._wake.is_set() or self.control.stepping)

    def _emit(self, batch: DeviceBatch) -> None:
        self._queue.put_nowait(batch)

    # ------------------------------------------------------------ chargers connecting

    def _admit(self, charger_id: str, version: str) -> Admission:
        config = self.config.charger(charger_id)
        accepted = True
        if config is None:
            policy = self.config.unknown_chargers
            self.context.count_error(SOURCE_KEY, f"unknown_charger_{policy}")
            self.context.log.warning("%s: unknown charger %s connected; boot answered %s", self.context.source_name,
                                     charger_id, BOOT_STATUS[policy])
            accepted = policy == "accept"
            config = ChargerConfig(id=charger_id)
            if accepted:
                self.context.register(charger_id, DeviceKind.CHARGER)
        charger = self.chargers.get(charger_id) if accepted else None
        if charger is None:
            charger = self._new_charger(config, version, accepted)
            if accepted:
                self.chargers[charger_id] = charger
        charger.version = version
        settings = self.config.boot_settings("Accepted" if accepted else BOOT_STATUS[self.config.unknown_chargers])
        return Admission(events=charger, settings=settings)

    def _new_charger(self, config: ChargerConfig, version: str, accepted: bool) -> Charger:
        charger = Charger(config.id, config, version, context=self.context, store=self.store, emit=self._emit,
                          accepted=accepted, authorize_unknown_tags=self.config.authorize_unknown_tags,
                          measurand_list=self.config.measurands, on_link=self._on_link)
        charger.accept_data_transfer = self.config.data_transfer == "accept"
        return charger

    def _on_link(self, charger: Charger) -> None:
        if self.control is not None:
            self.control.forget(charger.id)
            self._wake.set()

    def _on_disconnect(self, charger_id: str, reason: str) -> None:
        charger = self.chargers.get(charger_id)
        if charger is not None:
            charger.on_disconnect(reason)

