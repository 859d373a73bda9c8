"""MQTT -> InfluxDB ingest: the link's network thread (cloud/ingest/link.py) feeds a bounded
queue; one writer thread batches, writes and acknowledges.

Delivery guarantee: a message is acknowledged (PUBACK) only after it is stored in
InfluxDB or after its dead letter was PUBACKed by the broker. The MQTT session is
persistent (stable client id, ``clean_start=False``, SessionExpiryInterval), so whatever
was not acknowledged when the process died is redelivered when it reconnects. A PUBACK
goes back only on the connection that delivered the message: after a reconnect the
broker redelivers the unacknowledged messages with their packet ids, and an ack meant
for an older connection could acknowledge a different message. Older copies are still
written (writes are idempotent) but left for their redelivered twin to acknowledge.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import threading
import time
from collections import deque

from cloud.config import CloudConfig
from cloud.influx import InfluxClient
from cloud.ingest.health import HealthWriter
from cloud.ingest.link import LinkHandlers, LinkSettings, MqttLink, PublishHandle
from cloud.ingest.mqtt_codec import reason_text
from cloud.ingest.metrics import ingest_registry
from cloud.ingest.stats import IngestCounters, RateLimitedLog, SeqTracker
from hinode.metrics import render
from cloud.ingest.writer import Abandoned, BatchOutcome, BatchWriter, Inbound, Refused
from hinode import contract

log = logging.getLogger("cloud.ingest")


class InboundBuffer:
    """Received messages waiting for the writer. The network thread adds a whole receive
    buffer's worth at once and stops reading from the socket while ``full()``."""

    def __init__(self, limit: int):
        self.limit = limit
        self._items: deque[Inbound] = deque()
        self._ready = threading.Condition()

    def put_many(self, items: list[Inbound]) -> None:
        with self._ready:
            self._items.extend(items)
            self._ready.notify()

    def full(self) -> bool:
        return len(self._items) >= self.limit

    def qsize(self) -> int:
        return len(self._items)

    def empty(self) -> bool:
        return not self._items

    def take(self, limit: int, first_wait_s: float, more_wait_s: float, closing: threading.Event) -> list[Inbound]:
        """Up to ``limit`` messages: waits ``first_wait_s`` for one, then up to ``more_wait_s``
        for the batch to fill (not at all once closing)."""
        items = self._items
        with self._ready:
            if not items and not self._ready.wait_for(lambda: items, first_wait_s):
                return []
            deadline = time.monotonic() + more_wait_s
            while len(items) < limit and not closing.is_set():
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._ready.wait(remaining):
                    break
            count = min(limit, len(items))
            return [items.popleft() for _ in range(count)]

DEAD_LETTER_PAYLOAD_BYTES = 4096
_QUOTED = re.compile(r"'[^']*'")
INGEST_ERROR = "ingest_error"


