"""Commands in the secured setup (TLS, per-identity passwords, the generated ACL): one
``python -m cloud serve`` runs the ingest as ``hinode-ingest`` and its API's MQTT clients as
``hinode-api`` (``api.mqtt``), the only identity the ACL lets send commands."""

from __future__ import annotations

import sys

import httpx
import pytest
import yaml

from cloud.config import CloudConfig, CloudConfigError, load_cloud_config
from hinode import contract, services
from hinode.security import api_secrets
from hinode.services import ManagedProcess, free_port
from tests.security.mqtt_kit import TlsClient
from tests.support.waiting import wait_until

pytestmark = pytest.mark.timeout(120)

SITE, AGENT = "plant-1", "edge-01"
ADMIN_TOKEN = api_secrets.new_token()
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
COMMAND = {"site": SITE, "agent": AGENT, "target": "meter-1", "name": "write",
           "params": {"metric": "power_limit", "value": 40}, "expires_in_s": 60}


@pytest.fixture(scope="module")
def influx(tmp_path_factory):
    proc = services.influxdb(tmp_path_factory.mktemp("influxdb"))
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture
def edge01(bundle, secure_broker):
    """The agent as the broker sees it: online (retained status), subscribed to its own commands."""
    client = TlsClient(bundle, bundle.agent(SITE, AGENT), secure_broker.port).connect()
    client.subscribe(contract.command_filter(SITE, AGENT))
    status = contract.AgentStatus(site=SITE, agent=AGENT, state="online", ts=1)
    client.client.publish(contract.status_topic(SITE, AGENT), contract.encode(status), qos=1,
                          retain=True).wait_for_publish(5)
    yield client
    client.close()


def mqtt_of(bundle, username: str, port: int) -> dict:
    section = yaml.safe_load((bundle.identity(username).directory / "mqtt.yaml").read_text())["mqtt"]
    return {**section, "host": "localhost", "port": port}


def serve(tmp_path, influx, mqtt: dict, api_mqtt: dict | None) -> tuple[ManagedProcess, httpx.Client]:
    port = free_port()
    api = {"port": port, "dead_letters": {"path": str(tmp_path / "dead-letters.db")},
           "auth": {"tokens": [{"name": "ops", "role": "admin", "hash": api_secrets.hash_token(ADMIN_TOKEN)}]}}
    if api_mqtt is not None:
        api["mqtt"] = api_mqtt
    config = tmp_path / "cloud.yaml"
    config.write_text(yaml.safe_dump({"mqtt": mqtt, "influx": {"url": influx.url}, "api": api}))
    cloud = ManagedProcess("cloud", [sys.executable, "-m", "cloud", "serve", "--config", str(config)],
                           tmp_path / "cloud.log", port, env={"PYTHONUNBUFFERED": "1"})
    cloud.start(timeout=60)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)
    wait_until(lambda: client.get("/readyz").status_code == 200, "the API ready", timeout=30)
    wait_until(lambda: any(a["agent"] == AGENT for s in client.get("/api/sites", headers=ADMIN).json()["sites"]
                           for a in s.get("agents", [])), "edge-01 known from its status", timeout=30)
    return cloud, client


def test_cloud_serve_sends_commands_as_the_api_identity_next_to_its_ingest(tmp_path, bundle, secure_broker,
                                                                          influx, edge01):
    cloud_ids = bundle.inventory.cloud
    api_section = mqtt_of(bundle, cloud_ids.api_username, secure_broker.port)
    cloud, api = serve(tmp_path, influx, mqtt_of(bundle, cloud_ids.ingest_username, secure_broker.port),
                       {key: api_section[key] for key in ("username", "password_file", "tls")})
    try:
        status, sent = (r := api.post("/api/commands", headers=ADMIN, json=COMMAND)).status_code, r.json()
        assert status == 202, sent
        topic, payload = wait_until(lambda: edge01.received()[0], "the command at edge-01", timeout=10)
        command = contract.decode_command(payload, topic)
        assert (command.id, command.issued_by, command.params) == (sent["id"], "ops", COMMAND["params"])
        assert api.get(f"/api/commands/{sent['id']}", headers=ADMIN).json()["status"] == "sent"
    finally:
        api.close()
        cloud.stop()
    assert "api.mqtt is not set" not in (tmp_path / "cloud.log").read_text()


def test_without_api_mqtt_the_ingest_identity_is_refused_and_the_log_says_which_key_to_set(
        tmp_path, bundle, secure_broker, influx, edge01):
    cloud, api = serve(tmp_path, influx, mqtt_of(bundle, bundle.inventory.cloud.ingest_username,
                                                 secure_broker.port), None)
    try:
        answer = api.post("/api/commands", headers=ADMIN, json=COMMAND)
        assert answer.status_code == 503 and "Not authorized" in answer.json()["detail"], answer.text
    finally:
        api.close()
        cloud.stop()
    assert edge01.received() == []          # refused at PUBLISH: the broker never routed it
    log = (tmp_path / "cloud.log").read_text()
    assert f"{tmp_path / 'cloud.yaml'}: api.mqtt is not set" in log and "hinode-ingest" in log


def test_api_mqtt_takes_the_identity_and_keeps_the_broker_and_its_tls_ca(tmp_path):
    password = tmp_path / "api-password"
    password.write_text("s3cret\n")
    config = CloudConfig.model_validate({
        "mqtt": {"host": "mqtt.example.jp", "port": 8883, "username": "hinode-ingest", "password": "other",
                 "tls": {"ca": "/etc/hinode/mqtt/ca.pem"}},
        "api": {"mqtt": {"username": "hinode-api", "password_file": str(password)}}})
    api = config.api_mqtt()
    assert (api.host, api.port, api.username, api.password.get_secret_value()) == \
        ("mqtt.example.jp", 8883, "hinode-api", "s3cret")
    assert api.tls == config.mqtt.tls and config.mqtt.username == "hinode-ingest"
    assert CloudConfig().api_mqtt() == CloudConfig().mqtt          # no api.mqtt (hinode up, Ansible): mqtt as is


def test_a_broker_setting_under_api_mqtt_is_refused_naming_file_and_key(tmp_path):
    path = tmp_path / "cloud.yaml"
    path.write_text(yaml.safe_dump({"api": {"mqtt": {"username": "hinode-api", "host": "elsewhere"}}}))
    with pytest.raises(CloudConfigError) as refused:
        load_cloud_config(path)
    assert f"{path}: api.mqtt.host: Extra inputs are not permitted" in str(refused.value)
