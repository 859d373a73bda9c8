"""The whole pipeline with TLS, per-identity MQTT passwords and API auth, as real processes:
telemetry gets through with the right credentials; wrong ones are refused; and no secret
appears in any process log, in /metrics (agent and cloud) or in an API error body."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml

from hinode import services
from hinode.security import api_secrets
from hinode.services import ManagedProcess, free_port
from tests.e2e.pipeline import Simulator
from tests.security.conftest import make_bundle
from tests.security.mqtt_kit import TlsClient
from tests.support.agent_proc import AgentProcess, write_site_config

pytestmark = pytest.mark.timeout(150)

SITE, AGENT = "plant-1", "edge-01"
VIEWER_TOKEN, ADMIN_TOKEN = api_secrets.new_token(), api_secrets.new_token()
OPS_PASSWORD = api_secrets.new_token()
WRONG_MQTT_PASSWORD = "wrong-" + api_secrets.new_token()
WRONG_API_PASSWORD = "wrong-" + api_secrets.new_token()
BAD_TOKEN = api_secrets.new_token()


class DebugAgent(AgentProcess):
    """The real agent, logging at DEBUG: the most it will ever write about itself."""

    def start(self, wait: bool = True) -> "DebugAgent":
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "edge_agent", "--log-level", "DEBUG", "run",
                                      "--config", str(self.config_path)],
                                     stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        log.close()
        if wait:
            self.wait_metrics()
        return self


def agent_mqtt(bundle, site: str, agent: str, port: int, password_file: Path | None = None) -> dict:
    """The mqtt section the bundle wrote for this agent, pointed at the test broker's port."""
    ident = bundle.agent(site, agent)
    section = yaml.safe_load((ident.directory / "mqtt.yaml").read_text())["mqtt"]
    section.update(port=port, host="localhost", reconnect_min_s=0.2, reconnect_max_s=1.0, ingest_timeout_s=3.0)
    if password_file is not None:
        section["password_file"] = str(password_file)
    return section


def secret_values(bundle, secret_file: Path, issued: list[str]) -> dict[str, str]:
    found = {f"mqtt password of {i.username}": i.password() for i in bundle.identities()}
    for ident in bundle.identities():
        key_lines = ident.key.read_text().splitlines()
        found[f"private key of {ident.username}"] = key_lines[1]
    found["CA private key"] = bundle.ca_key.read_text().splitlines()[1]
    found.update({"viewer token": VIEWER_TOKEN, "admin token": ADMIN_TOKEN, "ops password": OPS_PASSWORD,
                  "wrong MQTT password": WRONG_MQTT_PASSWORD, "wrong API password": WRONG_API_PASSWORD,
                  "bad token": BAD_TOKEN, "API signing secret": secret_file.read_text().strip(),
                  "private key header": "PRIVATE KEY"})
    found.update({f"issued token {n}": token for n, token in enumerate(issued)})
    return found


