"""Ingest counters, per-device sequence tracking, rate-limited logs (``/metrics``: cloud/ingest/metrics.py)."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, OrderedDict
from dataclasses import dataclass, field

from hinode.metrics import LAG_BUCKETS_S, REQUEST_BUCKETS_S, Buckets

@dataclass(slots=True)
class _DeviceSeq:
    highest: int
    seen: set[int] = field(default_factory=set)
    duplicates: int = 0
    gaps: int = 0


class SeqTracker:
    """Highest seq, duplicates and gaps per (site, device), within a bounded window.

    ``gaps`` counts seqs skipped and not (yet) filled by a late arrival, so it falls when a late
    envelope fills one (a level, exposed as the gauge ``hinode_ingest_seq_gaps``); ``skipped``
    only rises (every seq jumped over when a higher one arrived); ``duplicates``
    counts seqs seen again within the last ``window`` seqs. A seq far below the window
    means the device restarted its counter: tracking starts again from it (``resets``).
    With a shared subscription each ingest process sees only part of a device's stream,
    so these are per-process hints; the API computes completeness from InfluxDB.
    """

    def __init__(self, window: int = 1024, max_devices: int = 100_000):
        self.window = window
        self.max_devices = max_devices
        self._devices: OrderedDict[tuple[str, str], _DeviceSeq] = OrderedDict()
        self.duplicates = 0
        self.gaps = 0
        self.skipped = 0
        self.out_of_order = 0
        self.resets = 0

    def observe(self, site: str, device: str, seq: int) -> str:
        """Record one stored envelope; returns "new", "duplicate", "late", "gap" or "reset"."""
        key = (site, device)
        state = self._devices.get(key)
        if state is None:
            if len(self._devices) >= self.max_devices:
                self._devices.popitem(last=False)
            self._devices[key] = _DeviceSeq(highest=seq, seen={seq})
            return "new"
        self._devices.move_to_end(key)
        if seq in state.seen:
            state.duplicates += 1
            self.duplicates += 1
            return "duplicate"
        if seq > state.highest:
            skipped = seq - state.highest - 1
            outcome = "gap" if skipped else "new"
            state.gaps += skipped
            self.gaps += skipped
            self.skipped += skipped
            state.highest = seq
        elif seq > state.highest - self.window:
            state.gaps = max(0, state.gaps - 1)
            self.gaps = max(0, self.gaps - 1)
            self.out_of_order += 1
            outcome = "late"
        else:
            self.resets += 1
            state.highest = seq
            state.seen.clear()
            outcome = "reset"
        state.seen.add(seq)
        if len(state.seen) > 2 * self.window:
            floor = state.highest - self.window
            state.seen = {s for s in state.seen if s > floor}
        return outcome

    def snapshot(self) -> dict[str, dict[str, int]]:
        return {f"{site}/{device}": {"highest_seq": s.highest, "duplicates": s.duplicates, "gaps": s.gaps}
                for (site, device), s in self._devices.items()}


@dataclass
class IngestCounters:
    """Plain counters; each one is written by a single thread (see the comments).

    ``lock`` guards the containers (``dead_letter`` and the SeqTracker) against a
    concurrent :meth:`IngestService.stats` iterating them; plain ints need no lock.
    """

    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    received: int = 0                  # network thread
    backpressure_waits: int = 0        # messages arrived into a full queue: reading paused
    written_envelopes: int = 0         # writer thread from here on
    written_points: int = 0
    written_readings: int = 0
    acked: int = 0
    ack_skipped_reconnected: int = 0   # done, but the connection changed: the broker redelivers it
    dead_letter: Counter = field(default_factory=Counter)
    bad_quality_readings: int = 0
    uncertain_quality_readings: int = 0
    not_storable_readings: int = 0
    reserved_metric_readings: int = 0
    type_conflict_readings: int = 0    # dead-lettered alone; the rest of their envelope stored
    meta_refused: Counter = field(default_factory=Counter)   # (kind, reason) -> meta entries not stored as tags
    influx_retries: int = 0
    influx_errors: int = 0
    influx_available: bool = True
    batches: int = 0
    last_batch_size: int = 0
    last_batch_latency_ms: float = 0.0
    lag_p50_ms: float = 0.0
    lag_max_ms: float = 0.0
    # Histograms, observed once per batch (writer thread): reading ts -> stored, and each /write request.
    lag_seconds: Buckets = field(default_factory=lambda: Buckets(LAG_BUCKETS_S), repr=False)
    influx_write_seconds: Buckets = field(default_factory=lambda: Buckets(REQUEST_BUCKETS_S), repr=False)


def percentile(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, max(0, round(fraction * (len(sorted_values) - 1))))
    return sorted_values[index]


class RateLimitedLog:
    """At most ``burst`` lines per ``interval_s``; the next line says how many were suppressed."""

    def __init__(self, logger: logging.Logger, burst: int = 10, interval_s: float = 10.0):
        self.logger = logger
        self.burst = burst
        self.interval_s = interval_s
        self._window_start = 0.0
        self._in_window = 0
        self._suppressed = 0
        self._lock = threading.Lock()

    def warning(self, message: str, *args) -> None:
        with self._lock:
            now = time.monotonic()
            if now - self._window_start >= self.interval_s:
                self._window_start, self._in_window = now, 0
            if self._in_window >= self.burst:
                self._suppressed += 1
                return
            self._in_window += 1
            suppressed, self._suppressed = self._suppressed, 0
        if suppressed:
            message += " (%d similar lines suppressed)"
            args = (*args, suppressed)
        self.logger.warning(message, *args)
