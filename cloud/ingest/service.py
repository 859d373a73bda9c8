"""MQTT -> InfluxDB ingest: paho's network thread feeds a bounded queue, one writer thread
batches, writes and acknowledges.

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
import queue
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from cloud.config import CloudConfig
from cloud.influx import InfluxClient
from cloud.ingest.stats import IngestCounters, RateLimitedLog, SeqTracker, render_prometheus
from cloud.ingest.writer import Abandoned, BatchOutcome, BatchWriter, Inbound
from hinode import contract

MAX_PENDING_DEAD_LETTERS = 1000
log = logging.getLogger("cloud.ingest")

DEAD_LETTER_PAYLOAD_BYTES = 4096
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
        self._queue: queue.Queue[Inbound] = queue.Queue(ingest.queue_max_messages)
        self._closing = threading.Event()       # no new messages; drain the queue
        self._give_up = threading.Event()       # stop retrying; leave the rest unacknowledged
        self._session_lock = threading.Lock()   # generation/connected vs. acks
        self._generation = 0
        self._connected = False
        self._ready = threading.Event()          # connected and subscribed
        self._reconnects = 0
        self._pending_dead_letters: list[tuple[mqtt.MQTTMessageInfo, Inbound]] = []
        self._dead_letter_log = RateLimitedLog(log)
        self.influx = InfluxClient(config.influx)
        self._writer = BatchWriter(self.influx, ingest, self.counters, self.seq,
                                   create_database=config.influx.create_database, give_up=self._give_up)
        self._thread: threading.Thread | None = None
        self._stopped = False
        self.client = self._make_client()
        if ingest.queue_max_messages < ingest.max_inflight:
            log.warning("ingest.queue_max_messages (%d) < ingest.max_inflight (%d): the MQTT network thread "
                        "will block on a full queue", ingest.queue_max_messages, ingest.max_inflight)

    # ------------------------------------------------------------ MQTT wiring

    def _make_client(self) -> mqtt.Client:
        mq = self.config.mqtt
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=mq.client_id,
                             protocol=mqtt.MQTTv5, manual_ack=True)
        if mq.username:
            client.username_pw_set(mq.username, mq.password.get_secret_value() if mq.password else None)
        if mq.tls is not None:
            client.tls_set(ca_certs=str(mq.tls.ca) if mq.tls.ca else None,
                           certfile=str(mq.tls.cert) if mq.tls.cert else None,
                           keyfile=str(mq.tls.key) if mq.tls.key else None)
            if mq.tls.insecure:
                client.tls_insecure_set(True)
        client.reconnect_delay_set(min_delay=0.25, max_delay=10)
        # Dead letters and heartbeats are our only publishes; paho's default window of 20
        # would queue a flood of dead letters in memory.
        client.max_inflight_messages_set(min(self.config.ingest.max_inflight, 65535))
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        return client

    def _connect_properties(self) -> Properties:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self.config.mqtt.session_expiry_s
        props.ReceiveMaximum = min(self.config.ingest.max_inflight, 65535)
        return props

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.warning("MQTT broker %s:%d refused the connection: %s",
                        self.config.mqtt.host, self.config.mqtt.port, reason_code)
            return
        with self._session_lock:
            self._generation += 1
            self._connected = True
        topic = contract.shared(self.config.mqtt.share_group, contract.TELEMETRY_FILTER)
        client.subscribe(topic, options=SubscribeOptions(qos=1))
        log.info("connected to MQTT %s:%d as %s (session present: %s), subscribed to %s",
                 self.config.mqtt.host, self.config.mqtt.port, self.config.mqtt.client_id,
                 flags.session_present, topic)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        with self._session_lock:
            self._generation += 1
            was_connected, self._connected = self._connected, False
        self._ready.clear()
        if was_connected and not self._closing.is_set():
            self._reconnects += 1
            log.warning("MQTT connection lost (%s); reconnecting, unacknowledged messages will be redelivered",
                        reason_code)

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        failed = [code for code in reason_codes if code.is_failure]
        if failed:
            log.error("MQTT broker refused the telemetry subscription: %s", failed[0])
            return
        self._ready.set()
        self._send_heartbeat()

    def _send_heartbeat(self) -> None:
        beat = contract.IngestHeartbeat(ingest=self.config.mqtt.client_id, ts=time.time_ns() // 1_000_000)
        self.client.publish(contract.INGEST_HEARTBEAT_TOPIC, contract.encode(beat), qos=0)

    def _run_heartbeat(self) -> None:
        """Tell edge agents an ingest is subscribed; they hold their outbox when nobody is."""
        while not self._closing.wait(self.config.ingest.heartbeat_s):
            if self._ready.is_set():
                self._send_heartbeat()

    def _on_message(self, client, userdata, msg: mqtt.MQTTMessage) -> None:
        if self._closing.is_set():
            return  # not acknowledged: the broker redelivers it to this session later
        item = Inbound(msg.mid, msg.qos, msg.topic, msg.payload, self._generation)
        self.counters.received += 1
        while True:
            try:
                self._queue.put(item, timeout=0.5)
                return
            except queue.Full:
                self.counters.backpressure_waits += 1
                if self._closing.is_set():
                    return

    # ------------------------------------------------------------ life cycle

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("IngestService already started")
        self._thread = threading.Thread(target=self._run_writer, name="ingest-writer", daemon=True)
        self._thread.start()
        threading.Thread(target=self._run_heartbeat, name="ingest-heartbeat", daemon=True).start()
        mq = self.config.mqtt
        self.client.connect_async(mq.host, mq.port, keepalive=mq.keepalive_s, clean_start=False,
                                  properties=self._connect_properties())
        self.client.loop_start()

    def wait_ready(self, timeout: float) -> bool:
        """True once connected and subscribed (start() does not wait for it)."""
        return self._ready.wait(timeout)

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
        self.client.disconnect()  # queued after our last PUBACKs, so they reach the broker first
        self.client.loop_stop()
        self.influx.close()
        left = self._queue.qsize()
        if left:
            log.warning("stopped with %d received messages not stored; the broker redelivers them", left)

    # ------------------------------------------------------------ writer thread

    def _next_batch(self) -> list[Inbound]:
        limit = self.config.ingest.batch_max_messages
        try:
            batch = [self._queue.get(timeout=0.1)]
        except queue.Empty:
            return []
        deadline = time.monotonic() + self.config.ingest.batch_max_ms / 1000
        while len(batch) < limit:
            remaining = deadline - time.monotonic()
            try:
                if remaining <= 0 or self._closing.is_set():
                    batch.append(self._queue.get_nowait())
                else:
                    batch.append(self._queue.get(timeout=remaining))
            except queue.Empty:
                break
        return batch

    def _run_writer(self) -> None:
        while not self._give_up.is_set():
            self._ack_confirmed_dead_letters()
            # Back-pressure: while many dead letters await their PUBACK, take no new batch.
            while len(self._pending_dead_letters) > MAX_PENDING_DEAD_LETTERS and not self._give_up.is_set():
                time.sleep(0.01)
                self._ack_confirmed_dead_letters()
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
                outcome.dead_letters.append((item, INGEST_ERROR, f"{type(exc).__name__}: {exc}"))
                continue
            outcome.stored += single.stored
            outcome.dead_letters += single.dead_letters
        return outcome

    def _finish(self, outcome: BatchOutcome) -> None:
        for item, code, message in outcome.dead_letters:
            self._publish_dead_letter(item, code, message)
        self._ack(outcome.stored)
        self._ack_confirmed_dead_letters()

    def _publish_dead_letter(self, item: Inbound, code: str, message: str) -> None:
        with self.counters.lock:
            self.counters.dead_letter[code] += 1
        self._dead_letter_log.warning("dead letter %s from %s: %s", code, item.topic, message)
        letter = contract.DeadLetter(
            reason=f"{code}: {message}", topic=item.topic, ts=time.time_ns() // 1_000_000,
            payload=item.payload[:DEAD_LETTER_PAYLOAD_BYTES].decode("utf-8", errors="replace"))
        info = self.client.publish(contract.dead_letter_topic(code), contract.encode(letter), qos=1)
        # Keep only what the ack needs: a flood of oversized payloads must not sit in memory.
        self._pending_dead_letters.append((info, dataclasses.replace(item, payload=b"")))

    def _ack_confirmed_dead_letters(self) -> None:
        """Ack originals whose dead letter the broker PUBACKed; drop those from older connections."""
        if not self._pending_dead_letters:
            return
        still_pending, confirmed = [], []
        for info, item in self._pending_dead_letters:
            try:
                published = info.is_published()
            except (ValueError, RuntimeError):
                published = False  # never sent (no connection): the original will be redelivered
            if published:
                confirmed.append(item)
            elif item.generation == self._generation:
                still_pending.append((info, item))
            else:
                self.counters.ack_skipped_reconnected += 1
        self._pending_dead_letters = still_pending
        self._ack(confirmed)

    def _wait_for_dead_letters(self, timeout: float = 2.0) -> None:
        deadline = time.monotonic() + timeout
        while self._pending_dead_letters and time.monotonic() < deadline:
            time.sleep(0.02)
            self._ack_confirmed_dead_letters()

    def _ack(self, items: list[Inbound]) -> None:
        with self._session_lock:
            for item in items:
                if item.generation != self._generation or not self._connected:
                    self.counters.ack_skipped_reconnected += 1
                    continue
                if item.qos > 0:
                    self.client.ack(item.mid, item.qos)
                self.counters.acked += 1

    # ------------------------------------------------------------ observability

    def stats(self) -> dict:
        """A snapshot of every counter (plain JSON-able values); never contains secrets."""
        c = self.counters
        with c.lock:
            dead_letter = dict(c.dead_letter)
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
            "out_of_order": self.seq.out_of_order,
            "seq_resets": self.seq.resets,
            "mqtt_connected": self._connected,
            "mqtt_subscribed": self._ready.is_set(),
            "mqtt_reconnects": self._reconnects,
            "client_id": self.config.mqtt.client_id,
            "devices": devices,
        }

    def prometheus_text(self) -> str:
        return render_prometheus(self.stats())
