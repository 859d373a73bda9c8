"""The ingest loses nothing: InfluxDB outages, crashes between receive and write, load sharing."""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from hinode import contract
from tests.cloud.test_ingest_kit import (DeadLetterListener, Publisher, distinct_seqs, ingest_config, meter_envelope,
                                         running_ingest, wait_until)

pytestmark = pytest.mark.timeout(90)

REPO = Path(__file__).resolve().parents[2]


def test_influx_outage_mid_stream_loses_nothing_and_holds_at_most_receive_maximum(broker, influx):
    total, max_inflight = 300, 50
    listener = DeadLetterListener(broker)
    publisher = Publisher(broker)
    config = ingest_config(broker, influx, max_inflight=max_inflight, batch_max_messages=20)
    with running_ingest(config) as service:
        def produce():
            for seq in range(1, total + 1):
                publisher.envelope(meter_envelope(seq, device=f"pm-{seq % 3}"))
                time.sleep(0.01)            # a paced producer, so the outage falls mid-stream
        producer = threading.Thread(target=produce)
        producer.start()
        wait_until(lambda: service.stats()["written_envelopes"] >= 40, 10, "the first envelopes stored")
        influx.stop()
        wait_until(lambda: service.stats()["influx_retries"] >= 2, 10, "retries while InfluxDB is down")
        outstanding = []
        for _ in range(15):
            stats = service.stats()
            outstanding.append(stats["received"] - stats["acked"])
            assert not stats["influx_available"]
            time.sleep(0.1)                 # the outage kept open for 1.5 s while in-flight is sampled
        influx.start()
        producer.join(10)
        wait_until(lambda: sum(distinct_seqs(influx).values()) == total, 30, "every envelope stored")
        wait_until(lambda: service.stats()["acked"] == total, 10, "every message acked")
        stats = service.stats()
    publisher.close()
    time.sleep(0.2)                         # a negative check: no dead letter shows up late
    assert listener.snapshot() == []
    listener.close()
    assert distinct_seqs(influx) == {"pm-0": 100, "pm-1": 100, "pm-2": 100}
    # The broker stops sending once ReceiveMaximum messages are unacknowledged: no unbounded buffer.
    assert max(outstanding) <= max_inflight and max(outstanding) > 0
    assert stats["dead_letter_total"] == 0 and stats["influx_retries"] >= 2 and stats["influx_available"]


def test_stopped_without_ack_then_restarted_with_the_same_client_id_stores_everything(broker, influx):
    influx.stop()
    publisher = Publisher(broker)
    config = ingest_config(broker, influx, client_id="ingest-crashy")
    with running_ingest(config, stop_timeout=1.0) as first:
        for seq in range(1, 51):
            publisher.envelope(meter_envelope(seq))
        wait_until(lambda: first.stats()["received"] == 50, 10, "50 messages received")
        wait_until(lambda: first.stats()["influx_errors"] >= 1, 10, "a failed write")
    assert first.stats()["acked"] == 0 and first.stats()["written_envelopes"] == 0
    for seq in range(51, 61):  # published while no ingest is connected: the session keeps them
        publisher.envelope(meter_envelope(seq)).wait_for_publish(5)
    influx.start()
    with running_ingest(config) as second:
        wait_until(lambda: distinct_seqs(influx) == {"pm-1": 60}, 20, "all 60 envelopes stored")
        wait_until(lambda: second.stats()["acked"] == 60, 10, "all 60 acked")
        assert second.stats()["received"] == 60
    publisher.close()


def _spawn_ingest(config_path: Path, log_path: Path) -> subprocess.Popen:
    log = open(log_path, "ab")
    try:
        return subprocess.Popen([sys.executable, "-m", "cloud.ingest", "--config", str(config_path)],
                                cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                                env={**os.environ, "PYTHONPATH": str(REPO)})
    finally:
        log.close()


def _log_has(log_path: Path, text: str, after: int = 0) -> bool:
    return text in log_path.read_text(errors="replace")[after:]


