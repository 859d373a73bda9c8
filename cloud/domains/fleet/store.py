"""The fleet worker's state on disk: one JSON file, replaced atomically.

It holds the tracker's snapshot (open trips, open violations, zones each vehicle is in, last fixes), the
worker's own notes on open violations (for rewriting ``fleet_violation`` at their end) and the points not
yet written to InfluxDB, so a restarted API neither reopens what was open nor loses what was not written.
Written to ``<file>.tmp``, flushed to disk, then renamed over the old file: a crash mid-write leaves the
previous state whole. A file that cannot be read is moved aside (``.corrupt-<ms>``) and named in the log;
the worker starts fresh rather than not at all.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

log = logging.getLogger(__name__)

STATE_VERSION = 1
STATE_FILE = "fleet-state.json"


class StateStore:
    def __init__(self, state_dir: Path):
        self.path = Path(state_dir) / STATE_FILE
        self.saves_total = 0
        self.save_failures_total = 0

    def load(self) -> dict | None:
        """The saved state, or None (no file, or one that could not be read: moved aside and logged)."""
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.error("fleet state %s cannot be read (%s); starting without it", self.path, exc.strerror)
            return None
        try:
            state = json.loads(text)
            if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
                raise ValueError(f"expected a JSON object with version {STATE_VERSION}")
            return state
        except ValueError as exc:
            aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time() * 1000)}")
            os.replace(self.path, aside)
            log.error("fleet state %s is not valid (%s); moved to %s, starting without it", self.path, exc, aside)
            return None

    @staticmethod
    def encode(state: dict) -> str:
        """The file's text for ``state`` (JSON-able); cheap enough for the event loop, so the copy is consistent."""
        return json.dumps({**state, "version": STATE_VERSION, "saved_ms": int(time.time() * 1000)},
                          ensure_ascii=False, separators=(",", ":"))

    def save(self, state: dict) -> None:
        self.save_text(self.encode(state))

    def save_text(self, body: str) -> None:
        """Write ``body`` (from :meth:`encode`) atomically. Blocking: call it in a worker thread."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            with open(tmp, "w", encoding="utf-8") as handle:
                handle.write(body)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except OSError:
            self.save_failures_total += 1
            raise
        self.saves_total += 1
