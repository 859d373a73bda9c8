"""Edge clock jumps: readings far in the future or past are dead-lettered, not stored.

Real Mosquitto -> IngestService -> real InfluxDB; good envelopes of the same stream land.
"""

import re

import pytest

from cloud.config import InfluxConfig
from cloud.influx import InfluxClient
from hinode import contract
from hinode.contract import Reading, TelemetryEnvelope
from tests.cloud.test_ingest_kit import (DeadLetterListener, Publisher, distinct_seqs, ingest_config, meter_envelope,
                                         now_ms, running_ingest, wait_until)

pytestmark = pytest.mark.timeout(60)

DAY_MS = 86_400_000


def test_future_and_past_readings_are_dead_lettered_and_good_ones_stored(broker, influx):
    now = now_ms()
    mixed = TelemetryEnvelope(site="plant-a", agent="edge-1", device="pm-1", kind="meter", seq=5,
                              readings=[Reading(ts=now - 2000, metric="power_w", value=1.0),
                                        Reading(ts=now + 9_000_000, metric="energy_wh", value=2.0)])
    stream = [
        meter_envelope(1, ts=now - 10_000),                  # good
        meter_envelope(2, ts=now + 3 * 3_600_000),           # 3 h ahead: clock jumped forward
        meter_envelope(3, ts=now - 40 * DAY_MS),             # 40 days behind: clock jumped back (or a stale RTC)
        meter_envelope(4, ts=now - 9_000),                   # good
        mixed,                                               # one good and one future reading: refused as a whole
        meter_envelope(6, ts=now + 60_000),                  # 1 min ahead: within max_future_s
        meter_envelope(7, ts=now - 29 * DAY_MS),             # 29 days behind: within max_past_s
    ]
    letters = DeadLetterListener(broker)
    publisher = Publisher(broker)
    with running_ingest(ingest_config(broker, influx)) as service:
        for env in stream:
            publisher.envelope(env).wait_for_publish(5)
        wait_until(lambda: service.stats()["acked"] == len(stream), 20, "every envelope acked")
        wait_until(lambda: len(letters.snapshot()) == 3, 10, "three dead letters")
        stats = service.stats()
        metrics = service.prometheus_text()
    publisher.close()
    letters.close()

    assert stats["dead_letter"] == {"clock_skew": 3}
    assert 'hinode_ingest_dead_letter_total{reason="clock_skew"} 3.0' in metrics
    assert stats["written_envelopes"] == 4
    by_seq = {TelemetryEnvelope.model_validate_json(letter.payload).seq: (topic, letter)
              for topic, letter in letters.snapshot()}
    assert sorted(by_seq) == [2, 3, 5]
    for topic, letter in by_seq.values():
        assert topic == contract.dead_letter_topic("clock_skew")
        assert letter.reason.startswith("clock_skew: plant-a/pm-1 seq ")
    assert "is 3.0 h ahead of the ingest's clock (limit 5.0 min)" in by_seq[2][1].reason
    assert "is 40.0 days behind the ingest's clock (limit 30.0 days)" in by_seq[3][1].reason
    assert "is 2.5 h ahead" in by_seq[5][1].reason

    assert distinct_seqs(influx) == {"pm-1": 4}
    with InfluxClient(InfluxConfig(url=influx.url, database="hinode")) as client:
        stored = sorted(row["seq"] for row in client.query_rows('SELECT "seq" FROM "meter"'))
    assert stored == [1, 4, 6, 7]


def test_limits_come_from_the_ingest_config(broker, influx):
    now = now_ms()
    letters = DeadLetterListener(broker)
    publisher = Publisher(broker)
    config = ingest_config(broker, influx, max_future_s=5, max_past_s=3600)
    with running_ingest(config) as service:
        for env in (meter_envelope(1, ts=now + 30_000), meter_envelope(2, ts=now - 7_200_000),
                    meter_envelope(3, ts=now - 1000)):
            publisher.envelope(env).wait_for_publish(5)
        wait_until(lambda: service.stats()["acked"] == 3, 20, "every envelope acked")
        wait_until(lambda: len(letters.snapshot()) == 2, 10, "two dead letters")
        stats = service.stats()
    publisher.close()
    letters.close()
    assert stats["dead_letter"] == {"clock_skew": 2} and stats["written_envelopes"] == 1
    reasons = sorted(letter.reason for _, letter in letters.snapshot())
    assert re.search(r"is (29\.\d|30\.0) s ahead of the ingest.s clock \(limit 5\.0 s\)", reasons[0])
    assert "2.0 h behind the ingest's clock (limit 60.0 min)" in reasons[1]
    assert distinct_seqs(influx) == {"pm-1": 1}
