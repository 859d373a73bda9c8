"""Ingest counters, per-device sequence tracking, Prometheus rendering, rate-limited logs."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, OrderedDict
from dataclasses import dataclass, field

PROMETHEUS_PREFIX = "hinode_ingest_"


@dataclass(slots=True)
class _DeviceSeq:
    highest: int
    seen: set[int] = field(default_factory=set)
    duplicates: int = 0
    gaps: int = 0


class SeqTracker:
    """Highest seq, duplicates and gaps per (site, device), within a bounded window.

    ``gaps`` counts seqs skipped and not (yet) filled by a late arrival; ``duplicates``
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


def percentile(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, max(0, round(fraction * (len(sorted_values) - 1))))
    return sorted_values[index]


_COUNTERS = [
    ("received", "MQTT messages received"),
    ("backpressure_waits", "times messages arrived into a full queue and reading from the broker paused"),
    ("mqtt_refused_publishes", "dead letters the broker answered with an error PUBACK (e.g. not authorized)"),
    ("written_envelopes", "envelopes stored in InfluxDB"),
    ("written_points", "points (lines) stored in InfluxDB"),
    ("written_readings", "reading values stored in InfluxDB"),
    ("acked", "MQTT messages acknowledged after being stored or dead-lettered"),
    ("ack_skipped_reconnected", "messages left for redelivery because the MQTT connection changed"),
    ("bad_quality_readings", "readings with quality bad (listed in bad_metrics, not stored)"),
    ("uncertain_quality_readings", "readings with quality uncertain (stored, listed in uncertain_metrics)"),
    ("not_storable_readings", "readings whose value is NaN or infinite (listed in bad_metrics)"),
    ("reserved_metric_readings", "readings whose metric name is reserved by the schema"),
    ("influx_retries", "InfluxDB writes retried after an outage or auth error"),
    ("influx_errors", "InfluxDB requests that failed"),
    ("batches", "batches processed"),
    ("duplicates", "envelopes whose seq was already seen (per-process hint)"),
    ("gaps", "seqs skipped and not filled (per-process hint)"),
    ("out_of_order", "envelopes that arrived after a higher seq of the same device"),
    ("seq_resets", "devices whose seq restarted"),
]
_GAUGES = [
    ("queue_depth", "messages waiting for the writer"),
    ("last_batch_size", "messages in the last batch"),
    ("last_batch_latency_ms", "time to decode, write and acknowledge the last batch"),
    ("lag_p50_ms", "median of now - reading ts over the points of the last batch"),
    ("lag_max_ms", "maximum of now - reading ts over the points of the last batch"),
    ("mqtt_connected", "1 while connected to the broker"),
    ("influx_available", "0 while InfluxDB writes are failing and being retried"),
]


def _label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def render_prometheus(stats: dict) -> str:
    """Prometheus text exposition format (0.0.4) of :meth:`IngestService.stats`."""
    out: list[str] = []
    for name, help_text in _COUNTERS:
        metric = f"{PROMETHEUS_PREFIX}{name}_total"
        out += [f"# HELP {metric} {help_text}", f"# TYPE {metric} counter", f"{metric} {stats.get(name, 0)}"]
    metric = f"{PROMETHEUS_PREFIX}dead_letter_total"
    out += [f"# HELP {metric} messages dead-lettered, by reason", f"# TYPE {metric} counter"]
    for reason, count in sorted(stats.get("dead_letter", {}).items()):
        out.append(f'{metric}{{reason="{_label_value(reason)}"}} {count}')
    metric = f"{PROMETHEUS_PREFIX}meta_refused_total"
    out += [f"# HELP {metric} meta entries not stored as tags: undeclared_key, not_an_id, too_many_values",
            f"# TYPE {metric} counter"]
    for (kind, reason), count in sorted(stats.get("meta_refused", {}).items()):
        out.append(f'{metric}{{kind="{_label_value(kind)}",reason="{_label_value(reason)}"}} {count}')
    for name, help_text in _GAUGES:
        metric = f"{PROMETHEUS_PREFIX}{name}"
        value = stats.get(name, 0)
        value = int(value) if isinstance(value, bool) else value
        out += [f"# HELP {metric} {help_text}", f"# TYPE {metric} gauge", f"{metric} {value}"]
    return "\n".join(out) + "\n"


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
