"""The outbox's resend window, without a broker: envelopes the broker acknowledged stay on disk
for ``resend_window_s`` and come back after an unexpected disconnect; once the window has
passed they are deleted; a clean stop deletes them at once."""

from __future__ import annotations

import asyncio
import sqlite3

from edge_agent.queue import DurableQueue
from edge_agent.sources.base import DeviceBatch, reading
from hinode.contract import DeviceKind, decode_telemetry


def batch(device: str, ts: int) -> DeviceBatch:
    return DeviceBatch(device=device, kind=DeviceKind.METER, profile="p",
                       readings=[reading(ts, "power_w", 100.0 + ts, "W"), reading(ts, "energy_wh", 5.0, "Wh")])


def rows_on_disk(path) -> list[int]:
    with sqlite3.connect(path) as db:
        return [row for (row,) in db.execute("SELECT id FROM outbox ORDER BY id")]


async def pending_ids(queue: DurableQueue) -> list[int]:
    """What the forwarder would send next (and now holds as handed to the MQTT client)."""
    return [row.id for row in await queue.next_rows(0, 100)]


def test_acknowledged_envelopes_come_back_after_a_connection_loss_and_expire_after_the_window(tmp_path):
    async def scenario():
        queue = DurableQueue(tmp_path / "outbox.db", "plant-a", "edge-1", max_bytes=10_000_000,
                             commit_interval_ms=20, resend_window_s=0.5)
        await queue.open()
        try:
            for ts in range(1, 7):
                queue.put(batch("pm-1", 1_700_000_000_000 + ts))
            await queue.flush()
            ids = await pending_ids(queue)
            assert len(ids) == 6 and queue.depth == 6 and queue.readings == 12

            for row_id in ids[:4]:                   # the broker PUBACKed four
                queue.ack(row_id)
            await queue.flush()
            assert await pending_ids(queue) == ids[4:] and queue.depth == 2 and queue.readings == 4
            assert rows_on_disk(queue.path) == ids, "acknowledged rows stay on disk for the window"

            queue.requeue_recent()                   # the connection dropped unexpectedly
            await queue.flush()
            rows = await queue.next_rows(0, 100)
            assert [row.id for row in rows] == ids and queue.depth == 6 and queue.readings == 12
            assert queue.resent_after_reconnect == 4
            assert [decode_telemetry(row.payload).seq for row in rows[:4]] == [1, 2, 3, 4]

            for row_id in ids:                       # all delivered on the new connection
                queue.ack(row_id)
            await queue.flush()
            assert queue.depth == 0 and rows_on_disk(queue.path) == ids
            await asyncio.sleep(0.6)                 # the window passes
            await queue.flush()
            assert rows_on_disk(queue.path) == [], "rows older than the window are deleted"
            assert queue.dropped_envelopes == 0

            queue.put(batch("pm-1", 1_700_000_000_100))
            await queue.flush()
            [last] = await pending_ids(queue)
            queue.ack(last)
        finally:
            await queue.close()                      # a clean stop: nothing to resend
        assert rows_on_disk(tmp_path / "outbox.db") == []

    asyncio.run(scenario())
