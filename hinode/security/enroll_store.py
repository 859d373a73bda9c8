"""SQLite store of enrollment tokens (only their SHA-256) and enrolled agents.

A token is consumed by one conditional UPDATE (``used_at IS NULL AND expires_at > now``), so
two agents racing with the same token cannot both succeed, even from two API processes
sharing the file.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tokens (
    hash TEXT PRIMARY KEY,
    site TEXT NOT NULL,
    agent TEXT NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    used_at REAL,
    site_config TEXT
);
CREATE TABLE IF NOT EXISTS agents (
    username TEXT PRIMARY KEY,
    site TEXT NOT NULL,
    agent TEXT NOT NULL,
    serial TEXT NOT NULL,
    password_hash TEXT,
    enrolled_at REAL NOT NULL,
    revoked_at REAL
);
CREATE TABLE IF NOT EXISTS revoked_serials (serial TEXT PRIMARY KEY, username TEXT NOT NULL, revoked_at REAL NOT NULL);
"""


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class TokenGrant:
    site: str
    agent: str
    site_config: dict | None


@dataclass(frozen=True)
class EnrolledAgent:
    username: str
    site: str
    agent: str
    serial: int
    password_hash: str | None
    enrolled_at: float
    revoked_at: float | None


class TokenRefused(Exception):
    """``reason`` is one of unknown, used, expired (the API's 403 detail and counter label)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class EnrollStore:
    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=10)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)
        self.path.chmod(0o600)
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def add_token(self, token: str, site: str, agent: str, ttl_s: float, site_config: dict | None) -> float:
        now = time.time()
        with self._lock:
            self._db.execute("INSERT INTO tokens (hash, site, agent, created_at, expires_at, site_config) "
                             "VALUES (?, ?, ?, ?, ?, ?)", (token_hash(token), site, agent, now, now + ttl_s,
                                                           json.dumps(site_config) if site_config else None))
        return now + ttl_s

    def consume_token(self, token: str, now: float | None = None) -> TokenGrant:
        """The token's grant, marking it used; TokenRefused(unknown|used|expired) otherwise."""
        now = time.time() if now is None else now
        digest = token_hash(token)
        with self._lock:
            updated = self._db.execute("UPDATE tokens SET used_at = ? WHERE hash = ? AND used_at IS NULL "
                                       "AND expires_at > ?", (now, digest, now)).rowcount
            row = self._db.execute("SELECT site, agent, used_at, expires_at, site_config FROM tokens WHERE hash = ?",
                                   (digest,)).fetchone()
        if row is None:
            raise TokenRefused("unknown")
        if not updated:
            raise TokenRefused("used" if row[2] is not None else "expired")
        return TokenGrant(row[0], row[1], json.loads(row[4]) if row[4] else None)

    def release_token(self, token: str) -> None:
        """Give a consumed token back when signing failed on our side (the agent may retry)."""
        with self._lock:
            self._db.execute("UPDATE tokens SET used_at = NULL WHERE hash = ?", (token_hash(token),))

    def save_agent(self, username: str, site: str, agent: str, serial: int, password_hash: str | None) -> None:
        """Record (or replace, on re-enrollment) an agent; a replaced certificate's serial is revoked."""
        now = time.time()
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            old = db.execute("SELECT serial, revoked_at FROM agents WHERE username = ?", (username,)).fetchone()
            if old is not None and old[1] is None:
                db.execute("INSERT OR IGNORE INTO revoked_serials VALUES (?, ?, ?)", (old[0], username, now))
            db.execute("INSERT OR REPLACE INTO agents VALUES (?, ?, ?, ?, ?, ?, NULL)",
                       (username, site, agent, str(serial), password_hash, now))
            db.execute("COMMIT")

    def revoke(self, username: str) -> EnrolledAgent | None:
        now = time.time()
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            row = db.execute("SELECT serial FROM agents WHERE username = ? AND revoked_at IS NULL",
                             (username,)).fetchone()
            if row is not None:
                db.execute("UPDATE agents SET revoked_at = ? WHERE username = ?", (now, username))
                db.execute("INSERT OR IGNORE INTO revoked_serials VALUES (?, ?, ?)", (row[0], username, now))
            db.execute("COMMIT")
        return None if row is None else self.agent(username)

    def agent(self, username: str) -> EnrolledAgent | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM agents WHERE username = ?", (username,)).fetchone()
        return None if row is None else EnrolledAgent(row[0], row[1], row[2], int(row[3]), *row[4:])

    def agents(self, include_revoked: bool = False) -> list[EnrolledAgent]:
        query = "SELECT * FROM agents" + ("" if include_revoked else " WHERE revoked_at IS NULL") + " ORDER BY username"
        with self._lock:
            rows = self._db.execute(query).fetchall()
        return [EnrolledAgent(r[0], r[1], r[2], int(r[3]), *r[4:]) for r in rows]

    def revoked_serials(self) -> list[tuple[int, float]]:
        with self._lock:
            rows = self._db.execute("SELECT serial, revoked_at FROM revoked_serials ORDER BY revoked_at").fetchall()
        return [(int(serial), revoked_at) for serial, revoked_at in rows]
