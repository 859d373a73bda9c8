"""Charging sessions, the transaction id counter, modes/limits and RFID tags, on disk.

SQLite with ``synchronous=FULL`` (like the command ledger): a start, a stop or a mode
change is rare and must survive a restart. Calls are short and synchronous; they run on
the event loop because a version handler must answer StartTransaction with an id that
is on disk before the answer leaves.

A stopped session becomes a *record* (the JSON of its batch) in the same transaction
that closes it; the source emits records and deletes them only after the agent has had
time to commit them to its outbox. A restart in between emits the record again, with
the same device, timestamp and values, which the cloud stores as the same point.

A running session's progress (newest meter register, peak power) changes with every
MeterValues: it is kept in memory and written at most every ``PROGRESS_FLUSH_S`` (and at
the stop, and on close). A fsync per MeterValues cost more CPU than everything else the
agent does for it (bench/ocpp_chargers.py); what a crash loses is up to that much progress
of sessions that never send their stop (their StopTransaction carries the meter stop).
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

PROGRESS_FLUSH_S = 30.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    transaction_id TEXT PRIMARY KEY,
    charger TEXT NOT NULL,
    connector INTEGER NOT NULL,
    id_tag TEXT NOT NULL,
    start_ms INTEGER NOT NULL,
    meter_start_wh REAL NOT NULL,
    last_meter_wh REAL,
    last_ms INTEGER NOT NULL,
    peak_w REAL NOT NULL DEFAULT 0,
    pv_kwh REAL NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS records (
    transaction_id TEXT PRIMARY KEY,
    charger TEXT NOT NULL,
    stop_ms INTEGER NOT NULL,
    record TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS settings (scope TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
                                     PRIMARY KEY (scope, key));
CREATE TABLE IF NOT EXISTS tags (tag TEXT PRIMARY KEY);
"""


@dataclass(slots=True)
class OpenSession:
    transaction_id: str
    charger: str
    connector: int
    id_tag: str
    start_ms: int
    meter_start_wh: float
    last_meter_wh: float | None
    last_ms: int
    peak_w: float = 0.0
    pv_kwh: float = 0.0


@dataclass(slots=True)
class SessionRecord:
    """A finished session: what the ``charging_session`` batch carries."""

    charger: str
    connector: int
    transaction_id: str
    id_tag: str
    start_ms: int
    stop_ms: int
    energy_kwh: float
    peak_w: float
    pv_kwh: float
    stop_reason: str

    @property
    def duration_s(self) -> float:
        return max(0, self.stop_ms - self.start_ms) / 1000.0

    @property
    def pv_share(self) -> float:
        return min(1.0, self.pv_kwh / self.energy_kwh) if self.energy_kwh > 0 else 0.0


