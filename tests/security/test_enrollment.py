"""Enrollment with one-time tokens and revocation: the real API served over TLS (uvicorn), a real
Mosquitto with TLS + require_certificate + crlfile, and the real ``python -m edge_agent enroll``."""

from __future__ import annotations

import contextlib
import os
import ssl
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
import uvicorn
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from hinode import certs, contract, services
from hinode.security import api_secrets
from hinode.security.bundle import Identity
from hinode.security.enroll import EnrollConfig, EnrollmentService
from tests.cloud.test_api_kit import token_auth
from tests.security.conftest import make_bundle
from tests.security.mqtt_kit import TlsClient, settle
from tests.support.waiting import wait_until

pytestmark = pytest.mark.timeout(90)

ADMIN_TOKEN = api_secrets.new_token()
VIEWER_TOKEN = api_secrets.new_token()
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
SITE_TEMPLATE = {"sources": [{"type": "synthetic", "name": "line-1", "devices": [{"id": "meter-1"}]}]}


@contextlib.contextmanager
def serve_tls(app, certfile: Path, keyfile: Path):
    port = services.free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           ssl_certfile=str(certfile), ssl_keyfile=str(keyfile)))
    thread = threading.Thread(target=server.run, name="uvicorn-tls", daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started, "the API to serve over TLS", timeout=15)
        yield f"https://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """(bundle, broker, API base URL, enroll config, pid file)."""
    from cloud.api import create_app
    from cloud.config import CloudConfig

    root = tmp_path_factory.mktemp("enroll")
    bundle = make_bundle(root)
    pid_file = root / "mosquitto.pid"
    port = services.free_port()
    config = EnrollConfig(bundle=bundle.root, inventory=root / "inventory.yaml", store=root / "enroll.db",
                          mqtt_host="127.0.0.1", mqtt_port=port, reload={"pid_file": pid_file},
                          max_requests_per_address=1000)
    EnrollmentService(config).write_broker_files()      # the broker needs the CRL file to start
    crl = config.crl_path()
    broker = services.mosquitto(root / "mosquitto", port, persistence=False, extra_config=f"pid_file {pid_file}",
                                listener_config=lambda p: bundle.broker_config(port=p, bind="127.0.0.1")
                                + f"crlfile {crl}\n")
    broker.start()
    assert pid_file.read_text().strip() == str(broker.process.pid)
    (root / "enroll.yaml").write_text(yaml.safe_dump(config.model_dump(mode="json", exclude_none=True)))
    api_cert, api_key = root / "api" / "api.pem", root / "api" / "api.key"
    certs.make_signed(api_cert, api_key, bundle.ca_cert, bundle.ca_key, "hinode-api",
                      hostnames=("127.0.0.1",), server=True)
    os.environ["HINODE_ENROLL_CONFIG"] = str(root / "enroll.yaml")
    try:
        # No domains (they take ~8 s to import and serve nothing enrollment needs).
        app = create_app(CloudConfig.model_validate({"api": token_auth(admin=("admin", ADMIN_TOKEN),
                                                                       grafana=("viewer", VIEWER_TOKEN))}),
                         domain_packages=())
    finally:
        del os.environ["HINODE_ENROLL_CONFIG"]
    try:
        with serve_tls(app, api_cert, api_key) as url:
            yield bundle, broker, url, config
    finally:
        app.state.enrollment.close()
        broker.stop()


def api(bundle) -> httpx.Client:
    return httpx.Client(verify=ssl.create_default_context(cafile=str(bundle.ca_cert)), timeout=20)


def new_token(stack, site: str, agent: str, **extra) -> str:
    bundle, _, url, _ = stack
    with api(bundle) as http:
        answer = http.post(f"{url}/api/enroll/tokens", json={"site": site, "agent": agent, **extra}, headers=ADMIN)
    assert answer.status_code == 200, answer.text
    return answer.json()["token"]


def key_and_csr(common_name: str = "whatever-the-box-claims"):
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])).sign(key, hashes.SHA256()))
    return key, csr.public_bytes(serialization.Encoding.PEM).decode()


def enroll_in_test(stack, site: str, agent: str, directory: Path, csr_name: str = "x") -> tuple[Identity, dict]:
    """Enroll like an agent would (own key), keeping the files the way TlsClient reads them."""
    bundle, _, url, _ = stack
    key, csr = key_and_csr(csr_name)
    with api(bundle) as http:
        response = http.post(f"{url}/enroll", json={"token": new_token(stack, site, agent), "csr": csr})
    assert response.status_code == 200, response.text
    answer = response.json()
    directory.mkdir(parents=True)
    (directory / "client.key").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                             serialization.NoEncryption()))
    (directory / "client.pem").write_text(answer["certificate"])
    (directory / "password").write_text(answer["password"])
    return Identity(answer["username"], directory, site, agent), answer


def connect(bundle, broker, ident: Identity) -> TlsClient:
    return TlsClient(bundle, ident, broker.port).connect()


def handshake_error(bundle, broker, ident: Identity) -> str | None:
    """The TLS alert the broker answers this client certificate with (TLS 1.2, where the server's
    verdict on the client certificate arrives within the handshake), or None when accepted."""
    import socket

    context = ssl.create_default_context(cafile=str(bundle.ca_cert))
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(ident.cert), str(ident.key))
    with socket.create_connection(("127.0.0.1", broker.port), timeout=5) as raw:
        try:
            with context.wrap_socket(raw, server_hostname="127.0.0.1"):
                return None
        except ssl.SSLError as exc:
            return exc.reason or str(exc)


def refusal(bundle, broker, ident: Identity) -> str | None:
    """How the broker refuses this identity's new connection: "tls" (handshake), "connack", or None."""
    client = TlsClient(bundle, ident, broker.port)
    try:
        client.connect()
    except (OSError, ssl.SSLError):
        return "tls"
    try:
        return None if client.connected.is_set() else "connack"
    finally:
        client.close()


