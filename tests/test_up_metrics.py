"""``hinode up``'s /metrics (hinode/up_metrics.py): the status-line figures, scraped from the real
server and parsed with prometheus_client's parser."""

from __future__ import annotations

import json
import urllib.request

import pytest

from hinode.up_metrics import UpFigures, samples, serve_up_metrics
from tests.support.prometheus_checks import check_exposition, value

pytestmark = pytest.mark.timeout(20)


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.read().decode()


def test_up_metrics_serve_the_status_line_figures_and_follow_the_rules():
    figures = UpFigures(service_restarts={})
    server = serve_up_metrics(lambda: figures, listen="127.0.0.1:0")
    try:
        unknown = check_exposition(get(server.url))
        figures = UpFigures(readings_per_s=311.2, queue_envelopes=2, dropped_readings=0, devices_online=21,
                            devices_known=22, missing_readings=3, ingest_lag_p50_seconds=0.135,
                            service_restarts={"cloud": 1, "edge-agent": 2})
        families = check_exposition(get(server.url))
        health = json.loads(get(server.url.replace("/metrics", "/healthz")))
        with pytest.raises(OSError):
            serve_up_metrics(lambda: figures, listen=f"127.0.0.1:{server.port}")   # the port is taken
    finally:
        server.stop()
    assert unknown["hinode_up_readings_per_s"].samples == []      # not known yet: HELP and TYPE, no sample
    assert value(families, "hinode_up_readings_per_s") == 311.2
    assert value(families, "hinode_up_devices_online") == 21 and value(families, "hinode_up_devices_known") == 22
    assert value(families, "hinode_up_missing_readings") == 3
    assert value(families, "hinode_up_ingest_lag_p50_seconds") == 0.135
    assert value(families, "hinode_up_dropped_readings_total") == 0
    assert value(families, "hinode_up_service_restarts_total", service="edge-agent") == 2
    assert families["hinode_up_service_restarts"].type == "counter"
    assert health == {"status": "ok"}


def test_samples_reads_the_unlabelled_figures_of_a_scrape():
    text = ('# HELP hinode_agent_readings_per_s r\n# TYPE hinode_agent_readings_per_s gauge\n'
            'hinode_agent_readings_per_s 12.5\n'
            '# HELP hinode_agent_commands_total c\n# TYPE hinode_agent_commands_total counter\n'
            'hinode_agent_commands_total{outcome="done"} 1.0\n')
    assert samples(text) == {"hinode_agent_readings_per_s": 12.5}
