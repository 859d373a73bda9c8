"""Store-and-forward: a durable on-disk outbox (SQLite, WAL).

Every envelope is committed here before it is published and deleted only after the
broker's PUBACK. Commits are batched: staged envelopes and acknowledged deletions are
written in one transaction per ``commit_interval_ms`` (one fsync per interval; one
fsync per reading is what made Telegraf's WAL buffer time out, telegraf#18085).

Sequence numbers are assigned inside the same transaction that stores the envelope,
so they survive restarts and a crash never leaves a gap in them. Beyond ``max_bytes``
the oldest envelopes are dropped, counted, and logged.

SQLite calls run on one dedicated worker thread: fsync blocks for milliseconds to
tens of milliseconds on an SD card, and the event loop must keep polling meters.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import sqlite3
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from hinode.contract import TelemetryEnvelope, is_personal
from edge_agent.sources.base import DeviceBatch, wait_event

log = logging.getLogger("edge_agent.queue")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY,
    payload BLOB NOT NULL,
    readings INTEGER NOT NULL,
    personal INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS device_seq (device TEXT PRIMARY KEY, seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


@dataclass(slots=True)
class OutboxRow:
    id: int
    payload: bytes
    readings: int
    personal: int = 0          # a personal kind (vitals): published on the personal topic


class DurableQueue:
    def __init__(self, path: Path, site: str, agent: str, max_bytes: int, commit_interval_ms: int = 100,
                 resend_window_s: float = 5.0):
        self.path = Path(path)
        self.site, self.agent = site, agent
        self.max_bytes = max_bytes
        self.commit_interval = commit_interval_ms / 1000
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="outbox-db")
        self._db: sqlite3.Connection | None = None
        self._staged: list[DeviceBatch] = []
        self._deletes: list[int] = []                   # delivered ids whose resend window has passed
        # Delivered (PUBACKed) envelopes stay on disk for resend_window_s: a broker that stops
        # loses what it was still passing on (Mosquitto 2.0.11 with shared subscriptions), and
        # those are the envelopes it acknowledged just before the connection dropped.
        self.resend_window = resend_window_s
        # (row id, acked at, size) in ack order: a deque of tuples, half the memory of an
        # OrderedDict while a backlog drains at ~15k envelopes/s through a 5 s window.
        self._delivered: deque[tuple[int, float, tuple[int, int]]] = deque()
        self.resent_after_reconnect = 0
        self._resent: set[int] = set()      # requeued after delivery: dropping them loses nothing
        self._acks: list[tuple[int, float]] = []
        self._requeue = False
        self._seq: dict[str, int] = {}
        self._sizes: dict[int, tuple[int, int]] = {}   # id -> (bytes, readings), insertion-ordered
        self._order: list[int] = []                       # ids ever stored this run, ascending; may hold deleted ids
        self._max_id = 0
        self.bytes = 0
        self.readings = 0
        self.dropped_readings = 0
        self.dropped_envelopes = 0
        self.committed_envelopes = 0
        self.commits = 0
        self._flusher: asyncio.Task | None = None
        self._changed = asyncio.Event()
        self._wake = asyncio.Event()
        self._flush_lock = asyncio.Lock()
        self._closing = False
        # Set by the forwarder: ids handed to the MQTT client and not yet acknowledged.
        self.protected_ids = lambda: set()

    # ---------------------------------------------------------------- life cycle

    async def open(self) -> None:
        await self._run(self._open_sync)
        self._flusher = asyncio.create_task(self._flush_loop(), name="outbox-flush")

    def _open_sync(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.executescript(_SCHEMA)
        columns = {row[1] for row in db.execute("PRAGMA table_info(outbox)")}
        if "personal" not in columns:     # an outbox written before personal data had its own topic
            db.execute("ALTER TABLE outbox ADD COLUMN personal INTEGER NOT NULL DEFAULT 0")
        self._seq = dict(db.execute("SELECT device, seq FROM device_seq"))
        for row_id, size, readings in db.execute("SELECT id, length(payload), readings FROM outbox ORDER BY id"):
            self._sizes[row_id] = (size, readings)
            self._order.append(row_id)
            self._max_id = row_id
            self.bytes += size
            self.readings += readings
        counters = dict(db.execute("SELECT name, value FROM counters"))
        self.dropped_readings = counters.get("dropped_readings", 0)
        self.dropped_envelopes = counters.get("dropped_envelopes", 0)
        self._db = db
        if self._sizes:
            log.info("outbox %s holds %d envelopes (%d readings) from before; replaying", self.path,
                     len(self._sizes), self.readings)

    async def close(self) -> None:
        self._closing = True          # a clean stop: what the broker acknowledged needs no resend
        if self._flusher:
            self._flusher.cancel()
            try:
                await self._flusher
            except asyncio.CancelledError:
                pass
        await self.flush()
        await self._run(self._db.close)
        self._executor.shutdown(wait=True)

    async def _run(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    # ---------------------------------------------------------------- producers / consumer

    def put(self, batch: DeviceBatch) -> None:
        """Stage one device batch; it is durable after the next commit (≤ commit_interval)."""
        self._staged.append(batch)
        if len(self._staged) >= 5000:
            self._wake.set()

    def ack(self, row_id: int) -> None:
        """The broker acknowledged this envelope: delivered; deleted once its resend window passed.

        Applied at the next flush, on the event loop, while no commit reads the in-memory view.
        """
        self._acks.append((row_id, time.monotonic()))

    def requeue_recent(self) -> None:
        """The connection dropped: envelopes acknowledged within the resend window go out again
        (applied at the next flush, before the forwarder can send anything on a new connection)."""
        self._requeue = True

    def _take_acks(self) -> None:
        acks, self._acks = self._acks, []
        for row_id, acked_at in acks:
            size = self._sizes.pop(row_id, None)
            if size is None:
                continue
            self.bytes -= size[0]
            self.readings -= size[1]
            self._resent.discard(row_id)
            self._delivered.append((row_id, acked_at, size))

    def _requeue_delivered(self) -> int:
        if not self._delivered:
            return 0
        for row_id, _, size in self._delivered:
            self._sizes[row_id] = size
            self.bytes += size[0]
            self.readings += size[1]
            index = bisect.bisect_left(self._order, row_id)
            if index == len(self._order) or self._order[index] != row_id:
                self._order.insert(index, row_id)
        count = len(self._delivered)
        self._resent.update(row_id for row_id, _, _ in self._delivered)
        self._delivered.clear()
        self._sizes = dict(sorted(self._sizes.items()))     # oldest first, for drop-oldest
        self.resent_after_reconnect += count
        log.info("connection lost: %d envelopes the broker acknowledged in the last %.0fs go out again",
                 count, self.resend_window)
        return count

    def _expired_deliveries(self, everything: bool = False) -> list[int]:
        cutoff = time.monotonic() - self.resend_window
        expired = []
        delivered = self._delivered
        while delivered:
            row_id, acked_at, _ = delivered[0]
            if acked_at > cutoff and not everything:
                break
            delivered.popleft()
            expired.append(row_id)
        return expired

    @property
    def depth(self) -> int:
        return len(self._sizes)

    def ids_after(self, cursor: int, limit: int, upto: int | None = None) -> list[int]:
        """Ids of stored envelopes with id > cursor (and ≤ upto), oldest first."""
        if len(self._order) > 2 * len(self._sizes) + 1024:
            self._order = sorted(self._sizes)
        out = []
        order, sizes = self._order, self._sizes
        for index in range(bisect.bisect_right(order, cursor), len(order)):
            row_id = order[index]
            if upto is not None and row_id > upto:
                break
            if row_id in sizes:
                out.append(row_id)
                if len(out) >= limit:
                    break
        return out

    @property
    def last_id(self) -> int:
        return self._max_id

    async def load(self, ids: list[int]) -> list[OutboxRow]:
        if not ids:
            return []
        return await self._run(self._load_sync, ids)

    def _load_sync(self, ids: list[int]) -> list[OutboxRow]:
        marks = ",".join("?" * len(ids))
        rows = self._db.execute(f"SELECT id, payload, readings, personal FROM outbox WHERE id IN ({marks}) ORDER BY id",
                                ids)
        return [OutboxRow(*row) for row in rows]

    async def wait_changed(self, timeout: float) -> None:
        await wait_event(self._changed, timeout)
        self._changed.clear()

    # ---------------------------------------------------------------- commits

    async def _flush_loop(self) -> None:
        while True:
            await wait_event(self._wake, self.commit_interval)
            self._wake.clear()
            try:
                await self.flush()
            except sqlite3.Error as exc:
                # Disk full or broken: keep the staged data in memory and try again.
                log.error("outbox commit failed, retrying: %s", exc)
                await asyncio.sleep(1)

    async def flush(self) -> None:
        async with self._flush_lock:
            self._take_acks()
            if self._requeue and not self._closing:
                self._requeue = False
                self._requeue_delivered()
            self._deletes += self._expired_deliveries(everything=self._closing)
            if not self._staged and not self._deletes:
                return
            staged, self._staged = self._staged, []
            acked, self._deletes = self._deletes, []
            try:
                protected = self.protected_ids()
                resent = set(self._resent)
                first_id, rows, seq, dropped = await self._run(self._commit_sync, staged, acked, protected, resent)
            except BaseException:
                self._staged[:0] = staged
                self._deletes[:0] = acked
                raise
            self._apply(first_id, rows, seq, acked, dropped)
        self._changed.set()

    def _commit_sync(self, staged: list[DeviceBatch], acked: list[int], protected: set[int], resent: set[int]):
        """One transaction on the worker thread; it only reads the in-memory view."""
        db = self._db
        seq = dict(self._seq)
        rows = []
        touched = set()
        for batch in staged:
            seq[batch.device] = seq.get(batch.device, 0) + 1
            touched.add(batch.device)
            envelope = TelemetryEnvelope.model_construct(
                v=1, site=self.site, agent=self.agent, device=batch.device, kind=batch.kind,
                profile=batch.profile, seq=seq[batch.device], readings=batch.readings, meta=batch.meta)
            rows.append((envelope.model_dump_json().encode(), len(batch.readings), is_personal(batch.kind)))
        first_id = self._max_id + 1
        db.execute("BEGIN IMMEDIATE")
        try:
            if acked:
                db.executemany("DELETE FROM outbox WHERE id = ?", ((i,) for i in acked))
            if rows:
                db.executemany("INSERT INTO outbox (id, payload, readings, personal) VALUES (?, ?, ?, ?)",
                               ((first_id + i, payload, n, personal) for i, (payload, n, personal) in enumerate(rows)))
                db.executemany("INSERT INTO device_seq (device, seq) VALUES (?, ?) "
                               "ON CONFLICT(device) DO UPDATE SET seq = excluded.seq",
                               ((d, seq[d]) for d in touched))
            dropped = self._drop_oldest_sync(db, sum(len(p) for p, _, _ in rows), acked, protected, resent)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return first_id, [(len(p), n) for p, n, _ in rows], seq, dropped

    def _apply(self, first_id: int, rows: list[tuple[int, int]], seq: dict, acked: list[int],
               dropped: list[int]) -> None:
        """Update the in-memory view on the event loop, after the commit succeeded."""
        self._seq = seq
        for row_id in acked:
            size = self._sizes.pop(row_id, None)
            if size:
                self.bytes -= size[0]
                self.readings -= size[1]
        for i, (size, n) in enumerate(rows):
            self._sizes[first_id + i] = (size, n)
            self._order.append(first_id + i)
            self.bytes += size
            self.readings += n
        if rows:
            self._max_id = first_id + len(rows) - 1
            self.committed_envelopes += len(rows)
        for row_id in dropped:
            size = self._sizes.pop(row_id)
            self.bytes -= size[0]
            self.readings -= size[1]
            if row_id in self._resent:        # the broker had it once already: not a loss
                self._resent.discard(row_id)
                continue
            self.dropped_envelopes += 1
            self.dropped_readings += size[1]
        self.commits += 1

    def _drop_oldest_sync(self, db: sqlite3.Connection, incoming: int, acked: list[int],
                          protected: set[int], resent: set[int]) -> list[int]:
        """Ids to drop so the outbox stays within max_bytes (deleted in the open transaction).

        Envelopes already handed to the MQTT client are not dropped: it resends them after
        a reconnect, so they are not lost, and counting them as dropped would be a lie.
        """
        acked_set = set(acked)
        projected = self.bytes + incoming - sum(self._sizes.get(i, (0, 0))[0] for i in acked_set)
        if projected <= self.max_bytes:
            return []
        dropped, lost, readings = [], 0, 0
        for row_id, (size, n) in self._sizes.items():
            if projected <= self.max_bytes:
                break
            if row_id in acked_set or row_id in protected:
                continue
            dropped.append(row_id)
            projected -= size
            if row_id not in resent:          # resent after delivery: the broker had it once
                lost += 1
                readings += n
        if dropped:
            db.executemany("DELETE FROM outbox WHERE id = ?", ((i,) for i in dropped))
            for name, n in (("dropped_envelopes", lost), ("dropped_readings", readings)):
                db.execute("INSERT INTO counters (name, value) VALUES (?, ?) "
                           "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value", (name, n))
            log.warning("outbox full (%d bytes max): dropped the %d oldest envelopes (%d readings)",
                        self.max_bytes, lost, readings)
        return dropped
