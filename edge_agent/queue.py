"""Store-and-forward: a durable on-disk outbox (SQLite, WAL).

Every envelope is committed here before it is published and deleted only after the
broker's PUBACK. Commits are batched: staged envelopes and acknowledged deletions are
written in one transaction per ``commit_interval_ms`` (one fsync per interval; one
fsync per reading is what made Telegraf's WAL buffer time out, telegraf#18085).

Sequence numbers are assigned inside the same transaction that stores the envelope,
so they survive restarts and a crash never leaves a gap in them. When the envelopes waiting
to be sent pass ``max_bytes`` the oldest are dropped, counted, and logged; those in flight
(at most ``max_inflight``, handed to the MQTT client) and those in the resend window are
on disk on top of the bound until the broker acknowledges them or the window passes.

Memory does not grow with the backlog: only totals (envelopes, bytes, readings, last id)
are kept, SQLite answers "the next envelopes after id X" from its primary key, and
drop-oldest runs in SQL. What is kept per envelope is bounded by the in-flight window
(envelopes handed to the MQTT client) and by the resend window (acknowledged envelopes, as
runs of consecutive ids per flush).

SQLite calls run on one dedicated worker thread: fsync blocks for milliseconds to
tens of milliseconds on an SD card, and the event loop must keep polling meters.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from hinode.contract import TelemetryEnvelope, is_personal
from edge_agent import id_runs
from edge_agent.id_runs import LAST_ID, Run
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


@dataclass(slots=True)
class Delivered:
    """The envelopes the broker acknowledged before one flush; on disk until the window passes."""
    acked_at: float
    runs: list[Run]
    envelopes: int
    bytes: int
    readings: int


@dataclass(slots=True)
class CommitResult:
    first_id: int
    envelopes: int
    bytes: int
    readings: int
    seq: dict[str, int]
    dropped: tuple[int, int, int, int, int]   # envelopes, bytes, readings; of them lost: envelopes, readings
    min_id: int


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
        self._deletes: list[Run] = []                 # delivered runs whose resend window has passed
        # Delivered (PUBACKed) envelopes stay on disk for resend_window_s: a broker that stops
        # loses what it was still passing on (Mosquitto 2.0.11 with shared subscriptions), and
        # those are the envelopes it acknowledged just before the connection dropped.
        self.resend_window = resend_window_s
        self._delivered: deque[Delivered] = deque()
        self._delivered_merged: list[Run] | None = []    # _delivered's runs merged; None: to recompute
        self.resent_after_reconnect = 0
        self._resent: list[Run] = []        # requeued after delivery: dropping them loses nothing
        self._acks: list[int] = []
        self._requeue = False
        # Handed to the MQTT client by next_rows() and not acknowledged yet: never dropped (the
        # client may still deliver them). Written by the worker thread, emptied on the loop.
        self._handed: dict[int, tuple[int, int]] = {}     # id -> (bytes, readings)
        self._seq: dict[str, int] = {}
        self._max_id = 0
        self.depth = 0                  # stored envelopes not delivered (the resend window aside)
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
        self.depth, self.bytes, self.readings, self._max_id = db.execute(
            "SELECT count(*), coalesce(sum(length(payload)), 0), coalesce(sum(readings), 0), coalesce(max(id), 0)"
            " FROM outbox").fetchone()
        counters = dict(db.execute("SELECT name, value FROM counters"))
        self.dropped_readings = counters.get("dropped_readings", 0)
        self.dropped_envelopes = counters.get("dropped_envelopes", 0)
        self._db = db
        if self.depth:
            log.info("outbox %s holds %d envelopes (%d readings) from before; replaying", self.path,
                     self.depth, self.readings)

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

    @property
    def staged(self) -> int:
        return len(self._staged)

    def ack(self, row_id: int) -> None:
        """The broker acknowledged this envelope: delivered; deleted once its resend window passed.

        Applied at the next flush, on the event loop, while no commit reads the in-memory view.
        """
        self._acks.append(row_id)

    def requeue_recent(self) -> None:
        """The connection dropped: envelopes acknowledged within the resend window go out again,
        and those handed to the MQTT client are no longer in flight (applied at the next flush;
        ``requeue_pending`` tells the sender to flush before it sends on a new connection)."""
        self._requeue = True

    @property
    def requeue_pending(self) -> bool:
        return self._requeue and not self._closing

    @property
    def last_id(self) -> int:
        return self._max_id

    @property
    def resend_window_envelopes(self) -> int:
        return sum(chunk.envelopes for chunk in self._delivered)

    @property
    def resend_window_runs(self) -> int:
        return sum(len(chunk.runs) for chunk in self._delivered)

    def _take_acks(self) -> None:
        acks, self._acks = self._acks, []
        ids, size, readings = [], 0, 0
        for row_id in acks:
            handed = self._handed.pop(row_id, None)
            if handed is None:            # not handed out (or acknowledged twice): nothing to account
                continue
            ids.append(row_id)
            size += handed[0]
            readings += handed[1]
        if not ids:
            return
        self.depth -= len(ids)
        self.bytes -= size
        self.readings -= readings
        ids.sort()
        self._delivered.append(Delivered(time.monotonic(), id_runs.runs_of(ids), len(ids), size, readings))
        self._delivered_merged = None

    def _requeue_delivered(self) -> int:
        self._handed.clear()
        if not self._delivered:
            return 0
        count = 0
        for chunk in self._delivered:
            self.depth += chunk.envelopes
            self.bytes += chunk.bytes
            self.readings += chunk.readings
            count += chunk.envelopes
        self._resent = id_runs.merged(self._resent + [run for chunk in self._delivered for run in chunk.runs])
        self._delivered.clear()
        self._delivered_merged = []
        self.resent_after_reconnect += count
        log.info("connection lost: %d envelopes the broker acknowledged in the last %.0fs go out again",
                 count, self.resend_window)
        return count

    def _expired_deliveries(self, everything: bool = False) -> list[Run]:
        cutoff = time.monotonic() - self.resend_window
        expired: list[Run] = []
        delivered = self._delivered
        while delivered and (everything or delivered[0].acked_at <= cutoff):
            expired += delivered.popleft().runs
            self._delivered_merged = None
        return expired

    def _delivered_runs(self) -> list[Run]:
        # Asked for every next_rows() and every commit: merged once per change of the window.
        if self._delivered_merged is None:
            self._delivered_merged = id_runs.merged(run for chunk in self._delivered for run in chunk.runs)
        return self._delivered_merged

    async def next_rows(self, after: int, limit: int, upto: int | None = None) -> list[OutboxRow]:
        """Up to ``limit`` stored envelopes with id > after (and ≤ upto) not yet delivered, oldest
        first. They count as handed to the MQTT client — never dropped — until acknowledged or
        ``requeue_recent()``."""
        if limit <= 0:
            return []
        delivered = self._delivered_runs() if self._delivered else []
        if delivered and delivered[-1][1] <= after:
            delivered = []                # the usual case: everything delivered lies behind the cursor
        return await self._run(self._next_rows_sync, after, limit, LAST_ID if upto is None else upto, delivered)

    def _next_rows_sync(self, after: int, limit: int, upto: int, delivered: list[Run]) -> list[OutboxRow]:
        rows: list[OutboxRow] = []
        for start, end in id_runs.gaps(delivered, after, upto):
            rows += (OutboxRow(*row) for row in self._db.execute(
                "SELECT id, payload, readings, personal FROM outbox WHERE id > ? AND id <= ? ORDER BY id LIMIT ?",
                (start, end, limit - len(rows))))
            if len(rows) >= limit:
                break
        for row in rows:
            self._handed[row.id] = (len(row.payload), row.readings)
        return rows

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
            deletes, self._deletes = self._deletes, []
            try:
                result = await self._run(self._commit_sync, staged, deletes, self.bytes, self._delivered_runs(),
                                         list(self._resent))
            except BaseException:
                self._staged[:0] = staged
                self._deletes[:0] = deletes
                raise
            self._apply(result)
        self._changed.set()

    def _commit_sync(self, staged: list[DeviceBatch], deletes: list[Run], pending_bytes: int,
                     delivered: list[Run], resent: list[Run]) -> CommitResult:
        """One transaction on the worker thread; it reads only its arguments and ``_handed``."""
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
        size, readings = sum(len(p) for p, _, _ in rows), sum(n for _, n, _ in rows)
        db.execute("BEGIN IMMEDIATE")
        try:
            if deletes:
                db.executemany("DELETE FROM outbox WHERE id BETWEEN ? AND ?", deletes)
            if rows:
                db.executemany("INSERT INTO outbox (id, payload, readings, personal) VALUES (?, ?, ?, ?)",
                               ((first_id + i, payload, n, personal) for i, (payload, n, personal) in enumerate(rows)))
                db.executemany("INSERT INTO device_seq (device, seq) VALUES (?, ?) "
                               "ON CONFLICT(device) DO UPDATE SET seq = excluded.seq",
                               ((d, seq[d]) for d in touched))
            excess = pending_bytes + size - self.max_bytes
            if excess > 0:
                # max_bytes bounds what waits to be sent. Envelopes in flight (at most max_inflight) are on
                # top until acknowledged: counting them would drop the newest envelope whenever the whole
                # outbox is in flight (a small bound replaying after an outage; CI saw it).
                excess -= sum(row_size for row_size, _ in self._handed.values())
            dropped = self._drop_oldest_sync(db, excess, delivered, resent)
            min_id = db.execute("SELECT coalesce(min(id), 0) FROM outbox").fetchone()[0] if resent else 0
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return CommitResult(first_id, len(rows), size, readings, seq, dropped, min_id)

    def _apply(self, result: CommitResult) -> None:
        """Update the totals on the event loop, after the commit succeeded."""
        self._seq = result.seq
        if result.envelopes:
            self._max_id = result.first_id + result.envelopes - 1
            self.committed_envelopes += result.envelopes
            self.depth += result.envelopes
            self.bytes += result.bytes
            self.readings += result.readings
        envelopes, size, readings, lost, lost_readings = result.dropped
        self.depth -= envelopes
        self.bytes -= size
        self.readings -= readings
        self.dropped_envelopes += lost
        self.dropped_readings += lost_readings
        if self._resent and result.min_id:     # runs below every stored id can never be dropped
            self._resent = [run for run in self._resent if run[1] >= result.min_id]
        self.commits += 1

    def _drop_oldest_sync(self, db: sqlite3.Connection, excess: int, delivered: list[Run],
                          resent: list[Run]) -> tuple[int, int, int, int, int]:
        """Delete the oldest stored envelopes (in the open transaction) until ``excess`` bytes are freed.

        Envelopes handed to the MQTT client are not dropped: it may still deliver them, and
        counting them as dropped would be a lie; delivered ones stay for their resend window.
        """
        if excess <= 0:
            return 0, 0, 0, 0, 0
        victims, size, readings, lost, lost_readings = [], 0, 0, 0, 0
        for start, end in id_runs.gaps(delivered, 0):
            cursor = db.execute("SELECT id, length(payload), readings FROM outbox WHERE id > ? AND id <= ? ORDER BY id",
                                (start, end))
            for row_id, row_size, n in cursor:
                if row_id in self._handed:
                    continue
                victims.append((row_id,))
                size += row_size
                readings += n
                if not id_runs.contains(resent, row_id):      # resent after delivery: the broker had it once
                    lost += 1
                    lost_readings += n
                if size >= excess:
                    break
            cursor.close()
            if size >= excess:
                break
        if victims:
            db.executemany("DELETE FROM outbox WHERE id = ?", victims)
            for name, n in (("dropped_envelopes", lost), ("dropped_readings", lost_readings)):
                db.execute("INSERT INTO counters (name, value) VALUES (?, ?) "
                           "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value", (name, n))
            log.warning("outbox full (%d bytes max): dropped the %d oldest envelopes (%d readings)",
                        self.max_bytes, lost, lost_readings)
        return len(victims), size, readings, lost, lost_readings
