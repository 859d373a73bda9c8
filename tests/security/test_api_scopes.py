"""API scopes: role defaults, explicit scopes, personal scopes, auth off, issued tokens, and a walk over
every route of the app so that no future route can be added without a scope."""

from __future__ import annotations

import json

import httpx
import pytest
import yaml
from fastapi import APIRouter, Depends
from fastapi.routing import APIRoute

from cloud.api import create_app
from cloud.api.auth import routes_and_scopes
from cloud.api import scopes as scopes_module
from cloud.api.scopes import SCOPE_NAME, all_scopes, register_scope, scopes_for_role
from cloud.config import CloudConfig, CloudConfigError, load_cloud_config
from hinode.security import api_secrets
from tests.cloud.test_api_kit import serve_app
from tests.security.test_api_auth import bearer, security_cli

pytestmark = pytest.mark.timeout(60)

VIEWER_TOKEN = api_secrets.new_token()
ADMIN_TOKEN = api_secrets.new_token()
CARE_TOKEN = api_secrets.new_token()          # scopes: [vitals:read] only
ADMIN_CARE_TOKEN = api_secrets.new_token()    # admin with scopes: [ops:read, vitals:read]
CARER_PASSWORD = "care manager's long password"
VIEWER_PASSWORD = "viewer's own long password"

# A personal scope of this test only, and a tiny router exercising it and the built-in vitals:read.
TEST_PERSONAL = register_scope("scopetest_diary:read", "a test's personal data", personal=True, roles=())
PUBLIC_PATHS = {"/healthz", "/readyz", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc", "/static-offline-docs",
                "/token", "/login", "/logout", "/", "/board"}


def personal_router(auth) -> APIRouter:
    router = APIRouter(prefix="/test")

    @router.get("/vitals", dependencies=[Depends(auth.require_scope("vitals:read"))])
    async def vitals() -> dict:
        return {"heart_rate": 61}

    @router.get("/diary", dependencies=[Depends(auth.require_scope(TEST_PERSONAL.name))])
    async def diary() -> dict:
        return {"entries": []}

    return router


def build_app(config: CloudConfig):
    app = create_app(config)
    app.include_router(personal_router(app.state.auth))
    return app


@pytest.fixture(scope="module")
def secret_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("secret") / "api-secret"
    security_cli("new-secret", str(path))
    return path


@pytest.fixture(scope="module")
def auth_section(secret_file) -> dict:
    """Built with the documented helpers and their --scopes option."""
    def token(name: str, value: str, *extra: str) -> list[dict]:
        return yaml.safe_load(security_cli("hash-token", "--name", name, *extra, stdin=value + "\n"))

    def user(name: str, password: str, *extra: str) -> list[dict]:
        return yaml.safe_load(security_cli("add-user", name, *extra, stdin=password + "\n"))

    tokens = (token("grafana", VIEWER_TOKEN) + token("ops-script", ADMIN_TOKEN, "--role", "admin")
              + token("care-app", CARE_TOKEN, "--scopes", "vitals:read")
              + token("care-admin", ADMIN_CARE_TOKEN, "--role", "admin", "--scopes", "ops:read,vitals:read"))
    users = user("carer", CARER_PASSWORD, "--scopes", "vitals:read") + user("vic", VIEWER_PASSWORD)
    return {"enabled": True, "tokens": tokens, "users": users, "token_ttl_s": 600, "secret_file": str(secret_file)}


@pytest.fixture(scope="module")
def influx_url(tmp_path_factory):
    from hinode import services
    influx = services.influxdb(tmp_path_factory.mktemp("influx"))
    influx.start()
    yield influx.url
    influx.stop()


@pytest.fixture(scope="module")
def api(auth_section, influx_url):
    config = CloudConfig.model_validate({"influx": {"url": influx_url}, "api": {"auth": auth_section}})
    with serve_app(build_app(config)) as url, httpx.Client(base_url=url, timeout=10) as client:
        yield client


@pytest.fixture(scope="module")
def open_api(influx_url):
    """``hinode up``: loopback, no credentials, authentication off."""
    config = CloudConfig.model_validate({"influx": {"url": influx_url}, "api": {"auth": {"enabled": False}}})
    with serve_app(build_app(config)) as url, httpx.Client(base_url=url, timeout=10) as client:
        yield client


def claims_of(token: str) -> dict:
    return json.loads(api_secrets._unb64(token.split(".")[1]))


# ------------------------------------------------------------------ the registry


