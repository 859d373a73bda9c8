"""An agent whose publishes the ACL refuses does not hammer the broker.

Mosquitto 2.0.11 answers a refused QoS 1 publish with "not authorized" and then closes the
connection; the agent used to reset its back-off on every CONNACK and reconnected ~5 times
a second. Its back-off now resets only after a connection that lasted."""

import time

import pytest

from tests.security.test_secure_pipeline import agent_mqtt
from tests.support.agent_proc import AgentProcess, write_site_config

pytestmark = pytest.mark.timeout(90)


def test_an_agent_refused_by_the_acl_backs_off_and_keeps_its_data(bundle, secure_broker, tmp_path):
    # plant-1/edge-01's credentials, but the config claims to be edge-02: every publish is refused
    mqtt = agent_mqtt(bundle, "plant-1", "edge-01", secure_broker.port)
    mqtt.update(wait_for_ingest=False, reconnect_min_s=0.2, reconnect_max_s=4.0)
    config = write_site_config(tmp_path / "site.yaml", secure_broker.port,
                               [{"type": "synthetic", "name": "s", "interval_s": 0.2, "devices": [{"id": "d1"}]}],
                               site="plant-1", agent="edge-02", mqtt=mqtt)
    agent = AgentProcess(config).start()
    try:
        time.sleep(8)
        metrics = agent.metrics()
        # 0.2 + 0.4 + 0.8 + 1.6 + 3.2 s of back-off: a handful of reconnects, not ~40
        assert metrics["hinode_agent_mqtt_reconnects_total"] <= 8, metrics["hinode_agent_mqtt_reconnects_total"]
        assert metrics["hinode_agent_published_readings_total"] == 0
        # nothing is lost silently: refused envelopes are counted, the rest wait in the outbox
        assert metrics["hinode_agent_queue_envelopes"] + metrics["hinode_agent_rejected_envelopes_total"] > 0
    finally:
        agent.stop()
