"""One poison payload costs the ingest one dead letter — not its whole batch.

Payloads the fuzzers found (tests/fuzz/test_contract_fuzz.py, test_ingest_flood.py) that
escape the contract's ContractError and hit the ingest's "retry the batch one by one"
safety net: every other message of the batch is then written to InfluxDB on its own, so a
device sending one such payload per batch cuts the ingest's throughput ~100-fold. Judged
from outside: InfluxDB's own count of write requests (/debug/vars), the stored seqs and
the dead letter."""

from __future__ import annotations

import json
import time
import urllib.request

import paho.mqtt.client as mqtt
import pytest
import yaml

from hinode import contract
from tests.faults.helpers import IngestProcess, wait_until
from tests.fuzz.test_ingest_flood import LetterBox

pytestmark = pytest.mark.timeout(60)

SITE, AGENT = "plant-p", "edge-p"
TOPIC = contract.telemetry_topic(SITE, AGENT)
GOOD = 200


def envelope(seq: int, ts: int, value=1.5, metric: str = "power_w") -> dict:
    return {"v": 1, "site": SITE, "agent": AGENT, "device": "pm-1", "kind": "meter", "profile": "p", "seq": seq,
            "readings": [{"ts": ts, "metric": metric, "value": value, "unit": "", "quality": "good"}], "meta": {}}


NOW = time.time_ns() // 1_000_000
POISONS = {
    # json.loads recurses per nesting level: RecursionError, not a ContractError (hinode/contract.py)
    "deeply-nested-json": b'{"v":1,"readings":' + b"[" * 5000 + b"]" * 5000 + b"}",
    # a legal JSON escape; the contract's value union accepts the lone surrogate, UTF-8 encoding
    # of the InfluxDB write body then fails (cloud/influx.py write_lines)
    "lone-surrogate-in-a-string-value": json.dumps(envelope(9999, NOW, value="run\ud800", metric="state")).encode(),
    # a reading ts no clock can hold: the clock-skew check's duration text overflows a float
    # (cloud/ingest/decode.py _duration)
    "reading-ts-beyond-any-float": json.dumps(envelope(9999, 10**400)).encode(),
}


def influx_write_requests(influx) -> int:
    with urllib.request.urlopen(f"{influx.url}/debug/vars", timeout=5) as resp:
        stats = json.loads(resp.read())
    return sum(v["values"].get("writeReq", 0) for k, v in stats.items() if k.startswith("httpd"))


def stored_seqs(influx) -> int:
    try:
        result = influx.query('SELECT count(distinct("seq")) FROM "meter"', db="hinode")["results"][0]
    except OSError:
        return 0
    series = result.get("series") or [{"values": [[0, 0]]}]
    return series[0]["values"][0][1]


@pytest.mark.parametrize("poison", list(POISONS))
def test_one_poison_payload_is_dead_lettered_without_rewriting_its_batch_one_by_one(broker, influx, tmp_path, poison):
    config = tmp_path / "cloud.yaml"
    config.write_text(yaml.safe_dump({
        "mqtt": {"host": "127.0.0.1", "port": broker.port, "client_id": "ingest-poison"},
        "influx": {"url": influx.url, "database": "hinode"},
        "ingest": {"batch_max_messages": 500, "batch_max_ms": 1000, "metrics_listen": "127.0.0.1:0"}}))
    ingest = IngestProcess(config, tmp_path / "ingest.log").start()
    letters = LetterBox(broker.port)
    publisher = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="poison-publisher", protocol=mqtt.MQTTv5)
    publisher.connect("127.0.0.1", broker.port)
    publisher.loop_start()
    try:
        # warm up: the database exists and the first write is done before we count
        publisher.publish(TOPIC, json.dumps(envelope(1, NOW - 10_000)).encode(), qos=1).wait_for_publish(5)
        wait_until(lambda: stored_seqs(influx) == 1, "the warm-up envelope stored", 20)
        writes_before = influx_write_requests(influx)
        infos = []
        for seq in range(2, GOOD + 2):
            infos.append(publisher.publish(TOPIC, json.dumps(envelope(seq, NOW - 10_000 + seq)).encode(), qos=1))
            if seq == GOOD // 2:
                infos.append(publisher.publish(TOPIC, POISONS[poison], qos=1))
        for info in infos:
            info.wait_for_publish(5)
        wait_until(lambda: stored_seqs(influx) == GOOD + 1 and letters.count == 1,
                   "the good envelopes stored and the poison dead-lettered", 40,
                   context=lambda: f"\nstored {stored_seqs(influx)}, dead letters {dict(letters.codes)}")
        writes = influx_write_requests(influx) - writes_before
        codes = dict(letters.codes)
    finally:
        publisher.disconnect()
        publisher.loop_stop()
        letters.close()
        ingest.stop()
    assert "ingest_error" not in codes and writes <= 10, (
        f"dead letters {codes}; {writes} InfluxDB writes for {GOOD} envelopes that fit in a few batches: "
        f"the poison escaped the contract's checks and its batch was rewritten one message at a time")
