"""The network side of a simulated charger: connect, boot, heartbeat, the outbox, reconnects.

:class:`ChargerConnection` connects to ``<url>/<id>`` offering one OCPP subprotocol (Basic
auth with the charger id as user when a password is set, TLS for ``wss://``), boots, sends
heartbeats and drains the outbox, one CALL at a time. When the connection drops it
reconnects with back-off; transaction messages (``keep=True``) stay queued and go out late
with the timestamps they were made with, other messages are dropped.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import random
import ssl
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

import websockets
from ocpp.charge_point import remove_nones, serialize_as_dict
from ocpp.exceptions import OCPPError

from hinode.backoff import Backoff
from simulators.ocpp.clock import SimClock, parse_ocpp_time

log = logging.getLogger("simulators.ocpp")
KEEP_MESSAGES = 2000            # sent / received messages kept for inspection, per charger


class SkipMessage(Exception):
    """Raised by a message builder when the message no longer makes sense (never started)."""


@dataclass
class ChargerOptions:
    """How one simulated charger is built. Times marked *sim* are simulated seconds."""

    connectors: int = 1                         # 2.0.1: EVSEs with one connector each
    phases: int = 3                             # how the charger is wired
    max_current_a: float = 32.0                 # per phase, the hardware limit
    phase_switching: bool = False               # obeys numberPhases (ConnectorSwitch3to1PhaseSupported)
    rate_units: tuple[str, ...] = ("A", "W")    # accepted charging rate units
    meter_interval_s: int = 60                  # sim; until the CSMS sets MeterValueSampleInterval
    ramp_s: float = 5.0                         # sim; time to reach a new current limit
    switch_delay_s: float = 120.0               # sim; pause when the phase count changes
    commute: bool = True                        # commuters arrive and leave by themselves
    seed: int = 0
    password: str | None = None                 # HTTP Basic auth, user = charger id
    cafile: str | None = None                   # CA for wss://
    vendor: str = "hinode"
    model: str = "SIM-AC22"
    reconnect_initial_s: float = 0.5            # real seconds, back-off from here ...
    reconnect_max_s: float = 30.0               # ... up to here
    response_timeout_s: float = 30.0            # real seconds to wait for a CALLRESULT


@dataclass
class SentMessage:
    action: str
    request: Any                    # the ocpp call dataclass
    created: datetime               # simulated time the message was made
    offline: bool                   # made while the charger was disconnected
    response: Any = None

    @property
    def payload(self) -> dict:
        """The request as a snake_case dict (made on demand: serialising every message costs)."""
        return remove_nones(serialize_as_dict(self.request))


@dataclass
class Outgoing:
    action: str
    build: Callable[[], Any]
    keep: bool
    created: datetime
    offline: bool
    on_response: Callable[[Any], None] | None = None     # runs before the next message is built
    done: asyncio.Future = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class ChargerConnection:
    """Base of :class:`simulators.ocpp.station.SimCharger`; needs its ``charger_id``, ``url``,
    ``clock``, ``options``, ``settings`` and the version hooks ``make_link``, ``boot_payload``,
    ``heartbeat_payload`` and ``on_connected``."""

    charger_id: str
    url: str
    clock: SimClock
    options: "ChargerOptions"

    def _init_connection(self) -> None:
        self.connected = False
        self.boot_status: str | None = None
        self.connects = 0                       # connections that were opened
        self.connect_attempts = 0
        self.last_error = ""                    # why the last connection failed or ended
        self.sent: deque[SentMessage] = deque(maxlen=KEEP_MESSAGES)
        self.heartbeat_interval_s = 300.0
        self._booted = False
        self._stopping = False
        self._outbox: deque[Outgoing] = deque()
        self._outbox_ready = asyncio.Event()
        self._ws = None
        self._reader: asyncio.Task | None = None
        self._peer_offset = timedelta(0)
        self._background: set[asyncio.Task] = set()
        self._ids = random.Random()

    def spawn(self, coro) -> asyncio.Task:
        """A fire-and-forget task that is kept referenced until it ends."""
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    # ------------------------------------------------------------------ outbox
    def enqueue(self, action: str, build: Callable[[], Any], keep: bool = False,
                on_response: Callable[[Any], None] | None = None) -> Outgoing:
        item = Outgoing(action, build, keep, self.clock.now(), offline=not self.connected, on_response=on_response)
        if not keep and not self.connected:
            item.done.set_exception(ConnectionError("offline"))
            item.done.exception()       # retrieved: nobody has to wait for it
            return item
        self._outbox.append(item)
        self._outbox_ready.set()
        return item

    def queued(self, action: str | None = None) -> list[Outgoing]:
        """Messages waiting to be sent (while offline: the transaction messages kept for later)."""
        return [item for item in self._outbox if action in (None, item.action)]

    def _drop_volatile(self) -> None:
        kept = deque()
        for item in self._outbox:
            if item.keep:
                kept.append(item)
            elif not item.done.done():
                item.done.set_exception(ConnectionError("connection lost"))
                item.done.exception()
        self._outbox = kept

    async def _send_loop(self, link) -> None:
        while True:
            if not self._outbox:
                self._outbox_ready.clear()
                await self._outbox_ready.wait()
                continue
            item = self._outbox[0]
            try:
                payload = item.build()
            except SkipMessage as exc:
                self._outbox.popleft()
                item.done.set_exception(ConnectionError(f"not sent: {exc}"))
                item.done.exception()
                continue
            try:
                response = await self.call(link, payload)
            except asyncio.TimeoutError as exc:
                if item.keep:   # no answer: the connection is taken for dead; the message goes again after it
                    self.last_error = f"no answer to {item.action} within {self.options.response_timeout_s}s"
                    self.close_connection()
                    return
                response = exc
            except OCPPError as exc:   # a CallError: sending it again would get the same answer
                log.warning("%s: %s answered with an error: %s", self.charger_id, item.action, exc)
                response = exc
            if self._outbox and self._outbox[0] is item:
                self._outbox.popleft()
            self._record(item.action, payload, item.created, item.offline, response)
            if item.on_response is not None and not isinstance(response, Exception):
                item.on_response(response)
            if not item.done.done():
                if isinstance(response, Exception):
                    item.done.set_exception(response)
                    item.done.exception()
                else:
                    item.done.set_result(response)

    async def call(self, link, payload) -> Any:
        """One CALL; ConnectionError as soon as the connection is gone instead of waiting for the timeout."""
        call = asyncio.ensure_future(link.call(payload, suppress=False))
        try:
            done, _ = await asyncio.wait({call, self._reader}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not call.done():     # the connection went, or we are being cancelled
                call.cancel()
                call.add_done_callback(lambda task: task.cancelled() or task.exception())
        if call in done:
            return call.result()
        raise ConnectionError("connection lost")

    def _record(self, action: str, payload, created: datetime, offline: bool, response) -> None:
        self.sent.append(SentMessage(action, payload, created, offline, response))

    # ------------------------------------------------------------------ connection
    def _connect_kwargs(self) -> dict:
        # No permessage-deflate: chargers rarely offer it, and it costs CPU with 200 of them.
        kwargs: dict = {"subprotocols": [self.subprotocol], "proxy": None, "open_timeout": 10, "close_timeout": 2,
                        "compression": None}
        if self.options.password is not None:
            token = base64.b64encode(f"{self.charger_id}:{self.options.password}".encode()).decode()
            kwargs["additional_headers"] = {"Authorization": f"Basic {token}"}
        if self.url.startswith("wss://"):
            kwargs["ssl"] = ssl.create_default_context(cafile=self.options.cafile)
        return kwargs

    async def _connection_loop(self) -> None:
        backoff = Backoff(self.options.reconnect_initial_s, self.options.reconnect_max_s)
        while not self._stopping:
            self.connect_attempts += 1
            try:
                async with websockets.connect(self.url, **self._connect_kwargs()) as ws:
                    if ws.subprotocol != self.subprotocol:
                        raise ConnectionError(f"central system did not accept {self.subprotocol}")
                    self._ws = ws
                    self.connects += 1
                    await self._session(ws, backoff)
            except asyncio.CancelledError:
                raise
            except Exception as exc:        # every way a connection can fail ends in a reconnect
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.info("%s: connection to %s: %s", self.charger_id, self.url, self.last_error)
            finally:
                self.connected = False
                self._ws = None
                self._drop_volatile()
            if self._stopping:
                return
            await asyncio.sleep(backoff.next())

    async def _session(self, ws, backoff: Backoff) -> None:
        link = self.make_link(ws)
        # uuid4() reads os.urandom for every message; message ids only need to be unique.
        link._unique_id_generator = lambda: uuid.UUID(int=self._ids.getrandbits(128), version=4)
        self._reader = asyncio.ensure_future(link.start())
        helpers: list[asyncio.Task] = []
        try:
            if not self._booted:
                await self._boot(link)
            backoff.reset()
            self.connected = True
            self.on_connected()
            helpers = [asyncio.create_task(self._send_loop(link)), asyncio.create_task(self._heartbeat_loop())]
            await self._reader
        finally:
            for task in helpers + [self._reader]:
                task.cancel()
            await asyncio.gather(*helpers, self._reader, return_exceptions=True)

    async def _boot(self, link) -> None:
        while True:
            payload = self.boot_payload()
            response = await self.call(link, payload)
            self._record("BootNotification", payload, self.clock.now(), False, response)
            self.boot_status = str(response.status)
            self.learn_peer_time(response.current_time)
            if self.boot_status == "Accepted":
                self.heartbeat_interval_s = float(response.interval or self.heartbeat_interval_s)
                self.settings.values["HeartbeatInterval"] = str(int(self.heartbeat_interval_s))
                self._booted = True
                return
            await asyncio.sleep(max(float(response.interval or 0), 1.0))

    async def _heartbeat_loop(self) -> None:
        while not self._stopping:
            await asyncio.sleep(max(float(self.settings.get("HeartbeatInterval") or 300), 1.0))
            item = self.enqueue("Heartbeat", self.heartbeat_payload)
            try:
                response = await item.done
            except (ConnectionError, OCPPError, asyncio.TimeoutError):
                continue
            self.learn_peer_time(response.current_time)

    def learn_peer_time(self, text: str | None) -> None:
        if text:
            self._peer_offset = parse_ocpp_time(text) - datetime.now(timezone.utc)

    def from_peer(self, text: str | None) -> datetime | None:
        """A central-system time as simulated time: the same distance from the central system's now."""
        if not text:
            return None
        peer_now = datetime.now(timezone.utc) + self._peer_offset
        return self.clock.now() + (parse_ocpp_time(text) - peer_now)

    def close_connection(self) -> None:
        """Closes the websocket; the charger reconnects with back-off (Reset, tests)."""
        if self._ws is not None:
            self.spawn(self._ws.close())