def test_sigkilled_ingest_process_restarted_with_the_same_client_id_stores_everything(broker, influx, tmp_path):
    config_path, log_path = tmp_path / "cloud.yaml", tmp_path / "ingest.log"
    config = ingest_config(broker, influx, client_id="ingest-killed")
    config_path.write_text(yaml.safe_dump(config.model_dump(mode="json")))
    publisher = Publisher(broker)
    influx.stop()
    process = _spawn_ingest(config_path, log_path)
    try:
        wait_until(lambda: _log_has(log_path, "subscribed to"), 15, "the ingest subprocess subscribed")
        for seq in range(1, 41):
            publisher.envelope(meter_envelope(seq)).wait_for_publish(5)
        wait_until(lambda: _log_has(log_path, "holding the batch"), 15, "the ingest holding a batch")
        process.kill()  # received, not written, not acknowledged
        process.wait(5)
        influx.start()
        mark = len(log_path.read_text(errors="replace"))
        process = _spawn_ingest(config_path, log_path)
        wait_until(lambda: _log_has(log_path, "session present: True", mark), 15, "the resumed session")
        for seq in range(41, 61):
            publisher.envelope(meter_envelope(seq)).wait_for_publish(5)
        wait_until(lambda: distinct_seqs(influx) == {"pm-1": 60}, 20, "all 60 envelopes stored")
        process.send_signal(signal.SIGTERM)
        assert process.wait(15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(5)
        publisher.close()
    tail = log_path.read_text(errors="replace")[mark:]
    assert "ingest stopped: received 60, stored 60 envelopes, dead-lettered 0" in tail


def test_two_ingest_processes_share_the_stream_and_together_store_it_exactly(broker, influx):
    total = 400
    publisher = Publisher(broker)
    with running_ingest(ingest_config(broker, influx, client_id="ingest-a")) as a, \
            running_ingest(ingest_config(broker, influx, client_id="ingest-b")) as b:
        infos = [publisher.envelope(meter_envelope(seq, device=f"pm-{seq % 4}")) for seq in range(1, total + 1)]
        for info in infos:
            info.wait_for_publish(5)
        wait_until(lambda: a.stats()["acked"] + b.stats()["acked"] == total, 20, "every message acked")
        stats_a, stats_b = a.stats(), b.stats()
    publisher.close()
    assert stats_a["written_envelopes"] > 0 and stats_b["written_envelopes"] > 0
    assert stats_a["written_envelopes"] + stats_b["written_envelopes"] == total
    assert stats_a["received"] + stats_b["received"] == total
    assert distinct_seqs(influx) == {f"pm-{d}": 100 for d in range(4)}


def test_broker_restart_mid_stream_loses_nothing_and_leaves_nothing_unacknowledged(broker, influx):
    total = 200
    publisher = Publisher(broker)
    config = ingest_config(broker, influx, batch_max_ms=200)
    with running_ingest(config) as service:
        for seq in range(1, 101):
            publisher.envelope(meter_envelope(seq))
        wait_until(lambda: service.stats()["received"] >= 50, 10, "half the first part received")
        broker.stop()  # the session (with unacknowledged messages) is saved to the broker's persistence file
        broker.start()
        # (mqtt_subscribed alone may still be the old connection's, read before the loss is noticed)
        wait_until(lambda: (s := service.stats())["mqtt_reconnects"] >= 1 and s["mqtt_subscribed"], 15,
                   "the ingest reconnected and subscribed again")
        wait_until(publisher.client.is_connected, 15, "the publisher reconnected")
        infos = [publisher.envelope(meter_envelope(seq)) for seq in range(101, total + 1)]
        for info in infos:
            info.wait_for_publish(15)
        wait_until(lambda: distinct_seqs(influx) == {"pm-1": total}, 20, "every envelope stored")
        # Acks meant for the old connection are not sent; the redelivered copies are acked instead.
        wait_until(lambda: (lambda s: s["queue_depth"] == 0
                            and s["acked"] + s["ack_skipped_reconnected"] == s["received"])(service.stats()),
                   10, "every received message acked or left for its redelivered copy")
        stats = service.stats()
    publisher.close()
    assert stats["mqtt_reconnects"] == 1 and stats["dead_letter_total"] == 0
    assert stats["acked"] >= total
    with running_ingest(config) as again:  # same client id: whatever was left unacked would come back now
        time.sleep(1.0)                     # a negative check: nothing left unacked is redelivered
        assert again.stats()["received"] == 0


def test_dead_letter_flood_with_a_full_queue_does_not_deadlock(broker, influx):
    """Seen in CI (fuzz flood, mosquitto 2.0.11 sending past the receive maximum): the writer
    waited for dead-letter PUBACKs while the network thread, the only one that reads them, was
    blocked on the full queue. Both waited forever. A small queue and a small pending bound
    reproduce it without the broker's help."""
    bad, good = 3000, 100
    config = ingest_config(broker, influx, queue_max_messages=10, max_inflight=1000, max_pending_dead_letters=20)
    listener = DeadLetterListener(broker)
    publisher = Publisher(broker)
    with running_ingest(config) as service:
        infos = [publisher.raw(contract.telemetry_topic("plant-a", "edge-1"), b"[1, 2, 3]") for _ in range(bad)]
        infos += [publisher.envelope(meter_envelope(seq)) for seq in range(1, good + 1)]
        for info in infos:
            info.wait_for_publish(10)
        wait_until(lambda: service.stats()["acked"] == bad + good, 45,
                   f"all {bad + good} messages acked (stats: {service.stats()})")
        stats = service.stats()
    publisher.close()
    wait_until(lambda: len(listener.snapshot()) >= bad, 10, f"{bad} dead letters")
    listener.close()
    assert stats["dead_letter"] == {"wrong_type": bad}
    assert distinct_seqs(influx) == {"pm-1": good}
