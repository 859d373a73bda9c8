"""Dead letters an operator can read, in the secured setup (TLS, per-identity passwords, the
generated ACL): before, no identity could read _deadletter/#, so the broker acknowledged each
dead letter, delivered it to nobody, and the refused payload was gone."""

from __future__ import annotations

import sys

import httpx
import pytest
import yaml

from cloud.config import DeadLetterConfig
from cloud.dead_letters import DeadLetterStore
from hinode import contract, services
from hinode.security import api_secrets
from hinode.services import ManagedProcess, free_port
from tests.security.conftest import make_bundle
from tests.security.mqtt_kit import TlsClient
from tests.support.waiting import wait_until

pytestmark = pytest.mark.timeout(120)

VIEWER_TOKEN, ADMIN_TOKEN = api_secrets.new_token(), api_secrets.new_token()


def wait_for(predicate, what: str = "condition", timeout: float = 30.0):
    return wait_until(predicate, what, timeout, interval=0.2)


def test_the_cloud_keeps_dead_letters_and_lists_them_to_admins_only(tmp_path):
    bundle = make_bundle(tmp_path)
    broker = services.secure_mosquitto(tmp_path / "mosquitto", bundle)
    influx = services.influxdb(tmp_path / "influxdb")
    api_port = free_port()
    store_path = tmp_path / "state" / "dead-letters.db"
    ingest_mqtt = yaml.safe_load((bundle.identity(bundle.inventory.cloud.ingest_username).directory
                                  / "mqtt.yaml").read_text())["mqtt"]
    processes = []
    try:
        broker.start()
        influx.start()
        ingest_mqtt.update(host="localhost", port=broker.port)
        config = tmp_path / "cloud.yaml"
        config.write_text(yaml.safe_dump({"mqtt": ingest_mqtt, "influx": {"url": influx.url}, "api": {
            "port": api_port, "dead_letters": {"path": str(store_path), "keep_per_reason": 3},
            "auth": {"tokens": [{"name": "board", "role": "viewer", "hash": api_secrets.hash_token(VIEWER_TOKEN)},
                                {"name": "ops", "role": "admin", "hash": api_secrets.hash_token(ADMIN_TOKEN)}]}}}))

        def start_cloud():
            cloud = ManagedProcess("cloud", [sys.executable, "-m", "cloud", "serve", "--config", str(config)],
                                   tmp_path / "cloud.log", api_port, env={"PYTHONUNBUFFERED": "1"})
            processes.append(cloud)
            cloud.start(timeout=60)
            return cloud

        cloud = start_cloud()
        api = httpx.Client(base_url=f"http://127.0.0.1:{api_port}", timeout=10)
        admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        wait_for(lambda: api.get("/readyz").status_code == 200)
        wait_for(lambda: api.get("/api/dead-letters", headers=admin).json().get("collector_connected"))
        edge = TlsClient(bundle, bundle.agent("plant-1", "edge-01"), broker.port).connect()
        try:
            for n in range(5):
                assert edge.publish(contract.telemetry_topic("plant-1", "edge-01"), f"not json {n}".encode()) == "Success"
            assert edge.publish(contract.personal_topic("plant-1", "edge-01"), b'{"pulse": 180, "broken') == "Success"
        finally:
            edge.close()

        def listed():
            body = api.get("/api/dead-letters", headers=admin).json()
            return body if body["totals"].get("malformed_json", {}).get("total") == 6 else None

        body = wait_for(listed)
        letters = body["letters"]
        assert len(letters) == 3                                     # keep_per_reason bounds what is kept
        personal = [letter for letter in letters if letter["personal"]]
        assert personal and personal[0]["payload"] == "" and personal[0]["payload_bytes"] == 22
        assert "pulse" not in str(body)
        assert {letter["payload"] for letter in letters if not letter["personal"]} <= {f"not json {n}" for n in range(5)}
        assert api.get("/api/dead-letters", headers={"Authorization": f"Bearer {VIEWER_TOKEN}"}).status_code == 403
        assert api.get("/api/dead-letters").status_code == 401

        cloud.stop()                                                   # the letters survive a restart
        start_cloud()
        wait_for(lambda: api.get("/readyz").status_code == 200)
        again = api.get("/api/dead-letters", headers=admin).json()
        assert again["totals"]["malformed_json"]["total"] == 6 and len(again["letters"]) == 3
    finally:
        for proc in reversed(processes):
            proc.stop()
        influx.stop()
        broker.stop()


def test_the_store_keeps_the_newest_letters_per_reason_and_every_total(tmp_path):
    store = DeadLetterStore(tmp_path / "dl.db", keep_per_reason=10)
    for n in range(120):
        store.add("invalid", contract.DeadLetter(reason=f"invalid: seq {n}", topic="t", ts=n, payload=str(n)))
    store.add("clock_skew", contract.DeadLetter(reason="clock_skew: 3 h ahead", topic="t", ts=500))
    letters = store.letters("invalid", limit=1000)
    assert [letter["ts"] for letter in letters] == list(range(119, 109, -1))
    assert letters[0]["message"] == "seq 119"
    store.close()
    reopened = DeadLetterStore(tmp_path / "dl.db", keep_per_reason=10)
    assert reopened.totals() == {"clock_skew": {"total": 1, "last_ts": 500}, "invalid": {"total": 120, "last_ts": 119}}
    assert DeadLetterConfig(path=None).resolved_path().name == "dead-letters.db"