class IngestService:
    """Subscribe to all telemetry (shared subscription), store it in InfluxDB.

    ``start()`` returns at once (the broker and InfluxDB may come up later);
    ``stop(timeout)`` stops taking messages, drains what was received, and disconnects.
    """

    def __init__(self, config: CloudConfig):
        self.config = config
        ingest = config.ingest
        self.counters = IngestCounters()
        self.seq = SeqTracker()
        self._queue = InboundBuffer(ingest.queue_max_messages)
        self._closing = threading.Event()       # no new messages; drain the queue
        self._give_up = threading.Event()       # stop retrying; leave the rest unacknowledged
        self._ready = threading.Event()          # connected and subscribed to every filter
        self._subscriptions = [contract.shared(config.mqtt.share_group, f) for f in contract.INGEST_FILTERS]
        self._subacks_awaited = 0
        self._subscription_refused = False
        self._reconnects = 0
        self._pending_dead_letters: list[tuple[PublishHandle, Inbound]] = []
        self._dead_letter_log = RateLimitedLog(log)
        self.influx = InfluxClient(config.influx)
        self._writer = BatchWriter(self.influx, ingest, self.counters, self.seq,
                                   create_database=config.influx.create_database, give_up=self._give_up,
                                   personal=config.influx.personal)
        self._thread: threading.Thread | None = None
        self._stopped = False
        self.link = self._make_link()
        self.metrics_registry = ingest_registry(self)   # served by run_ingest on ingest.metrics_listen
        # hinode_ingest / hinode_ingest_dead_letters in InfluxDB every ingest.health_interval_s (cloud/ingest/health.py)
        self.health = HealthWriter(self.stats, self.influx, ingest.health_interval_s, self._closing)

    # ------------------------------------------------------------ MQTT wiring

    def _make_link(self) -> MqttLink:
        mq = self.config.mqtt
        tls = mq.tls
        settings = LinkSettings(
            host=mq.host, port=mq.port, client_id=mq.client_id, keepalive_s=mq.keepalive_s,
            session_expiry_s=mq.session_expiry_s, receive_maximum=min(self.config.ingest.max_inflight, 65535),
            username=mq.username, password=mq.password.get_secret_value() if mq.password else None,
            tls=tls is not None, tls_ca=tls.ca if tls else None, tls_cert=tls.cert if tls else None,
            tls_key=tls.key if tls else None, tls_insecure=bool(tls and tls.insecure))
        return MqttLink(settings, LinkHandlers(on_connect=self._on_connect, on_disconnect=self._on_disconnect,
                                               on_subscribe=self._on_subscribe, on_messages=self._on_messages,
                                               can_receive=lambda: not self._queue.full()))

    def _on_connect(self, session_present: bool, generation: int) -> None:
        # one SUBSCRIBE (and SUBACK) per filter: ready, and the heartbeat that releases the agents' outboxes,
        # only once the broker granted every one (catalogs and command results once fell in the gap)
        self._subacks_awaited = len(self._subscriptions)
        self._subscription_refused = False
        for topic in self._subscriptions:
            self.link.subscribe(topic, qos=1)
        log.info("connected to MQTT %s:%d as %s (session present: %s); subscribing to %s",
                 self.config.mqtt.host, self.config.mqtt.port, self.config.mqtt.client_id,
                 session_present, ", ".join(self._subscriptions))

    def _on_disconnect(self, why: str) -> None:
        self._ready.clear()
        if not self._closing.is_set():
            self._reconnects += 1
            log.warning("MQTT connection lost (%s); reconnecting, unacknowledged messages will be redelivered", why)

    def _on_subscribe(self, reason_codes: list[int]) -> None:
        failed = [code for code in reason_codes if code >= 0x80]
        self._subacks_awaited -= 1
        if failed:
            self._subscription_refused = True
            log.error("MQTT broker refused the telemetry subscription: %s", reason_text(failed[0]))
            return
        if self._subacks_awaited > 0 or self._subscription_refused:
            return
        log.info("subscribed to %s", ", ".join(self._subscriptions))
        self._ready.set()
        self._send_heartbeat()

    def _send_heartbeat(self) -> None:
        beat = contract.IngestHeartbeat(ingest=self.config.mqtt.client_id, ts=time.time_ns() // 1_000_000)
        self.link.publish(contract.INGEST_HEARTBEAT_TOPIC, contract.encode(beat), qos=0)

    def _run_heartbeat(self) -> None:
        """Tell edge agents an ingest is subscribed; they hold their outbox when nobody is."""
        while not self._closing.wait(self.config.ingest.heartbeat_s):
            if self._ready.is_set():
                self._send_heartbeat()

    def _on_messages(self, items: list[Inbound]) -> None:
        if self._closing.is_set():
            return  # not acknowledged: the broker redelivers them to this session later
        self.counters.received += len(items)
        if self._queue.full():
            self.counters.backpressure_waits += 1
        self._queue.put_many(items)

    # ------------------------------------------------------------ life cycle

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("IngestService already started")
        self._thread = threading.Thread(target=self._run_writer, name="ingest-writer", daemon=True)
        self._thread.start()
        threading.Thread(target=self._run_heartbeat, name="ingest-heartbeat", daemon=True).start()
        self.health.start()
        self.link.start()

    def wait_ready(self, timeout: float) -> bool:
        """True once connected and subscribed (start() does not wait for it)."""
        return self._ready.wait(timeout)

    def threads_alive(self) -> bool:
        """The writer and the MQTT link threads are running (what systemd's watchdog is fed on)."""
        link_thread = getattr(self.link, "_thread", None)
        return (self._thread is not None and self._thread.is_alive()
                and link_thread is not None and link_thread.is_alive())

    def stop(self, timeout: float = 10.0) -> None:
        """Stop taking messages, store and ack what was received, then disconnect.

        Whatever is not done within ``timeout`` (e.g. InfluxDB is down) stays
        unacknowledged in the broker's session and is redelivered on the next start.
        """
        if self._stopped:
            return
        self._stopped = True
        deadline = time.monotonic() + timeout
        self._closing.set()
        if self._thread is not None:
            self._thread.join(max(0.0, deadline - time.monotonic() - min(1.0, timeout / 4)))
            if self._thread.is_alive():
                self._give_up.set()
                self._thread.join(max(0.1, deadline - time.monotonic()))
        self._give_up.set()
        self.link.stop()  # sends our last PUBACKs, then DISCONNECT
        self.influx.close()
        left = self._queue.qsize()
        if left:
            log.warning("stopped with %d received messages not stored; the broker redelivers them", left)

    # ------------------------------------------------------------ writer thread

    def _next_batch(self) -> list[Inbound]:
        return self._queue.take(self.config.ingest.batch_max_messages, 0.1,
                                self.config.ingest.batch_max_ms / 1000, self._closing)

    def _run_writer(self) -> None:
        while not self._give_up.is_set():
            self._ack_confirmed_dead_letters()
            self._wait_for_dead_letter_room()
            batch = self._next_batch()
            if not batch:
                if self._closing.is_set() and self._queue.empty():
                    break
                continue
            started = time.monotonic()
            try:
                outcome = self._process(batch)
            except Abandoned:
                log.warning("stopping during an InfluxDB outage: %d messages left unacknowledged for redelivery",
                            len(batch))
                break
            try:
                self._finish(outcome)
            except Exception:  # never let the writer thread die; unacked messages come back after a reconnect
                log.exception("could not acknowledge a batch of %d messages", len(batch))
            self.counters.batches += 1
            self.counters.last_batch_size = len(batch)
            self.counters.last_batch_latency_ms = round((time.monotonic() - started) * 1000, 1)
        self._wait_for_dead_letters()

    def _process(self, batch: list[Inbound]) -> BatchOutcome:
        try:
            return self._writer.process(batch)
        except Abandoned:
            raise
        except Exception:
            log.exception("ingest failed on a batch of %d messages; retrying them one by one", len(batch))
        outcome = BatchOutcome()
        for item in batch:
            try:
                single = self._writer.process([item])
            except Abandoned:
                raise
            except Exception as exc:
                personal = item.topic.endswith("/" + contract.PERSONAL_CHANNEL)
                outcome.dead_letters.append(Refused(item, INGEST_ERROR, f"{type(exc).__name__}: {exc}"[:500], personal))
                continue
            outcome.stored += single.stored
            outcome.dead_letters += single.dead_letters
        return outcome

    def _finish(self, outcome: BatchOutcome) -> None:
        for refused in outcome.dead_letters:
            self._publish_dead_letter(refused)
        self._ack(outcome.stored)
        self._ack_confirmed_dead_letters()

    def _publish_dead_letter(self, refused: Refused) -> None:
        item, code, message = refused.item, refused.code, refused.message
        with self.counters.lock:
            self.counters.dead_letter[code] += 1
        # Personal data (its topic, or a personal kind found inside) never travels in a dead letter
        # or a log line: reason and size only.
        personal = refused.personal or item.topic.endswith("/" + contract.PERSONAL_CHANNEL)
        if personal:   # InfluxDB may quote the refused line in its message
            message = _QUOTED.sub("'…'", message)
        self._dead_letter_log.warning("dead letter %s from %s: %s", code, item.topic,
                                      message if not personal else f"({len(item.payload)} bytes of personal data)")
        carried = refused.payload if refused.payload is not None else item.payload
        letter = contract.DeadLetter(
            reason=f"{code}: {message}", topic=item.topic, ts=time.time_ns() // 1_000_000,
            payload="" if personal else carried[:DEAD_LETTER_PAYLOAD_BYTES].decode("utf-8", errors="replace"),
            payload_bytes=len(item.payload), personal=personal)
        handle = self.link.publish(contract.dead_letter_topic(code), contract.encode(letter), qos=1)
        # Keep only what the ack needs: a flood of oversized payloads must not sit in memory.
        self._pending_dead_letters.append((handle, dataclasses.replace(item, payload=b"")))

    def _ack_confirmed_dead_letters(self) -> None:
        """Ack originals whose dead letter the broker PUBACKed; drop those from older connections."""
        if not self._pending_dead_letters:
            return
        still_pending, confirmed = [], []
        generation = self.link.generation
        for handle, item in self._pending_dead_letters:
            if handle.is_published():
                confirmed.append(item)
            elif handle.state != "lost" and item.generation == generation:
                still_pending.append((handle, item))
            else:
                self.counters.ack_skipped_reconnected += 1
        self._pending_dead_letters = still_pending
        self._ack(confirmed)

    def _wait_for_dead_letter_room(self) -> None:
        """Back-pressure: while many dead letters await their PUBACK, take no new batch.

        The link keeps reading from the broker while publishes await their PUBACK, even
        with the queue full, so this wait always ends (it once deadlocked when the network
        thread blocked on a full queue instead).
        """
        limit = self.config.ingest.max_pending_dead_letters
        while len(self._pending_dead_letters) > limit and not self._give_up.is_set():
            time.sleep(0.005)
            self._ack_confirmed_dead_letters()

    def _wait_for_dead_letters(self, timeout: float = 2.0) -> None:
        deadline = time.monotonic() + timeout
        while self._pending_dead_letters and time.monotonic() < deadline:
            time.sleep(0.02)
            self._ack_confirmed_dead_letters()

    def _ack(self, items: list[Inbound]) -> None:
        if not items:
            return
        acked, skipped = self.link.ack(items)
        self.counters.acked += acked
        self.counters.ack_skipped_reconnected += skipped

    # ------------------------------------------------------------ observability

    def stats(self) -> dict:
        """A snapshot of every counter (plain JSON-able values); never contains secrets."""
        c = self.counters
        with c.lock:
            dead_letter = dict(c.dead_letter)
            meta_refused = dict(c.meta_refused)
            devices = self.seq.snapshot()
        return {
            "received": c.received,
            "backpressure_waits": c.backpressure_waits,
            "written_envelopes": c.written_envelopes,
            "written_points": c.written_points,
            "written_readings": c.written_readings,
            "acked": c.acked,
            "ack_skipped_reconnected": c.ack_skipped_reconnected,
            "dead_letter": dead_letter,
            "meta_refused": meta_refused,
            "type_conflict_readings": c.type_conflict_readings,
            "dead_letter_total": sum(dead_letter.values()),
            "bad_quality_readings": c.bad_quality_readings,
            "uncertain_quality_readings": c.uncertain_quality_readings,
            "not_storable_readings": c.not_storable_readings,
            "reserved_metric_readings": c.reserved_metric_readings,
            "influx_retries": c.influx_retries,
            "influx_errors": c.influx_errors,
            "influx_available": c.influx_available,
            "batches": c.batches,
            "last_batch_size": c.last_batch_size,
            "last_batch_latency_ms": c.last_batch_latency_ms,
            "lag_p50_ms": c.lag_p50_ms,
            "lag_max_ms": c.lag_max_ms,
            "queue_depth": self._queue.qsize(),
            "duplicates": self.seq.duplicates,
            "gaps": self.seq.gaps,
            "seq_skipped": self.seq.skipped,
            "out_of_order": self.seq.out_of_order,
            "seq_resets": self.seq.resets,
            "mqtt_connected": self.link.connected,
            "mqtt_refused_publishes": self.link.refused_publishes,
            "mqtt_subscribed": self._ready.is_set(),
            "mqtt_reconnects": self._reconnects,
            "client_id": self.config.mqtt.client_id,
            "devices": devices,
        }

    def prometheus_text(self) -> str:
        """This ingest's /metrics text (cloud/ingest/metrics.py), rendered by prometheus_client."""
        return render(self.metrics_registry).decode()
