"""Pumps the durable outbox to the broker: QoS 1, a bounded in-flight window,
deletion only on PUBACK.

After an outage the stored backlog replays while live data keeps flowing: each
round fills half the free window from the newest envelopes (stored after the
reconnect) and the rest from the backlog, oldest first.
"""

from __future__ import annotations

import asyncio
import logging

from edge_agent.mqtt import MqttLink
from edge_agent.queue import DurableQueue, OutboxRow
from edge_agent.sources.base import wait_event

log = logging.getLogger("edge_agent.forwarder")
UNROUTED_HOLD_S = 1.0


class Forwarder:
    def __init__(self, queue: DurableQueue, topic: str, window: int, personal_topic: str | None = None):
        self.queue = queue
        self.topic = topic
        self.personal_topic = personal_topic or topic
        self.window = window
        self.link: MqttLink | None = None
        self.inflight: dict[int, tuple[int, int]] = {}    # mid -> (row id, readings)
        self.cursor = 0            # backlog: everything ≤ cursor has been handed to paho
        self.live_cursor = 0       # live stream: ids > watermark handed to paho up to here
        self.watermark = 0         # last id stored when the current backlog began
        self.published_envelopes = 0
        self.published_readings = 0
        self.rejected_envelopes = 0
        self.waiting_for_ingest = False
        self.generation = 0        # connections lost so far: rows read before a loss are not sent
        self.unrouted_envelopes = 0
        self._hold_until = 0.0
        self._acked = asyncio.Event()

    def on_connected(self) -> None:
        """A (re)connect: everything stored so far that paho does not hold yet is backlog."""
        self.watermark = max(self.watermark, self.queue.last_id)

    def on_disconnected(self) -> None:
        """The MQTT client dropped its unacknowledged messages: resend them from the outbox."""
        self.inflight.clear()
        self.generation += 1
        self.cursor = self.live_cursor = 0
        if self.link is None or not self.link.stopping:
            self.queue.requeue_recent()
        self._acked.set()

    def on_unrouted(self, mid: int) -> bool:
        """The broker answered "no matching subscribers": the envelope reached nobody. It is not
        acknowledged (it stays in the outbox) and the stream starts over from the outbox once an
        ingest is heard again. True when the mid was one of ours."""
        entry = self.inflight.pop(mid, None)
        if entry is None:
            return False
        self.unrouted_envelopes += 1
        self.generation += 1                  # rows being read now are not sent
        self.cursor = self.live_cursor = 0    # resend from the oldest stored envelope
        self._hold_until = asyncio.get_running_loop().time() + UNROUTED_HOLD_S
        self._acked.set()
        return True

    def on_puback(self, mid: int, ok: bool) -> None:
        entry = self.inflight.pop(mid, None)
        if entry is None:
            return                      # status messages and other non-outbox publishes
        row_id, readings = entry
        if ok:
            self.published_envelopes += 1
            self.published_readings += readings
        else:
            # The broker refused it (e.g. not authorised for this topic): resending cannot help.
            self.rejected_envelopes += 1
            log.error("broker rejected envelope %d (%d readings); dropped and counted", row_id, readings)
        self.queue.ack(row_id)
        self._acked.set()

    async def run(self, link: MqttLink) -> None:
        self.link = link
        while True:
            await link.connected.wait()
            if link.config.mqtt.wait_for_ingest and not link.ingest_alive():
                if not self.waiting_for_ingest:
                    log.info("holding telemetry until a cloud ingest is heard on %s", link.config.mqtt.host)
                self.waiting_for_ingest = True
                link.ingest_heard.clear()
                await wait_event(link.ingest_heard, 1.0)
                continue
            if self.waiting_for_ingest:
                log.info("cloud ingest heard; sending %d stored envelopes", self.queue.depth)
                self.waiting_for_ingest = False
            hold = self._hold_until - asyncio.get_running_loop().time()
            if hold > 0:                      # nobody subscribed a moment ago: no resend storm
                await asyncio.sleep(hold)
                continue
            if self.queue.requeue_pending:
                await self.queue.flush()      # the resend window goes out again before anything new
            free = self.window - len(self.inflight)
            if free <= 0:
                await self._wait_ack(1.0)
                continue
            generation = self.generation
            rows, cursor, live_cursor = await self._next_rows(free)
            if generation != self.generation:
                continue                       # the connection dropped meanwhile: start over from the outbox
            self.cursor, self.live_cursor = cursor, live_cursor
            if not rows:
                await self.queue.wait_changed(0.5)
                continue
            for row in rows:
                mid = link.publish(self.personal_topic if row.personal else self.topic, row.payload, qos=1)
                self.inflight[mid] = (row.id, row.readings)

    async def _next_rows(self, free: int) -> tuple[list[OutboxRow], int, int]:
        """The next rows to send and the cursors after them (applied only if no connection was lost)."""
        queue, cursor, live_cursor = self.queue, self.cursor, self.live_cursor
        if cursor >= self.watermark:
            rows = await queue.next_rows(max(cursor, live_cursor), free)
            if rows:
                cursor = live_cursor = rows[-1].id
            return rows, cursor, live_cursor
        live = await queue.next_rows(max(live_cursor, self.watermark), max(1, free // 2))
        # At least one backlog row per round, even when live data filled the free window.
        backlog = await queue.next_rows(cursor, max(1, free - len(live)), upto=self.watermark)
        if live:
            live_cursor = live[-1].id
        if backlog:
            cursor = backlog[-1].id
        else:
            cursor = max(self.watermark, live_cursor)     # backlog drained: one stream again
        return backlog + live, cursor, live_cursor

    async def _wait_ack(self, timeout: float) -> None:
        await wait_event(self._acked, timeout)
        self._acked.clear()
