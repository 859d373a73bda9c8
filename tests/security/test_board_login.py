"""With API authentication on, the board still works in a real chromium for a signed-in user:
``/`` sends a stranger to /login; after signing in, the board's own calls carry the session
cookie and live values appear. Without the cookie the same calls are refused."""

from __future__ import annotations

import time

import pytest

from cloud.api import create_app
from cloud.config import CloudConfig
from hinode.security import api_secrets
from tests.cloud.test_api_kit import serve_app, write_lines

pytestmark = [pytest.mark.browser, pytest.mark.timeout(90)]
playwright_api = pytest.importorskip("playwright.sync_api")

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


def test_board_works_after_login_and_not_before(influx):
    token = api_secrets.new_token()
    config = CloudConfig.model_validate({"influx": {"url": influx.url}, "api": {"auth": {"tokens": [
        {"name": "board", "role": "viewer", "hash": api_secrets.hash_token(token)}]}}})
    now = int(time.time() * 1000)
    write_lines(influx.url, [f"meter,site=plant-1,agent=edge-01,device=press-01,profile=hinode-sim-meter "
                             f"power_total={40000 + i}.0,seq={i + 1}i {now - (5 - i) * 1000}" for i in range(5)])
    with serve_app(create_app(config)) as url, playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(url + "/")
            assert page.url == url + "/login"
            assert page.request.get(url + "/api/devices").status == 401

            page.fill("input[name=token]", "not-the-token")
            page.click("button[type=submit]")
            assert "Wrong credentials" in page.content()

            page.fill("input[name=token]", token)
            page.click("button[type=submit]")
            page.wait_for_url(url + "/")
            cell = 'article[data-device="press-01"] tr[data-metric="power_total"] [data-role=value]'
            page.wait_for_selector(cell, timeout=10_000)
            assert float(page.get_attribute(cell, "data-raw")) == pytest.approx(40004.0)
            assert page.evaluate("document.cookie") == ""  # HttpOnly: scripts cannot read the session
        finally:
            browser.close()
