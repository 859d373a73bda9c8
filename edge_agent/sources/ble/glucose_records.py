"""Glucose records: each stored record is pulled once, and joined with its context.

A glucometer keeps its records and hands them out through the Record Access Control Point
(0x2A52): the gateway asks for "records with sequence >= last seen + 1", the meter notifies each
record (0x2A18), optionally followed by its context (0x2A34, same sequence number), and ends with
an RACP response. :class:`DeviceMemory` keeps the last sequence handed on per device in a small
JSON file in the source's state_dir (and when the gateway first set each device's clock), so a restart or the next visit never pulls a record twice.
:class:`GlucoseAssembler` holds a record until its context, the next record or the end of the
transfer arrives, then hands it on with the context's text fields (``glucose_meal``...) merged in.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable

from edge_agent.sources.ble.decoders import with_context
from edge_agent.sources.ble.measurement import Measurement


class DeviceMemory:
    """What the gateway remembers of each device across restarts, in one small JSON file written
    atomically: the last glucose record sequence handed on, and when the gateway first set the
    device's clock (a time stamp from before then came from a clock nobody had set)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        try:
            data = json.loads(self.path.read_text())
            self._last = {str(k): int(v) for k, v in data.get("last_sequence", {}).items()}
            self._clock = {str(k): int(v) for k, v in data.get("clock_first_set_ms", {}).items()}
        except (OSError, ValueError, TypeError, AttributeError):
            self._last, self._clock = {}, {}

    def last(self, device: str) -> int | None:
        return self._last.get(device)

    def is_new(self, device: str, sequence: int | None) -> bool:
        last = self._last.get(device)
        return sequence is None or last is None or sequence > last

    def record(self, device: str, sequence: int | None) -> None:
        if sequence is None or not self.is_new(device, sequence):
            return
        self._last[device] = sequence
        self._save()

    def clock_first_set_ms(self, device: str) -> int | None:
        return self._clock.get(device)

    def note_clock_set(self, device: str, ts_ms: int) -> None:
        if device not in self._clock:
            self._clock[device] = ts_ms
            self._save()

    def _save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"last_sequence": self._last, "clock_first_set_ms": self._clock}, sort_keys=True))
        os.replace(tmp, self.path)


class GlucoseAssembler:
    """Joins a glucose record that announces a context with the context notified right after it
    (same sequence). A held record goes on without its context when the next record, the RACP
    answer or the disconnection comes first."""

    def __init__(self, hand_on: Callable[[Measurement, int], None]):
        self._hand_on = hand_on                     # (measurement, received_ms)
        self._held: tuple[Measurement, int] | None = None

    def record(self, measurement: Measurement, received_ms: int) -> None:
        self.flush()
        self._held = (measurement, received_ms)

    def context(self, sequence: int, text: dict[str, str]) -> bool:
        """Merge the context into the held record; False when it belongs to none (counted by the caller)."""
        if self._held is None or self._held[0].sequence != sequence:
            return False
        measurement, received = self._held
        self._held = None
        self._hand_on(with_context(measurement, text), received)
        return True

    def flush(self) -> None:
        if self._held is not None:
            measurement, received = self._held
            self._held = None
            self._hand_on(measurement, received)

    @property
    def holding(self) -> bool:
        return self._held is not None
