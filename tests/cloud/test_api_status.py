"""Readiness when InfluxDB or the broker goes away, and the StatusTracker against a real broker."""

from __future__ import annotations

import subprocess
import sys
import time

import httpx
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from cloud.api import create_app
from cloud.config import CloudConfig, MqttConfig
from cloud.status import StatusTracker
from hinode import contract
from tests.cloud.test_api_kit import serve_app, wait_for, write_lines

pytestmark = pytest.mark.timeout(60)


class Publisher:
    def __init__(self, port: int):
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def publish(self, topic: str, payload: bytes, retain: bool = True) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def status(agent: str, state: str = "online", **kw) -> contract.AgentStatus:
    return contract.AgentStatus(site="plant-a", agent=agent, state=state, ts=int(time.time() * 1000), **kw)


@pytest.fixture
def tracker(broker):
    tracker = StatusTracker(MqttConfig(port=broker.port))
    tracker.start()
    assert tracker.wait_connected(10)
    yield tracker
    tracker.stop()


AGENT_SCRIPT = """
import sys, time
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from hinode import contract
from tests.cloud.test_api_kit import serve_app, wait_for, write_lines
port = int(sys.argv[1])
def status(state, online):
    return contract.encode(contract.AgentStatus(site="plant-a", agent="edge-1", state=state, ts=int(time.time() * 1000),
        devices=[contract.DeviceState(device="m1", kind="meter", online=online)]))
client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
client.will_set(contract.status_topic("plant-a", "edge-1"), status("offline", False), qos=1, retain=True)
client.connect("127.0.0.1", port, keepalive=5)
client.loop_start()
client.publish(contract.status_topic("plant-a", "edge-1"), status("online", True), qos=1, retain=True).wait_for_publish(5)
print("published", flush=True)
time.sleep(60)   # stay connected until the test kills us; the will fires then
"""


def test_tracker_keeps_latest_status_and_sees_the_will(broker, tracker):
    agent = subprocess.Popen([sys.executable, "-c", AGENT_SCRIPT, str(broker.port)], stdout=subprocess.PIPE)
    try:
        assert agent.stdout.readline().strip() == b"published"
        assert wait_for(lambda: ("plant-a", "edge-1") in tracker.snapshot())
        known = tracker.snapshot()[("plant-a", "edge-1")].status
        assert (known.state, known.devices[0].online) == ("online", True)
    finally:
        agent.kill()  # dies without DISCONNECT: the broker publishes its will
        agent.wait(5)
    assert wait_for(lambda: tracker.snapshot()[("plant-a", "edge-1")].status.state == "offline", timeout=20)


def test_tracker_refuses_bad_payloads_and_clears_on_empty_retained(broker, tracker):
    pub = Publisher(broker.port)
    try:
        pub.publish(contract.status_topic("plant-a", "edge-2"), contract.encode(status("edge-2")))
        assert wait_for(lambda: ("plant-a", "edge-2") in tracker.snapshot())
        pub.publish(contract.status_topic("plant-a", "edge-3"), b"{not json")
        # a payload naming another agent than its topic is refused, not filed under the wrong key
        pub.publish(contract.status_topic("plant-a", "edge-4"), contract.encode(status("edge-5")))
        assert wait_for(lambda: tracker.invalid_total == 2)
        assert set(tracker.snapshot()) == {("plant-a", "edge-2")}
        pub.publish(contract.status_topic("plant-a", "edge-2"), b"")
        assert wait_for(lambda: tracker.snapshot() == {})
    finally:
        pub.close()


def test_tracker_reconnects_and_gets_retained_statuses_again(broker, tracker):
    pub = Publisher(broker.port)
    pub.publish(contract.status_topic("plant-a", "edge-1"), contract.encode(status("edge-1")))
    pub.close()
    assert wait_for(lambda: len(tracker.snapshot()) == 1)
    broker.stop()
    assert wait_for(lambda: not tracker.broker_connected)
    broker.start()
    assert wait_for(lambda: tracker.broker_connected, timeout=20)
    assert tracker.connects_total == 2
    assert ("plant-a", "edge-1") in tracker.snapshot()


def test_readyz_names_what_is_down(broker, influx, tracker):
    config = CloudConfig.model_validate({"mqtt": {"port": broker.port}, "influx": {"url": influx.url}})
    with serve_app(create_app(config, status=tracker)) as url, httpx.Client(base_url=url) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 200 and ready.json()["not_ready"] == []

        influx.stop()
        down = client.get("/readyz")
        assert down.status_code == 503
        assert down.json()["not_ready"] == ["influxdb"]
        assert "unreachable" in down.json()["checks"]["influxdb"]["detail"]
        assert client.get("/healthz").status_code == 200
        data = client.get("/api/latest")
        assert data.status_code == 503 and "InfluxDB unreachable" in data.json()["detail"]

        broker.stop()
        assert wait_for(lambda: not tracker.broker_connected)
        both = client.get("/readyz")
        assert both.status_code == 503 and both.json()["not_ready"] == ["broker", "influxdb"]

        influx.start()
        broker.start()
        assert wait_for(lambda: client.get("/readyz").status_code == 200, timeout=20)


def test_without_data_or_status_tracker_the_api_answers_empty_then_judges_by_data_age(influx):
    config = CloudConfig.model_validate({"influx": {"url": influx.url}, "api": {"offline_after_s": 30}})
    with serve_app(create_app(config)) as url, httpx.Client(base_url=url) as client:
        # nothing written yet: InfluxDB has no database at all
        assert client.get("/api/devices").json()["devices"] == []
        assert client.get("/api/latest").json()["devices"] == []
        assert client.get("/api/sites").json()["sites"] == []
        assert client.get("/api/completeness").json()["devices"] == []
        assert client.get("/api/devices/plant-a/m1/latest").status_code == 404
        ready = client.get("/readyz").json()
        assert ready["status"] == "ready" and "broker" not in ready["checks"]

        now = int(time.time() * 1000)
        write_lines(influx.url, [f"meter,site=plant-a,agent=edge-1,device=fresh power_total=1.0,seq=1i {now - 1000}",
                                 f"meter,site=plant-a,agent=edge-1,device=stale power_total=1.0,seq=1i {now - 90_000}"])
        devices = {d["device"]: d for d in client.get("/api/devices").json()["devices"]}
        assert (devices["fresh"]["online"], devices["fresh"]["reason"]) == (True, "")
        assert devices["stale"]["online"] is False and devices["stale"]["reason"].startswith("no data for")