def test_builtin_scopes_and_role_defaults():
    scopes = all_scopes()
    assert {"meters:read", "ops:read", "commands:read", "commands:write", "vitals:read"} <= set(scopes)
    assert scopes["vitals:read"].personal and scopes["vitals:read"].roles == frozenset()
    assert "meters:read" in scopes_for_role("viewer") and "ops:read" not in scopes_for_role("viewer")
    assert {"meters:read", "ops:read", "commands:read", "commands:write"} <= scopes_for_role("admin")
    assert not {"commands:read", "commands:write"} & scopes_for_role("viewer")
    personal = {name for name, scope in scopes.items() if scope.personal}
    assert personal >= {"vitals:read", TEST_PERSONAL.name}
    assert not personal & (scopes_for_role("viewer") | scopes_for_role("admin") | scopes_for_role("nobody"))


def test_register_scope_is_idempotent_and_refuses_conflicts_and_bad_names():
    first = register_scope("scopetest_parking:read", "parking bays", roles=("viewer", "admin"))
    try:
        assert register_scope("scopetest_parking:read", "parking bays") == first
        assert "scopetest_parking:read" in scopes_for_role("viewer")
        with pytest.raises(ValueError, match="already registered"):
            register_scope("scopetest_parking:read", "parking bays", roles=("admin",))
    finally:  # not to widen the role defaults other tests in this process see
        scopes_module._registry.pop("scopetest_parking:read", None)
    with pytest.raises(ValueError, match="already registered"):
        register_scope("vitals:read", "something else", personal=True, roles=())
    for bad in ("Parking:read", "parking", "parking:delete", "1x:read", "parking:read "):
        with pytest.raises(ValueError, match="must look like"):
            register_scope(bad, "bad")
    with pytest.raises(ValueError, match="roles=\\(\\)"):
        register_scope("scopetest_health:read", "personal with a role default", personal=True)
    with pytest.raises(ValueError, match="unknown role"):
        register_scope("scopetest_x:read", "x", roles=("root",))


def test_require_scope_refuses_an_unregistered_scope():
    auth = create_app(CloudConfig()).state.auth
    with pytest.raises(ValueError, match="nosuch:read"):
        auth.require_scope("nosuch:read")


# ------------------------------------------------------------------ enforcement over HTTP


def test_viewer_reads_meters_but_not_ops_nor_personal_data(api):
    assert api.get("/api/devices", headers=bearer(VIEWER_TOKEN)).status_code == 200
    metrics = api.get("/metrics", headers=bearer(VIEWER_TOKEN))
    assert metrics.status_code == 403 and "ops:read" in metrics.json()["detail"]
    assert 'error="insufficient_scope"' in metrics.headers["www-authenticate"]
    for path, scope in (("/test/vitals", "vitals:read"), ("/test/diary", TEST_PERSONAL.name)):
        response = api.get(path, headers=bearer(VIEWER_TOKEN))
        assert response.status_code == 403 and scope in response.json()["detail"]
        assert "personal" in response.json()["detail"]


def test_a_viewer_can_neither_send_nor_read_commands(api):
    command = {"site": "plant-1", "agent": "edge-01", "target": "meter-1", "name": "write",
               "params": {"metric": "power_limit", "value": 420}}
    viewer_session = api.post("/token", data={"username": "vic", "password": VIEWER_PASSWORD}).json()["access_token"]
    for token in (VIEWER_TOKEN, viewer_session):
        for method, path, scope in (("POST", "/api/commands", "commands:write"),
                                    ("GET", "/api/commands", "commands:read"),
                                    ("GET", "/api/commands/9f0c1d2e", "commands:read")):
            response = api.request(method, path, headers=bearer(token), json=command if method == "POST" else None)
            assert response.status_code == 403, (method, path, response.text)
            assert scope in response.json()["detail"]
            assert 'error="insufficient_scope"' in response.headers["www-authenticate"]
    # The same requests get past the scope check for an admin (reading: an empty list).
    listed = api.get("/api/commands", headers=bearer(ADMIN_TOKEN))
    assert listed.status_code == 200, listed.text


def test_a_vitals_only_token_reads_vitals_and_nothing_else(api):
    devices = api.get("/api/devices", headers=bearer(CARE_TOKEN))
    assert devices.status_code == 403 and "meters:read" in devices.json()["detail"]
    assert api.get("/test/vitals", headers=bearer(CARE_TOKEN)).json() == {"heart_rate": 61}
    assert api.get("/test/diary", headers=bearer(CARE_TOKEN)).status_code == 403
    assert api.get("/metrics", headers=bearer(CARE_TOKEN)).status_code == 403