def test_enrolled_agent_connects_and_publishes_only_on_its_own_topics(stack, tmp_path):
    bundle, broker, _, _ = stack
    ident, answer = enroll_in_test(stack, "plant-9", "edge-07", tmp_path / "creds", csr_name="edge-01@plant-1")
    cert = x509.load_pem_x509_certificate(answer["certificate"].encode())
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "edge-07@plant-9"  # not what the CSR asked
    assert answer["mqtt"] == {"host": "127.0.0.1", "port": broker.port, "username": "edge-07@plant-9"}
    assert answer["ca_certificate"] == bundle.ca_cert.read_text()
    assert answer["broker_reloaded"] is True
    ingest = connect(bundle, broker, bundle.identity(bundle.inventory.cloud.ingest_username))
    agent = connect(bundle, broker, ident)
    try:
        assert agent.connected.is_set(), agent.connack
        ingest.subscribe(contract.shared(bundle.inventory.cloud.share_group, contract.TELEMETRY_FILTER))
        assert agent.publish(contract.telemetry_topic("plant-1", "edge-01"), b"spoofed") == "Not authorized"
        assert agent.publish(contract.telemetry_topic("plant-9", "edge-08"), b"neighbour") == "Not authorized"
        assert agent.publish(contract.telemetry_topic("plant-9", "edge-07"), b"own") == "Success"
        wait_until(lambda: ingest.received(), "the agent's own telemetry at the ingest", timeout=5)
        settle()        # a negative check: the refused publishes would have been routed by now
        assert ingest.received() == [(contract.telemetry_topic("plant-9", "edge-07"), b"own")]
    finally:
        agent.close()
        ingest.close()


def test_a_token_works_once(stack):
    bundle, _, url, _ = stack
    token = new_token(stack, "plant-9", "edge-10")
    with api(bundle) as http:
        first = http.post(f"{url}/enroll", json={"token": token, "csr": key_and_csr()[1]})
        again = http.post(f"{url}/enroll", json={"token": token, "csr": key_and_csr()[1]})
        unknown = http.post(f"{url}/enroll", json={"token": "not-a-token", "csr": key_and_csr()[1]})
        counts = http.get(f"{url}/api/enroll/agents", headers=ADMIN).json()["counts"]
    assert first.status_code == 200
    assert again.status_code == 403 and again.json()["reason"] == "used"
    assert "already used" in again.json()["detail"]
    assert unknown.status_code == 403 and unknown.json()["reason"] == "unknown"
    assert counts["refused_used"] >= 1 and counts["refused_unknown"] >= 1


def test_an_expired_token_is_refused(stack):
    bundle, _, url, _ = stack
    token = new_token(stack, "plant-9", "edge-11", ttl_s=1)
    time.sleep(1.1)    # the condition is the passing of time itself
    with api(bundle) as http:
        response = http.post(f"{url}/enroll", json={"token": token, "csr": key_and_csr()[1]})
    assert response.status_code == 403
    assert response.json() == {"detail": "enrollment token expired (ask for a new one)", "reason": "expired"}


def test_a_bad_csr_does_not_burn_the_token(stack):
    bundle, _, url, _ = stack
    token = new_token(stack, "plant-9", "edge-12")
    with api(bundle) as http:
        bad = http.post(f"{url}/enroll", json={"token": token, "csr": "-----BEGIN CERTIFICATE REQUEST-----\nxx"})
        good = http.post(f"{url}/enroll", json={"token": token, "csr": key_and_csr()[1]})
    assert bad.status_code == 400 and "PEM certificate signing request" in bad.json()["detail"]
    assert good.status_code == 200


