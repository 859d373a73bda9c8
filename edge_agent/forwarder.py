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
from edge_agent.queue import DurableQueue
from edge_agent.sources.base import wait_event

log = logging.getLogger("edge_agent.forwarder")


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
        self._acked = asyncio.Event()
        queue.protected_ids = lambda: {row_id for row_id, _ in self.inflight.values()}

    def on_connected(self) -> None:
        """A (re)connect: everything stored so far that paho does not hold yet is backlog."""
        self.watermark = max(self.watermark, self.queue.last_id)

    def on_disconnected(self) -> None:
        """The MQTT client dropped its unacknowledged messages: resend them from the outbox."""
        self.inflight.clear()
        self.cursor = self.live_cursor = 0
        if self.link is None or not self.link.stopping:
            self.queue.requeue_recent()
        self._acked.set()

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
            free = self.window - len(self.inflight)
            if free <= 0:
                await self._wait_ack(1.0)
                continue
            ids = self._next_ids(free)
            if not ids:
                await self.queue.wait_changed(0.5)
                continue
            rows = await self.queue.load(ids)
            for row in rows:
                mid = link.publish(self.personal_topic if row.personal else self.topic, row.payload, qos=1)
                self.inflight[mid] = (row.id, row.readings)

    def _next_ids(self, free: int) -> list[int]:
        queue = self.queue
        if self.cursor >= self.watermark:
            ids = queue.ids_after(max(self.cursor, self.live_cursor), free)
            if ids:
                self.cursor = self.live_cursor = ids[-1]
            return ids
        live = queue.ids_after(max(self.live_cursor, self.watermark), max(1, free // 2))
        backlog = queue.ids_after(self.cursor, free - len(live), upto=self.watermark)
        if live:
            self.live_cursor = live[-1]
        if backlog:
            self.cursor = backlog[-1]
        else:
            self.cursor = self.watermark       # backlog drained: one stream again
            self.cursor = max(self.cursor, self.live_cursor)
        return backlog + live

    async def _wait_ack(self, timeout: float) -> None:
        await wait_event(self._acked, timeout)
        self._acked.clear()
