"""The ingest's Prometheus families, read from its counters at every scrape.

Served by ``python -m cloud ingest`` on ``ingest.metrics_listen`` (hinode.metrics.MetricsHTTPServer)
and, for an ingest inside ``python -m cloud serve``, on the API's ``/metrics``. Nothing is
counted here: the hot path keeps its plain integers, and the two histograms (lag, write time)
are observed once per batch / per InfluxDB request by the writer thread.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable

from prometheus_client import CollectorRegistry
from prometheus_client.core import Metric

from hinode.metrics import (FamiliesCollector, counter, gauge, histogram, labelled_counter, registry_of)

if TYPE_CHECKING:
    from cloud.ingest.service import IngestService

# (key in IngestService.stats(), HELP); the metric is hinode_ingest_<key>_total
COUNTERS = [
    ("received", "MQTT messages received"),
    ("backpressure_waits", "Times messages arrived into a full queue and reading from the broker paused"),
    ("mqtt_refused_publishes", "Dead letters the broker answered with an error PUBACK (e.g. not authorized)"),
    ("mqtt_reconnects", "Connections to the broker lost (and re-established) while running"),
    ("written_envelopes", "Envelopes stored in InfluxDB"),
    ("written_points", "Points (lines) stored in InfluxDB"),
    ("written_readings", "Reading values stored in InfluxDB"),
    ("acked", "MQTT messages acknowledged after being stored or dead-lettered"),
    ("ack_skipped_reconnected", "Messages left for redelivery because the MQTT connection changed"),
    ("bad_quality_readings", "Readings with quality bad (listed in bad_metrics, not stored)"),
    ("uncertain_quality_readings", "Readings with quality uncertain (stored, listed in uncertain_metrics)"),
    ("not_storable_readings", "Readings whose value is NaN or infinite (listed in bad_metrics)"),
    ("reserved_metric_readings", "Readings whose metric name is reserved by the schema"),
    ("type_conflict_readings", "Readings dead-lettered alone for a field type conflict (the rest of "
                               "their envelope stored)"),
    ("influx_retries", "InfluxDB writes retried after an outage or auth error"),
    ("influx_errors", "InfluxDB requests that failed"),
    ("batches", "Batches processed"),
    ("duplicates", "Envelopes whose seq was already seen (per-process hint)"),
    ("seq_skipped", "Seqs jumped over when a higher seq of the same device arrived (per-process hint; "
                    "a later fill counts in out_of_order)"),
    ("out_of_order", "Envelopes that arrived after a higher seq of the same device"),
    ("seq_resets", "Devices whose seq restarted"),
]
# (metric name, HELP, value from stats())
GAUGES = [
    ("hinode_ingest_queue_depth", "Messages received and waiting for the writer", lambda s: s["queue_depth"]),
    ("hinode_ingest_last_batch_size", "Messages in the last batch", lambda s: s["last_batch_size"]),
    ("hinode_ingest_last_batch_duration_seconds", "Time to decode, write and acknowledge the last batch",
     lambda s: s["last_batch_latency_ms"] / 1000),
    ("hinode_ingest_lag_p50_seconds", "Median of stored time - reading ts over the points of the last batch",
     lambda s: s["lag_p50_ms"] / 1000),
    ("hinode_ingest_lag_max_seconds", "Maximum of stored time - reading ts over the points of the last batch",
     lambda s: s["lag_max_ms"] / 1000),
    ("hinode_ingest_seq_gaps", "Seqs skipped and not (yet) filled by a late envelope, now (per-process hint; "
                               "falls when a late envelope fills one, so a gauge)", lambda s: s["gaps"]),
    ("hinode_ingest_mqtt_connected", "1 while connected to the broker", lambda s: s["mqtt_connected"]),
    ("hinode_ingest_mqtt_subscribed", "1 while the telemetry subscription is active (heartbeats are sent)",
     lambda s: s["mqtt_subscribed"]),
    ("hinode_ingest_influx_available", "0 while InfluxDB writes are failing and being retried",
     lambda s: s["influx_available"]),
]


def ingest_families(service: "IngestService") -> Iterable[Metric]:
    """Every hinode_ingest_* family; no secret and no per-device (possibly personal) label."""
    stats = service.stats()
    for key, help_text in COUNTERS:
        yield counter(f"hinode_ingest_{key}_total", help_text, stats.get(key, 0))
    yield labelled_counter("hinode_ingest_dead_letter_total", "Messages dead-lettered, by reason", ("reason",),
                           sorted(stats["dead_letter"].items()))
    yield labelled_counter("hinode_ingest_meta_refused_total",
                           "Meta entries not stored as tags, by kind and reason (undeclared_key, not_an_id, "
                           "too_many_values)", ("kind", "reason"),
                           (((kind, reason), count) for (kind, reason), count in sorted(stats["meta_refused"].items())))
    for name, help_text, value in GAUGES:
        yield gauge(name, help_text, float(value(stats)))
    counters = service.counters
    yield histogram("hinode_ingest_lag_seconds", "Stored time - reading ts, per stored point (observed once "
                    "per batch): the end-to-end delay up to InfluxDB", {(): counters.lag_seconds})
    yield histogram("hinode_ingest_influx_write_seconds", "Duration of each InfluxDB /write request of the ingest, "
                    "successful or not", {(): counters.influx_write_seconds})


def ingest_collector(service: "IngestService") -> FamiliesCollector:
    return FamiliesCollector("ingest", lambda: ingest_families(service))


def ingest_registry(service: "IngestService") -> CollectorRegistry:
    """The registry ``python -m cloud ingest`` serves (one per IngestService)."""
    return registry_of(ingest_collector(service))