class SessionStore:
    def __init__(self, path: Path):
        self.path = Path(path)
        self._db: sqlite3.Connection | None = None
        # transaction id -> (newest meter Wh, its ts, peak W): progress not yet on disk
        self._progress: dict[str, tuple[float | None, int, float]] = {}
        self._progress_flushed = time.monotonic()
        self._open: dict[str, OpenSession] = {}     # the open sessions as on disk, read per MeterValues

    def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.executescript(_SCHEMA)
        self._db = db
        self._open = {row[0]: OpenSession(*row) for row in db.execute("SELECT * FROM sessions")}

    def close(self) -> None:
        if self._db is not None:
            self.flush_progress()
            self._db.close()
            self._db = None

    def _transaction(self):
        return _Transaction(self._db)

    # ------------------------------------------------------------ transaction ids

    def next_transaction_id(self) -> int:
        """A 1.6 transaction id never handed out before by this store (also not before a restart)."""
        with self._transaction() as db:
            row = db.execute("SELECT value FROM counters WHERE name = 'transaction_id'").fetchone()
            value = (row[0] if row else 0) + 1
            db.execute("INSERT INTO counters (name, value) VALUES ('transaction_id', ?) "
                       "ON CONFLICT(name) DO UPDATE SET value = excluded.value", (value,))
        return value

    # ------------------------------------------------------------ sessions

    def start(self, session: OpenSession) -> None:
        with self._transaction() as db:
            db.execute("INSERT OR REPLACE INTO sessions (transaction_id, charger, connector, id_tag, start_ms, "
                       "meter_start_wh, last_meter_wh, last_ms, peak_w, pv_kwh) VALUES (?,?,?,?,?,?,?,?,?,?)",
                       (session.transaction_id, session.charger, session.connector, session.id_tag,
                        session.start_ms, session.meter_start_wh, session.last_meter_wh, session.last_ms,
                        session.peak_w, session.pv_kwh))
        self._open[session.transaction_id] = session

    def _with_progress(self, session: OpenSession) -> OpenSession:
        progress = self._progress.get(session.transaction_id)
        return self._with_progress_of(session, *progress) if progress else session

    @staticmethod
    def _with_progress_of(session: OpenSession, meter_wh: float | None, ms: int, peak_w: float) -> OpenSession:
        if meter_wh is not None and ms >= session.last_ms:
            session = replace(session, last_meter_wh=meter_wh, last_ms=ms)
        return replace(session, peak_w=max(session.peak_w, peak_w))

    def get(self, transaction_id: str) -> OpenSession | None:
        session = self._open.get(transaction_id)
        return self._with_progress(session) if session else None

    def open_sessions(self, charger: str | None = None) -> list[OpenSession]:
        found = [s for s in self._open.values() if charger is None or s.charger == charger]
        return [self._with_progress(s) for s in sorted(found, key=lambda s: s.start_ms)]

    def on_connector(self, charger: str, connector: int) -> OpenSession | None:
        found = [s for s in self._open.values() if s.charger == charger and s.connector == connector]
        return self._with_progress(max(found, key=lambda s: s.start_ms)) if found else None

    def sample(self, transaction_id: str, ts_ms: int, meter_wh: float | None, power_w: float | None) -> None:
        """A meter value of a running session (possibly late, with an old timestamp)."""
        meter, ms, peak = self._progress.get(transaction_id, (None, -1, 0.0))
        if meter_wh is not None and ts_ms >= ms:
            meter, ms = meter_wh, ts_ms
        if power_w is not None:
            peak = max(peak, power_w)
        self._progress[transaction_id] = (meter, ms, peak)
        if time.monotonic() - self._progress_flushed >= PROGRESS_FLUSH_S:
            self.flush_progress()

    def flush_progress(self, transaction_id: str | None = None) -> None:
        """Write the progress kept in memory (of one session, or of all)."""
        if transaction_id is None:
            items, self._progress = self._progress, {}
            self._progress_flushed = time.monotonic()
        else:
            progress = self._progress.pop(transaction_id, None)
            items = {transaction_id: progress} if progress else {}
        if not items:
            return
        with self._transaction() as db:
            for tx, (meter_wh, ms, peak_w) in items.items():
                if tx in self._open:
                    self._open[tx] = self._with_progress_of(self._open[tx], meter_wh, ms, peak_w)
                if meter_wh is not None:
                    db.execute("UPDATE sessions SET last_meter_wh = ?, last_ms = ? WHERE transaction_id = ? "
                               "AND last_ms <= ?", (meter_wh, ms, tx, ms))
                if peak_w:
                    db.execute("UPDATE sessions SET peak_w = MAX(peak_w, ?) WHERE transaction_id = ?", (peak_w, tx))

    def add_pv_energy(self, charger: str, connector: int, kwh: float) -> bool:
        """Add PV-covered energy to the session running on a connector; False if none runs."""
        session = self.on_connector(charger, connector)
        if session is None or kwh <= 0:
            return False
        with self._transaction() as db:
            db.execute("UPDATE sessions SET pv_kwh = pv_kwh + ? WHERE transaction_id = ?",
                       (kwh, session.transaction_id))
        stored = self._open[session.transaction_id]
        self._open[session.transaction_id] = replace(stored, pv_kwh=stored.pv_kwh + kwh)
        return True

    def stop(self, transaction_id: str, stop_ms: int, meter_stop_wh: float | None, reason: str) -> SessionRecord | None:
        """Close a session into a record, in one transaction; None for an unknown transaction."""
        self.flush_progress(transaction_id)
        with self._transaction() as db:
            row = db.execute("SELECT * FROM sessions WHERE transaction_id = ?", (transaction_id,)).fetchone()
            if row is None:
                return None
            session = OpenSession(*row)
            end_wh = meter_stop_wh if meter_stop_wh is not None else session.last_meter_wh
            energy_kwh = max(0.0, (end_wh - session.meter_start_wh) / 1000.0) if end_wh is not None else 0.0
            record = SessionRecord(
                charger=session.charger, connector=session.connector, transaction_id=transaction_id,
                id_tag=session.id_tag, start_ms=session.start_ms, stop_ms=max(stop_ms, session.start_ms),
                energy_kwh=round(energy_kwh, 6), peak_w=round(session.peak_w, 1),
                pv_kwh=round(min(session.pv_kwh, energy_kwh), 6), stop_reason=reason or "Local")
            db.execute("INSERT OR REPLACE INTO records (transaction_id, charger, stop_ms, record) VALUES (?,?,?,?)",
                       (transaction_id, record.charger, record.stop_ms, json.dumps(asdict(record))))
            db.execute("DELETE FROM sessions WHERE transaction_id = ?", (transaction_id,))
        self._open.pop(transaction_id, None)
        return record

    def pending_records(self) -> list[SessionRecord]:
        rows = self._db.execute("SELECT record FROM records ORDER BY stop_ms").fetchall()
        return [SessionRecord(**json.loads(row[0])) for row in rows]

    def record_delivered(self, transaction_id: str) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM records WHERE transaction_id = ?", (transaction_id,))

    # ------------------------------------------------------------ settings and tags

    def set_setting(self, scope: str, key: str, value: str | None) -> None:
        with self._transaction() as db:
            if value is None:
                db.execute("DELETE FROM settings WHERE scope = ? AND key = ?", (scope, key))
            else:
                db.execute("INSERT INTO settings (scope, key, value) VALUES (?,?,?) "
                           "ON CONFLICT(scope, key) DO UPDATE SET value = excluded.value", (scope, key, value))

    def settings(self, scope: str) -> dict[str, str]:
        return dict(self._db.execute("SELECT key, value FROM settings WHERE scope = ?", (scope,)).fetchall())

    def tags(self) -> set[str]:
        return {row[0] for row in self._db.execute("SELECT tag FROM tags")}

    def has_tag(self, tag: str) -> bool:
        return self._db.execute("SELECT 1 FROM tags WHERE tag = ?", (tag,)).fetchone() is not None

    def set_tags(self, tags: list[str]) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM tags")
            db.executemany("INSERT OR IGNORE INTO tags (tag) VALUES (?)", [(t,) for t in tags])

    def add_tag(self, tag: str) -> None:
        with self._transaction() as db:
            db.execute("INSERT OR IGNORE INTO tags (tag) VALUES (?)", (tag,))

    def remove_tag(self, tag: str) -> bool:
        with self._transaction() as db:
            return db.execute("DELETE FROM tags WHERE tag = ?", (tag,)).rowcount > 0

    def seed_tags_once(self, tags: list[str]) -> None:
        """The config's initial list, applied only when the store never had one (commands own it after)."""
        if self.settings("_store").get("tags_seeded"):
            return
        with self._transaction() as db:
            db.executemany("INSERT OR IGNORE INTO tags (tag) VALUES (?)", [(t,) for t in tags])
            db.execute("INSERT OR REPLACE INTO settings (scope, key, value) VALUES ('_store', 'tags_seeded', '1')")


class _Transaction:
    def __init__(self, db: sqlite3.Connection):
        self.db = db

    def __enter__(self) -> sqlite3.Connection:
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, exc_type, exc, tb) -> None:
        self.db.execute("COMMIT" if exc_type is None else "ROLLBACK")
