"""Commands cloud → edge through real processes: ``python -m cloud serve`` (API, ingest, status),
Mosquitto, ``python -m edge_agent run`` and a pymodbus simulator. What an operator does:
POST a command, read its outcome, see the device change."""

import time

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from hinode import contract

pytestmark = pytest.mark.timeout(150)

DEVICE = "meter-1"


def start_site(pipeline):
    sim = pipeline.simulator("modbus", "--port", "0", "--meters", "1", "--interval", "0.2")
    agent = pipeline.agent([{"type": "modbus", "name": "hall-a", "transport": "tcp", "host": "127.0.0.1",
                             "port": sim.tcp_port, "poll_interval_s": 0.2,
                             "devices": [{"id": DEVICE, "unit": 1, "profile": "hinode-sim-meter"}]}])
    pipeline.wait(lambda: pipeline.devices().get(DEVICE, {}).get("online"), "meter online")
    return agent


def agent_state(pipeline) -> str:
    sites = pipeline.api("/api/sites")["sites"]
    agents = [a for s in sites for a in s.get("agents", [])]
    return next((a.get("state") for a in agents if a.get("agent") == "edge-01"), "")


def outcome(pipeline, command_id: str) -> dict:
    return pipeline.api(f"/api/commands/{command_id}")


def polled_limit(pipeline) -> float | None:
    rows = pipeline.query(f'SELECT last("power_limit") AS v FROM "meter" WHERE "device" = \'{DEVICE}\' '
                          f'AND time > now() - 5s')
    return rows[0]["v"] if rows else None


def write_command(value, expires_in_s: int = 300) -> dict:
    return {"site": "plant-1", "agent": "edge-01", "target": DEVICE, "name": "write",
            "params": {"metric": "power_limit", "value": value}, "expires_in_s": expires_in_s}


def test_a_command_sent_while_the_agent_is_down_is_executed_after_it_reconnects(pipeline):
    agent = start_site(pipeline)
    agent.stop()
    pipeline.wait(lambda: pipeline.api("/api/commands") is not None and agent.proc.poll() is not None, "agent stopped")
    status, sent = pipeline.post("/api/commands", write_command(420))
    assert status == 202, sent
    assert outcome(pipeline, sent["id"])["status"] == "sent"      # nobody answered yet: the agent is down
    agent.start()
    final = pipeline.wait(lambda: (o := outcome(pipeline, sent["id"]))["status"] == "done" and o,
                          "the command done after the agent reconnected")
    assert final["data"] == {"value": 420.0} or final["data"] == {"value": 420}
    assert [h["status"] for h in final["history"]] == ["accepted", "done"]
    assert final["issued_by"] and final["target"] == DEVICE and final["params"] == {"metric": "power_limit", "value": 420}
    # The meter itself now reports the new limit in its regular polls.
    pipeline.wait(lambda: polled_limit(pipeline) == 420.0, "the polled power_limit shows 420")
    listed = pipeline.api("/api/commands?site=plant-1")["commands"]
    assert [c["id"] for c in listed] == [sent["id"]] and listed[0]["status"] == "done"


def test_an_expired_command_is_answered_expired_and_not_executed(pipeline):
    agent = start_site(pipeline)
    before = pipeline.wait(lambda: polled_limit(pipeline), "a polled power_limit")
    agent.stop()
    status, sent = pipeline.post("/api/commands", write_command(5, expires_in_s=1))
    assert status == 202, sent
    while time.time() * 1000 <= sent["expires_ts"]:          # the condition is the clock passing the expiry
        time.sleep(0.05)
    agent.start()
    final = pipeline.wait(lambda: (o := outcome(pipeline, sent["id"]))["status"] == "expired" and o,
                          "the command answered expired")
    assert "after it expired" in final["message"]
    pipeline.wait(lambda: pipeline.seq_accounting()[DEVICE][2] > 0, "polling again")
    assert polled_limit(pipeline) == before != 5.0
    assert agent.metrics()['hinode_agent_commands_total{outcome="expired"}'] == 1.0


def test_a_repeated_command_id_runs_once_even_across_an_agent_restart(pipeline):
    agent = start_site(pipeline)
    now = int(time.time() * 1000)
    command = contract.Command(id="c-once-1", site="plant-1", agent="edge-01", target=DEVICE, name="write",
                               params={"metric": "power_limit", "value": 77}, issued_ts=now,
                               expires_ts=now + 600_000, issued_by="test")
    sender = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="test-cloud", protocol=mqtt.MQTTv5)
    sender.connect("127.0.0.1", pipeline.broker.port)
    sender.loop_start()
    topic = contract.command_topic("plant-1", "edge-01", "write")
    try:
        sender.publish(topic, contract.encode(command), qos=1).wait_for_publish(5)
        pipeline.wait(lambda: agent.metrics().get('hinode_agent_commands_total{outcome="done"}') == 1.0, "done once")
        sender.publish(topic, contract.encode(command), qos=1).wait_for_publish(5)
        pipeline.wait(lambda: agent.metrics().get('hinode_agent_commands_total{outcome="duplicate"}') == 1.0,
                      "the second copy seen as a duplicate")
        agent.stop()
        agent.start()
        sender.publish(topic, contract.encode(command), qos=1).wait_for_publish(5)
        pipeline.wait(lambda: agent.metrics().get('hinode_agent_commands_total{outcome="duplicate"}') == 1.0,
                      "the copy after the restart seen as a duplicate")
        assert 'hinode_agent_commands_total{outcome="done"}' not in agent.metrics()
    finally:
        sender.loop_stop()
        sender.disconnect()
    # An unknown target is refused with the reason, nothing else happens.
    status, sent = pipeline.post("/api/commands", {**write_command(3), "target": "no-such-meter"})
    assert status == 202, sent
    rejected = pipeline.wait(lambda: (o := outcome(pipeline, sent["id"]))["status"] not in ("sent", "accepted") and o,
                             "the stray command's outcome")
    assert rejected["status"] == "rejected" and "unknown target 'no-such-meter'" in rejected["message"]


def test_a_command_to_an_agent_never_seen_is_refused_not_lost(pipeline):
    status, body = pipeline.post("/api/commands", {**write_command(1), "agent": "edge-99"})
    assert status == 404 and "never connected" in body["detail"]
