"""The outbox's memory does not grow with its backlog (a week-long outage on a Pi must not
grow the agent): what the queue holds in Python objects after opening, committing, sending,
acknowledging, requeueing and dropping is the same with 10,000 or 100,000 stored envelopes.

tracemalloc counts Python allocations only, i.e. the queue's own structures; SQLite's page
cache is a fixed size (``cache_size``) and is not counted.
"""

from __future__ import annotations

import asyncio
import gc
import sqlite3
import tracemalloc

from edge_agent.queue import DurableQueue
from edge_agent.sources.base import DeviceBatch, reading
from hinode.contract import DeviceKind

PAYLOAD = (b'{"v":1,"site":"plant-a","agent":"edge-1","device":"pm-1","kind":"meter","profile":"p","seq":1,'
           b'"readings":[{"ts":1700000000000,"metric":"power_w","value":1.0,"unit":"W"}]}')


def batch(i: int) -> DeviceBatch:
    return DeviceBatch(device=f"live-{i % 10}", kind=DeviceKind.METER, profile="p",
                       readings=[reading(1_700_000_000_000 + i, "power_w", float(i), "W")])


def seed_outbox(path, envelopes: int) -> None:
    """An outbox as a long outage leaves it, written directly (fast) after the queue made its schema."""
    async def make_schema():
        queue = DurableQueue(path, "plant-a", "edge-1", max_bytes=1 << 40)
        await queue.open()
        await queue.close()
    asyncio.run(make_schema())
    with sqlite3.connect(path) as db:
        db.executemany("INSERT INTO outbox (id, payload, readings) VALUES (?, ?, 1)",
                       ((i, PAYLOAD) for i in range(1, envelopes + 1)))


async def exercise(path, envelopes: int) -> tuple[int, DurableQueue]:
    """Python memory the queue holds after opening this outbox, sending and acknowledging part of
    it, a lost connection (requeue), and drop-oldest under new data."""
    gc.collect()
    start = tracemalloc.get_traced_memory()[0]
    queue = DurableQueue(path, "plant-a", "edge-1", max_bytes=(envelopes + 100) * len(PAYLOAD),
                         commit_interval_ms=10_000, resend_window_s=3600)
    await queue.open()
    assert (queue.depth, queue.readings, queue.bytes) == (envelopes, envelopes, envelopes * len(PAYLOAD))
    cursor = 0
    for _ in range(10):                           # send and acknowledge 2,000 of the backlog, oldest first
        rows = await queue.next_rows(cursor, 200)
        cursor = rows[-1].id
        for row in rows:
            queue.ack(row.id)
        await queue.flush()
    # The resend window holds runs of consecutive ids, one per flush here, not one entry per envelope.
    assert (queue.resend_window_envelopes, queue.resend_window_runs) == (2000, 10)
    queue.requeue_recent()                        # a lost connection: the 2,000 go out again
    await queue.flush()
    assert queue.resent_after_reconnect == 2000
    handed = await queue.next_rows(0, 200)        # in flight: protected from drop-oldest, on top of the bound
    for i in range(500):                          # live data beyond max_bytes: the oldest are dropped
        queue.put(batch(i))
    await queue.flush()
    in_flight_bytes = sum(len(row.payload) for row in handed)
    assert handed[0].id == 1 and queue.bytes - in_flight_bytes <= queue.max_bytes
    assert queue.depth < envelopes + 500, "drop-oldest ran"
    assert queue.dropped_envelopes == 0, "what was dropped had been delivered once (resent)"
    gc.collect()
    return tracemalloc.get_traced_memory()[0] - start, queue


def test_outbox_memory_is_the_same_with_10k_and_100k_stored_envelopes(tmp_path):
    held = {}
    tracemalloc.start()
    try:
        for envelopes in (10_000, 100_000):
            path = tmp_path / f"outbox-{envelopes}.db"
            seed_outbox(path, envelopes)

            async def run():
                memory, queue = await exercise(path, envelopes)
                await queue.close()
                with sqlite3.connect(path) as db:       # the totals kept in memory match the disk
                    assert db.execute("SELECT count(*), sum(length(payload)) FROM outbox").fetchone() == \
                        (queue.depth, queue.bytes)
                return memory
            held[envelopes] = asyncio.run(run())
    finally:
        tracemalloc.stop()
    # An index of 90,000 more rows would be megabytes (~100 bytes a row as Python objects).
    assert held[100_000] - held[10_000] < 64 * 1024, held
    assert held[100_000] < 1024 * 1024, held
