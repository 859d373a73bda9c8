"""One batch of MQTT messages -> InfluxDB: decode, write with retry, isolate rejected envelopes.

Runs on the ingest's writer thread. It never acknowledges anything itself: it returns
which messages are stored and which must be dead-lettered, and the service acks them.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from dataclasses import dataclass, field

from cloud.config import IngestConfig, PersonalDataConfig
from cloud.influx import (InfluxAuthError, InfluxClient, InfluxError, InfluxQueryError, InfluxRejected,
                          InfluxUnavailable, quote_identifier)
from cloud.ingest.stats import IngestCounters, SeqTracker, percentile
from cloud.ingest.decode import CLOCK_SKEW, clock_skew, decode_envelope
from cloud.ingest.records import catalog_lines, result_line
from cloud.lineproto import encode_envelope
from hinode.backoff import Backoff
from hinode.contract import (CATALOG_CHANNEL, META_KEYS, PERSONAL_CHANNEL, RESULT_CHANNEL, TELEMETRY_CHANNEL,
                             ContractError, TelemetryEnvelope, decode_catalog, decode_command_result, is_id,
                             is_personal)

log = logging.getLogger("cloud.ingest")

INFLUX_REJECTED = "influx_rejected"
FIELD_TYPE_CONFLICT = "field_type_conflict"


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
    """The lines of one message for one destination (a message may have parts in two)."""

    item: Inbound
    lines: list[str]
    destination: tuple[str | None, str | None]          # (database, retention policy); None = configured
    envelope: TelemetryEnvelope | None = None           # telemetry only
    meta: dict[str, str] | None = None
    timestamps: list[int] = field(default_factory=list)
    readings: int = 0
    counts: tuple[int, int, int, int] = (0, 0, 0, 0)    # bad, uncertain, not storable, reserved
    personal: bool = False


@dataclass(slots=True)
class Refused:
    """A message (or one field of it) that goes to the dead-letter topic instead of InfluxDB."""

    item: Inbound
    code: str
    message: str
    personal: bool = False           # carry reason and size only, never the payload
    payload: bytes | None = None     # what to carry instead of the whole message (e.g. one reading)
    rest_stored: bool = False        # the rest of the message was stored


@dataclass
class BatchOutcome:
    stored: list[Inbound] = field(default_factory=list)
    dead_letters: list[Refused] = field(default_factory=list)


class Abandoned(Exception):
    """The service is stopping while InfluxDB is unavailable: leave the batch unacknowledged."""


_CONFLICT = re.compile(r'field type conflict: input field "([^"]+)" on measurement "([^"]+)" is type (\w+), '
                       r'already exists as type (\w+)')
MAX_CONFLICTING_FIELDS = 8


class BatchWriter:
    def __init__(self, influx: InfluxClient, config: IngestConfig, counters: IngestCounters, seq: SeqTracker,
                 *, create_database: bool, give_up: threading.Event, personal: PersonalDataConfig | None = None):
        self.influx = influx
        self.config = config
        self.counters = counters
        self.seq = seq
        self.give_up = give_up
        self.personal = personal or PersonalDataConfig()
        self._personal_destination = (self.personal.database, self.personal.retention_policy)
        self._create_database = create_database
        self._database_ready = not create_database
        self._personal_ready = not create_database
        self._meta_values: dict[tuple[str, str], set[str]] = {}
        self._outage_started: float | None = None
        self._outage_retries = 0

    # ------------------------------------------------------------ batch

    def process(self, batch: list[Inbound]) -> BatchOutcome:
        """Store what can be stored; raises Abandoned when asked to give up during an outage."""
        outcome = BatchOutcome()
        decoded: list[_Decoded] = []
        now_ms = time.time_ns() // 1_000_000
        for item in batch:
            channel = item.topic.rpartition("/")[2]
            try:
                if channel == TELEMETRY_CHANNEL or channel == PERSONAL_CHANNEL:
                    entry = self._telemetry(item, channel == PERSONAL_CHANNEL, now_ms, outcome)
                    if entry is not None:
                        decoded.append(entry)
                elif channel == CATALOG_CHANNEL:
                    decoded += self._catalog(item)
                elif channel == RESULT_CHANNEL:
                    result = decode_command_result(item.payload, item.topic)
                    decoded.append(_Decoded(item, [result_line(result)], (None, None)))
                else:
                    outcome.dead_letters.append(Refused(item, "unknown_topic", f"no handler for topic {item.topic}"))
            except ContractError as exc:
                outcome.dead_letters.append(Refused(item, exc.code, str(exc), personal=channel == PERSONAL_CHANNEL))
        if decoded:
            refused_ids: set[int] = set()
            for refusal in self._write_by_destination(decoded):
                outcome.dead_letters.append(refusal)
                if not refusal.rest_stored:
                    refused_ids.add(id(refusal.item))
            stored = [entry for entry in decoded if id(entry.item) not in refused_ids]
            self._count_stored(stored)
            partly = {id(r.item) for r in outcome.dead_letters if r.rest_stored}
            seen: set[int] = set()
            for entry in stored:   # an item is acked once; one with a dead letter is acked after its PUBACK
                key = id(entry.item)
                if key not in seen and key not in partly:
                    seen.add(key)
                    outcome.stored.append(entry.item)
        return outcome

    def _telemetry(self, item: Inbound, on_personal_topic: bool, now_ms: int, outcome: BatchOutcome) -> _Decoded | None:
        envelope = decode_envelope(item.payload, item.topic)
        personal = is_personal(envelope.kind)
        if personal != on_personal_topic:
            where = "the general telemetry topic" if personal else "the personal topic"
            outcome.dead_letters.append(Refused(item, "wrong_topic_for_kind", f"kind {envelope.kind} on {where}",
                                                personal=True))
            return None
        skew = clock_skew(envelope, now_ms, int(self.config.max_future_s * 1000), int(self.config.max_past_s * 1000))
        if skew is not None:
            outcome.dead_letters.append(Refused(item, CLOCK_SKEW, f"{envelope.site}/{envelope.device} seq "
                                                f"{envelope.seq}: {skew}", personal=personal))
            return None
        meta = self._checked_meta(envelope) if envelope.meta else None
        encoded = encode_envelope(envelope, meta)
        for problem in encoded.problems:
            log.debug("%s/%s seq %d: %s", envelope.site, envelope.device, envelope.seq, problem)
        return _Decoded(item, encoded.lines, self._personal_destination if personal else (None, None), envelope,
                        meta, encoded.timestamps, encoded.readings_written,
                        (encoded.bad_quality, encoded.uncertain_quality, encoded.not_storable, encoded.reserved_metric),
                        personal)

    def _catalog(self, item: Inbound) -> list[_Decoded]:
        catalog = decode_catalog(item.payload, item.topic)
        general = [d for d in catalog.devices if not is_personal(d.kind)]
        personal = [d for d in catalog.devices if is_personal(d.kind)]
        parts = [_Decoded(item, catalog_lines(catalog, general), (None, None))]
        if personal:
            parts.append(_Decoded(item, catalog_lines(catalog, personal), self._personal_destination, personal=True))
        return [part for part in parts if part.lines] or [_Decoded(item, [], (None, None))]

    def _checked_meta(self, envelope: TelemetryEnvelope) -> dict[str, str]:
        """The meta keys the kind declares, each with a bounded number of values; the rest counted."""
        allowed = META_KEYS.get(envelope.kind, frozenset())
        kept = {}
        for key, value in envelope.meta.items():
            if key not in allowed:
                reason = "undeclared_key"
            elif not is_id(value):
                reason = "not_an_id"
            else:
                values = self._meta_values.setdefault((envelope.kind, key), set())
                if value in values or len(values) < self.config.meta_max_values:
                    values.add(value)
                    kept[key] = value
                    continue
                reason = "too_many_values"
            with self.counters.lock:
                self.counters.meta_refused[(str(envelope.kind), reason)] += 1
        return kept

    def _count_stored(self, stored: list[_Decoded]) -> None:
        c = self.counters
        now_ms = time.time() * 1000
        lags: list[float] = []
        stored = [entry for entry in stored if entry.envelope is not None]
        with c.lock:
            for entry in stored:
                if not entry.personal:   # per-device figures are published in /metrics
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
            c.lag_seconds.observe_sorted(lags, units_per_second=1000)

    # ------------------------------------------------------------ writes

    def _write_by_destination(self, decoded: list[_Decoded]) -> list[Refused]:
        groups: dict[tuple, list[_Decoded]] = {}
        for entry in decoded:
            if entry.lines:
                groups.setdefault(entry.destination, []).append(entry)
        refused: list[Refused] = []
        for destination, entries in groups.items():
            for entry, message in self._write_isolating(entries, destination):
                refused.append(self._repair(entry, message, destination))
        return refused

    def _write_isolating(self, entries: list[_Decoded], destination) -> list[tuple[_Decoded, str]]:
        """Write entries; on a rejection bisect until the refused envelopes are isolated.

        InfluxDB 1.x stores the acceptable points of a partially refused write, so the
        halves that are written again overwrite identical points: harmless.
        """
        try:
            self._write_retrying([line for entry in entries for line in entry.lines], destination)
            return []
        except InfluxRejected as exc:
            if len(entries) == 1:
                return [(entries[0], exc.message)]
        middle = len(entries) // 2
        return (self._write_isolating(entries[:middle], destination)
                + self._write_isolating(entries[middle:], destination))

    def _repair(self, entry: _Decoded, message: str, destination) -> Refused:
        """A refused envelope whose only fault is a field of the wrong type: store the rest of it,
        dead-letter just those readings. Anything else refuses the whole message."""
        envelope, excluded, conflicts = entry.envelope, set(), []
        while envelope is not None and len(excluded) < MAX_CONFLICTING_FIELDS:
            conflict = _CONFLICT.search(message)
            if conflict is None or conflict.group(1) in excluded:
                break
            excluded.add(conflict.group(1))
            conflicts.append(f"{conflict.group(1)} sent as {conflict.group(3)}, stored as {conflict.group(4)}")
            entry.lines = encode_envelope(envelope, entry.meta, frozenset(excluded)).lines
            try:
                self._write_retrying(entry.lines, destination)
            except InfluxRejected as exc:
                message = exc.message
                continue
            self.counters.type_conflict_readings += sum(r.metric in excluded for r in envelope.readings)
            refused = [r.model_dump(mode="json") for r in envelope.readings if r.metric in excluded]
            fields = ", ".join(sorted(excluded))
            return Refused(entry.item, FIELD_TYPE_CONFLICT,
                           f"{envelope.site}/{envelope.device} seq {envelope.seq}: field(s) {fields} of {envelope.kind} "
                           f"have another type in InfluxDB ({'; '.join(conflicts)}); the envelope's "
                           f"other readings were stored", personal=entry.personal,
                           payload=json.dumps({"site": envelope.site, "device": envelope.device, "seq": envelope.seq,
                                               "readings": refused}).encode(), rest_stored=True)
        return Refused(entry.item, INFLUX_REJECTED, message, personal=entry.personal)

    def _write_retrying(self, lines: list[str], destination=(None, None)) -> None:
        backoff = Backoff(self.config.retry_initial_s, self.config.retry_max_s)
        database, retention_policy = destination
        while True:
            try:
                if not self._database_ready:
                    self.influx.create_database()
                    self._database_ready = True
                if database is not None and not self._personal_ready:
                    self._create_personal_database()
                    self._personal_ready = True
                started = time.perf_counter()
                try:
                    self.influx.write_lines(lines, database=database, retention_policy=retention_policy)
                finally:
                    self.counters.influx_write_seconds.observe(time.perf_counter() - started)
                self._outage_over()
                return
            except InfluxRejected:
                self.counters.influx_errors += 1
                self._outage_over()
                raise
            except (InfluxUnavailable, InfluxAuthError) as exc:
                self.counters.influx_errors += 1
                if self._create_database and exc.status == 404 and "database not found" in exc.message:
                    self._database_ready = self._personal_ready = False
                self._outage_begins(exc, len(lines))
                wait = backoff.next()
                if isinstance(exc, InfluxUnavailable) and exc.retry_after_s is not None:
                    # the server's Retry-After is a floor (never beyond retry_max_s)
                    wait = min(max(wait, exc.retry_after_s), self.config.retry_max_s)
                if self.give_up.wait(wait):
                    raise Abandoned() from None
                self.counters.influx_retries += 1
                self._outage_retries += 1
            except InfluxError as exc:  # a CREATE DATABASE refused as a query: treat like an outage
                self.counters.influx_errors += 1
                self._outage_begins(exc, len(lines))
                if self.give_up.wait(backoff.next()):
                    raise Abandoned() from None
                self.counters.influx_retries += 1

    def _create_personal_database(self) -> None:
        """The personal database and its retention policy (made the default), as configured."""
        p = self.personal
        db, rp = quote_identifier(p.database), quote_identifier(p.retention_policy)
        self.influx.query(f"CREATE DATABASE {db}", database=p.database)
        try:
            self.influx.query(f"CREATE RETENTION POLICY {rp} ON {db} DURATION {p.retention} REPLICATION 1 DEFAULT",
                              database=p.database)
        except InfluxQueryError as exc:
            if "already exists" not in exc.message:
                raise
            self.influx.query(f"ALTER RETENTION POLICY {rp} ON {db} DURATION {p.retention} DEFAULT", database=p.database)

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
