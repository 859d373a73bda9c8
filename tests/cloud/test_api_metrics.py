"""The API's /metrics (scope ops:read) from a real app in uvicorn with an in-process ingest and the
status tracker: one registry of everything, parsed with prometheus_client's parser; request
latency histograms by route template, never by raw path; no token, password or personal value."""

from __future__ import annotations

import httpx
import pytest

from cloud.api import create_app
from cloud.config import CloudConfig
from cloud.ingest import IngestService
from cloud.status import StatusTracker
from hinode.contract import Reading, TelemetryEnvelope
from hinode.security import api_secrets
from tests.cloud.test_api_kit import serve_app, wait_for
from tests.cloud.test_ingest_kit import Publisher, meter_envelope, now_ms
from tests.support.prometheus_checks import check_exposition, histogram_count, value

pytestmark = pytest.mark.timeout(60)

ADMIN_TOKEN = api_secrets.new_token()
HISTOGRAMS = ("hinode_api_request_duration_seconds", "hinode_ingest_lag_seconds", "hinode_ingest_influx_write_seconds")
LATEST = "/api/devices/{site}/{device}/latest"


def test_api_metrics_join_every_part_with_latency_histograms_per_route_template(broker, influx):
    secrets = (ADMIN_TOKEN, "mqtt-pw-do-not-leak", "influx-pw-do-not-leak", "p-5c1e", "nosuchdevice-raw-path")
    config = CloudConfig.model_validate({
        "mqtt": {"port": broker.port, "username": "api", "password": secrets[1], "client_id": "api-metrics-ingest"},
        "influx": {"url": influx.url, "username": "reader", "password": secrets[2]},
        "ingest": {"batch_max_ms": 20},
        "api": {"auth": {"enabled": True, "tokens": [{"name": "ops", "role": "admin",
                                                       "hash": api_secrets.hash_token(ADMIN_TOKEN)}]}}})
    ingest, status = IngestService(config), StatusTracker(config.mqtt)
    app = create_app(config, ingest=ingest, status=status, manage_services=True)
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    with serve_app(app) as url, httpx.Client(base_url=url, timeout=10, headers=admin) as client:
        assert client.get("/metrics", headers={"Authorization": "Bearer nope"}).status_code == 401
        assert wait_for(lambda: ingest.wait_ready(0.1) and status.broker_connected, 15)
        before = check_exposition(client.get("/metrics").text, histograms=HISTOGRAMS[:1], secrets=secrets)
        publisher = Publisher(broker)
        publisher.envelope(meter_envelope(1, ts=now_ms() - 200)).wait_for_publish(5)
        publisher.envelope(TelemetryEnvelope(site="plant-a", agent="edge-1", device="bp-7", kind="vitals", seq=1,
                                             readings=[Reading(ts=now_ms(), metric="systolic", value=128.0)],
                                             meta={"subject": "p-5c1e"})).wait_for_publish(5)
        publisher.close()
        assert wait_for(lambda: ingest.stats()["acked"] == 2, 15)
        for _ in range(3):
            client.get("/api/devices/plant-a/pm-1/latest")
        client.get("/api/devices/plant-a/nosuchdevice-raw-path/latest")
        client.get("/no/such/route/nosuchdevice-raw-path")
        response = client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain; version=0.0.4")
    after = check_exposition(response.text, histograms=HISTOGRAMS, secrets=secrets)
    route = {"method": "GET", "route": LATEST}
    assert histogram_count(after, "hinode_api_request_duration_seconds", **route) == 4
    assert histogram_count(after, "hinode_api_request_duration_seconds", **route) > histogram_count(
        before, "hinode_api_request_duration_seconds", **route)
    assert histogram_count(after, "hinode_api_request_duration_seconds", method="GET", route="unmatched") == 1
    assert value(after, "hinode_api_requests_total", method="GET", route=LATEST, status="200") >= 3
    assert histogram_count(after, "hinode_ingest_lag_seconds") == 2
    assert histogram_count(after, "hinode_ingest_influx_write_seconds") >= 2    # general and personal database
    assert value(after, "hinode_ingest_written_envelopes_total") == 2
    assert value(after, "hinode_api_auth_total", result="invalid") == 1
    assert value(after, "hinode_status_broker_connected") == 1
    assert {"hinode_api_influx_queries", "hinode_api_completeness_cache", "hinode_api_start_time_seconds"} <= set(after)
