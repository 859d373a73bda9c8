"""``python -m cloud ingest`` serves /metrics and /healthz on ingest.metrics_listen: scraped from the
real process (real broker and InfluxDB), parsed with prometheus_client's parser; a second ingest
on the same port refuses to start."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request

import pytest
import yaml

from cloud.config import CloudConfigError, load_cloud_config
from hinode.contract import Reading, TelemetryEnvelope
from hinode.services import free_port
from tests.cloud.test_ingest_kit import Publisher, meter_envelope, now_ms
from tests.faults.helpers import REPO, IngestProcess, wait_until
from tests.support.prometheus_checks import check_exposition, histogram_count, value

pytestmark = pytest.mark.timeout(90)

HISTOGRAMS = ("hinode_ingest_lag_seconds", "hinode_ingest_influx_write_seconds")
SECRETS = ("ingest-mqtt-pw-do-not-show", "influx-pw-do-not-show", "p-5c1e", "bp-7")


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.read().decode()


def test_ingest_process_serves_metrics_whose_histograms_rise_with_traffic(tmp_path, broker, influx):
    port = free_port()
    config = tmp_path / "cloud.yaml"
    config.write_text(yaml.safe_dump({
        "mqtt": {"host": "127.0.0.1", "port": broker.port, "client_id": "ingest-metrics",
                 "username": "ingest", "password": SECRETS[0]},
        "influx": {"url": influx.url, "database": "hinode", "username": "writer", "password": SECRETS[1]},
        "ingest": {"batch_max_ms": 20, "metrics_listen": f"127.0.0.1:{port}"}}))
    ingest = IngestProcess(config, tmp_path / "ingest.log").start()
    publisher = Publisher(broker)
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        before = check_exposition(get(url), histograms=HISTOGRAMS, secrets=SECRETS)
        for seq in range(1, 21):
            publisher.envelope(meter_envelope(seq, ts=now_ms() - 500))
        vitals = TelemetryEnvelope(site="plant-a", agent="edge-1", device="bp-7", kind="vitals", seq=1,
                                   readings=[Reading(ts=now_ms(), metric="systolic", value=128.0)],
                                   meta={"subject": "p-5c1e"})
        publisher.envelope(vitals).wait_for_publish(5)
        wait_until(lambda: value(check_exposition(get(url)), "hinode_ingest_written_envelopes_total") == 21,
                   "21 envelopes stored, seen on /metrics", 20)
        after = check_exposition(get(url), histograms=HISTOGRAMS, secrets=SECRETS)
        health = json.loads(get(f"http://127.0.0.1:{port}/healthz"))

        second = subprocess.run([sys.executable, "-m", "cloud", "ingest", "--config", str(config)], cwd=REPO,
                                capture_output=True, text=True, timeout=30)
    finally:
        publisher.close()
        code = ingest.stop()
    assert code == 0
    assert histogram_count(after, "hinode_ingest_lag_seconds") >= histogram_count(before, "hinode_ingest_lag_seconds") + 21
    assert histogram_count(after, "hinode_ingest_influx_write_seconds") > histogram_count(
        before, "hinode_ingest_influx_write_seconds")
    assert 0.4 <= value(after, "hinode_ingest_lag_seconds_sum") / histogram_count(after, "hinode_ingest_lag_seconds") < 30
    assert value(after, "hinode_ingest_received_total") == 21
    assert after["hinode_ingest_seq_gaps"].type == "gauge"
    assert health["status"] == "ok" and health["mqtt_subscribed"] is True
    assert second.returncode == 2
    assert f"ingest.metrics_listen 127.0.0.1:{port}" in second.stderr and "own port" in second.stderr
    assert not any(secret in second.stderr for secret in SECRETS)


def test_metrics_listen_is_checked_like_every_other_key(tmp_path):
    path = tmp_path / "cloud.yaml"
    path.write_text('ingest: {metrics_listen: "9109"}\n')
    with pytest.raises(CloudConfigError, match=r"ingest\.metrics_listen: .*expected host:port"):
        load_cloud_config(path)
    path.write_text("ingest: {metrics_listen: null}\n")
    assert load_cloud_config(path).ingest.metrics_listen is None
