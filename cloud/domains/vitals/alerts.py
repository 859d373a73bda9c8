"""Alerts, per-patient rule overrides and webhook deliveries: tables in the registry's SQLite file.

Added through ``Registry.ensure`` (idempotent DDL), so they live next to the consents they depend
on, in the same 0600 file. An alert is unique per (patient, rule, reading time): the job evaluates
the last days again on every run, and a reading that already raised an alert raises no second one.
Each webhook delivery is a row with its state (pending, delivered, failed, withheld), its attempts
and its last error, so a delivery that keeps failing is visible rather than lost.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from cloud.domains.vitals.alert_rules import AlertRule, Breach, RuleChange, apply_changes
from cloud.domains.vitals.registry import Registry, RegistryError, now_ms
from hinode.vitals import Category

ALERTS_SCHEMA = """
CREATE TABLE IF NOT EXISTS alert_rules (
    pseudonym TEXT NOT NULL REFERENCES patients(pseudonym), rule TEXT NOT NULL, threshold REAL, enabled INTEGER,
    changed_by TEXT NOT NULL, changed_ms INTEGER NOT NULL, PRIMARY KEY (pseudonym, rule));
CREATE TABLE IF NOT EXISTS alerts (
    id INTEGER PRIMARY KEY AUTOINCREMENT, pseudonym TEXT NOT NULL, rule TEXT NOT NULL, category TEXT NOT NULL,
    metric TEXT NOT NULL, reading_ts_ms INTEGER NOT NULL, value REAL NOT NULL, threshold REAL NOT NULL,
    unit TEXT NOT NULL, created_ms INTEGER NOT NULL, acked_by TEXT, acked_ms INTEGER,
    UNIQUE (pseudonym, rule, reading_ts_ms));
CREATE INDEX IF NOT EXISTS alerts_by_patient ON alerts(pseudonym, reading_ts_ms);
CREATE TABLE IF NOT EXISTS alert_deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT, alert_id INTEGER NOT NULL REFERENCES alerts(id),
    member_id INTEGER NOT NULL, username TEXT NOT NULL, url TEXT NOT NULL,
    state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, next_attempt_ms INTEGER NOT NULL,
    last_status INTEGER, last_error TEXT NOT NULL DEFAULT '', created_ms INTEGER NOT NULL, done_ms INTEGER,
    UNIQUE (alert_id, member_id));
