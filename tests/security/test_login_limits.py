"""Failed sign-ins are limited per user name and per address, answered 429 and counted; the
password check (scrypt) runs off the event loop."""

from __future__ import annotations

import asyncio

import httpx
import pytest
import yaml

from cloud.api import create_app
from cloud.api.login_limits import LoginLimiter
from cloud.config import CloudConfig, LoginLimitConfig
from tests.cloud.test_api_kit import serve_app
from tests.security.test_api_auth import security_cli

PASSWORD = "correct horse battery staple 7"


@pytest.fixture
def api(tmp_path):
    from hinode import services
    users = (yaml.safe_load(security_cli("add-user", "ops", "--role", "admin", stdin=PASSWORD + "\n"))
             + yaml.safe_load(security_cli("add-user", "nurse-lead", stdin=PASSWORD + "\n")))
    influx = services.influxdb(tmp_path / "influx")
    influx.start()
    config = CloudConfig.model_validate({"influx": {"url": influx.url}, "api": {"auth": {
        "enabled": True, "users": users,
        "login": {"max_failures_per_user": 3, "max_failures_per_address": 5, "window_s": 60}}}})
    app = create_app(config)
    try:
        with serve_app(app) as url, httpx.Client(base_url=url, timeout=10) as client:
            yield client, app
    finally:
        influx.stop()


def sign_in(client, username, password):
    return client.post("/token", data={"username": username, "password": password})


def test_a_user_name_with_too_many_failures_is_answered_429_even_with_the_right_password(api):
    client, app = api
    for _ in range(3):
        assert sign_in(client, "ops", "guess").status_code == 401
    limited = sign_in(client, "ops", PASSWORD)
    assert limited.status_code == 429 and limited.json()["error"] == "too_many_attempts"
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert sign_in(client, "nurse-lead", PASSWORD).status_code == 200      # another user is not locked out
    assert app.state.auth.counts["login_limited"] == 1 and app.state.auth.counts["login_failed"] == 3
    board = client.post("/login", data={"username": "ops", "password": PASSWORD})
    assert board.status_code == 429 and "Too many failed sign-ins" in board.text


def test_an_address_spraying_user_names_is_limited(api):
    client, _ = api
    for name in ("a1", "a2", "a3", "a4", "a5"):
        assert sign_in(client, name, "guess").status_code == 401
    assert sign_in(client, "nurse-lead", PASSWORD).status_code == 429
    assert client.post("/login", data={"token": "not-a-token"}).status_code == 429


def test_the_password_is_checked_in_a_worker_thread_not_on_the_event_loop(api):
    client, app = api
    on_event_loop = []
    original = app.state.auth.check_password

    def spy(username, password):
        try:
            asyncio.get_running_loop()
            on_event_loop.append(True)
        except RuntimeError:        # no loop runs in this thread: a worker
            on_event_loop.append(False)
        return original(username, password)

    app.state.auth.check_password = spy
    assert sign_in(client, "ops", PASSWORD).status_code == 200
    assert client.post("/login", data={"username": "ops", "password": PASSWORD}).status_code == 303
    assert on_event_loop == [False, False]


def test_the_window_slides_and_success_clears_the_users_failures():
    now = [0.0]
    limiter = LoginLimiter(LoginLimitConfig(max_failures_per_user=2, max_failures_per_address=10, window_s=60,
                                            max_keys=100), clock=lambda: now[0])
    limiter.failed("ops", "10.0.0.9")
    limiter.failed("ops", "10.0.0.9")
    assert limiter.retry_after("ops", "10.0.0.9") == pytest.approx(60)
    now[0] = 30
    assert limiter.retry_after("ops", "10.0.0.9") == pytest.approx(30)
    now[0] = 60.5
    assert limiter.retry_after("ops", "10.0.0.9") is None
    limiter.failed("ops", "10.0.0.9")
    limiter.succeeded("ops")
    limiter.failed("ops", "10.0.0.9")
    assert limiter.retry_after("ops", "10.0.0.9") is None


def test_made_up_user_names_cannot_grow_memory_without_bound():
    limiter = LoginLimiter(LoginLimitConfig(max_keys=100))
    for i in range(5000):
        limiter.failed(f"user-{i}", "10.0.0.9")
    assert len(limiter._failures) <= 100