def test_admin_gets_personal_data_only_when_granted_explicitly(api):
    assert api.get("/metrics", headers=bearer(ADMIN_TOKEN)).status_code == 200
    assert api.get("/api/devices", headers=bearer(ADMIN_TOKEN)).status_code == 200
    assert api.get("/test/vitals", headers=bearer(ADMIN_TOKEN)).status_code == 403
    # An explicit list is exactly those scopes: vitals and ops, but no longer the role's meters:read.
    assert api.get("/test/vitals", headers=bearer(ADMIN_CARE_TOKEN)).status_code == 200
    assert api.get("/metrics", headers=bearer(ADMIN_CARE_TOKEN)).status_code == 200
    assert api.get("/api/devices", headers=bearer(ADMIN_CARE_TOKEN)).status_code == 403


def test_still_401_without_credentials_on_every_scope(api):
    for path in ("/api/devices", "/metrics", "/test/vitals", "/test/diary"):
        response = api.get(path)
        assert response.status_code == 401 and response.headers["www-authenticate"].startswith("Bearer")


def test_forbidden_decisions_are_counted_and_no_token_is_shown(api):
    api.get("/test/vitals", headers=bearer(VIEWER_TOKEN))
    text = api.get("/metrics", headers=bearer(ADMIN_TOKEN)).text
    forbidden = next(line for line in text.splitlines() if line.startswith('hinode_api_auth_total{result="forbidden"}'))
    assert float(forbidden.split()[-1]) >= 1
    for token in (VIEWER_TOKEN, ADMIN_TOKEN, CARE_TOKEN, ADMIN_CARE_TOKEN):
        assert token not in text


def test_auth_off_opens_non_personal_scopes_but_never_personal_ones(open_api):
    assert open_api.get("/api/devices").status_code == 200
    assert open_api.get("/metrics").status_code == 200
    for path in ("/test/vitals", "/test/diary"):
        response = open_api.get(path)
        assert response.status_code == 403
        assert "personal data" in response.json()["detail"] and "authentication" in response.json()["detail"]


# ------------------------------------------------------------------ issued tokens and sessions


def test_password_flow_token_carries_the_users_scopes(api):
    granted = api.post("/token", data={"username": "carer", "password": CARER_PASSWORD})
    assert granted.status_code == 200, granted.text
    body = granted.json()
    assert body["scope"] == "vitals:read" and claims_of(body["access_token"])["scopes"] == ["vitals:read"]
    assert api.get("/test/vitals", headers=bearer(body["access_token"])).status_code == 200
    assert api.get("/api/devices", headers=bearer(body["access_token"])).status_code == 403

    viewer = api.post("/token", data={"username": "vic", "password": VIEWER_PASSWORD}).json()
    assert "scopes" not in claims_of(viewer["access_token"])  # role defaults, resolved at each check
    assert "meters:read" in viewer["scope"].split()
    assert api.get("/api/devices", headers=bearer(viewer["access_token"])).status_code == 200
    assert api.get("/test/vitals", headers=bearer(viewer["access_token"])).status_code == 403


def test_a_token_issued_before_scopes_existed_gets_the_role_defaults(api, secret_file):
    secret = secret_file.read_bytes().strip()
    old = api_secrets.sign_token(secret, "ops", "admin", ttl_s=60)  # no scopes claim, as before
    assert "scopes" not in claims_of(old)
    assert api.get("/metrics", headers=bearer(old)).status_code == 200
    assert api.get("/test/vitals", headers=bearer(old)).status_code == 403
    scoped = api_secrets.sign_token(secret, "carer", "viewer", ttl_s=60, scopes=["vitals:read"])
    assert api_secrets.verify_signed_token(secret, scoped)["scopes"] == ["vitals:read"]
    assert api.get("/test/vitals", headers=bearer(scoped)).status_code == 200
    # The claim is signed: adding a scope to the payload breaks the signature.
    prefix, _, signature = old.split(".")
    forged = api_secrets._b64(b'{"exp":9999999999,"role":"admin","scopes":["vitals:read"],"sub":"ops"}')
    assert api.get("/test/vitals", headers=bearer(f"{prefix}.{forged}.{signature}")).status_code == 401


