"""Sequence tracking, Prometheus families and rate-limited logging of the ingest."""

import logging
import time
from types import SimpleNamespace

import pytest

from cloud.ingest.metrics import ingest_registry
from cloud.ingest.stats import IngestCounters, RateLimitedLog, SeqTracker
from hinode.metrics import Buckets, render
from tests.support.prometheus_checks import check_exposition, histogram_count, value

pytestmark = pytest.mark.timeout(10)


def test_seq_tracker_counts_gaps_duplicates_and_late_arrivals_per_device():
    tracker = SeqTracker(window=100)
    outcomes = [tracker.observe("plant-a", "pm-1", seq) for seq in (1, 2, 5, 2, 4, 6)]
    assert outcomes == ["new", "new", "gap", "duplicate", "late", "new"]
    assert (tracker.duplicates, tracker.gaps, tracker.out_of_order) == (1, 1, 1)  # 3 is still missing
    assert tracker.skipped == 2   # 3 and 4 were jumped over; only rises (4's late arrival lowers gaps)
    tracker.observe("plant-b", "pm-1", 10)  # same device id on another site is another stream
    assert tracker.snapshot() == {"plant-a/pm-1": {"highest_seq": 6, "duplicates": 1, "gaps": 1},
                                  "plant-b/pm-1": {"highest_seq": 10, "duplicates": 0, "gaps": 0}}


def test_seq_far_below_the_window_is_a_counter_reset_and_memory_stays_bounded():
    tracker = SeqTracker(window=10)
    for seq in range(1, 1001):
        tracker.observe("s", "d", seq)
    assert tracker.observe("s", "d", 1) == "reset"
    assert tracker.observe("s", "d", 2) == "new"
    assert tracker.resets == 1 and tracker.duplicates == 0
    tracker2 = SeqTracker(window=10, max_devices=3)
    for device in "abcde":
        tracker2.observe("s", device, 1)
    assert list(tracker2.snapshot()) == ["s/c", "s/d", "s/e"]


def test_ingest_families_follow_the_rules_and_escape_labels():
    counters = IngestCounters()
    counters.received, counters.lag_p50_ms, counters.lag_max_ms, counters.last_batch_latency_ms = 12, 41.5, 90.0, 7.0
    counters.lag_seconds.observe_sorted([20.0, 41.5, 90.0], units_per_second=1000)
    counters.influx_write_seconds.observe(0.004)
    stats = {"received": 12, "dead_letter": {"malformed_json": 2, 'we"ird': 1}, "meta_refused": {}, "gaps": 3,
             "queue_depth": 3, "last_batch_size": 5, "last_batch_latency_ms": 7.0, "lag_p50_ms": 41.5,
             "lag_max_ms": 90.0, "mqtt_connected": True, "mqtt_subscribed": True, "influx_available": True}
    service = SimpleNamespace(stats=lambda: stats, counters=counters)
    text = render(ingest_registry(service)).decode()
    families = check_exposition(text, histograms=("hinode_ingest_lag_seconds", "hinode_ingest_influx_write_seconds"))
    assert value(families, "hinode_ingest_received_total") == 12
    assert value(families, "hinode_ingest_dead_letter_total", reason='we"ird') == 1
    assert 'hinode_ingest_dead_letter_total{reason="we\\"ird"} 1.0' in text.splitlines()
    assert families["hinode_ingest_seq_gaps"].type == "gauge" and value(families, "hinode_ingest_seq_gaps") == 3
    assert value(families, "hinode_ingest_lag_p50_seconds") == 0.0415
    assert value(families, "hinode_ingest_last_batch_duration_seconds") == 0.007
    assert value(families, "hinode_ingest_mqtt_connected") == 1
    assert histogram_count(families, "hinode_ingest_lag_seconds") == 3
    assert value(families, "hinode_ingest_lag_seconds_bucket", le="0.025") == 1
    assert value(families, "hinode_ingest_lag_seconds_bucket", le="0.05") == 2
    assert value(families, "hinode_ingest_lag_seconds_sum") == pytest.approx(0.1515)
    assert all(name.startswith("hinode_ingest_") for name in families)


def test_buckets_take_a_sorted_batch_like_single_observations():
    values = sorted([-0.5, 0.0, 0.004, 0.01, 0.0100001, 0.3, 2.0, 4000.0])
    batch, single = Buckets((0.01, 0.1, 1.0)), Buckets((0.01, 0.1, 1.0))
    batch.observe_sorted([v * 1000 for v in values], units_per_second=1000)
    for v in values:
        single.observe(v)
    assert batch.cumulative()[0] == single.cumulative()[0] == [("0.01", 4), ("0.1", 5), ("1.0", 6), ("+Inf", 8)]
    assert batch.cumulative()[1] == pytest.approx(single.cumulative()[1])   # a negative lag adds nothing to the sum
    assert batch.cumulative()[1] == pytest.approx(4002.3240001) and batch.count == 8


def test_rate_limited_log_suppresses_a_flood_and_says_so(caplog):
    caplog.set_level(logging.WARNING)
    limited = RateLimitedLog(logging.getLogger("test.flood"), burst=3, interval_s=0.2)
    for i in range(50):
        limited.warning("dead letter %d", i)
    assert [r.getMessage() for r in caplog.records] == ["dead letter 0", "dead letter 1", "dead letter 2"]
    time.sleep(0.25)                # the passage of time: the 0.2 s rate-limit interval ends
    limited.warning("dead letter %d", 99)
    assert caplog.records[-1].getMessage() == "dead letter 99 (47 similar lines suppressed)"
