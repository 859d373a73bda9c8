"""Dead letters an operator can read: the API process collects what the ingest refused.

The ingest publishes every refused message to ``hinode/v1/_deadletter/{reason}``. Without a
reader the broker acknowledged each one and delivered it to nobody. The collector here
subscribes (QoS 1, persistent session under ``api.dead_letters.client_id``, so letters sent
while the API restarts wait at the broker) and keeps the newest ``keep_per_reason`` letters of
each reason in a small SQLite file, with a running total per reason; both survive restarts.
``GET /api/dead-letters`` (scope ``ops:read``) lists them.

Personal data never arrives here: the ingest sends personal dead letters without payload.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from pathlib import Path

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from cloud.config import DeadLetterConfig, MqttConfig
from cloud.mqtt_client import JitteredReconnect, new_client
from cloud.status import RECONNECT_INITIAL_S, RECONNECT_MAX_S
from hinode import contract

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS letters (
    id INTEGER PRIMARY KEY,
    reason TEXT NOT NULL,
    ts INTEGER NOT NULL,
    topic TEXT NOT NULL,
    message TEXT NOT NULL,
    payload TEXT NOT NULL,
    payload_bytes INTEGER NOT NULL,
    personal INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS letters_by_reason ON letters (reason, id);
CREATE TABLE IF NOT EXISTS totals (reason TEXT PRIMARY KEY, total INTEGER NOT NULL, last_ts INTEGER NOT NULL);
"""
PRUNE_EVERY = 50          # inserts of one reason between two prunes: keeps a flood cheap


class DeadLetterStore:
    """The newest letters per reason (bounded) and a total per reason, in SQLite; thread-safe."""

    def __init__(self, path: Path, keep_per_reason: int):
        self.path = Path(path)
        self.keep = keep_per_reason
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()
        self._since_prune: dict[str, int] = {}

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def add(self, reason: str, letter: contract.DeadLetter) -> None:
        message = letter.reason.removeprefix(f"{reason}: ")
        with self._lock:
            db = self._db
            db.execute("BEGIN")
            db.execute("INSERT INTO letters (reason, ts, topic, message, payload, payload_bytes, personal) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?)", (reason, letter.ts, letter.topic, message[:2000],
                                                        "" if letter.personal else letter.payload,
                                                        letter.payload_bytes, int(letter.personal)))
            db.execute("INSERT INTO totals (reason, total, last_ts) VALUES (?, 1, ?) ON CONFLICT(reason) "
                       "DO UPDATE SET total = total + 1, last_ts = max(last_ts, excluded.last_ts)", (reason, letter.ts))
            count = self._since_prune.get(reason, 0) + 1
            if count >= PRUNE_EVERY:
                self._prune_locked(reason)
                count = 0
            self._since_prune[reason] = count
            db.execute("COMMIT")

    def _prune_locked(self, reason: str) -> None:
        self._db.execute("DELETE FROM letters WHERE reason = ? AND id <= (SELECT id FROM letters WHERE reason = ? "
                         "ORDER BY id DESC LIMIT 1 OFFSET ?)", (reason, reason, self.keep))

    def letters(self, reason: str | None = None, limit: int = 100) -> list[dict]:
        """Newest first; at most ``keep_per_reason`` of each reason."""
        where, args = ("WHERE reason = ?", [reason]) if reason else ("", [])
        with self._lock:
            for known in ([reason] if reason else [r for (r,) in self._db.execute("SELECT reason FROM totals")]):
                self._prune_locked(known)
            rows = self._db.execute(f"SELECT reason, ts, topic, message, payload, payload_bytes, personal FROM letters "
                                    f"{where} ORDER BY id DESC LIMIT ?", [*args, limit]).fetchall()
        return [{"reason": r, "ts": ts, "topic": topic, "message": message, "payload": payload,
                 "payload_bytes": size, "personal": bool(personal)}
                for r, ts, topic, message, payload, size, personal in rows]

    def totals(self) -> dict[str, dict]:
        with self._lock:
            rows = self._db.execute("SELECT reason, total, last_ts FROM totals ORDER BY reason").fetchall()
        return {reason: {"total": total, "last_ts": last_ts} for reason, total, last_ts in rows}


class DeadLetterCollector:
    """A paho subscriber with a persistent session, feeding a DeadLetterStore."""

    def __init__(self, mqtt_config: MqttConfig, config: DeadLetterConfig, store: DeadLetterStore):
        self.store = store
        self.received_total = 0
        self.invalid_total = 0
        self._mqtt = mqtt_config
        self._config = config
        client = new_client(mqtt_config, config.client_id)
        self._reconnect = JitteredReconnect(client, RECONNECT_INITIAL_S, RECONNECT_MAX_S)
        client.on_connect_fail = lambda c, u: self._reconnect.before_wait(c)
        client.on_disconnect = self._on_disconnect
        client.on_connect = self._on_connect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        self._client = client
        self.connected = threading.Event()

    def start(self) -> None:
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = self._config.session_expiry_s
        self._client.connect_async(self._mqtt.host, self._mqtt.port, keepalive=self._mqtt.keepalive_s,
                                   clean_start=False, properties=properties)
        self._client.loop_start()

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()
        self.store.close()

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.warning("dead-letter collector: broker refused the connection: %s", reason_code)
            return
        self._reconnect.reset()
        client.subscribe(contract.DEAD_LETTER_FILTER, qos=1)

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        # "connected" means subscribed: a letter published before the SUBACK has no subscriber and is dropped
        refused = [str(code) for code in reason_codes if code.is_failure]
        if refused:
            log.error("dead-letter collector: the broker refused the subscription to %s (%s); check the ACL "
                      "of the API's MQTT identity", contract.DEAD_LETTER_FILTER, ", ".join(refused))
            return
        self.connected.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self.connected.clear()
        self._reconnect.before_wait(client)

    def _on_message(self, client, userdata, message) -> None:
        self.received_total += 1
        reason = message.topic.rsplit("/", 1)[-1]
        try:
            letter = contract.DeadLetter.model_validate_json(message.payload)
        except ValueError:
            self.invalid_total += 1
            letter = contract.DeadLetter(reason=f"{reason}: (not a DeadLetter payload)", topic=message.topic,
                                         ts=time.time_ns() // 1_000_000, payload_bytes=len(message.payload))
        try:
            self.store.add(reason, letter)
        except sqlite3.Error as exc:    # a full disk must not kill paho's thread
            log.error("dead-letter store: %s", exc)