def test_only_admins_create_tokens_and_revoke(stack):
    bundle, _, url, _ = stack
    with api(bundle) as http:
        anonymous = http.post(f"{url}/api/enroll/tokens", json={"site": "plant-9", "agent": "edge-13"})
        viewer = http.post(f"{url}/api/enroll/tokens", json={"site": "plant-9", "agent": "edge-13"},
                           headers={"Authorization": f"Bearer {VIEWER_TOKEN}"})
        revoke = http.post(f"{url}/api/enroll/agents/plant-9/edge-07/revoke",
                           headers={"Authorization": f"Bearer {VIEWER_TOKEN}"})
        bad_id = http.post(f"{url}/api/enroll/tokens", json={"site": "plant 9", "agent": "edge-13"}, headers=ADMIN)
    assert anonymous.status_code == 401
    assert viewer.status_code == 403 and "enroll:write" in viewer.json()["detail"]
    assert revoke.status_code == 403
    assert bad_id.status_code == 422 and "site" in bad_id.json()["detail"]


def test_a_revoked_agent_is_refused_by_the_broker(stack, tmp_path):
    bundle, broker, url, config = stack
    ident, _ = enroll_in_test(stack, "plant-8", "edge-01", tmp_path / "creds")
    before = connect(bundle, broker, ident)
    assert before.connected.is_set(), before.connack
    with api(bundle) as http:
        revoked = http.post(f"{url}/api/enroll/agents/plant-8/edge-01/revoke", headers=ADMIN)
    assert revoked.status_code == 200 and revoked.json()["already_revoked"] is False
    try:
        assert wait_until(lambda: refusal(bundle, broker, ident), "the revoked agent's new connection refused",
                          timeout=10)
        # Refused by the TLS handshake itself: Mosquitto re-read the CRL on SIGHUP (not only acl/passwd).
        assert handshake_error(bundle, broker, ident) == "SSLV3_ALERT_CERTIFICATE_REVOKED"
        assert "edge-01@plant-8" not in (bundle.broker_dir / "acl").read_text()
        crl = x509.load_pem_x509_crl(config.crl_path().read_bytes())
        assert crl.get_revoked_certificate_by_serial_number(int(revoked.json()["serial"])) is not None
        # The connection open at revocation time: Mosquitto re-checks the password file on reload.
        wait_until(lambda: not before.client.is_connected(), "the revoked agent's open connection closed", timeout=5)
    finally:
        before.close()
    another, _ = enroll_in_test(stack, "plant-8", "edge-02", tmp_path / "other")
    assert refusal(bundle, broker, another) is None and handshake_error(bundle, broker, another) is None   # the CRL holds only the revoked serial


