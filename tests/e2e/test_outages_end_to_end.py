"""Outages through the whole pipeline, judged by sequence accounting in InfluxDB:
for every device the stored envelopes are exactly 1..N, N = what the agent committed."""


import pytest

pytestmark = pytest.mark.timeout(180)

METERS = (1, 2, 3)


def start_stream(pipeline):
    sim = pipeline.simulator("modbus", "--port", "0", "--meters", str(len(METERS)), "--interval", "0.1")
    agent = pipeline.agent([{"type": "modbus", "name": "hall-a", "transport": "tcp", "host": "127.0.0.1",
                             "port": sim.tcp_port, "poll_interval_s": 0.1,
                             "devices": [{"id": f"meter-{u}", "unit": u, "profile": "hinode-sim-meter"}
                                         for u in METERS]}])
    pipeline.wait(lambda: all(pipeline.seq_accounting().get(f"meter-{u}", (0,))[0] >= 10 for u in METERS),
                  "stream flowing")
    return sim, agent


def assert_nothing_missing(pipeline, agent) -> dict:
    assert agent.stop() == 0
    committed = agent.committed_seqs()
    expected = {f"meter-{u}": (committed[f"meter-{u}"], 1, committed[f"meter-{u}"]) for u in METERS}
    pipeline.wait(lambda: {d: pipeline.seq_accounting().get(d) for d in expected} == expected,
                  f"every envelope stored: {expected}", timeout=60)
    return committed


def test_broker_restart_loses_nothing_although_mosquitto_forgets_shared_subscriptions(pipeline):
    """Mosquitto 2.0.11 restores sessions but not shared subscriptions from persistence: telemetry
    replayed before the ingest re-subscribed was PUBACKed and discarded. Agents now wait for the
    ingest heartbeat."""
    _, agent = start_stream(pipeline)
    pipeline.broker.stop()
    pipeline.wait(lambda: agent.metrics()["hinode_agent_queue_envelopes"] > 50, "a backlog while the broker is down")
    at_restart = agent.committed_seqs()
    pipeline.broker.start()
    pipeline.wait(lambda: agent.metrics()["hinode_agent_queue_envelopes"] <= 3, "the backlog replayed", timeout=60)
    # live data after the restart too, not only the replayed backlog
    pipeline.wait(lambda: all(agent.committed_seqs()[d] > at_restart[d] + 5 for d in at_restart), "live data again")
    assert_nothing_missing(pipeline, agent)


def test_influxdb_down_then_back_loses_nothing(pipeline):
    _, agent = start_stream(pipeline)
    pipeline.influx.stop()
    # the API says it cannot reach InfluxDB while the agent keeps publishing into the broker
    pipeline.wait(lambda: pipeline.api("/readyz", ok_only=True) is False, "readyz saying InfluxDB is unreachable")
    published = agent.metrics()["hinode_agent_published_envelopes_total"]
    pipeline.wait(lambda: agent.metrics()["hinode_agent_published_envelopes_total"] > published + 30,
                  "the agent publishing on while InfluxDB is down")
    pipeline.influx.start()
    assert_nothing_missing(pipeline, agent)


def test_agent_killed_mid_stream_and_restarted_loses_nothing(pipeline):
    _, agent = start_stream(pipeline)
    agent.kill()
    at_kill = agent.committed_seqs()["meter-1"]
    restarted = type(agent)(agent.config_path).start()
    pipeline.agents.append(restarted)
    pipeline.wait(lambda: pipeline.seq_accounting()["meter-1"][2] > at_kill + 10, "stream resumed after restart")
    assert_nothing_missing(pipeline, restarted)


def test_faulty_meters_go_offline_and_the_others_keep_flowing(pipeline):
    sim = pipeline.simulator("modbus", "--port", "0", "--meters", "3", "--interval", "0.2",
                             "--exception-unit", "2:2", "--timeout-unit", "3")
    agent = pipeline.agent([{"type": "modbus", "name": "hall-a", "transport": "tcp", "host": "127.0.0.1",
                             "port": sim.tcp_port, "poll_interval_s": 0.2, "timeout_s": 0.3,
                             "devices": [{"id": f"meter-{u}", "unit": u, "profile": "hinode-sim-meter"}
                                         for u in METERS]}])
    devices = pipeline.wait(lambda: (d := pipeline.devices()) and "meter-1" in d and d["meter-1"]["online"] and d,
                            "meter-1 online")
    pipeline.wait(lambda: pipeline.seq_accounting()["meter-1"][0] >= 15, "meter-1 keeps flowing")
    assert "meter-2" not in pipeline.seq_accounting() and "meter-3" not in pipeline.seq_accounting()
    metrics = agent.metrics()
    errors = {k: v for k, v in metrics.items() if k.startswith("hinode_source_errors_total")}
    assert any('device="meter-2"' in k and 'code="exception_2"' in k for k in errors), errors   # labels sorted
    assert any('device="meter-3"' in k and 'code="timeout"' in k for k in errors), errors
    status = pipeline.wait(lambda: (d := pipeline.devices()) and "meter-2" in d and "meter-3" in d and d,
                           "faulty meters listed from the agent status")
    assert not status["meter-2"]["online"] and not status["meter-3"]["online"]


def test_a_third_party_profile_and_server_give_values_under_the_documented_schema(pipeline, tmp_path):
    """Someone else's meter: their register map in our format, served by their Modbus server."""
    profiles = tmp_path / "their-profiles"
    profiles.mkdir()
    (profiles / "acme-pm7.yaml").write_text("""
id: acme-pm7
protocol: modbus
kind: meter
vendor: ACME
model: PM7 (little-endian words, input registers, scaled integers)
source: ACME PM7 Modbus map rev 1 (written for this test)
defaults: {function: input, word_order: little}
registers:
  - {metric: grid_voltage, address: 100, type: uint16, scale: 0.1, unit: V}
  - {metric: active_power, address: 102, type: int32, unit: W}
  - {metric: energy_total, address: 110, type: uint32, scale: 0.01, unit: kWh}
  - {metric: temperature, address: 120, type: float32, unit: degC}
""")
    sim = pipeline.simulator("modbus", "--port", "0", "--meters", "1", "--interval", "0.2",
                             "--profile", str(profiles / "acme-pm7.yaml"))
    pipeline.agent([{"type": "modbus", "name": "acme", "transport": "tcp", "host": "127.0.0.1",
                     "port": sim.tcp_port, "poll_interval_s": 0.2,
                     "devices": [{"id": "acme-1", "unit": 1, "profile": "acme-pm7"}]}],
                   profile_dirs=[str(profiles)])
    rows = pipeline.wait(lambda: pipeline.query('SELECT * FROM "meter" WHERE "device"=\'acme-1\' LIMIT 1'),
                         "ACME meter in InfluxDB")
    row = rows[0]
    assert row["profile"] == "acme-pm7" and row["site"] == "plant-1" and row["agent"] == "edge-01"
    assert {"grid_voltage", "active_power", "energy_total", "temperature", "seq"} <= set(row)
    assert isinstance(row["energy_total"], float) and row["seq"] >= 1
