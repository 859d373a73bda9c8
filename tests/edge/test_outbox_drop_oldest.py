"""Drop-oldest beyond ``queue.max_bytes``, without a broker: the oldest stored envelopes go first,
except those in flight (handed to the MQTT client) and those delivered and kept for the resend
window; an envelope resent after a connection loss is dropped without counting as lost; the
counts survive a restart."""

from __future__ import annotations

import asyncio
import sqlite3

from edge_agent.queue import DurableQueue
from edge_agent.sources.base import DeviceBatch, reading
from hinode.contract import DeviceKind


def batch(i: int) -> DeviceBatch:
    """Every envelope the same size: a different two-digit device each, seq 1, same ts."""
    return DeviceBatch(device=f"pm-{i:02d}", kind=DeviceKind.METER, profile="p",
                       readings=[reading(1_700_000_000_000, "power_w", 1.0, "W"),
                                 reading(1_700_000_000_000, "energy_wh", 2.0, "Wh")])


def stored_ids(path) -> list[int]:
    with sqlite3.connect(path) as db:
        return [row_id for (row_id,) in db.execute("SELECT id FROM outbox ORDER BY id")]


def test_drop_oldest_spares_in_flight_and_delivered_envelopes_and_counts_only_losses(tmp_path):
    path = tmp_path / "outbox.db"

    async def scenario():
        queue = DurableQueue(path, "plant-a", "edge-1", max_bytes=1 << 30, commit_interval_ms=10_000,
                             resend_window_s=3600)
        await queue.open()
        for i in range(10):
            queue.put(batch(i))
        await queue.flush()
        size = queue.bytes // 10
        assert queue.bytes == 10 * size and stored_ids(path) == list(range(1, 11))

        in_flight = await queue.next_rows(0, 3)           # 1, 2, 3 handed to the MQTT client
        queue.ack(in_flight[0].id)                        # 1 acknowledged: delivered, kept for resending
        await queue.flush()
        assert queue.depth == 9 and queue.resend_window_envelopes == 1

        queue.max_bytes = 6 * size
        queue.put(batch(10))                              # 4..10 waiting + 1 new = 2 too many
        await queue.flush()
        assert stored_ids(path) == [1, 2, 3, 6, 7, 8, 9, 10, 11], \
            "4, 5 dropped; 1 (delivered), 2, 3 (in flight, on top of the bound) kept"
        assert (queue.depth, queue.bytes, queue.readings) == (8, 8 * size, 16)
        assert (queue.dropped_envelopes, queue.dropped_readings) == (2, 4)

        queue.requeue_recent()                            # connection lost: 1 resent, 2 and 3 no longer in flight
        await queue.flush()
        assert queue.depth == 9 and queue.resent_after_reconnect == 1
        queue.put(batch(11))
        queue.put(batch(12))                              # 11 waiting for 6: 1, 2, 3, 6, 7 go
        await queue.flush()
        assert stored_ids(path) == [8, 9, 10, 11, 12, 13]
        assert (queue.dropped_envelopes, queue.dropped_readings) == (6, 12), "1 had reached the broker: not lost"
        assert (await queue.next_rows(0, 100))[0].id == 8
        await queue.close()

        reopened = DurableQueue(path, "plant-a", "edge-1", max_bytes=6 * size)
        await reopened.open()
        assert (reopened.depth, reopened.bytes, reopened.readings) == (6, 6 * size, 12)
        assert (reopened.dropped_envelopes, reopened.dropped_readings) == (6, 12)
        assert reopened.last_id == 13
        await reopened.close()

    asyncio.run(scenario())


def test_outbox_full_of_in_flight_envelopes_keeps_the_newest(tmp_path):
    """CI, store-and-forward at a 64 KiB bound: after the outage the whole backlog was in flight
    at once, and each new envelope was the only one drop-oldest could take, so the newest were
    lost while the oldest reached the broker. What is in flight is on top of the bound."""
    path = tmp_path / "outbox.db"

    async def scenario():
        queue = DurableQueue(path, "plant-a", "edge-1", max_bytes=1 << 30, commit_interval_ms=10_000)
        await queue.open()
        for i in range(10):
            queue.put(batch(i))
        await queue.flush()
        size = queue.bytes // 10
        queue.max_bytes = 10 * size                       # at its bound
        in_flight = await queue.next_rows(0, 100)         # the whole backlog handed to the MQTT client
        assert len(in_flight) == 10
        queue.put(batch(10))
        queue.put(batch(11))
        await queue.flush()
        assert stored_ids(path) == list(range(1, 13)), "nothing dropped: the 10 in flight are on top"
        assert (queue.dropped_envelopes, queue.bytes) == (0, 12 * size)
        for row in in_flight:
            queue.ack(row.id)
        queue.put(batch(12))
        await queue.flush()
        assert (queue.depth, queue.dropped_envelopes) == (3, 0), "acknowledged: 11, 12, 13 wait, within the bound"
        queue.max_bytes = 2 * size
        queue.put(batch(13))
        await queue.flush()
        assert (await queue.next_rows(0, 100))[0].id == 13, "past the bound again: the oldest (11, 12) went"
        assert queue.dropped_envelopes == 2
        await queue.close()

    asyncio.run(scenario())