def test_cli_enrolls_end_to_end_and_exits_3_on_a_reused_token(stack, tmp_path):
    bundle, broker, url, _ = stack
    token = new_token(stack, "plant-9", "edge-20", site_config=SITE_TEMPLATE)
    config_dir = tmp_path / "etc-hinode"
    argv = [sys.executable, "-m", "edge_agent", "enroll", "--url", url, "--token-file", str(tmp_path / "token"),
            "--config-dir", str(config_dir), "--cafile", str(bundle.ca_cert)]
    (tmp_path / "token").write_text(token + "\n")
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "enrolled as edge-20@plant-9" in done.stdout
    site = config_dir / "site.yaml"
    for path in (config_dir / "mqtt" / "client.key", config_dir / "mqtt" / "password", site):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert stat.S_IMODE((config_dir / "mqtt").stat().st_mode) == 0o700
    check = subprocess.run([sys.executable, "-m", "edge_agent", "check-config", str(site)],
                           capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stderr
    written = yaml.safe_load(site.read_text())
    assert (written["site"], written["agent"], written["mqtt"]["port"]) == ("plant-9", "edge-20", broker.port)
    agent = connect(bundle, broker, Identity("edge-20@plant-9", config_dir / "mqtt"))
    try:
        assert agent.connected.is_set(), agent.connack
        # Authorized; no one subscribes to this status topic here.
        assert agent.publish(contract.status_topic("plant-9", "edge-20"), b"{}") in ("Success", "No matching subscribers")
        assert agent.publish(contract.status_topic("plant-9", "edge-07"), b"{}") == "Not authorized"
    finally:
        agent.close()
    again = subprocess.run(argv[:-4] + ["--config-dir", str(tmp_path / "second"), "--cafile", str(bundle.ca_cert)],
                           capture_output=True, text=True, timeout=60)
    assert again.returncode == 3
    assert "enrollment refused" in again.stderr and "already used" in again.stderr
    wrong_ca = subprocess.run(argv[:-1] + [str(bundle.broker_dir / "broker.pem")], capture_output=True, text=True,
                              timeout=60)
    assert wrong_ca.returncode == 2 and "TLS" in wrong_ca.stderr


def test_regenerating_the_bundle_then_sync_keeps_enrolled_agents(stack, tmp_path):
    """`python -m hinode.security mqtt` rewrites acl/passwd from the inventory alone; `sync` adds the
    enrolled agents back and reloads the broker."""
    bundle, broker, _, config = stack
    ident, _ = enroll_in_test(stack, "plant-7", "edge-01", tmp_path / "creds")
    inventory = config.inventory
    regenerated = subprocess.run([sys.executable, "-m", "hinode.security", "mqtt", "--inventory", str(inventory),
                                  "--out", str(bundle.root)], capture_output=True, text=True, timeout=60)
    assert regenerated.returncode == 0, regenerated.stderr
    assert "edge-01@plant-7" not in (bundle.broker_dir / "acl").read_text()
    (tmp_path / "enroll.yaml").write_text(yaml.safe_dump(config.model_dump(mode="json", exclude_none=True)))
    synced = subprocess.run([sys.executable, "-m", "hinode.security.enroll", "sync", "--config",
                             str(tmp_path / "enroll.yaml")], capture_output=True, text=True, timeout=60)
    assert synced.returncode == 0, synced.stderr
    assert "SIGHUP to pid" in synced.stdout
    assert "user edge-01@plant-7" in (bundle.broker_dir / "acl").read_text()
    assert wait_until(lambda: refusal(bundle, broker, ident) is None, "the enrolled agent accepted after sync",
                      timeout=10)


def test_enrollment_counters_are_prometheus_families(stack, tmp_path):
    _, _, _, config = stack
    enroll_in_test(stack, "plant-6", "edge-01", tmp_path / "creds")
    service = EnrollmentService(config)     # a second API process on the same store
    try:
        families = {family.name: family for family in service.metric_families()}
    finally:
        service.close()
    assert set(families) == {"hinode_enroll", "hinode_enrolled_agents"}
    assert families["hinode_enrolled_agents"].samples[0].value >= 1
    assert {sample.labels["result"] for sample in families["hinode_enroll"].samples} >= {"refused_used", "enrolled"}

    bundle, _, url, _ = stack                # and the API's own /metrics carries them
    with api(bundle) as http:
        scraped = http.get(f"{url}/metrics", headers=ADMIN)
    assert scraped.status_code == 200
    assert 'hinode_enroll_total{result="enrolled"}' in scraped.text and "hinode_enrolled_agents " in scraped.text


def test_the_address_limiter_answers_with_a_wait_beyond_its_limit():
    from cloud.api.enroll import AddressLimiter

    limiter = AddressLimiter(limit=2, window_s=60)
    assert limiter.retry_after("10.0.0.1") is None and limiter.retry_after("10.0.0.1") is None
    wait = limiter.retry_after("10.0.0.1")
    assert wait is not None and 59 < wait <= 60
    assert limiter.retry_after("10.0.0.2") is None


def test_an_inventory_agent_may_enroll_and_its_revocation_removes_it(stack, tmp_path):
    """edge-02@plant-1 is in the inventory (bundle credentials); enrolling gives it a new key and
    password, and revoking it shuts out both the enrolled and the bundle's credentials."""
    bundle, broker, url, _ = stack
    ident, _ = enroll_in_test(stack, "plant-1", "edge-02", tmp_path / "creds")
    assert refusal(bundle, broker, ident) is None
    with api(bundle) as http:
        assert http.post(f"{url}/api/enroll/agents/plant-1/edge-02/revoke", headers=ADMIN).status_code == 200
        never = http.post(f"{url}/api/enroll/agents/plant-1/edge-09/revoke", headers=ADMIN)
    assert never.status_code == 404 and "never enrolled" in never.json()["detail"]
    wait_until(lambda: refusal(bundle, broker, ident), "the revoked inventory agent refused", timeout=10)
    assert refusal(bundle, broker, bundle.agent("plant-1", "edge-02")) == "connack"   # bundle cert, no password
    assert refusal(bundle, broker, bundle.agent("plant-1", "edge-01")) is None


def test_the_reload_command_is_run_and_its_failure_reported(stack, tmp_path):
    from hinode.security.enroll import EnrollError

    _, _, _, config = stack
    for command, expected in ((["true"], "ran true"), (["false"], EnrollError)):
        service = EnrollmentService(config.model_copy(update={"reload": config.reload.model_copy(
            update={"pid_file": None, "command": command})}))
        try:
            if expected is EnrollError:
                with pytest.raises(EnrollError, match="broker reload command"):
                    service.reload_broker()
            else:
                assert service.reload_broker() == expected
        finally:
            service.close()
