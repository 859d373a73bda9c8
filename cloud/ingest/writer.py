"""One batch of MQTT messages -> InfluxDB: decode, write with retry, isolate rejected envelopes.

Runs on the ingest's writer thread. It never acknowledges anything itself: it returns
which messages are stored and which must be dead-lettered, and the service acks them.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

from cloud.config import IngestConfig
from cloud.influx import InfluxAuthError, InfluxClient, InfluxError, InfluxRejected, InfluxUnavailable
from cloud.ingest.stats import IngestCounters, SeqTracker, percentile
from cloud.ingest.decode import CLOCK_SKEW, clock_skew, decode_envelope
from cloud.lineproto import encode_envelope
from hinode.contract import ContractError, TelemetryEnvelope

log = logging.getLogger("cloud.ingest")

INFLUX_REJECTED = "influx_rejected"


@dataclass(slots=True)
class Inbound:
    """One MQTT message as the network thread hands it over."""

    mid: int
    qos: int
    topic: str
    payload: bytes
    generation: int        # which MQTT connection delivered it (acks only go back on the same one)


@dataclass(slots=True)
class _Decoded:
    item: Inbound
    envelope: TelemetryEnvelope
    lines: list[str]
    timestamps: list[int]
    readings: int
    counts: tuple[int, int, int, int]   # bad, uncertain, not storable, reserved


@dataclass
class BatchOutcome:
    stored: list[Inbound] = field(default_factory=list)
    dead_letters: list[tuple[Inbound, str, str]] = field(default_factory=list)  # (item, code, message)


class Abandoned(Exception):
    """The service is stopping while InfluxDB is unavailable: leave the batch unacknowledged."""


class BatchWriter:
    def __init__(self, influx: InfluxClient, config: IngestConfig, counters: IngestCounters, seq: SeqTracker,
                 *, create_database: bool, give_up: threading.Event):
        self.influx = influx
        self.config = config
        self.counters = counters
        self.seq = seq
        self.give_up = give_up
        self._create_database = create_database
        self._database_ready = not create_database
        self._outage_started: float | None = None
        self._outage_retries = 0

    # ------------------------------------------------------------ batch

    def process(self, batch: list[Inbound]) -> BatchOutcome:
        """Store what can be stored; raises Abandoned when asked to give up during an outage."""
        outcome = BatchOutcome()
        decoded: list[_Decoded] = []
        now_ms = time.time_ns() // 1_000_000
        max_future_ms = int(self.config.max_future_s * 1000)
        max_past_ms = int(self.config.max_past_s * 1000)
        for item in batch:
            try:
                envelope = decode_envelope(item.payload, item.topic)
            except ContractError as exc:
                outcome.dead_letters.append((item, exc.code, str(exc)))
                continue
            skew = clock_skew(envelope, now_ms, max_future_ms, max_past_ms)
            if skew is not None:
                outcome.dead_letters.append((item, CLOCK_SKEW, f"{envelope.site}/{envelope.device} seq {envelope.seq}: {skew}"))
                continue
            encoded = encode_envelope(envelope)
            for problem in encoded.problems:
                log.debug("%s/%s seq %d: %s", envelope.site, envelope.device, envelope.seq, problem)
            decoded.append(_Decoded(item, envelope, encoded.lines, encoded.timestamps, encoded.readings_written,
                                    (encoded.bad_quality, encoded.uncertain_quality, encoded.not_storable,
                                     encoded.reserved_metric)))
        if decoded:
            for entry, message in self._write_isolating(decoded):
                outcome.dead_letters.append((entry.item, INFLUX_REJECTED, message))
            rejected = {id(item) for item, code, _ in outcome.dead_letters if code == INFLUX_REJECTED}
            stored = [entry for entry in decoded if id(entry.item) not in rejected]
            self._count_stored(stored)
            outcome.stored = [entry.item for entry in stored]
        return outcome

    def _count_stored(self, stored: list[_Decoded]) -> None:
        c = self.counters
        now_ms = time.time() * 1000
        lags: list[float] = []
        with c.lock:
            for entry in stored:
                self.seq.observe(entry.envelope.site, entry.envelope.device, entry.envelope.seq)
        for entry in stored:
            c.written_envelopes += 1
            c.written_points += len(entry.lines)
            c.written_readings += entry.readings
            bad, uncertain, not_storable, reserved = entry.counts
            c.bad_quality_readings += bad
            c.uncertain_quality_readings += uncertain
            c.not_storable_readings += not_storable
            c.reserved_metric_readings += reserved
            lags.extend(now_ms - ts for ts in entry.timestamps)
        if lags:
            lags.sort()
            c.lag_p50_ms = round(percentile(lags, 0.5), 1)
            c.lag_max_ms = round(lags[-1], 1)

    # ------------------------------------------------------------ writes

    def _write_isolating(self, entries: list[_Decoded]) -> list[tuple[_Decoded, str]]:
        """Write entries; on a rejection bisect until the refused envelopes are isolated.

        InfluxDB 1.x stores the acceptable points of a partially refused write, so the
        halves that are written again overwrite identical points: harmless.
        """
        try:
            self._write_retrying([line for entry in entries for line in entry.lines])
            return []
        except InfluxRejected as exc:
            if len(entries) == 1:
                return [(entries[0], exc.message)]
        middle = len(entries) // 2
        return self._write_isolating(entries[:middle]) + self._write_isolating(entries[middle:])

    def _write_retrying(self, lines: list[str]) -> None:
        delay = self.config.retry_initial_s
        while True:
            try:
                if not self._database_ready:
                    self.influx.create_database()
                    self._database_ready = True
                self.influx.write_lines(lines)
                self._outage_over()
                return
            except InfluxRejected:
                self.counters.influx_errors += 1
                self._outage_over()
                raise
            except (InfluxUnavailable, InfluxAuthError) as exc:
                self.counters.influx_errors += 1
                if self._create_database and exc.status == 404 and "database not found" in exc.message:
                    self._database_ready = False
                self._outage_begins(exc, len(lines))
                wait = delay
                if isinstance(exc, InfluxUnavailable) and exc.retry_after_s is not None:
                    wait = min(max(delay, exc.retry_after_s), self.config.retry_max_s)
                if self.give_up.wait(wait):
                    raise Abandoned() from None
                self.counters.influx_retries += 1
                self._outage_retries += 1
                delay = min(delay * 2, self.config.retry_max_s)
            except InfluxError as exc:  # a CREATE DATABASE refused as a query: treat like an outage
                self.counters.influx_errors += 1
                self._outage_begins(exc, len(lines))
                if self.give_up.wait(delay):
                    raise Abandoned() from None
                self.counters.influx_retries += 1
                delay = min(delay * 2, self.config.retry_max_s)

    def _outage_begins(self, exc: InfluxError, lines: int) -> None:
        if self._outage_started is None:
            self._outage_started = time.monotonic()
            self._outage_retries = 0
            self.counters.influx_available = False
            log.warning("InfluxDB write failed, holding the batch (%d lines) unacknowledged and retrying "
                        "with back-off up to %.1f s: %s", lines, self.config.retry_max_s, exc.message)

    def _outage_over(self) -> None:
        if self._outage_started is not None:
            log.warning("InfluxDB writes succeed again after %.1f s and %d retries",
                        time.monotonic() - self._outage_started, self._outage_retries)
            self._outage_started = None
            self.counters.influx_available = True