def test_board_session_from_a_scoped_token_keeps_its_scopes(api):
    login = api.post("/login", data={"token": CARE_TOKEN}, follow_redirects=False)
    assert login.status_code == 303
    with httpx.Client(base_url=str(api.base_url), cookies=login.cookies, timeout=10) as browser:
        assert browser.get("/test/vitals").status_code == 200
        assert browser.get("/api/devices").status_code == 403


# ------------------------------------------------------------------ configuration


def test_config_with_an_unknown_scope_is_refused_naming_the_key(auth_section):
    section = {**auth_section, "tokens": [*auth_section["tokens"],
                                          {"name": "typo", "hash": api_secrets.hash_token("x"),
                                           "scopes": ["meters:read", "vital:read"]}]}
    config = CloudConfig.model_validate({"api": {"auth": section}})  # loads: domains register scopes later
    with pytest.raises(CloudConfigError) as error:
        create_app(config)
    index = len(auth_section["tokens"])
    assert f"api.auth.tokens.{index}.scopes: unknown scope(s) vital:read" in str(error.value)
    assert "meters:read" in str(error.value)  # the known scopes are listed

    users = [{**auth_section["users"][1], "scopes": ["nosuch:read"]}]
    with pytest.raises(CloudConfigError, match=r"api\.auth\.users\.0\.scopes: unknown scope\(s\) nosuch:read"):
        create_app(CloudConfig.model_validate({"api": {"auth": {**auth_section, "users": users}}}))


def test_a_malformed_scope_name_is_refused_at_load_without_echoing_it(tmp_path):
    pasted = api_secrets.new_token()
    path = tmp_path / "cloud.yaml"
    path.write_text(yaml.safe_dump({"api": {"auth": {"tokens": [
        {"name": "x", "hash": api_secrets.hash_token("x"), "scopes": ["meters:read", pasted]}]}}}))
    with pytest.raises(CloudConfigError) as error:
        load_cloud_config(path)
    assert "api.auth.tokens.0" in str(error.value) and "scopes [1]" in str(error.value)
    assert pasted not in str(error.value)


def test_the_config_and_cli_scope_patterns_match_the_registry():
    from hinode.security.__main__ import SCOPE_NAME as cli_pattern
    assert cli_pattern.pattern == SCOPE_NAME.pattern
    entry = yaml.safe_load(security_cli("new-token", "--name", "care", "--scopes", "vitals:read, meters:read"))[0]
    assert entry["scopes"] == ["vitals:read", "meters:read"]
    assert "scopes" not in yaml.safe_load(security_cli("new-token", "--name", "plain"))[0]


# ------------------------------------------------------------------ no unprotected route


def test_every_non_public_route_requires_a_scope():
    """Walks the real app: a route added later without ``require_scope`` fails here."""
    app = build_app(CloudConfig())
    table = routes_and_scopes(app)
    checked = {}
    for path, route, scopes in table:
        if path in PUBLIC_PATHS or path.startswith("/public/"):   # a domain's public feed (GBFS)
            continue
        assert isinstance(route, APIRoute), f"{path}: not an API route and not in the public list"
        assert scopes, f"{sorted(route.methods)} {path} has no require_scope() dependency"
        assert scopes <= set(all_scopes()), f"{path}: unregistered scope in {sorted(scopes)}"
        checked[path] = scopes
    assert checked["/metrics"] == {"ops:read"}
    assert checked["/test/vitals"] == {"vitals:read"}
    meters_paths = ("/api/devices", "/api/devices/{site}/{device}/latest", "/api/latest", "/api/series",
                    "/api/sites", "/api/completeness")  # domains add their own /api/... routes and scopes
    assert all(checked[path] == {"meters:read"} for path in meters_paths)
    by_method = {(method, path): scopes for path, route, scopes in table if isinstance(route, APIRoute)
                 for method in route.methods}
    assert by_method[("POST", "/api/commands")] == {"commands:write"}
    assert by_method[("GET", "/api/commands")] == by_method[("GET", "/api/commands/{command_id}")] == {"commands:read"}
    openapi_paths = {p for p in app.openapi()["paths"] if not p.startswith("/public/")} - PUBLIC_PATHS
    assert openapi_paths and openapi_paths <= set(checked)


def test_the_route_walk_notices_an_unprotected_route():
    app = build_app(CloudConfig())

    @app.get("/api/forgotten")
    async def forgotten() -> dict:
        return {}

    unprotected = [path for path, _, scopes in routes_and_scopes(app)
                   if path not in PUBLIC_PATHS and not path.startswith("/public/") and not scopes]
    assert unprotected == ["/api/forgotten"]
