"""The real agent process's /metrics, parsed with prometheus_client's own parser: HELP on every
family, counters that end in _total and rise, per-source/device error labels, no secret."""

from __future__ import annotations

import urllib.request

import pytest

from hinode.services import free_port
from tests.support.agent_proc import AgentProcess, write_site_config
from tests.support.prometheus_checks import check_exposition, value
from tests.support.waiting import wait_until

pytestmark = pytest.mark.timeout(60)

PASSWORD = "agent-mqtt-pw-do-not-show"


def scrape(agent: AgentProcess) -> tuple[str, str]:
    with urllib.request.urlopen(agent.metrics_url, timeout=5) as response:
        return response.read().decode(), response.headers["Content-Type"]


def test_agent_metrics_follow_the_rules_and_count_by_source_and_device(tmp_path, broker):
    sources = [{"type": "synthetic", "name": "synth", "interval_s": 0.1, "devices": [{"id": "d1"}, {"id": "d2"}]},
               {"type": "modbus", "name": "hall-b", "transport": "tcp", "host": "127.0.0.1", "port": free_port(),
                "poll_interval_s": 0.2, "timeout_s": 0.2,
                "devices": [{"id": "meter-gone", "unit": 1, "profile": "hinode-sim-meter"}]}]
    config = write_site_config(tmp_path / "site.yaml", broker.port, sources,
                               mqtt={"username": "edge-01", "password": PASSWORD})
    agent = AgentProcess(config).start()
    try:
        def ready():
            text, content_type = scrape(agent)
            families = check_exposition(text, secrets=(PASSWORD,))
            started = (value(families, "hinode_agent_uptime_seconds") >= 1.0
                       and value(families, "hinode_source_readings_total", source="synth", type="synthetic") > 0
                       and any(s.labels.get("device") == "meter-gone" for s in families["hinode_source_errors"].samples))
            return started and (text, content_type)

        first_text, content_type = wait_until(ready, "readings and the unreachable meter's errors on /metrics")
        first_total = value(check_exposition(first_text, secrets=(PASSWORD,)), "hinode_agent_readings_total")
        text = wait_until(lambda: (t := scrape(agent)[0]) and value(check_exposition(t, secrets=(PASSWORD,)),
                                                                    "hinode_agent_readings_total") > first_total and t,
                          "more readings counted on a later scrape")
        with urllib.request.urlopen(agent.metrics_url.replace("/metrics", "/healthz"), timeout=5) as response:
            assert response.status == 200
    finally:
        agent.stop()
    assert content_type.startswith("text/plain; version=0.0.4")
    first = check_exposition(first_text, secrets=(PASSWORD,))
    families = check_exposition(text, secrets=(PASSWORD,))
    synth = {"source": "synth", "type": "synthetic"}
    assert value(families, "hinode_source_readings_total", **synth) > value(first, "hinode_source_readings_total",
                                                                             **synth) > 0
    assert value(families, "hinode_agent_readings_total") > value(first, "hinode_agent_readings_total")
    assert value(families, "hinode_source_devices_online", **synth) == 2
    errors = [s for s in families["hinode_source_errors"].samples if s.labels.get("device") == "meter-gone"]
    assert errors and errors[0].labels["source"] == "hall-b" and errors[0].labels["type"] == "modbus"
    assert errors[0].value >= 1
    assert families["hinode_agent_mqtt_reconnects"].type == "counter"   # sample hinode_agent_mqtt_reconnects_total
    assert value(families, "hinode_agent_uptime_seconds") >= 1.0               # was hinode_agent_uptime_s
    assert "hinode_agent_commands" in families                                 # HELP even before any command
    for name in ("hinode_agent_queue_envelopes", "hinode_agent_dropped_readings", "hinode_agent_waiting_for_ingest",
                 "hinode_agent_devices_configured"):
        assert name in families, name
