"""What every simulated charger does, whichever OCPP version it speaks.

A :class:`SimCharger` runs two loops. The *connection* loop (``connection.py``) connects,
boots, sends heartbeats and drains the outbox, and reconnects with back-off when the
connection drops. The *physics* loop advances the connectors on the simulated
clock: commuters plug in and leave, profiles set the offered current, meter values fall
due. The two meet in the outbox: transaction messages (start, meter values, stop) stay
queued while offline and go out late with their original timestamps; other messages
(status, heartbeat) are dropped with the connection, and the current status is sent
again after reconnecting.

``v16.py`` and ``v201.py`` subclass it with the messages of their version.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from datetime import datetime, timedelta

from ocpp.exceptions import OCPPError

from simulators.ocpp.clock import SimClock
from simulators.ocpp.connection import KEEP_MESSAGES, ChargerConnection, ChargerOptions, SentMessage, SkipMessage
from simulators.ocpp.connector import Connector, Transaction
from simulators.ocpp.devicemodel import DeviceModel
from simulators.ocpp.ev import LOCAL_TZ, Car, car_for, visit_on
from simulators.ocpp.metering import samples
from simulators.ocpp.profiles import ProfileStore
from simulators.ocpp.smart import limit_at, parse_profile

log = logging.getLogger("simulators.ocpp")
STOP_TIMEOUT_S = 5.0
MAX_REAL_SLEEP_S = 0.5          # physics wakes at least this often (SoC taper, profile periods)


class SimCharger(ChargerConnection):
    version = ""
    subprotocol = ""

    def __init__(self, charger_id: str, url: str, clock: SimClock, index: int = 1,
                 options: ChargerOptions | None = None):
        self.charger_id = charger_id
        self.url = url.rstrip("/") + "/" + charger_id
        self.clock = clock
        self.index = index
        self.options = options or ChargerOptions()
        opts = self.options
        self.settings = DeviceModel(version=self.version, connectors=opts.connectors, rate_units=opts.rate_units,
                                    phase_switching=opts.phase_switching, meter_interval_s=opts.meter_interval_s)
        self.profiles = ProfileStore()
        offsets = [((index * 7 + phase * 3) % 5) - 2 for phase in range(opts.phases)]
        self.connectors = [
            Connector(number=n, station_phases=opts.phases, max_current_a=opts.max_current_a, ramp_s=opts.ramp_s,
                      switch_delay_s=opts.switch_delay_s, voltages=tuple(230.0 + o for o in offsets),
                      energy_wh=float(1_000_000 + index * 12_345 + n * 1000))
            for n in range(1, opts.connectors + 1)]
        self._init_connection()
        # What tests and the demo look at, besides the connection's ``sent`` and ``connected``.
        self.received: deque[tuple[str, dict]] = deque(maxlen=KEEP_MESSAGES)   # (action, payload) of requests
        self.profiles_received: deque[dict] = deque(maxlen=KEEP_MESSAGES)
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._next_local_tx = 1
        self._reported: dict[int, str] = {}

    # ------------------------------------------------------------------ public
    async def start(self) -> None:
        self._stopping = False
        now = self.clock.now()
        for conn in self.connectors:
            conn.last_t = now
        self._tasks = [asyncio.create_task(self._connection_loop(), name=f"{self.charger_id}-conn"),
                       asyncio.create_task(self._physics_loop(), name=f"{self.charger_id}-physics")]

    async def stop(self) -> None:
        self._stopping = True
        for task in [*self._tasks, *self._background]:
            task.cancel()
        if self._ws is not None:
            await self._ws.close()
        _, stuck = await asyncio.wait(self._tasks, timeout=STOP_TIMEOUT_S)
        if stuck:
            log.warning("%s: %d task(s) did not stop within %ss", self.charger_id, len(stuck), STOP_TIMEOUT_S)
        self._tasks = []

    def connector(self, number: int = 1) -> Connector:
        return self.connectors[number - 1]

    def slot(self, connector: int) -> int:
        """The parking slot (and employee number) of a connector, 1-based across the fleet."""
        return (self.index - 1) * self.options.connectors + connector

    def plug_in(self, connector: int = 1, car: Car | None = None, soc: float = 40.0, badge: bool = True) -> None:
        """A car arrives now (tests and the demo; commuters do this by themselves). The driver
        badges the car's tag, unless ``badge=False`` (a start from the central system, an app)."""
        conn = self.connector(connector)
        if conn.car is not None:
            raise ValueError(f"{self.charger_id} connector {connector} already has a car")
        conn.plug_in(self.clock.now(), car or car_for(self.slot(connector), self.options.seed), soc)
        self._after_change(conn)
        if badge:
            self.spawn(self._authorize_and_start(conn, conn.car.id_tag))

    def unplug(self, connector: int = 1) -> None:
        conn = self.connector(connector)
        if conn.tx is not None:
            self.end_transaction(conn, "EVDisconnected")
        conn.unplug(self.clock.now())
        conn.plugged_by_commute = False
        self._after_change(conn)

    def measurements(self, connector: int = 1) -> dict:
        conn = self.connector(connector)
        conn.advance(self.clock.now())
        return {"status": conn.status, "offered_a": conn.offered_a, "current_a": conn.current_a,
                "phases": conn.phases_in_use, "power_w": conn.power_w, "energy_wh": conn.energy_wh,
                "soc": conn.soc, "transaction": conn.tx.remote_id if conn.tx else None}

    def sent_of(self, action: str) -> list[SentMessage]:
        return [m for m in self.sent if m.action == action]

    def wake(self) -> None:
        self._wake.set()

    def set_available(self, connector: int, available: bool) -> str:
        """ChangeAvailability: "Accepted", or "Scheduled" while a transaction runs (it applies after)."""
        targets = self.connectors if connector == 0 else [self.connector(connector)]
        busy = False
        for conn in targets:
            if conn.tx is not None and not available:
                conn.pending_unavailable = True
                busy = True
            else:
                conn.unavailable, conn.pending_unavailable = not available, False
                self._after_change(conn)
        return "Scheduled" if busy else "Accepted"

    def reset(self, hard: bool) -> None:
        """After answering Reset: transactions end, the charger reboots (reconnects and boots)."""
        reason = "HardReset" if hard else "SoftReset"
        for conn in self.connectors:
            if conn.tx is not None:
                self.end_transaction(conn, reason)
        self._booted = False
        self.close_connection()

    # ------------------------------------------------------------------ central system requests
    # The version-independent part of what the central system asks; v16.py and v201.py read the
    # request's fields and word the answer.

    def accept_charging_profile(self, raw: dict, connector: int, transaction_id_optional: bool) -> str:
        """SetChargingProfile: installs the profile and answers its status, or "Rejected". A
        TxProfile needs a running transaction and its id (1.6 may leave the id out)."""
        if connector > len(self.connectors):
            return "Rejected"
        profile = parse_profile(raw, connector, self.from_peer, self.clock.now())
        if profile.unit not in self.options.rate_units:
            return "Rejected"
        if profile.purpose == "TxProfile":
            tx, given = self.connector(connector).tx, profile.transaction_id
            if tx is None or (given != tx.remote_id and (given is not None or not transaction_id_optional)):
                return "Rejected"
        status = self.profiles.install(profile)
        self.wake()
        return status

    def clear_charging_profiles(self, profile_id: int | None, connector: int | None, purpose: str | None,
                                stack_level: int | None) -> str:
        removed = self.profiles.clear(profile_id, connector, purpose, stack_level)
        self.wake()
        return "Accepted" if removed else "Unknown"

    def connector_to_start(self, number: int | None) -> Connector | None:
        """Where a remote start would begin: a free, available connector with a car (``number``, or any)."""
        candidates = [c for c in self.connectors if c.car is not None and c.tx is None and not c.unavailable
                      and (number is None or c.number == number)]
        return candidates[0] if candidates else None

    def start_remotely(self, conn: Connector, id_tag: str, profile: dict | None,
                       remote_start_id: int | None = None) -> None:
        """After an accepted remote start, if the car is still there and idle: the transaction and
        the profile the request carried, tied to the new transaction's id where it is known already
        (2.0.1; a 1.6 id comes later with the StartTransaction answer)."""
        if conn.car is None or conn.tx is not None:
            return
        self.begin_transaction(conn, id_tag, remote=True, remote_start_id=remote_start_id)
        if profile:
            if conn.tx.remote_id is not None:
                profile = {**profile, "transaction_id": conn.tx.remote_id}
            self.profiles.install(parse_profile(profile, conn.number, self.from_peer, self.clock.now()))

    def connector_with_transaction(self, remote_id: str) -> Connector | None:
        match = [c for c in self.connectors if c.tx and c.tx.remote_id == remote_id]
        return match[0] if match else None

    def send_triggered(self, message: str, conns: list[Connector]) -> None:
        """After an accepted TriggerMessage: the requested message (2.0.1's TransactionEvent is the meter values)."""
        if message == "BootNotification":
            self.enqueue("BootNotification", self.boot_payload)
        elif message == "Heartbeat":
            self.enqueue("Heartbeat", self.heartbeat_payload)
        elif message == "StatusNotification":
            for conn in conns:
                self.enqueue("StatusNotification", lambda conn=conn: self.status_payload(conn))
        elif message in ("MeterValues", "TransactionEvent"):
            for conn in conns:
                conn.advance(self.clock.now())
                self.send_meter_values(conn, "Trigger")

    # ------------------------------------------------------------------ physics
    async def _physics_loop(self) -> None:
        while not self._stopping:
            now = self.clock.now()
            due = now + timedelta(seconds=self.clock.time_scale * MAX_REAL_SLEEP_S)
            for conn in self.connectors:
                try:
                    due = min(due, self._step(conn, now))
                except Exception:       # one bad step must not stop the charger for good
                    log.exception("%s connector %d: simulation step failed", self.charger_id, conn.number)
            self._wake.clear()
            # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancellation that
            # arrives as the wait ends, and this loop would then never stop.
            try:
                async with asyncio.timeout(max(0.0, self.clock.real_until(due)) + 0.001):
                    await self._wake.wait()
            except TimeoutError:
                pass

    def _step(self, conn: Connector, now: datetime) -> datetime:
        """Brings one connector up to ``now``; returns when it next needs attention."""
        due = now + timedelta(days=1)
        if self.options.commute:
            shift = self.clock.model_offset
            due = min(due, self._commute(conn, now + shift) - shift)
        self._apply_profiles(conn, now)
        conn.advance(now)
        self._after_change(conn)
        for moment in (conn.ramp_end(), conn.switching_until):
            if moment is not None and moment > now:
                due = min(due, moment)
        tx = conn.tx
        if tx is not None:
            interval = timedelta(seconds=self.settings.meter_interval_s)
            if not interval:                    # 0: no periodic meter values
                tx.next_sample = None
            elif tx.next_sample is None:
                tx.next_sample = now + interval
            elif tx.next_sample <= now:
                self.send_meter_values(conn, "Sample.Periodic")
                tx.next_sample = now + interval
            if tx.next_sample is not None:
                due = min(due, tx.next_sample)
        return due

    def _commute(self, conn: Connector, now: datetime) -> datetime:
        local = now.astimezone(LOCAL_TZ)
        visit = visit_on(local.date(), self.slot(conn.number), self.options.seed)
        tomorrow = datetime.combine(local.date() + timedelta(days=1), datetime.min.time(), local.tzinfo)
        if visit is None:
            return tomorrow
        if conn.plugged_by_commute and now >= visit.departure:
            self.unplug(conn.number)
            return tomorrow
        if conn.car is None and conn.visit_day != local.date() and visit.arrival <= now < visit.departure:
            conn.visit_day = local.date()
            self.plug_in(conn.number, visit.car, visit.soc_arrival)
            conn.plugged_by_commute = True
        if now < visit.arrival:
            return visit.arrival
        return visit.departure if conn.plugged_by_commute else tomorrow

    def _apply_profiles(self, conn: Connector, now: datetime) -> None:
        amps, wanted, _ = limit_at(self, conn, now)
        if amps != conn.offered_a or wanted != conn.wanted_phases:
            conn.offer(now, amps, wanted)

    def _after_change(self, conn: Connector) -> None:
        status = conn.status
        if self._reported.get(conn.number) != status:
            old = self._reported.get(conn.number)
            self._reported[conn.number] = status
            self.on_status_change(conn, old, status)

    # ------------------------------------------------------------------ sessions
    async def _authorize_and_start(self, conn: Connector, id_tag: str) -> None:
        accepted = True             # offline: the charger's local authorization lets the employee charge
        if self.connected:
            try:
                answer = await self.enqueue("Authorize", lambda: self.authorize_payload(id_tag)).done
                accepted = self.is_authorized(answer)
            except (ConnectionError, asyncio.TimeoutError, OCPPError):
                accepted = True
        if accepted and conn.car is not None and conn.tx is None and not conn.unavailable and conn.car.id_tag == id_tag:
            self.begin_transaction(conn, id_tag)

    def begin_transaction(self, conn: Connector, id_tag: str, remote: bool = False,
                          remote_start_id: int | None = None) -> None:
        now = self.clock.now()
        tx = Transaction(local_id=self._next_local_tx, id_tag=id_tag, started=now, meter_start_wh=conn.energy_wh,
                         remote_start_id=remote_start_id)
        self._next_local_tx += 1
        conn.begin(now, tx)
        self._apply_profiles(conn, now)
        self.on_transaction_started(conn, remote)
        self._after_change(conn)
        self.wake()

    def end_transaction(self, conn: Connector, reason: str) -> None:
        now = self.clock.now()
        ended = conn.end(now)
        if ended is not None:
            self.on_transaction_ended(conn, ended, reason, now)
        if conn.pending_unavailable:
            conn.unavailable, conn.pending_unavailable = True, False
        self.profiles.drop_tx_profiles(conn.number)
        self._after_change(conn)

    def samples(self, conn: Connector, context: str, measurands: list[str] | None = None) -> list[dict]:
        return samples(conn, measurands or self.settings.measurands, context)

    # ------------------------------------------------------------------ version hooks
    def on_connected(self) -> None:
        for conn in self.connectors:
            self.enqueue("StatusNotification", lambda conn=conn: self.status_payload(conn))

    def make_link(self, ws): raise NotImplementedError
    def boot_payload(self): raise NotImplementedError
    def heartbeat_payload(self): raise NotImplementedError
    def authorize_payload(self, id_tag: str): raise NotImplementedError
    def is_authorized(self, response) -> bool: raise NotImplementedError
    def status_payload(self, conn: Connector): raise NotImplementedError
    def on_status_change(self, conn: Connector, old: str | None, new: str) -> None: raise NotImplementedError
    def on_transaction_started(self, conn: Connector, remote: bool) -> None: raise NotImplementedError
    def send_meter_values(self, conn: Connector, context: str) -> None: raise NotImplementedError

    def on_transaction_ended(self, conn: Connector, tx: Transaction, reason: str, now: datetime) -> None:
        raise NotImplementedError


class ChargerLink:
    """Mixed into each version's ``ocpp`` ChargePoint: the charger it serves, which records every
    request it gets, and what an answer's ``@after`` handler still has to do."""

    def __init__(self, charger: SimCharger, ws):
        super().__init__(charger.charger_id, ws, response_timeout=charger.options.response_timeout_s)
        self.charger = charger
        self._after: dict[str, object] = {}

    async def _handle_call(self, msg):
        self.charger.received.append((msg.action, msg.payload))
        return await super()._handle_call(msg)

    def start_accepted(self) -> None:
        """After the answer to an accepted remote start (the handler left its details in ``_after``)."""
        pending = self._after.pop("start", None)
        if pending is not None:
            self.charger.start_remotely(*pending)

    def stop_accepted(self) -> None:
        """After the answer to an accepted remote stop (the handler left the connector in ``_after``)."""
        conn = self._after.pop("stop", None)
        if conn is not None and conn.tx is not None:
            self.charger.end_transaction(conn, "Remote")


__all__ = ["ChargerLink", "ChargerOptions", "SentMessage", "SimCharger", "SkipMessage"]
