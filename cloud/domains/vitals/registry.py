"""The patient registry: patients (pseudonym <-> person), care teams, consents, visits and the audit log.

One SQLite file (WAL) on the API host, readable by the API's user only (directory 0700, file 0600).
Every call opens its own short connection, so any thread or API process may use it; an audit row is
appended inside ``BEGIN IMMEDIATE`` so the hash chain stays linear across processes. Times are epoch ms.

The audit table is append-only: triggers refuse UPDATE and DELETE, and each row stores
``sha256(previous row's hash + its own content)``, so a row changed behind the triggers' back (by
someone who dropped them) breaks the chain that :meth:`Registry.verify_chain` walks.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

from hinode.vitals import Category

CARE_ROLES = ("self", "proxy", "family", "doctor", "nurse", "care_manager")
ALL_CATEGORIES = frozenset(Category)
GENESIS_HASH = "0" * 64
ALL = "all"

SCHEMA = """
CREATE TABLE IF NOT EXISTS patients (
    pseudonym TEXT PRIMARY KEY, name TEXT NOT NULL, display_name TEXT NOT NULL, birth_date TEXT,
    created_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS members (
    id INTEGER PRIMARY KEY AUTOINCREMENT, pseudonym TEXT NOT NULL REFERENCES patients(pseudonym),
    username TEXT NOT NULL, care_role TEXT NOT NULL, webhook_url TEXT,
    added_ms INTEGER NOT NULL, added_by TEXT NOT NULL, removed_ms INTEGER, removed_by TEXT);
CREATE UNIQUE INDEX IF NOT EXISTS members_active ON members(pseudonym, username) WHERE removed_ms IS NULL;
CREATE INDEX IF NOT EXISTS members_by_user ON members(username);
CREATE TABLE IF NOT EXISTS consents (
    id TEXT PRIMARY KEY, pseudonym TEXT NOT NULL REFERENCES patients(pseudonym), care_role TEXT NOT NULL,
    categories TEXT NOT NULL, valid_from_ms INTEGER NOT NULL, valid_until_ms INTEGER,
    granted_by TEXT NOT NULL, granted_ms INTEGER NOT NULL, revoked_ms INTEGER, revoked_by TEXT);
CREATE INDEX IF NOT EXISTS consents_by_patient ON consents(pseudonym, care_role);
CREATE TABLE IF NOT EXISTS visits (
    id INTEGER PRIMARY KEY AUTOINCREMENT, date TEXT NOT NULL, time TEXT NOT NULL, kit TEXT NOT NULL,
    pseudonym TEXT NOT NULL REFERENCES patients(pseudonym), nurse TEXT NOT NULL,
    created_ms INTEGER NOT NULL, created_by TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS visits_by_kit ON visits(kit, date);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT, ts_ms INTEGER NOT NULL, actor TEXT NOT NULL, via TEXT NOT NULL,
    care_role TEXT NOT NULL, pseudonym TEXT NOT NULL, action TEXT NOT NULL, categories TEXT NOT NULL,
    consent_id TEXT NOT NULL, outcome TEXT NOT NULL, reason TEXT NOT NULL,
    prev_hash TEXT NOT NULL, hash TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS audit_by_patient ON audit(pseudonym, id);
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
"""

AUDIT_FIELDS = ("ts_ms", "actor", "via", "care_role", "pseudonym", "action", "categories", "consent_id",
                "outcome", "reason")


class RegistryError(ValueError):
    """A registry change that cannot be made (unknown patient, duplicate member, ...); the API answers 4xx."""

    def __init__(self, message: str, status: int = 422):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class ChainCheck:
    ok: bool
    rows: int
    first_bad_id: int | None = None
    problem: str = ""


def now_ms() -> int:
    return int(time.time() * 1000)


def encode_categories(categories: Iterable[Category | str] | str | None) -> str:
    """``all`` (None, "all" or every category: also covers categories added later) or a sorted comma list."""
    if categories is None or categories == ALL:
        return ALL
    chosen = {Category(c) for c in categories}
    if not chosen:
        raise RegistryError("categories: give at least one category, or 'all'")
    return ",".join(sorted(c.value for c in chosen))


def decode_categories(text: str) -> frozenset[Category]:
    if text == ALL:
        return ALL_CATEGORIES
    return frozenset(Category(c) for c in text.split(",") if c)


def audit_hash(prev_hash: str, row_id: int, values: dict) -> str:
    content = json.dumps([row_id, *(values[f] for f in AUDIT_FIELDS)], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(f"{prev_hash}\n{content}".encode()).hexdigest()


class Registry:
    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not self.path.exists():
            os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
        os.chmod(self.path, 0o600)
        with self.connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
        self.ensure(SCHEMA)

    @contextlib.contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        """A connection in autocommit mode (``with db:`` blocks or explicit BEGIN for transactions)."""
        db = sqlite3.connect(self.path, timeout=10, isolation_level=None)
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA foreign_keys=ON")
        try:
            yield db
        finally:
            db.close()

    def ensure(self, sql: str) -> None:
        """Run idempotent DDL (``CREATE TABLE IF NOT EXISTS ...``); other modules add their tables with it."""
        with self.connect() as db:
            db.executescript(sql)

    def _rows(self, sql: str, params: tuple = ()) -> list[dict]:
        with self.connect() as db:
            return [dict(row) for row in db.execute(sql, params)]

    # ------------------------------------------------------------ patients

    def add_patient(self, pseudonym: str, name: str, display_name: str, birth_date: str | None = None) -> dict:
        try:
            with self.connect() as db:
                db.execute("INSERT INTO patients (pseudonym, name, display_name, birth_date, created_ms) "
                           "VALUES (?, ?, ?, ?, ?)", (pseudonym, name, display_name, birth_date, now_ms()))
        except sqlite3.IntegrityError:
            raise RegistryError(f"patient {pseudonym} already exists", 409) from None
        return self.patient(pseudonym)

    def patient(self, pseudonym: str) -> dict | None:
        rows = self._rows("SELECT * FROM patients WHERE pseudonym = ?", (pseudonym,))
        return rows[0] if rows else None

    def patients(self) -> list[dict]:
        return self._rows("SELECT * FROM patients ORDER BY pseudonym")

    def _known(self, pseudonym: str) -> None:
        if self.patient(pseudonym) is None:
            raise RegistryError(f"no patient {pseudonym} in the registry", 404)

    # ------------------------------------------------------------ care teams

    def add_member(self, pseudonym: str, username: str, care_role: str, *, added_by: str,
                   webhook_url: str | None = None) -> dict:
        if care_role not in CARE_ROLES:
            raise RegistryError(f"care_role: {care_role!r} is not one of {', '.join(CARE_ROLES)}")
        self._known(pseudonym)
        try:
            with self.connect() as db:
                cursor = db.execute("INSERT INTO members (pseudonym, username, care_role, webhook_url, added_ms, "
                                    "added_by) VALUES (?, ?, ?, ?, ?, ?)",
                                    (pseudonym, username, care_role, webhook_url, now_ms(), added_by))
                member_id = cursor.lastrowid
        except sqlite3.IntegrityError:
            raise RegistryError(f"{username} is already in the care team of {pseudonym}", 409) from None
        return self._rows("SELECT * FROM members WHERE id = ?", (member_id,))[0]

    def remove_member(self, pseudonym: str, member_id: int, *, removed_by: str) -> dict:
        with self.connect() as db:
            cursor = db.execute("UPDATE members SET removed_ms = ?, removed_by = ? WHERE id = ? AND pseudonym = ? "
                                "AND removed_ms IS NULL", (now_ms(), removed_by, member_id, pseudonym))
            if cursor.rowcount == 0:
                raise RegistryError(f"no active member {member_id} in the care team of {pseudonym}", 404)
        return self._rows("SELECT * FROM members WHERE id = ?", (member_id,))[0]

    def members(self, pseudonym: str, *, include_removed: bool = False) -> list[dict]:
        removed = "" if include_removed else " AND removed_ms IS NULL"
        return self._rows(f"SELECT * FROM members WHERE pseudonym = ?{removed} ORDER BY id", (pseudonym,))

    def member(self, pseudonym: str, username: str) -> dict | None:
        """The active care-team membership of ``username`` for this patient."""
        rows = self._rows("SELECT * FROM members WHERE pseudonym = ? AND username = ? AND removed_ms IS NULL",
                          (pseudonym, username))
        return rows[0] if rows else None

    def memberships(self, username: str) -> list[dict]:
        return self._rows("SELECT * FROM members WHERE username = ? AND removed_ms IS NULL ORDER BY pseudonym",
                          (username,))

    # ------------------------------------------------------------ consents

    def grant_consent(self, pseudonym: str, care_role: str, categories: Iterable[Category | str] | str | None, *,
                      granted_by: str, valid_from_ms: int | None = None, valid_until_ms: int | None = None) -> dict:
        """``categories`` None or "all": every category, also ones added later."""
        if care_role not in CARE_ROLES or care_role in ("self", "proxy"):
            raise RegistryError(f"care_role: {care_role!r} is not one of family, doctor, nurse, care_manager "
                                f"(self and proxy always see their own data)")
        self._known(pseudonym)
        try:
            encoded = encode_categories(categories)
        except ValueError as exc:
            raise RegistryError(f"categories: {exc} (known: {', '.join(c.value for c in Category)} or 'all')") from None
        granted = now_ms()
        valid_from_ms = granted if valid_from_ms is None else int(valid_from_ms)
        if valid_until_ms is not None and valid_until_ms <= valid_from_ms:
            raise RegistryError("valid_until must be after valid_from")
        consent_id = "c-" + secrets.token_hex(6)
        with self.connect() as db:
            db.execute("INSERT INTO consents (id, pseudonym, care_role, categories, valid_from_ms, valid_until_ms, "
                       "granted_by, granted_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                       (consent_id, pseudonym, care_role, encoded, valid_from_ms, valid_until_ms, granted_by, granted))
        return self.consent(pseudonym, consent_id)

    def revoke_consent(self, pseudonym: str, consent_id: str, *, revoked_by: str) -> dict:
        with self.connect() as db:
            changed = db.execute("UPDATE consents SET revoked_ms = ?, revoked_by = ? WHERE id = ? AND pseudonym = ? "
                                 "AND revoked_ms IS NULL", (now_ms(), revoked_by, consent_id, pseudonym)).rowcount
        if changed == 0:
            existing = self.consent(pseudonym, consent_id)
            if existing is None:
                raise RegistryError(f"no consent {consent_id} for patient {pseudonym}", 404)
            raise RegistryError(f"consent {consent_id} was already revoked", 409)
        return self.consent(pseudonym, consent_id)

    def consent(self, pseudonym: str, consent_id: str) -> dict | None:
        rows = self._rows("SELECT * FROM consents WHERE id = ? AND pseudonym = ?", (consent_id, pseudonym))
        return rows[0] if rows else None

    def consents(self, pseudonym: str) -> list[dict]:
        return self._rows("SELECT * FROM consents WHERE pseudonym = ? ORDER BY granted_ms, id", (pseudonym,))

    def active_consents(self, pseudonym: str, care_role: str, at_ms: int) -> list[dict]:
        """Consents for the role in force at ``at_ms``: not revoked, valid_from <= at < valid_until."""
        return self._rows("SELECT * FROM consents WHERE pseudonym = ? AND care_role = ? AND revoked_ms IS NULL "
                          "AND valid_from_ms <= ? AND (valid_until_ms IS NULL OR valid_until_ms > ?) ORDER BY id",
                          (pseudonym, care_role, at_ms, at_ms))

    # ------------------------------------------------------------ visits

    def add_visit(self, date: str, time_of_day: str, kit: str, pseudonym: str, nurse: str, *, created_by: str) -> dict:
        self._known(pseudonym)
        with self.connect() as db:
            visit_id = db.execute("INSERT INTO visits (date, time, kit, pseudonym, nurse, created_ms, created_by) "
                                  "VALUES (?, ?, ?, ?, ?, ?, ?)",
                                  (date, time_of_day, kit, pseudonym, nurse, now_ms(), created_by)).lastrowid
        return self._rows("SELECT * FROM visits WHERE id = ?", (visit_id,))[0]

    def visits(self, kit: str, date: str) -> list[dict]:
        """The kit's visits of a day with the patients' display names (for the gateway's schedule file)."""
        return self._rows("SELECT v.*, p.display_name FROM visits v JOIN patients p USING (pseudonym) "
                          "WHERE v.kit = ? AND v.date = ? ORDER BY v.time, v.id", (kit, date))

    # ------------------------------------------------------------ audit

    def append_audit(self, *, actor: str, via: str, care_role: str, pseudonym: str, action: str,
                     categories: Iterable[Category | str] | str = (), consent_id: str = "", outcome: str,
                     reason: str = "", ts_ms: int | None = None) -> int:
        """Append one audit row (no values, no names); returns its id."""
        if outcome not in ("allowed", "denied"):
            raise ValueError(f"outcome {outcome!r}: allowed or denied")
        if not isinstance(categories, str):
            categories = ",".join(sorted(Category(c).value for c in categories))
        values = {"ts_ms": now_ms() if ts_ms is None else int(ts_ms), "actor": actor, "via": via,
                  "care_role": care_role or "", "pseudonym": pseudonym, "action": action,
                  "categories": categories, "consent_id": consent_id or "", "outcome": outcome,
                  "reason": reason or ""}
        with self.connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                last = db.execute("SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1").fetchone()
                row_id = (last["id"] + 1) if last else 1
                prev_hash = last["hash"] if last else GENESIS_HASH
                db.execute(f"INSERT INTO audit (id, {', '.join(AUDIT_FIELDS)}, prev_hash, hash) "
                           f"VALUES (?, {', '.join('?' * len(AUDIT_FIELDS))}, ?, ?)",
                           (row_id, *(values[f] for f in AUDIT_FIELDS), prev_hash,
                            audit_hash(prev_hash, row_id, values)))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return row_id

    def audit_rows(self, pseudonym: str | None = None, *, after_id: int = 0, limit: int = 1000) -> list[dict]:
        """Newest first; one patient's rows or all."""
        where, params = ("WHERE pseudonym = ? AND id > ?", (pseudonym, after_id)) if pseudonym else \
            ("WHERE id > ?", (after_id,))
        return self._rows(f"SELECT * FROM audit {where} ORDER BY id DESC LIMIT ?", (*params, int(limit)))

    def verify_chain(self) -> ChainCheck:
        """Walk the whole audit log: each row's prev_hash is the previous row's hash and its hash matches."""
        prev_hash, count = GENESIS_HASH, 0
        with self.connect() as db:
            for row in db.execute("SELECT * FROM audit ORDER BY id"):
                count += 1
                if row["prev_hash"] != prev_hash:
                    return ChainCheck(False, count, row["id"], "its prev_hash is not the previous row's hash "
                                                              "(a row was removed or inserted)")
                if audit_hash(prev_hash, row["id"], dict(row)) != row["hash"]:
                    return ChainCheck(False, count, row["id"], "its content does not match its hash (changed)")
                prev_hash = row["hash"]
        return ChainCheck(True, count)


def main(argv: list[str] | None = None) -> int:
    """``python -m cloud.domains.vitals.registry verify-audit PATH``: exit 1 when the chain is broken."""
    import argparse
    parser = argparse.ArgumentParser(prog="python -m cloud.domains.vitals.registry")
    parser.add_argument("command", choices=["verify-audit"])
    parser.add_argument("path", type=Path, help="the registry file (domains.vitals.registry_path)")
    args = parser.parse_args(argv)
    if not args.path.is_file():
        parser.error(f"{args.path}: no such file")
    check = Registry(args.path).verify_chain()
    if check.ok:
        print(f"audit chain intact: {check.rows} rows")
        return 0
    print(f"audit chain BROKEN at row {check.first_bad_id} ({check.rows} rows read): {check.problem}")
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
