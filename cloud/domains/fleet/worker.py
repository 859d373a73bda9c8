"""The fleet worker: vehicles' telemetry from MQTT -> the tracker -> events in InfluxDB and webhooks.

It runs inside ``python -m cloud serve`` as the domain's lifespan (``worker_lifespan``), with its own
MQTT connection (paho, ``cloud.mqtt_client``: the API's credentials and TLS from cloud.yaml) on the
shared subscription ``$share/<share_group>/hinode/v1/+/+/telemetry``. Every telemetry message of every
kind arrives; the paho thread keeps only those whose bytes say ``"kind":"vehicle"``
(``mobility.is_vehicle_payload``: a meter's message costs a byte search, no JSON decode) and hands them
to the event loop, where they are decoded (``contract.decode_telemetry``), split into fixes and fed to
the tracker. A ``tick`` every second raises time-based events (comms_lost, idle_too_long).

Resilience:
- broker restarts: paho reconnects with jittered back-off and the subscription is made again on every
  connect; the session is persistent (stable ``mqtt_client_id``, clean_start false, kept by the broker for
  ``mqtt_session_expiry_s``), so fixes sent while the worker was away are delivered when it is back.
- InfluxDB down: points wait in a bounded queue and are retried (worker_outbox.py).
- restarts: the tracker's snapshot (open trips and violations included) and the unwritten points are saved every
  ``snapshot_interval_s`` and at stop (store.py) and restored at start, so an open violation stays open
  (no second violation_start) and ends once.
- bad input: a payload that is not a valid envelope, or a reading of the wrong type, is counted
  (``hinode_fleet_invalid_total{reason}``) and skipped; the rest of the stream goes on.

One worker per deployment: MQTT shared subscriptions split messages, not vehicles, so two workers in
one group would each see half of every vehicle's fixes (README.md, "Limits").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter, deque

import paho.mqtt.client as mqtt

from cloud.config import MqttConfig
from cloud.ingest.decode import decode_envelope
from cloud.domains.fleet.config import FleetConfig
from cloud.domains.fleet.events import FleetEvent, fixes_from_envelope
from cloud.domains.fleet.store import StateStore
from cloud.domains.fleet.webhooks import WebhookSender
from cloud.domains.fleet.worker_outbox import PointOutbox
from cloud.domains.fleet.worker_points import event_point, trip_point, violation_from_end_event, violation_point
from cloud.influx import AsyncInfluxClient
from cloud.mqtt_client import JitteredReconnect, new_client
from hinode import contract
from hinode.metrics import LAG_BUCKETS_S, Buckets
from hinode.mobility import EventType, is_vehicle_payload

log = logging.getLogger(__name__)

RECONNECT_INITIAL_S = 0.5
RECONNECT_MAX_S = 10.0
TICK_S = 1.0
DRAIN_BATCH = 500              # messages handled between two turns of the event loop
INBOX_MAX = 200_000            # messages received but not yet processed; beyond, dropped and counted


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class FleetWorker:
    def __init__(self, config: FleetConfig, mqtt_config: MqttConfig, influx: AsyncInfluxClient, tracker_factory,
                 *, create_database: bool = True):
        """``tracker_factory(snapshot | None)`` -> a FleetTracker (new, or restored from a snapshot)."""
        self.config = config
        self.mqtt_config = mqtt_config
        self._tracker_factory = tracker_factory
        self.tracker = None
        self.store = StateStore(config.resolved_state_dir())
        self.outbox = PointOutbox(influx, max_lines=config.event_queue_max, batch_max=config.write_batch_max,
                                  retry_initial_s=config.write_retry_initial_s,
                                  retry_max_s=config.write_retry_max_s, create_database=create_database)
        self.webhooks = WebhookSender(config)
        self._violations: dict = {}     # violation_id -> the tracker's open Violation (its max speed grows)
        # counters (read by metric_families and the tests)
        self.received_total = 0             # telemetry messages of any kind
        self.ignored_total = 0              # not a vehicle's (the cheap byte check)
        self.fixes_total = 0
        self.invalid: Counter[str] = Counter()
        self.events: Counter[str] = Counter()
        self.connects_total = 0
        self.latency = Buckets(LAG_BUCKETS_S)   # a fix's ts -> the events it caused made, seconds
        self.connected = False
        self.subscribed = False             # the broker granted the shared subscription on this connection
        self._inbox: deque[tuple[str, bytes]] = deque()
        self._wake = asyncio.Event()
        self._wake_scheduled = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: list[asyncio.Task] = []
        self._client: mqtt.Client | None = None
        self._dirty = False
        self._stopping = False

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        state = await asyncio.to_thread(self.store.load)
        snapshot = (state or {}).get("tracker")
        try:
            self.tracker = self._tracker_factory(snapshot)
        except Exception as exc:   # noqa: BLE001 - a snapshot of another version must not stop the API
            log.error("fleet state %s could not be restored (%s: %s); starting with an empty tracker",
                      self.store.path, type(exc).__name__, exc)
            self.tracker = self._tracker_factory(None)
            state = None
        self._violations = {v.violation_id: v for v in self.tracker.open_violations()}
        if state:
            self.outbox.restore(state.get("pending", []))
            log.info("fleet state restored from %s: %d vehicles, %d open violations, %d points to write",
                     self.store.path, len(self.tracker.vehicles()), len(self._violations), len(self.outbox))
        self._tasks = [asyncio.create_task(coro, name=f"fleet-{name}") for name, coro in (
            ("process", self._process_forever()), ("tick", self._tick_forever()), ("writer", self.outbox.run()),
            ("snapshot", self._save_forever()), ("webhooks", self.webhooks.run()))]
        self._client = self._make_client()
        log.info("fleet worker connecting to %s:%s as %s", self.mqtt_config.host, self.mqtt_config.port,
                 self.config.mqtt_client_id)
        self._client.connect_async(self.mqtt_config.host, self.mqtt_config.port,
                                   keepalive=self.mqtt_config.keepalive_s, clean_start=False,
                                   properties=self._connect_properties())
        self._client.loop_start()

    async def stop(self, flush_timeout_s: float = 2.0) -> None:
        self._stopping = True
        if self._client is not None:
            client, self._client = self._client, None
            await asyncio.to_thread(self._disconnect, client)
        self._drain_inbox()           # what arrived before the disconnect
        await self.outbox.flush(flush_timeout_s)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        await self.save()

    @staticmethod
    def _disconnect(client: mqtt.Client) -> None:
        client.disconnect()
        client.loop_stop()

    def _connect_properties(self):
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = self.config.mqtt_session_expiry_s
        return properties

    def _make_client(self) -> mqtt.Client:
        client = new_client(self.mqtt_config, self.config.mqtt_client_id)
        self._reconnect = JitteredReconnect(client, RECONNECT_INITIAL_S, RECONNECT_MAX_S)
        client.on_connect = self._on_connect
        client.on_connect_fail = lambda c, u: self._reconnect.before_wait(c)
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        return client

    # ------------------------------------------------------------ paho callbacks (its network thread)

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.warning("fleet worker: the broker refused the connection: %s", reason_code)
            return
        self._reconnect.reset()
        self.connects_total += 1
        self.connected = True
        topic = contract.shared(self.config.share_group, contract.TELEMETRY_FILTER)
        client.subscribe(topic, qos=1)
        log.info("fleet worker connected; subscribed to %s", topic)

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        refused = [str(code) for code in reason_codes if code.is_failure]
        if refused:
            log.error("fleet worker: the broker refused the subscription to vehicles' telemetry (%s); check the "
                      "ACL of the API's MQTT identity", ", ".join(refused))
        self.subscribed = not refused

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self.subscribed = False
        self._reconnect.before_wait(client)
        if self.connected and not self._stopping:
            log.warning("fleet worker lost the broker (%s); reconnecting", reason_code)
        self.connected = False

    def _on_message(self, client, userdata, message: mqtt.MQTTMessage) -> None:
        self.received_total += 1
        payload = message.payload
        if not is_vehicle_payload(payload):
            self.ignored_total += 1
            return
        if len(self._inbox) >= INBOX_MAX:
            self.invalid["overloaded"] += 1
            return
        self._inbox.append((message.topic, payload))
        if not self._wake_scheduled:
            self._wake_scheduled = True
            self._loop.call_soon_threadsafe(self._wake.set)

    # ------------------------------------------------------------ the event loop's side

    async def _process_forever(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            self._wake_scheduled = False
            while self._drain_inbox(DRAIN_BATCH):
                await asyncio.sleep(0)      # a backlog (after a restart) must not starve the API's requests

    def _drain_inbox(self, limit: int | None = None) -> int:
        """Handle up to ``limit`` waiting messages (all without one); how many are still waiting."""
        handled = 0
        while self._inbox and (limit is None or handled < limit):
            topic, payload = self._inbox.popleft()
            try:
                self.handle_payload(topic, payload)
            except Exception:   # noqa: BLE001 - one message that trips a bug must not stop the fleet
                self.invalid["internal_error"] += 1
                log.exception("fleet: a message on %s could not be handled", topic)
            handled += 1
        return len(self._inbox)

    def handle_payload(self, topic: str | None, payload: bytes) -> list[FleetEvent]:
        """One telemetry message: its fixes through the tracker; the events it caused."""
        try:
            envelope = decode_envelope(payload, topic)     # the ingest's fast path; same refusals
        except contract.ContractError as exc:
            self.invalid[exc.code] += 1
            log.debug("fleet: refused a payload on %s: %s", topic, exc)
            return []
        if envelope.kind != contract.DeviceKind.VEHICLE:
            self.ignored_total += 1
            return []
        problems: list[str] = []
        found = fixes_from_envelope(envelope, problems)
        if problems:
            self.invalid["bad_reading"] += len(problems)
            log.info("fleet: readings left out: %s", "; ".join(problems[:3]))
        events: list[FleetEvent] = []
        made_ms = now_ms()
        for fix in found:
            self.fixes_total += 1
            try:
                fix_events = self.tracker.update(fix)
            except ValueError as exc:
                self.invalid["bad_fix"] += 1
                log.info("fleet: fix of %s/%s at %d refused: %s", fix.fleet, fix.vehicle, fix.ts_ms, exc)
                continue
            if fix_events:     # once per fix: events stamped earlier (a violation's start) would add its wait
                self.latency.observe(max(0.0, (made_ms - fix.ts_ms) / 1000))
            events += fix_events
        self._dirty = self._dirty or bool(found)
        self.record(events)
        return events

    def record(self, events: list[FleetEvent]) -> None:
        """Points, violation rows and webhooks for ``events``."""
        points = []
        for event in events:
            kind = str(event.event_type)
            self.events[kind] += 1
            points.append(event_point(event))
            if kind == EventType.VIOLATION_START:
                violation = self.tracker.open_violation(event.fleet, event.vehicle, event.violation_id)
                if violation is not None:
                    self._violations[event.violation_id] = violation     # its end is written from it
                    points.append(violation_point(violation))
            elif kind == EventType.VIOLATION_END:
                violation = self._violations.pop(event.violation_id, None) or violation_from_end_event(event)
                points.append(violation_point(violation))
            elif kind == EventType.TRIP_END and event.trip is not None:
                points.append(trip_point(event))
            self.webhooks.offer(event)
        if events:
            self._dirty = True
            self.outbox.add(points)

    async def _tick_forever(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            try:
                self.tick(now_ms())
            except Exception:   # noqa: BLE001 - logged; the next tick tries again
                log.exception("fleet: tick failed")

    def tick(self, at_ms: int) -> list[FleetEvent]:
        events = self.tracker.tick(at_ms)
        self.record(events)
        return events

    # ------------------------------------------------------------ state

    def state(self) -> dict:
        return {"tracker": self.tracker.snapshot(), "pending": self.outbox.pending()}

    async def save(self) -> None:
        if self.tracker is None:
            return
        # The snapshot is taken on the loop (a consistent copy: fresh containers, immutable leaves);
        # encoding and writing it, the costly part, happen in a thread.
        state = self.state()
        try:
            await asyncio.to_thread(self.store.save, state)
            self._dirty = False
        except OSError as exc:
            log.error("fleet state not saved to %s: %s", self.store.path, exc)

    async def _save_forever(self) -> None:
        while True:
            await asyncio.sleep(self.config.snapshot_interval_s)
            if self._dirty or len(self.outbox):
                await self.save()

    # ------------------------------------------------------------ /metrics

    def metric_families(self):
        """Prometheus families (``hinode_fleet_*``), read at scrape time."""
        from hinode.metrics import counter, gauge, histogram, labelled_counter
        yield gauge("hinode_fleet_broker_connected", "1 while the fleet worker is subscribed to vehicles' telemetry",
                    int(self.connected and self.subscribed))
        yield counter("hinode_fleet_messages_total", "Telemetry messages the fleet worker received (every kind)",
                      self.received_total)
        yield counter("hinode_fleet_ignored_total", "Telemetry messages that were not a vehicle's (not decoded)",
                      self.ignored_total)
        yield counter("hinode_fleet_fixes_total", "Vehicle fixes fed to the tracker", self.fixes_total)
        yield labelled_counter("hinode_fleet_invalid_total", "Vehicle payloads or readings refused, by reason",
                               ("reason",), sorted(self.invalid.items()))
        yield labelled_counter("hinode_fleet_events_total", "Fleet events made, by event type", ("event_type",),
                               sorted(self.events.items()))
        yield counter("hinode_fleet_connects_total", "Connections of the fleet worker to the broker",
                      self.connects_total)
        yield counter("hinode_fleet_points_written_total", "Fleet points written to InfluxDB",
                      self.outbox.written_total)
        yield labelled_counter("hinode_fleet_points_dropped_total", "Fleet points not stored, by reason",
                               ("reason",), sorted(self.outbox.dropped.items()))
        yield counter("hinode_fleet_write_retries_total", "Writes of fleet points retried (InfluxDB unavailable)",
                      self.outbox.retries_total)
        yield gauge("hinode_fleet_points_waiting", "Fleet points waiting for InfluxDB", len(self.outbox))
        yield labelled_counter("hinode_fleet_webhooks_total", "Fleet webhook attempts, by outcome", ("outcome",),
                               sorted(self.webhooks.outcomes.items()))
        tracker_counters = self.tracker.counters if self.tracker is not None else {}
        yield labelled_counter("hinode_fleet_fixes_skipped_total", "Fixes the tracker did not use (duplicate, "
                               "out_of_order) or whose position it did not trust (inaccurate)", ("reason",),
                               [((reason,), tracker_counters.get(reason, 0))
                                for reason in ("duplicate", "out_of_order", "inaccurate")])
        yield gauge("hinode_fleet_vehicles", "Vehicles the tracker knows", len(self.tracker.vehicles())
                    if self.tracker is not None else 0)
        yield histogram("hinode_fleet_event_latency_seconds", "From a fix's timestamp to the event it caused "
                        "(vehicle clock to fleet worker)", {(): self.latency}, labels=())
