"""The ingest writes its own health (hinode_ingest, hinode_ingest_dead_letters) into InfluxDB,
real Mosquitto and InfluxDB 1.6 (tests/conftest.py)."""

from __future__ import annotations

import logging
import threading

from cloud.config import InfluxConfig
from cloud.influx import InfluxClient
from cloud.ingest.health import HealthWriter, health_lines
from hinode import contract
from tests.cloud.test_ingest_kit import Publisher, ingest_config, meter_envelope, now_ms, running_ingest, wait_until


def _rows(influx, query: str) -> list[dict]:
    with InfluxClient(InfluxConfig(url=influx.url, database="hinode")) as client:
        try:
            return client.query_rows(query)
        except Exception:   # the database or measurement is not there yet
            return []


def test_health_lines_one_point_plus_one_per_dead_letter_reason():
    stats = {"client_id": "ingest 1", "received": 12, "written_envelopes": 10, "dead_letter_total": 2,
             "lag_p50_ms": 250.0, "queue_depth": 3, "dead_letter": {"invalid": 1, "malformed_json": 1}}
    lines = health_lines(stats, 1_700_000_000_000)
    assert lines == [
        "hinode_ingest,ingest=ingest\\ 1 received_total=12.0,written_envelopes_total=10.0,dead_letter_total=2.0,"
        "lag_p50_seconds=0.25,queue_depth=3.0 1700000000000",
        "hinode_ingest_dead_letters,ingest=ingest\\ 1,reason=invalid total=1.0 1700000000000",
        "hinode_ingest_dead_letters,ingest=ingest\\ 1,reason=malformed_json total=1.0 1700000000000",
    ]


def test_ingest_writes_its_health_and_dead_letters_per_reason(broker, influx):
    config = ingest_config(broker, influx, client_id="ingest-health-1", health_interval_s=0.2)
    publisher = Publisher(broker)
    try:
        with running_ingest(config) as service:
            for seq in range(1, 6):      # fresh readings: the health point's lag is then seconds, not the kit's hour
                publisher.envelope(meter_envelope(seq, ts=now_ms() - 1000 + seq))
            publisher.raw(contract.telemetry_topic("plant-a", "edge-1"), b"{not json")
            wait_until(lambda: service.stats()["dead_letter_total"] == 1 and service.stats()["written_envelopes"] == 5,
                       10, "ingest stored 5 envelopes and dead-lettered 1")
            wait_until(lambda: any(r["received_total"] == 6 for r in _rows(
                influx, 'SELECT * FROM "hinode_ingest" WHERE time > now() - 1m')), 10, "a health point with the totals")
            # the point is queryable a moment before the writer counts it
            wait_until(lambda: service.health.written >= 1, 5, "the health writer counting its write")
            assert service.health.failed == 0
        (row,) = _rows(influx, 'SELECT last("written_envelopes_total") AS "written", last("dead_letter_total") AS '
                               '"dead", last("queue_depth") AS "queue", last("lag_p50_seconds") AS "lag" '
                               'FROM "hinode_ingest" GROUP BY "ingest"')
        assert (row["ingest"], row["written"], row["dead"], row["queue"]) == ("ingest-health-1", 5.0, 1.0, 0.0)
        assert 0 <= row["lag"] < 60
        letters = _rows(influx, 'SELECT last("total") AS "total" FROM "hinode_ingest_dead_letters" '
                                'GROUP BY "ingest", "reason"')
        assert [(r["ingest"], r["reason"], r["total"]) for r in letters] == [("ingest-health-1", "malformed_json", 1.0)]
    finally:
        publisher.close()


def test_a_failed_health_write_is_logged_and_skipped(caplog):
    unreachable = InfluxClient(InfluxConfig(url="http://127.0.0.1:9", database="hinode", timeout_s=0.5))
    stats = {"client_id": "i", "received": 0, "written_envelopes": 0, "dead_letter_total": 0, "lag_p50_ms": 0.0,
             "queue_depth": 0, "dead_letter": {}}
    writer = HealthWriter(lambda: stats, unreachable, 60, threading.Event())
    with caplog.at_level(logging.WARNING, logger="cloud.ingest.health"):
        assert writer.write_once() is False
    assert writer.failed == 1 and "skipped" in caplog.text
    unreachable.close()
