"""API authentication: bearer tokens (stored hashed), OAuth2 password flow, board login, roles."""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest
import yaml

from cloud.api import create_app
from cloud.config import CloudConfig, CloudConfigError, load_cloud_config
from hinode.security import api_secrets
from tests.cloud.test_api_kit import serve_app

pytestmark = pytest.mark.timeout(60)

VIEWER_TOKEN = api_secrets.new_token()
ADMIN_TOKEN = api_secrets.new_token()
OPS_PASSWORD = "correct horse battery staple"


def security_cli(*args: str, stdin: str = "") -> str:
    done = subprocess.run([sys.executable, "-m", "hinode.security", *args], input=stdin, capture_output=True,
                          text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def secret_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("secret") / "api-secret"
    security_cli("new-secret", str(path))
    return path


@pytest.fixture(scope="module")
def auth_section(secret_file) -> dict:
    """Built with the documented helpers, the way an operator would fill cloud.yaml."""
    tokens = (yaml.safe_load(security_cli("hash-token", "--name", "grafana", stdin=VIEWER_TOKEN + "\n"))
              + yaml.safe_load(security_cli("hash-token", "--name", "ops-script", "--role", "admin",
                                            stdin=ADMIN_TOKEN + "\n")))
    users = yaml.safe_load(security_cli("add-user", "ops", "--role", "admin", stdin=OPS_PASSWORD + "\n"))
    return {"enabled": True, "tokens": tokens, "users": users, "token_ttl_s": 600, "secret_file": str(secret_file)}


@pytest.fixture(scope="module")
def api(auth_section, tmp_path_factory):
    influx_dir = tmp_path_factory.mktemp("influx")
    from hinode import services
    influx = services.influxdb(influx_dir)
    influx.start()
    config = CloudConfig.model_validate({"influx": {"url": influx.url}, "api": {"auth": auth_section}})
    try:
        with serve_app(create_app(config)) as url, httpx.Client(base_url=url, timeout=10) as client:
            yield client
    finally:
        influx.stop()


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def test_helpers_print_only_hashes(auth_section):
    text = yaml.safe_dump(auth_section)
    assert VIEWER_TOKEN not in text and ADMIN_TOKEN not in text and OPS_PASSWORD not in text
    assert auth_section["tokens"][0]["hash"] == api_secrets.hash_token(VIEWER_TOKEN)
    assert api_secrets.verify_password(OPS_PASSWORD, auth_section["users"][0]["password_hash"])
    assert not api_secrets.verify_password("wrong", auth_section["users"][0]["password_hash"])


def test_health_and_readiness_stay_public(api):
    assert api.get("/healthz").status_code == 200
    assert api.get("/readyz").status_code == 200


@pytest.mark.parametrize("path", ["/api/sites", "/api/devices", "/api/latest", "/api/completeness", "/metrics"])
def test_no_token_is_401(api, path):
    response = api.get(path)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")


# ids: the random tokens must not name the tests (pytest-xdist workers must collect the same ids)
@pytest.mark.parametrize("header", [f"Bearer {api_secrets.new_token()}", "Bearer", "Basic b3BzOnBhc3M=",
                                    f"Bearer {ADMIN_TOKEN[:-2]}", "Bearer hn1.e30.forged"],
                         ids=["unknown-token", "bearer-without-token", "basic-auth", "truncated-admin-token",
                              "forged-signed-token"])
def test_bad_token_is_401_and_not_echoed(api, header):
    response = api.get("/api/sites", headers={"Authorization": header})
    assert response.status_code == 401
    assert header.partition(" ")[2] not in response.text or header == "Bearer"


def test_viewer_reads_data_but_not_metrics(api):
    assert api.get("/api/sites", headers=bearer(VIEWER_TOKEN)).status_code == 200
    response = api.get("/metrics", headers=bearer(VIEWER_TOKEN))
    assert response.status_code == 403
    assert "admin" in response.json()["detail"]


def test_admin_reads_metrics_with_auth_counters(api):
    api.get("/api/sites")  # one refused request
    response = api.get("/metrics", headers=bearer(ADMIN_TOKEN))
    assert response.status_code == 200
    assert 'hinode_api_auth_total{result="missing"}' in response.text
    assert "hinode_api_auth_enabled 1.0" in response.text
    assert api.get("/api/sites", headers=bearer(ADMIN_TOKEN)).status_code == 200


def test_password_flow_issues_a_token_with_the_users_role(api):
    refused = api.post("/token", data={"username": "ops", "password": "wrong password"})
    assert refused.status_code == 401 and "wrong password" not in refused.text
    unknown = api.post("/token", data={"username": "nobody", "password": OPS_PASSWORD})
    assert unknown.status_code == 401
    granted = api.post("/token", data={"grant_type": "password", "username": "ops", "password": OPS_PASSWORD})
    assert granted.status_code == 200, granted.text
    body = granted.json()
    assert body["token_type"] == "bearer" and body["expires_in"] == 600 and body["role"] == "admin"
    assert api.get("/metrics", headers=bearer(body["access_token"])).status_code == 200


def test_issued_tokens_expire_and_cannot_be_altered(api, secret_file):
    secret = secret_file.read_bytes().strip()
    expired = api_secrets.sign_token(secret, "ops", "admin", ttl_s=60, now=0)
    assert api.get("/metrics", headers=bearer(expired)).status_code == 401
    fresh = api_secrets.sign_token(secret, "ops", "admin", ttl_s=60)
    assert api.get("/metrics", headers=bearer(fresh)).status_code == 200
    other_key = api_secrets.sign_token(b"another key", "ops", "admin", ttl_s=60)
    assert api.get("/metrics", headers=bearer(other_key)).status_code == 401
    granted = api.post("/token", data={"username": "ops", "password": OPS_PASSWORD}).json()["access_token"]
    prefix, payload, signature = granted.split(".")
    forged_payload = api_secrets._b64(b'{"exp":9999999999,"role":"admin","sub":"mallory"}')
    assert api.get("/metrics", headers=bearer(f"{prefix}.{forged_payload}.{signature}")).status_code == 401


def test_board_login_sets_a_session_cookie_the_board_calls_use(api):
    assert api.get("/", follow_redirects=False).headers["location"] == "/login"
    assert api.post("/login", data={"token": "wrong"}, follow_redirects=False).status_code == 401
    login = api.post("/login", data={"token": VIEWER_TOKEN}, follow_redirects=False)
    assert login.status_code == 303
    cookie = login.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and VIEWER_TOKEN.lower() not in cookie
    with httpx.Client(base_url=str(api.base_url), cookies=login.cookies, timeout=10) as browser:
        assert "<html" in browser.get("/").text.lower()
        assert browser.get("/api/devices").status_code == 200
        assert browser.get("/metrics").status_code == 403
        browser.get("/logout")
        assert browser.get("/api/devices").status_code == 401


def test_auth_cannot_be_left_off_silently_on_a_network_address(tmp_path):
    with pytest.raises(ValueError, match="auth.enabled: false explicitly"):
        CloudConfig.model_validate({"api": {"host": "0.0.0.0"}})
    assert CloudConfig.model_validate({"api": {"host": "0.0.0.0", "auth": {"enabled": False}}})
    with pytest.raises(ValueError, match="no auth.tokens or auth.users"):
        CloudConfig.model_validate({"api": {"auth": {"enabled": True}}})


def test_a_token_pasted_as_a_hash_is_not_echoed_in_the_config_error(tmp_path):
    path = tmp_path / "cloud.yaml"
    path.write_text(yaml.safe_dump({"api": {"auth": {"tokens": [{"name": "x", "hash": VIEWER_TOKEN}]}}}))
    with pytest.raises(CloudConfigError) as error:
        load_cloud_config(path)
    assert "api.auth.tokens.0.hash" in str(error.value) and VIEWER_TOKEN not in str(error.value)


def test_no_auth_flag_is_the_explicit_off_switch_for_a_network_address():
    from cloud.__main__ import _parser, build_config
    config = build_config(_parser().parse_args(["serve", "--host", "0.0.0.0", "--no-auth"]))
    assert config.api.auth.enabled is False
    with pytest.raises(CloudConfigError, match="auth.enabled: false explicitly"):
        build_config(_parser().parse_args(["serve", "--host", "0.0.0.0"]))