CREATE INDEX IF NOT EXISTS alert_deliveries_due ON alert_deliveries(state, next_attempt_ms);
"""

PENDING, DELIVERED, FAILED, WITHHELD = "pending", "delivered", "failed", "withheld"


@dataclass(frozen=True)
class DeliveryCounts:
    delivered: int = 0
    retried: int = 0
    failed: int = 0
    withheld: int = 0


class AlertStore:
    def __init__(self, registry: Registry):
        self.registry = registry
        registry.ensure(ALERTS_SCHEMA)

    def _rows(self, sql: str, params: tuple = ()) -> list[dict]:
        with self.registry.connect() as db:
            return [dict(row) for row in db.execute(sql, params)]

    # ------------------------------------------------------------ rules

    def overrides(self, pseudonym: str) -> list[dict]:
        return self._rows("SELECT rule, threshold, enabled, changed_by, changed_ms FROM alert_rules "
                          "WHERE pseudonym = ? ORDER BY rule", (pseudonym,))

    def rules_for(self, pseudonym: str, defaults: dict[str, AlertRule]) -> dict[str, AlertRule]:
        """The patient's rules: ``defaults`` with the doctor's overrides (a rule no longer known is ignored)."""
        changes = {row["rule"]: RuleChange(row["threshold"], None if row["enabled"] is None else bool(row["enabled"]))
                   for row in self.overrides(pseudonym) if row["rule"] in defaults}
        return apply_changes(defaults, changes)

    def set_rules(self, pseudonym: str, changes: dict[str, RuleChange], defaults: dict[str, AlertRule], *,
                  changed_by: str) -> dict[str, AlertRule]:
        """Store a doctor's changes (merged into earlier ones); RegistryError for an unknown rule or patient."""
        if self.registry.patient(pseudonym) is None:
            raise RegistryError(f"no patient {pseudonym} in the registry", 404)
        try:
            apply_changes(defaults, changes)
        except ValueError as exc:
            raise RegistryError(str(exc)) from None
        changed = now_ms()
        with self.registry.connect() as db:
            with db:
                db.execute("BEGIN")
                for rule, change in changes.items():
                    db.execute("INSERT INTO alert_rules (pseudonym, rule, threshold, enabled, changed_by, changed_ms) "
                               "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (pseudonym, rule) DO UPDATE SET "
                               "threshold = COALESCE(excluded.threshold, threshold), "
                               "enabled = COALESCE(excluded.enabled, enabled), "
                               "changed_by = excluded.changed_by, changed_ms = excluded.changed_ms",
                               (pseudonym, rule, change.threshold,
                                None if change.enabled is None else int(change.enabled), changed_by, changed))
        return self.rules_for(pseudonym, defaults)

    # ------------------------------------------------------------ alerts

    def record(self, pseudonym: str, breaches: list[Breach]) -> list[dict]:
        """Store the breaches not recorded before; the new alerts (a rerun over the same readings adds none)."""
        created = now_ms()
        new_ids = []
        with self.registry.connect() as db:
            with db:
                db.execute("BEGIN")
                for b in breaches:
                    cursor = db.execute(
                        "INSERT OR IGNORE INTO alerts (pseudonym, rule, category, metric, reading_ts_ms, value, "
                        "threshold, unit, created_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (pseudonym, b.rule, Category(b.category).value, b.metric, b.ts_ms, float(b.value),
                         float(b.threshold), b.unit, created))
                    if cursor.rowcount:
                        new_ids.append(cursor.lastrowid)
        return [self.alert(alert_id) for alert_id in new_ids]

    def alert(self, alert_id: int) -> dict | None:
        rows = self._rows("SELECT * FROM alerts WHERE id = ?", (int(alert_id),))
        return rows[0] if rows else None

    def alerts_for(self, pseudonym: str, categories: frozenset[Category] | set[Category], *, since_ms: int = 0,
                   include_acked: bool = True, limit: int = 500) -> list[dict]:
        """The patient's alerts of these categories, newest reading first."""
        if not categories:
            return []
        names = sorted(Category(c).value for c in categories)
        acked = "" if include_acked else " AND acked_ms IS NULL"
        return self._rows(f"SELECT * FROM alerts WHERE pseudonym = ? AND reading_ts_ms >= ?{acked} "
                          f"AND category IN ({', '.join('?' * len(names))}) ORDER BY reading_ts_ms DESC, id DESC "
                          f"LIMIT ?", (pseudonym, int(since_ms), *names, int(limit)))

    def ack(self, alert_id: int, acked_by: str) -> dict:
        """Acknowledge once; a second ack keeps the first (who and when)."""
        with self.registry.connect() as db:
            db.execute("UPDATE alerts SET acked_by = ?, acked_ms = ? WHERE id = ? AND acked_ms IS NULL",
                       (acked_by, now_ms(), int(alert_id)))
        return self.alert(alert_id)

    # ------------------------------------------------------------ webhook deliveries

    def add_delivery(self, alert_id: int, member: dict) -> bool:
        """A pending delivery of the alert to the member's webhook_url (once per alert and member)."""
        try:
            with self.registry.connect() as db:
                cursor = db.execute("INSERT OR IGNORE INTO alert_deliveries (alert_id, member_id, username, url, "
                                    "state, next_attempt_ms, created_ms) VALUES (?, ?, ?, ?, ?, ?, ?)",
                                    (alert_id, member["id"], member["username"], member["webhook_url"], PENDING,
                                     0, now_ms()))
                return bool(cursor.rowcount)
        except sqlite3.IntegrityError:
            return False

    def due_deliveries(self, at_ms: int, limit: int = 200) -> list[dict]:
        return self._rows("SELECT * FROM alert_deliveries WHERE state = ? AND next_attempt_ms <= ? ORDER BY id "
                          "LIMIT ?", (PENDING, int(at_ms), int(limit)))

    def deliveries(self, alert_id: int | None = None) -> list[dict]:
        if alert_id is None:
            return self._rows("SELECT * FROM alert_deliveries ORDER BY id")
        return self._rows("SELECT * FROM alert_deliveries WHERE alert_id = ? ORDER BY id", (int(alert_id),))

    def delivery_outcome(self, delivery_id: int, *, state: str, attempts: int, next_attempt_ms: int,
                         status: int | None = None, error: str = "") -> None:
        done = now_ms() if state != PENDING else None
        with self.registry.connect() as db:
            db.execute("UPDATE alert_deliveries SET state = ?, attempts = ?, next_attempt_ms = ?, last_status = ?, "
                       "last_error = ?, done_ms = ? WHERE id = ?",
                       (state, attempts, next_attempt_ms, status, error[:300], done, int(delivery_id)))

    def delivery_states(self) -> dict[str, int]:
        """How many deliveries are in each state (for /metrics and the README's checks)."""
        return {row["state"]: row["n"] for row in
                self._rows("SELECT state, COUNT(*) AS n FROM alert_deliveries GROUP BY state")}


def public_alert(row: dict) -> dict:
    """An alert as the API and the webhooks show it (pseudonym only, never a name)."""
    return {"id": row["id"], "pseudonym": row["pseudonym"], "rule": row["rule"], "category": row["category"],
            "metric": row["metric"], "value": row["value"], "threshold": row["threshold"], "unit": row["unit"],
            "ts": row["reading_ts_ms"], "created": row["created_ms"], "acked_by": row["acked_by"],
            "acked_at": row["acked_ms"]}
