"""Sequence tracking, Prometheus rendering and rate-limited logging of the ingest."""

import logging
import time

import pytest

from cloud.ingest.stats import RateLimitedLog, SeqTracker, render_prometheus

pytestmark = pytest.mark.timeout(10)


def test_seq_tracker_counts_gaps_duplicates_and_late_arrivals_per_device():
    tracker = SeqTracker(window=100)
    outcomes = [tracker.observe("plant-a", "pm-1", seq) for seq in (1, 2, 5, 2, 4, 6)]
    assert outcomes == ["new", "new", "gap", "duplicate", "late", "new"]
    assert (tracker.duplicates, tracker.gaps, tracker.out_of_order) == (1, 1, 1)  # 3 is still missing
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


def test_prometheus_text_format():
    text = render_prometheus({"received": 12, "dead_letter": {"malformed_json": 2, 'we"ird': 1},
                              "queue_depth": 3, "mqtt_connected": True, "lag_p50_ms": 41.5})
    lines = text.splitlines()
    assert "# TYPE hinode_ingest_received_total counter" in lines
    assert "hinode_ingest_received_total 12" in lines
    assert 'hinode_ingest_dead_letter_total{reason="malformed_json"} 2' in lines
    assert 'hinode_ingest_dead_letter_total{reason="we\\"ird"} 1' in lines
    assert "hinode_ingest_queue_depth 3" in lines and "hinode_ingest_mqtt_connected 1" in lines
    assert "hinode_ingest_lag_p50_ms 41.5" in lines
    assert all(line.startswith("#") or line.startswith("hinode_ingest_") for line in lines)
    assert text.endswith("\n")


def test_rate_limited_log_suppresses_a_flood_and_says_so(caplog):
    caplog.set_level(logging.WARNING)
    limited = RateLimitedLog(logging.getLogger("test.flood"), burst=3, interval_s=0.2)
    for i in range(50):
        limited.warning("dead letter %d", i)
    assert [r.getMessage() for r in caplog.records] == ["dead letter 0", "dead letter 1", "dead letter 2"]
    time.sleep(0.25)
    limited.warning("dead letter %d", 99)
    assert caplog.records[-1].getMessage() == "dead letter 99 (47 similar lines suppressed)"
