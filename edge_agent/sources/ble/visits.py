"""The VisitBook: readings held on the gateway until a nurse confirms them inside a visit.

One SQLite file (WAL) in the source's state_dir, so a gateway restart changes nothing: an active
visit stays active, held readings stay held, and confirmed readings not yet forwarded are handed
over again. A reading's life::

    offer() inside a started visit -> pending --confirm--> confirmed --take/mark_forwarded--> forwarded
    offer() outside any visit      -> unassigned --assign--> pending (in the chosen visit)
    pending or unassigned --discard--> discarded

Only ``confirmed`` readings ever leave (``take_confirmed``), each with its visit id and the
patient's pseudonym; every state change is written to the local audit table with the nurse and
the time. Forwarded and discarded readings, ended visits and audit rows older than ``keep_days``
are purged so the gateway holds little personal data. Methods are synchronous and fast (one small
transaction each); call them from the event loop.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import sqlite3
import threading
import time
from pathlib import Path
from zoneinfo import ZoneInfo

from edge_agent.sources.ble.measurement import Measurement
from edge_agent.sources.ble.schedule import ScheduledVisit, ScheduleWatcher
from edge_agent.sources.ble.visit_types import ChangeFeed, ConfirmedReading, HeldReading, Visit, VisitError
from hinode.contract import ID_PATTERN, is_id

__all__ = ["VisitBook", "Visit", "HeldReading", "ConfirmedReading", "VisitError", "ChangeFeed", "ScheduledVisit"]

DAY_MS = 86_400_000
PURGE_EVERY_S = 3600.0

SCHEMA = """
CREATE TABLE IF NOT EXISTS visits (
    id TEXT PRIMARY KEY, day TEXT NOT NULL, seq INTEGER NOT NULL, pseudonym TEXT NOT NULL,
    display_name TEXT NOT NULL DEFAULT '', scheduled_time TEXT NOT NULL DEFAULT '',
    unscheduled INTEGER NOT NULL, nurse TEXT NOT NULL, started_ms INTEGER NOT NULL,
    ended_ms INTEGER, ended_by TEXT);
