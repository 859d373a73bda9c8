"""The status tracker's ``device_status`` points: why a device is offline, for Grafana, on change only,
never for personal (vitals) devices. Against a real Mosquitto and a real InfluxDB 1.6."""

from __future__ import annotations

import time

import httpx
import pytest

from cloud.config import InfluxConfig, MqttConfig
from cloud.influx import InfluxClient
from cloud.status import DEVICE_STATUS_TEXT_MAX, DeviceStatusWriter, StatusTracker, device_status_points
from hinode import contract
from tests.cloud.test_api_status import Publisher
from tests.support.waiting import wait_until

pytestmark = pytest.mark.timeout(60)
SITE, AGENT = "plant-a", "edge-1"
DATABASE = "hinode"


def _status(state: str = "online", *devices: contract.DeviceState, agent: str = AGENT) -> contract.AgentStatus:
    return contract.AgentStatus(site=SITE, agent=agent, state=state, ts=int(time.time() * 1000), devices=list(devices))


def _meter(device: str, online: bool = True, error: str = "") -> contract.DeviceState:
    return contract.DeviceState(device=device, kind="meter", online=online, error=error)


VITALS = contract.DeviceState(device="bp-cuff-7", kind="vitals", online=False, error="not advertising")


def _by_device(points) -> dict[str, dict]:
    return {p.tags["device"]: {**p.tags, **p.fields} for p in points}


def test_reasons_are_the_apis_and_texts_are_bounded():
    long_error = "modbus: no answer from unit 3 " * 17         # 510 characters, within the contract's 512
    status = _status("online", _meter("m1"), _meter("m2", False, long_error), VITALS)
    points = _by_device(device_status_points(SITE, AGENT, status, {}, 1_000))
    assert set(points) == {AGENT, "m1", "m2"}                   # the vitals device is never written
    assert points[AGENT] == {"site": SITE, "device": AGENT, "agent": AGENT, "kind": "agent", "online": True,
                             "reason": "", "error": ""}
    assert (points["m1"]["online"], points["m1"]["reason"], points["m1"]["error"]) == (True, "", "")
    assert points["m2"]["online"] is False
    assert points["m2"]["reason"].startswith("agent reports device offline: modbus: no answer from unit 3")
    assert len(points["m2"]["reason"]) == len(points["m2"]["error"]) == DEVICE_STATUS_TEXT_MAX

    # An agent's will lists no devices: the ones it had are offline with it.
    had = {"m1": "meter", "bp-cuff-7": "vitals"}
    will = _by_device(device_status_points(SITE, AGENT, _status("offline"), had, 2_000))
    assert {d: p["reason"] for d, p in will.items()} == {AGENT: f"agent {AGENT} is offline",
                                                         "m1": f"agent {AGENT} is offline"}
    cleared = _by_device(device_status_points(SITE, AGENT, None, {"m1": "meter"}, 3_000))
    assert {p["reason"] for p in cleared.values()} == {f"no status from agent {AGENT}"}
    dropped = _by_device(device_status_points(SITE, AGENT, _status("online"), {"m1": "meter"}, 4_000))
    assert dropped["m1"]["reason"] == f"agent {AGENT} does not list this device"


def _rows(client: InfluxClient, device: str) -> list[dict]:
    return client.query_rows(f'SELECT "online", "reason", "error", "agent", "kind" FROM "device_status" '
                             f"WHERE \"device\" = '{device}'")


@pytest.fixture
def tracked(broker, influx):
    """A tracker writing device_status into a database that does not exist yet (created by the test)."""
    writer = DeviceStatusWriter(InfluxConfig(url=influx.url, database=DATABASE), retry_s=0.2)
    tracker = StatusTracker(MqttConfig(port=broker.port), device_status=writer)
    tracker.start()
    assert tracker.wait_connected(10)
    publisher = Publisher(broker.port)
    with InfluxClient(InfluxConfig(url=influx.url, database=DATABASE)) as client:
        yield tracker, writer, publisher, client
    publisher.close()
    tracker.stop()


def test_device_status_reaches_influxdb_on_change_only(tracked, influx):
    tracker, writer, publisher, client = tracked
    publisher.publish(contract.status_topic(SITE, AGENT),
                      contract.encode(_status("online", _meter("m1"), _meter("m2", False, "timeout"), VITALS)))
    wait_until(lambda: writer.failures_total > 0, "a failed write (no database yet)")
    client.create_database()                                    # InfluxDB back: the waiting states are written
    rows = wait_until(lambda: _rows(client, "m2"), "m2's status in InfluxDB", timeout=20)
    assert [(r["online"], r["reason"], r["error"], r["agent"], r["kind"]) for r in rows] == [
        (False, "agent reports device offline: timeout", "timeout", AGENT, "meter")]
    assert _rows(client, "m1")[0]["online"] is True

    # The same status again, then another agent's: that one is written, m1 and m2 are not again.
    publisher.publish(contract.status_topic(SITE, AGENT),
                      contract.encode(_status("online", _meter("m1"), _meter("m2", False, "timeout"), VITALS)))
    publisher.publish(contract.status_topic(SITE, "edge-2"), contract.encode(_status("online", agent="edge-2")))
    wait_until(lambda: _rows(client, "edge-2"), "edge-2's status in InfluxDB")
    assert (len(_rows(client, "m1")), len(_rows(client, "m2"))) == (1, 1)

    # The will (no devices): both meters now carry the agent's reason.
    publisher.publish(contract.status_topic(SITE, AGENT), contract.encode(_status("offline")))
    wait_until(lambda: len(_rows(client, "m1")) == 2, "m1's second state")
    newest = client.query_rows('SELECT last("reason") AS "reason" FROM "device_status" GROUP BY "device"')
    assert {r["device"]: r["reason"] for r in newest} == {
        AGENT: f"agent {AGENT} is offline", "m1": f"agent {AGENT} is offline", "m2": f"agent {AGENT} is offline",
        "edge-2": ""}

    # Personal data: the agent listed its vitals device, which never reaches the general database.
    tags = httpx.post(f"{influx.url}/query", data={"db": DATABASE, "q": 'SHOW TAG VALUES WITH KEY = "device"'}).text
    assert "bp-cuff-7" not in tags and "m2" in tags
    assert any(f.name == "hinode_status_device_points" for f in tracker.metric_families())