def test_tls_pipeline_delivers_and_leaks_no_secret(tmp_path):
    bundle = make_bundle(tmp_path)
    broker = services.secure_mosquitto(tmp_path / "mosquitto", bundle)
    influx = services.influxdb(tmp_path / "influxdb")
    secret_file = tmp_path / "api-secret"
    subprocess.run([sys.executable, "-m", "hinode.security", "new-secret", str(secret_file)], check=True,
                   capture_output=True, timeout=30)
    api_port = free_port()
    ingest = bundle.identity(bundle.inventory.cloud.ingest_username)
    ingest_mqtt = yaml.safe_load((ingest.directory / "mqtt.yaml").read_text())["mqtt"]
    cloud_yaml = tmp_path / "cloud.yaml"
    processes: list = []
    sims: list[Simulator] = []
    try:
        broker.start()
        influx.start()
        ingest_mqtt.update(host="localhost", port=broker.port)
        cloud_yaml.write_text(yaml.safe_dump({
            "mqtt": ingest_mqtt,
            "influx": {"url": influx.url},
            "api": {"port": api_port, "auth": {
                "secret_file": str(secret_file),
                "tokens": [{"name": "board", "role": "viewer", "hash": api_secrets.hash_token(VIEWER_TOKEN)},
                           {"name": "prometheus", "role": "admin", "hash": api_secrets.hash_token(ADMIN_TOKEN)}],
                "users": [{"username": "ops", "role": "admin", "password_hash": api_secrets.hash_password(OPS_PASSWORD)}],
            }},
        }))
        cloud = ManagedProcess("cloud", [sys.executable, "-m", "cloud", "serve", "--config", str(cloud_yaml),
                                         "--log-level", "DEBUG"],
                               tmp_path / "cloud.log", api_port, env={"PYTHONUNBUFFERED": "1"})
        processes.append(cloud)
        cloud.start(timeout=60)
        api = httpx.Client(base_url=f"http://127.0.0.1:{api_port}", timeout=10)
        viewer, admin = {"Authorization": f"Bearer {VIEWER_TOKEN}"}, {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        assert _wait(lambda: api.get("/readyz").status_code == 200), api.get("/readyz").text

        sim = Simulator(["modbus", "--port", "0", "--meters", "2", "--interval", "0.2"], tmp_path)
        sims.append(sim)
        sources = [{"type": "modbus", "name": "hall-a", "transport": "tcp", "host": "127.0.0.1", "port": sim.tcp_port,
                    "poll_interval_s": 0.2,
                    "devices": [{"id": f"meter-{u}", "unit": u, "profile": "hinode-sim-meter"} for u in (1, 2)]}]
        good = DebugAgent(write_site_config(tmp_path / "site-good.yaml", broker.port, sources, site=SITE, agent=AGENT,
                                            mqtt=agent_mqtt(bundle, SITE, AGENT, broker.port)))
        processes.append(good)
        good.start()

        # An agent with a wrong password: refused by the broker, it delivers nothing.
        wrong_pw = tmp_path / "wrong-password"
        wrong_pw.write_text(WRONG_MQTT_PASSWORD + "\n")
        intruder = DebugAgent(write_site_config(tmp_path / "site-wrong.yaml", broker.port,
                                                [{**sources[0], "devices": [{"id": "meter-9", "unit": 1,
                                                                             "profile": "hinode-sim-meter"}]}],
                                                site=SITE, agent="edge-02",
                                                mqtt=agent_mqtt(bundle, SITE, "edge-02", broker.port, wrong_pw)))
        processes.append(intruder)
        intruder.start()
        # ...and a client that presents another agent's password for edge-01's name.
        refused = TlsClient(bundle, bundle.agent(SITE, AGENT), broker.port,
                            password=bundle.agent(SITE, "edge-02").password()).connect()
        refused.close()
        assert not refused.connected.is_set()

        def stored(device: str) -> int:
            rows = influx.query(f'SELECT count("seq") FROM "meter" WHERE "device"=\'{device}\'', db="hinode")
            series = rows["results"][0].get("series")
            return series[0]["values"][0][1] if series else 0

        assert _wait(lambda: stored("meter-1") >= 10 and stored("meter-2") >= 10, timeout=60), \
            (tmp_path / "cloud.log").read_text()[-2000:]
        devices = api.get("/api/devices", headers=viewer).json()["devices"]
        assert {(d["site"], d["device"]) for d in devices} >= {(SITE, "meter-1"), (SITE, "meter-2")}
        assert _wait(lambda: api.get("/api/sites", headers=viewer).json()["sites"][0]["agents"], timeout=20)
        assert stored("meter-9") == 0
        assert intruder.metrics()["hinode_agent_mqtt_connected"] == 0
        assert intruder.metrics()["hinode_agent_published_envelopes_total"] == 0

        # API failures: no token, bad token, wrong role, wrong password, bad board login.
        bodies = [api.get("/api/devices").text,
                  api.get("/api/devices", headers={"Authorization": f"Bearer {BAD_TOKEN}"}).text,
                  api.get("/metrics", headers=viewer).text,
                  api.post("/token", data={"username": "ops", "password": WRONG_API_PASSWORD}).text,
                  api.post("/token", data={"username": WRONG_API_PASSWORD, "password": OPS_PASSWORD}).text,
                  api.post("/login", data={"token": BAD_TOKEN}).text,
                  api.get("/api/series", params={"site": SITE, "device": "meter-1", "metric": "x;DROP"},
                          headers=viewer).text]
        issued = api.post("/token", data={"username": "ops", "password": OPS_PASSWORD}).json()["access_token"]
        cloud_metrics = api.get("/metrics", headers={"Authorization": f"Bearer {issued}"}).text
        assert 'hinode_api_auth_total{result="invalid"}' in cloud_metrics
        agent_metrics = [httpx.get(a.metrics_url, timeout=5).text for a in (good, intruder)]
        api.close()
    finally:
        for proc in reversed(processes):
            proc.stop()
        for sim in sims:
            sim.stop()
        influx.stop()
        broker.stop()

    texts = {"API error body %d" % n: body for n, body in enumerate(bodies)}
    texts["cloud /metrics"] = cloud_metrics
    texts.update({f"agent /metrics {n}": text for n, text in enumerate(agent_metrics)})
    logs = [p for p in tmp_path.rglob("*.log")]
    assert {"cloud.log", "mosquitto.log", "site-good.log", "site-wrong.log"} <= {p.name for p in logs}
    texts.update({str(p.relative_to(tmp_path)): p.read_text(errors="replace") for p in logs})
    # The refusals are visible in the logs, just without the secret.
    assert "not authori" in texts["site-wrong.log"].lower() or "bad user name" in texts["site-wrong.log"].lower()
    leaks = [(what, where) for what, secret in secret_values(bundle, secret_file, [issued]).items()
             for where, text in texts.items() if secret in text]
    assert not leaks, leaks


def _wait(predicate, timeout: float = 30.0) -> bool:
    import time
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return True
        except (httpx.HTTPError, KeyError, IndexError, ValueError, OSError):
            pass
        time.sleep(0.2)
    return False
