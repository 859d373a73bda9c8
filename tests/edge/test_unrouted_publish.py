"""An envelope the broker acknowledges with "no matching subscribers" reached nobody: the agent
keeps it and sends it again once an ingest listens, instead of deleting it.

paho counts that PUBACK (reason 0x10) a success. Mosquitto 2.0.11 answers it when an ingest's
session was restored without its shared subscription, so a heartbeat can be heard while nothing
is subscribed; before, the agent deleted what it sent in that moment."""

import threading
import time

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from hinode import contract
from tests.support.agent_proc import AgentProcess, write_site_config
from tests.support.collector import Collector
from tests.support.waiting import wait_until

pytestmark = pytest.mark.timeout(90)


class HeartbeatOnly:
    """Says "an ingest listens" without subscribing to anything: what a half-restored ingest looks like."""

    def __init__(self, port: int):
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="heartbeat-only", protocol=mqtt.MQTTv5)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(0.2):
            beat = contract.IngestHeartbeat(ingest="heartbeat-only", ts=int(time.time() * 1000))
            self.client.publish(contract.INGEST_HEARTBEAT_TOPIC, contract.encode(beat), qos=0)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.client.loop_stop()
        self.client.disconnect()


def test_envelopes_nobody_subscribed_to_are_kept_and_sent_again(tmp_path, broker):
    beats = HeartbeatOnly(broker.port)
    agent = AgentProcess(write_site_config(tmp_path / "site.yaml", broker.port, [
        {"type": "synthetic", "name": "s", "interval_s": 0.1, "devices": [{"id": "d1"}]}])).start()
    collector = None
    try:
        wait_until(lambda: agent.metrics()["hinode_agent_unrouted_envelopes_total"] >= 5,
                   "envelopes answered 'no matching subscribers'")
        assert agent.metrics()["hinode_agent_queue_envelopes"] >= 5       # kept, not deleted
        collector = Collector(broker.port)                                # now something listens
        wait_until(lambda: agent.committed_seqs().get("d1", 0) >= 30, "30 envelopes committed")
        upto = agent.committed_seqs()["d1"]
        collector.wait_for(lambda c: set(range(1, upto + 1)) <= set(c.seqs["d1"]), what="every envelope received")
    finally:
        agent.stop()
        beats.close()
        if collector:
            collector.close()
