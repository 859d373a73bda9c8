"""The agent holds telemetry in its outbox until a cloud ingest heartbeat is heard."""

import time

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from hinode import contract
from tests.support.agent_proc import AgentProcess, write_site_config
from tests.support.collector import Collector
from tests.support.waiting import wait_until

pytestmark = pytest.mark.timeout(60)


def test_agent_holds_telemetry_until_an_ingest_is_heard(tmp_path, broker):
    collector = Collector(broker.port)
    config = write_site_config(tmp_path / "site.yaml", broker.port,
                               [{"type": "synthetic", "name": "s", "interval_s": 0.1, "devices": [{"id": "d1"}]}])
    agent = AgentProcess(config).start()
    beats = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="fake-ingest", protocol=mqtt.MQTTv5)
    try:
        wait_until(lambda: (m := agent.metrics())["hinode_agent_waiting_for_ingest"] == 1.0
                   and m["hinode_agent_queue_envelopes"] >= 10, "10 envelopes held in the outbox")
        assert collector.seqs["d1"] == []
        beats.connect("127.0.0.1", broker.port)
        beats.loop_start()
        for _ in range(30):
            payload = contract.encode(contract.IngestHeartbeat(ingest="fake-ingest", ts=int(time.time() * 1000)))
            beats.publish(contract.INGEST_HEARTBEAT_TOPIC, payload, qos=0)
            if len(collector.seqs["d1"]) >= 25:
                break
            time.sleep(0.2)
        assert agent.metrics()["hinode_agent_waiting_for_ingest"] == 0.0
        assert sorted(collector.seqs["d1"])[:20] == list(range(1, 21))
    finally:
        beats.loop_stop()
        agent.stop()
        collector.close()