CREATE TABLE IF NOT EXISTS readings (
    n INTEGER PRIMARY KEY AUTOINCREMENT, device TEXT NOT NULL, profile TEXT NOT NULL,
    measurement TEXT NOT NULL, ts_ms INTEGER NOT NULL, time_source TEXT NOT NULL,
    state TEXT NOT NULL, visit_id TEXT, received_ms INTEGER NOT NULL, changed_ms INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS readings_by_state ON readings(state, visit_id);
CREATE TABLE IF NOT EXISTS audit (
    n INTEGER PRIMARY KEY AUTOINCREMENT, ts_ms INTEGER NOT NULL, action TEXT NOT NULL,
    nurse TEXT NOT NULL, reading TEXT, visit_id TEXT, from_state TEXT, to_state TEXT);
"""


_READING_COLUMNS = ("r.n, r.device, r.profile, r.measurement, r.ts_ms, r.time_source, r.state, r.visit_id, "
                    "v.pseudonym, r.received_ms")
_VISIT_COLUMNS = "id, pseudonym, display_name, nurse, started_ms, ended_ms, ended_by, scheduled_time, unscheduled"


class VisitBook:
    """See the module docstring. ``changed`` is an ``asyncio.Event`` set on every change (one
    consumer, e.g. the source's readings loop, may clear it); ``changes`` serves many waiters."""

    def __init__(self, path: Path, kit: str, schedule: list[ScheduledVisit] | None = None, clock=time.time, *,
                 schedule_file: Path | None = None, timezone: str = "Asia/Tokyo", keep_days: int = 7):
        if not is_id(f"v-{kit}-20000101-1000"):
            raise ValueError(f"kit {kit!r} cannot make visit ids (expected {ID_PATTERN}, at most 48 characters)")
        self.kit = kit
        self.clock = clock
        self.zone = ZoneInfo(timezone)
        self.keep_days = keep_days
        self._fixed_schedule = list(schedule or [])
        self.schedule = ScheduleWatcher(schedule_file, kit) if schedule_file is not None else None
        self.changed = asyncio.Event()
        self.changes = ChangeFeed()
        self._handed: set[int] = set()
        self._lock = threading.Lock()
        self._last_purge = 0.0
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        self.purge()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # ------------------------------------------------------------------ time and schedule

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    def local_time(self, ts_ms: int) -> dt.datetime:
        return dt.datetime.fromtimestamp(ts_ms / 1000, self.zone)

    def local_date(self) -> dt.date:
        return self.local_time(self._now_ms()).date()

    def scheduled(self) -> list[ScheduledVisit]:
        """The whole schedule (reloaded first when the file changed)."""
        if self.schedule is None:
            return list(self._fixed_schedule)
        self.schedule.refresh()
        return list(self.schedule.visits)

    @property
    def schedule_error(self) -> str:
        return self.schedule.error if self.schedule is not None else ""

    def today(self) -> list[dict]:
        """Today's visits (kit's local date): scheduled ones (state scheduled, active or ended)
        and unscheduled ones started today, ordered by time."""
        self._maybe_purge()
        day = self.local_date()
        started = self._visits("WHERE day = ? ORDER BY started_ms", (day.strftime("%Y%m%d"),))
        latest = {v.pseudonym: v for v in started}
        rows: list[dict] = []
        listed: set[str] = set()
        for entry in sorted((s for s in self.scheduled() if s.date == day), key=lambda s: s.time):
            visit = latest.get(entry.pseudonym)
            rows.append(_today_row(entry.pseudonym, entry.display_name, entry.time, True, visit))
            listed.add(entry.pseudonym)
        for visit in started:
            if visit.pseudonym not in listed:
                listed.add(visit.pseudonym)
                visit = latest[visit.pseudonym]
                rows.append(_today_row(visit.pseudonym, visit.display_name,
                                       self.local_time(visit.started_ms).strftime("%H:%M"), False, visit))
        return sorted(rows, key=lambda r: r["time"])

    # ------------------------------------------------------------------ visits

    def active(self) -> Visit | None:
        visits = self._visits("WHERE ended_ms IS NULL ORDER BY started_ms DESC LIMIT 1", ())
        return visits[0] if visits else None

    def visit(self, visit_id: str) -> Visit:
        visits = self._visits("WHERE id = ?", (visit_id,))
        if not visits:
            raise VisitError("not_found", f"no visit {visit_id!r} on this gateway")
        return visits[0]

    def visits_of_today(self) -> list[Visit]:
        return self._visits("WHERE day = ? ORDER BY started_ms", (self.local_date().strftime("%Y%m%d"),))

    def start_visit(self, pseudonym: str, nurse: str, *, unscheduled: bool = False) -> Visit:
        """Start a visit of a patient on today's schedule, or (``unscheduled=True``) of any
        pseudonym the nurse types. One visit at a time per kit."""
        if not is_id(pseudonym):
            raise VisitError("bad_pseudonym", f"{pseudonym!r} is not a pseudonym (expected {ID_PATTERN})")
        day = self.local_date()
        entry = next((s for s in self.scheduled() if s.date == day and s.pseudonym == pseudonym), None)
        if entry is None and not unscheduled:
            raise VisitError("not_scheduled", f"{pseudonym} is not on today's schedule; choose 'unscheduled' "
                                              "to visit anyway")
        now = self._now_ms()
        stamp = day.strftime("%Y%m%d")
        with self._transaction() as db:
            current = db.execute("SELECT id FROM visits WHERE ended_ms IS NULL").fetchone()
            if current:
                raise VisitError("active_visit", f"visit {current[0]} is still active; end it first")
            seq = db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM visits WHERE day = ?", (stamp,)).fetchone()[0]
            visit = Visit(f"v-{self.kit}-{stamp}-{seq}", pseudonym, entry.display_name if entry else "", nurse, now,
                          scheduled_time=entry.time if entry else "", unscheduled=entry is None)
            db.execute("INSERT INTO visits (id, day, seq, pseudonym, display_name, scheduled_time, unscheduled, "
                       "nurse, started_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (visit.id, stamp, seq, pseudonym, visit.display_name, visit.scheduled_time,
                        int(visit.unscheduled), nurse, now))
            self._audit(db, now, "start_visit", nurse, visit_id=visit.id)
        self._notify()
        return visit

    def end_visit(self, visit_id: str, nurse: str, *, discard_pending: bool = False) -> None:
        """End a visit. Pending readings block it (VisitError ``pending_readings`` lists them)
        unless ``discard_pending``: then they are discarded (audited) and the visit ends."""
        visit = self.visit(visit_id)
        if not visit.active:
            raise VisitError("state", f"visit {visit_id} has already ended")
        pending = [r for r in self.held() if r.state == "pending" and r.visit_id == visit_id]
        if pending and not discard_pending:
            raise VisitError("pending_readings", f"visit {visit_id} has {len(pending)} reading(s) to confirm or "
                                                 "discard first", pending)
        now = self._now_ms()
        with self._transaction() as db:
            for held in pending:
                self._move(db, held, "discarded", nurse, now)
            db.execute("UPDATE visits SET ended_ms = ?, ended_by = ? WHERE id = ?", (now, nurse, visit_id))
            self._audit(db, now, "end_visit", nurse, visit_id=visit_id)
        self._notify()

    # ------------------------------------------------------------------ readings

    def offer(self, device: str, profile: str, m: Measurement, ts_ms: int, time_source: str, *,
              replace_held: bool = False) -> HeldReading:
        """Hold a decoded measurement: ``pending`` in the active visit, else ``unassigned``.
        ``replace_held``: replace this device's reading still waiting in the same place (same
        state and visit) instead of adding one (for devices that notify every second)."""
        self._maybe_purge()
        visit = self.active()
        state, visit_id = ("pending", visit.id) if visit else ("unassigned", None)
        now = self._now_ms()
        data = json.dumps(m.to_json(), ensure_ascii=False)
        with self._transaction() as db:
            previous = None
            if replace_held:
                previous = db.execute("SELECT n FROM readings WHERE device = ? AND state = ? AND visit_id IS ? "
                                      "ORDER BY n DESC LIMIT 1", (device, state, visit_id)).fetchone()
            if previous:
                n = previous[0]
                db.execute("UPDATE readings SET profile = ?, measurement = ?, ts_ms = ?, time_source = ?, "
                           "received_ms = ?, changed_ms = ? WHERE n = ?",
                           (profile, data, ts_ms, time_source, now, now, n))
            else:
                n = db.execute("INSERT INTO readings (device, profile, measurement, ts_ms, time_source, state, "
                               "visit_id, received_ms, changed_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                               (device, profile, data, ts_ms, time_source, state, visit_id, now, now)).lastrowid
            self._audit(db, now, "replace" if previous else "offer", "gateway", reading=f"r-{n}",
                        visit_id=visit_id, to_state=state)
        self._notify()
        return HeldReading(f"r-{n}", device, profile, m, ts_ms, time_source, state, visit_id,
                           visit.pseudonym if visit else None, now)

    def reading(self, reading_id: str) -> HeldReading:
        rows = self._readings("WHERE r.n = ?", (_reading_number(reading_id),))
        if not rows:
            raise VisitError("not_found", f"no reading {reading_id!r} on this gateway")
        return rows[0]

    def confirm(self, reading_id: str, nurse: str) -> None:
        self._change(reading_id, nurse, {"pending"}, "confirmed")

    def discard(self, reading_id: str, nurse: str) -> None:
        self._change(reading_id, nurse, {"pending", "unassigned"}, "discarded")

    def assign(self, reading_id: str, visit_id: str, nurse: str) -> None:
        """An unassigned reading becomes pending in a visit of this gateway (the nurse then confirms it)."""
        self.visit(visit_id)
        self._change(reading_id, nurse, {"unassigned"}, "pending", visit_id)

    def held(self) -> list[HeldReading]:
        """Pending and unassigned readings, oldest first."""
        return self._readings("WHERE r.state IN ('pending', 'unassigned') ORDER BY r.n", ())

    def take_confirmed(self) -> list[ConfirmedReading]:
        """Confirmed readings not yet forwarded, each handed over once per process (after a
        restart, the ones never marked forwarded are handed over again)."""
        rows = self._readings("WHERE r.state = 'confirmed' ORDER BY r.n", ())
        taken = [r for r in rows if _reading_number(r.id) not in self._handed]
        self._handed.update(_reading_number(r.id) for r in taken)
        return [ConfirmedReading(r.id, r.device, r.profile, r.measurement, r.ts_ms, r.time_source,
                                 r.visit_id or "", r.pseudonym or "") for r in taken]

    def mark_forwarded(self, ids: list[str]) -> None:
        if not ids:
            return
        now = self._now_ms()
        with self._transaction() as db:
            for reading_id in ids:
                n = _reading_number(reading_id)
                if db.execute("UPDATE readings SET state = 'forwarded', changed_ms = ? WHERE n = ? "
                              "AND state = 'confirmed'", (now, n)).rowcount:
                    self._audit(db, now, "forward", "gateway", reading=reading_id,
                                from_state="confirmed", to_state="forwarded")
                self._handed.discard(n)
        self._notify()

    def audit_log(self, reading_id: str | None = None) -> list[dict]:
        """The local audit (oldest first), optionally of one reading."""
        where, args = ("WHERE reading = ?", (reading_id,)) if reading_id else ("", ())
        with self._lock:
            rows = self._db.execute(f"SELECT ts_ms, action, nurse, reading, visit_id, from_state, to_state "
                                    f"FROM audit {where} ORDER BY n", args).fetchall()
        keys = ("ts_ms", "action", "nurse", "reading", "visit_id", "from_state", "to_state")
        return [dict(zip(keys, row)) for row in rows]

    def purge(self) -> int:
        """Delete forwarded/discarded readings, unassigned readings nobody claimed, ended visits without
        readings and audit rows older than ``keep_days``; returns the number of readings deleted.
        An unassigned reading is personal data that belongs to no visit: it is not kept for ever."""
        now = self._now_ms()
        cutoff = now - self.keep_days * DAY_MS
        self._last_purge = self.clock()
        with self._transaction() as db:
            deleted = db.execute("DELETE FROM readings WHERE state IN ('forwarded', 'discarded', 'unassigned') "
                                 "AND changed_ms < ?", (cutoff,)).rowcount
            db.execute("DELETE FROM visits WHERE ended_ms IS NOT NULL AND ended_ms < ? AND NOT EXISTS "
                       "(SELECT 1 FROM readings WHERE readings.visit_id = visits.id)", (cutoff,))
            db.execute("DELETE FROM audit WHERE ts_ms < ?", (cutoff,))
        return deleted

    # ------------------------------------------------------------------ internals

    def _maybe_purge(self) -> None:
        if self.clock() - self._last_purge >= PURGE_EVERY_S:
            self.purge()

    def _change(self, reading_id: str, nurse: str, allowed: set[str], to_state: str,
                visit_id: str | None = None) -> None:
        held = self.reading(reading_id)
        if held.state not in allowed:
            raise VisitError("state", f"reading {reading_id} is {held.state}; only a reading that is "
                                      f"{' or '.join(sorted(allowed))} can become {to_state}")
        with self._transaction() as db:
            self._move(db, held, to_state, nurse, self._now_ms(), visit_id)
        self._notify()

    def _move(self, db, held: HeldReading, to_state: str, nurse: str, now: int, visit_id: str | None = None):
        visit_id = visit_id or held.visit_id
        db.execute("UPDATE readings SET state = ?, visit_id = ?, changed_ms = ? WHERE n = ?",
                   (to_state, visit_id, now, _reading_number(held.id)))
        self._audit(db, now, to_state if to_state != "pending" else "assign", nurse, reading=held.id,
                    visit_id=visit_id, from_state=held.state, to_state=to_state)

    @staticmethod
    def _audit(db, now: int, action: str, nurse: str, *, reading: str | None = None, visit_id: str | None = None,
               from_state: str | None = None, to_state: str | None = None) -> None:
        db.execute("INSERT INTO audit (ts_ms, action, nurse, reading, visit_id, from_state, to_state) "
                   "VALUES (?, ?, ?, ?, ?, ?, ?)", (now, action, nurse, reading, visit_id, from_state, to_state))

    def _notify(self) -> None:
        self.changed.set()
        self.changes.notify()

    def _transaction(self):
        return _Transaction(self._db, self._lock)

    def _visits(self, where: str, args: tuple) -> list[Visit]:
        with self._lock:
            rows = self._db.execute(f"SELECT {_VISIT_COLUMNS} FROM visits {where}", args).fetchall()
        return [Visit(*row[:8], unscheduled=bool(row[8])) for row in rows]

    def _readings(self, where: str, args: tuple) -> list[HeldReading]:
        with self._lock:
            rows = self._db.execute(f"SELECT {_READING_COLUMNS} FROM readings r LEFT JOIN visits v "
                                    f"ON v.id = r.visit_id {where}", args).fetchall()
        return [HeldReading(f"r-{n}", device, profile, Measurement.from_json(json.loads(data)), ts_ms, source,
                            state, visit_id, pseudonym, received)
                for n, device, profile, data, ts_ms, source, state, visit_id, pseudonym, received in rows]


class _Transaction:
    def __init__(self, db: sqlite3.Connection, lock: threading.Lock):
        self.db, self.lock = db, lock

    def __enter__(self) -> sqlite3.Connection:
        self.lock.acquire()
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            self.db.execute("ROLLBACK" if exc_type else "COMMIT")
        finally:
            self.lock.release()


def _reading_number(reading_id: str) -> int:
    if isinstance(reading_id, str) and reading_id.startswith("r-") and reading_id[2:].isdigit():
        return int(reading_id[2:])
    raise VisitError("not_found", f"no reading {reading_id!r} on this gateway")


def _today_row(pseudonym: str, display_name: str, time_text: str, scheduled: bool, visit: Visit | None) -> dict:
    return {"pseudonym": pseudonym, "display_name": display_name, "time": time_text, "scheduled": scheduled,
            "state": "scheduled" if visit is None else ("active" if visit.active else "ended"),
            "visit_id": visit.id if visit else None}
