"""The nurse's page in a real (headless Debian) chromium, served by the real NursePage on a real
VisitBook: PIN sign-in and lock-out, today's visits with display names, a visit with a reading
offered from Python appearing live, confirm, the hand-over, English, and the API's guards."""

from __future__ import annotations

import datetime as dt
import logging
import time
from zoneinfo import ZoneInfo

import aiohttp
import pytest

from edge_agent.sources.ble.measurement import Measurement, VitalValue
from edge_agent.sources.ble.page import NursePage
from edge_agent.sources.ble.page_auth import PinLimiter, Sessions
from edge_agent.sources.ble.page_config import LoginLimits, PageConfig
from edge_agent.sources.ble.visits import VisitBook
from hinode.security.api_secrets import hash_password
from hinode.vitals import Category

pytestmark = [pytest.mark.browser, pytest.mark.timeout(90)]
playwright_api = pytest.importorskip("playwright.async_api")
expect = playwright_api.expect

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
PINS = {"n-01": "4321", "n-02": "8765"}
MAX_FAILURES = 3
DEVICES = [{"device": "bp-cuff-1", "category": "blood_pressure", "online": True, "error": "",
            "since_ms": int(time.time() * 1000)},
           {"device": "thermo-1", "category": "temperature", "online": False, "error": "not_found", "since_ms": 0}]
LOG = logging.getLogger("test.nurse_page")


def blood_pressure(systolic: float) -> Measurement:
    return Measurement(category=Category.BLOOD_PRESSURE, characteristic=0x2A35,
                       values=(VitalValue("systolic", systolic, decimals=0), VitalValue("diastolic", 88.0, decimals=0),
                               VitalValue("mean_arterial", 105.0, decimals=0), VitalValue("pulse", 61.0, decimals=0)))


def temperature(value: float | None) -> Measurement:
    absent = None if value is not None else "not-a-number"
    return Measurement(category=Category.TEMPERATURE, characteristic=0x2A1C,
                       values=(VitalValue("body_temp", value, absent=absent, decimals=1 if value else None),))


@pytest.fixture
def page_parts(tmp_path):
    today = dt.datetime.now(ZoneInfo("Asia/Tokyo")).date()
    schedule = tmp_path / "schedule.yaml"
    schedule.write_text(
        "visits:\n"
        f'  - {{date: {today}, time: "14:30", pseudonym: p-19be02, display_name: "鈴木 一郎"}}\n'
        f'  - {{date: {today}, time: "10:00", pseudonym: p-7f3a9c, display_name: "山田 花子"}}\n'
        f'  - {{date: {today + dt.timedelta(days=1)}, time: "09:00", pseudonym: p-000777, display_name: "明日 さん"}}\n',
        encoding="utf-8")
    config = PageConfig.model_validate({
        "listen": "127.0.0.1:0", "language": "ja", "schedule_file": str(schedule),
        "nurses": [{"id": nurse, "name": name, "pin_hash": hash_password(PINS[nurse])}
                   for nurse, name in (("n-01", "佐藤"), ("n-02", "高橋"))],
        "login": {"max_failures_per_nurse": MAX_FAILURES}})
    book = VisitBook(tmp_path / "visits.sqlite", "kit-01", schedule_file=schedule, timezone="Asia/Tokyo")
    yield config, book
    book.close()


class Browser:
    def __init__(self, base: str):
        self.base = base

    async def __aenter__(self):
        self._playwright = await playwright_api.async_playwright().start()
        self._browser = await self._playwright.chromium.launch(executable_path="/usr/bin/chromium",
                                                               args=CHROMIUM_ARGS)
        self.page = await self._browser.new_page()
        self.page.set_default_timeout(10_000)
        return self.page

    async def __aexit__(self, *exc):
        await self._browser.close()
        await self._playwright.stop()


async def sign_in(page, nurse: str, pin: str) -> None:
    await page.select_option("#nurse-select", nurse)
    await page.fill("#pin", pin)
    await page.click("#login-button")


async def test_a_visit_from_sign_in_to_hand_over(page_parts, caplog):
    caplog.set_level(logging.DEBUG)
    config, book = page_parts
    nurse_page = NursePage(config, book, lambda: DEVICES, LOG)
    await nurse_page.start()
    base = f"http://127.0.0.1:{nurse_page.port}"
    try:
        async with Browser(base) as page:
            await page.goto(base + "/")
            await expect(page.locator("#login-button")).to_have_text("ログイン")
            await sign_in(page, "n-01", "0000")
            await expect(page.locator("#login-error")).to_have_text("看護師またはPINが違います。")
            await expect(page.locator("#main-view")).to_be_hidden()
            await sign_in(page, "n-01", PINS["n-01"])
            await expect(page.locator("#who")).to_have_text("佐藤")

            rows = page.locator("#today tbody tr")
            await expect(rows).to_have_count(2)
            await expect(rows.nth(0)).to_contain_text("10:00")
            await expect(rows.nth(0)).to_contain_text("山田 花子")
            await expect(rows.nth(1)).to_contain_text("鈴木 一郎")
            await expect(rows.nth(0).locator(".state")).to_have_text("予定")
            await expect(page.locator("#devices [data-device=bp-cuff-1]")).to_contain_text("接続中")
            await expect(page.locator("#devices [data-device=thermo-1]")).to_contain_text("未接続")

            stray = book.offer("thermo-1", "ble-temperature", temperature(None), int(time.time() * 1000), "gateway")
            await expect(page.locator(f"#unassigned [data-reading-id={stray.id}]")).to_contain_text("測定不能")

            await rows.nth(0).locator("button.start").click()
            await expect(page.locator("#active-patient")).to_contain_text("山田 花子")
            visit = book.active()
            assert visit is not None and visit.pseudonym == "p-7f3a9c"

            offered = time.monotonic()
            held = book.offer("bp-cuff-1", "ble-blood_pressure", blood_pressure(138), int(time.time() * 1000),
                              "device")
            item = page.locator(f"#readings [data-reading-id={held.id}]")
            await expect(item).to_contain_text("収縮期血圧: 138 mmHg", timeout=3000)
            latency = time.monotonic() - offered
            print(f"reading visible {latency * 1000:.0f} ms after offer")
            assert latency < 1.0
            await expect(item).to_contain_text("脈拍: 61 /分")

            await item.locator("button.confirm").click()
            await expect(item).to_have_count(0)
            await expect(page.locator("#no-readings")).to_be_visible()
            [confirmed] = book.take_confirmed()
            assert (confirmed.id, confirmed.visit_id, confirmed.pseudonym) == (held.id, visit.id, "p-7f3a9c")
            assert confirmed.measurement.value_of("systolic").value == 138.0

            await page.click("#lang-toggle")
            await expect(page.locator("#end-visit")).to_have_text("End visit")
            await expect(page.locator("#today-section h2")).to_have_text("Today's visits")
            await expect(rows.nth(0).locator(".state")).to_have_text("In progress")
            await page.reload()
            await expect(page.locator("#end-visit")).to_have_text("End visit")      # kept in localStorage

            stray_row = page.locator(f"#unassigned [data-reading-id={stray.id}]")
            await expect(stray_row).to_contain_text("Body temperature: — (not a number)")
            await stray_row.locator("button.assign").click()
            assigned = page.locator(f"#readings [data-reading-id={stray.id}]")
            await expect(assigned).to_be_visible()

            await page.click("#end-visit")
            await expect(page.locator("#pending-text")).to_have_text(
                "1 reading(s) still need to be confirmed or discarded.")
            assert book.active() is not None
            await page.click("#discard-rest-and-end")
            await expect(page.locator("#no-active")).to_be_visible()
            await expect(rows.nth(0).locator(".state")).to_have_text("Ended")
            assert book.active() is None and book.held() == [] and book.take_confirmed() == []
            actions = [(a["action"], a["nurse"]) for a in book.audit_log(stray.id)]
            assert actions == [("offer", "gateway"), ("assign", "n-01"), ("discarded", "n-01")]

            await page.click("#logout")
            await expect(page.locator("#login-view")).to_be_visible()
            assert "n-01 signed in" in caplog.text and visit.id in caplog.text
            assert "山田" not in caplog.text and "鈴木" not in caplog.text      # names never in logs
            async with aiohttp.ClientSession() as client:
                async with client.get(base + "/api/state") as response:
                    assert response.status == 401
    finally:
        await nurse_page.stop()


async def test_wrong_pins_lock_the_nurse_out(page_parts):
    config, book = page_parts
    nurse_page = NursePage(config, book, lambda: {"devices": []}, LOG)
    await nurse_page.start()
    base = f"http://127.0.0.1:{nurse_page.port}"
    try:
        async with Browser(base) as page:
            await page.goto(base + "/")
            await page.click("#lang-toggle")
            for attempt in range(MAX_FAILURES):
                await sign_in(page, "n-02", f"99{attempt}9")
                await expect(page.locator("#login-error")).to_have_text("Wrong nurse or PIN.")
                await page.evaluate("document.getElementById('login-error').textContent = ''")
            await sign_in(page, "n-02", PINS["n-02"])                 # the right PIN, but locked out now
            await expect(page.locator("#login-error")).to_have_text(
                "Too many wrong PINs. Please try again later.")
            await expect(page.locator("#main-view")).to_be_hidden()
            await sign_in(page, "n-01", PINS["n-01"])                 # another nurse is not locked out
            await expect(page.locator("#who")).to_have_text("佐藤")
    finally:
        await nurse_page.stop()


async def test_the_api_refuses_requests_without_a_session_or_from_another_site(page_parts):
    config, book = page_parts
    nurse_page = NursePage(config, book, lambda: [], LOG)
    await nurse_page.start()
    base = f"http://127.0.0.1:{nurse_page.port}"
    try:
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as client:
            async with client.get(base + "/api/state") as response:
                assert response.status == 401
                assert response.headers["Content-Security-Policy"].startswith("default-src 'self'")
            async with client.post(base + "/api/visits", json={"pseudonym": "p-7f3a9c"}) as response:
                assert response.status == 401
            async with client.post(base + "/api/login", json={"nurse": "n-01", "pin": PINS["n-01"]}) as response:
                assert response.status == 200
                cookie = response.headers["Set-Cookie"]
                assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
            async with client.post(base + "/api/visits", data='{"pseudonym": "p-7f3a9c"}',
                                   headers={"Content-Type": "text/plain"}) as response:
                assert response.status == 403                      # a form post from anywhere: refused
            async with client.post(base + "/api/visits", json={"pseudonym": "p-7f3a9c"},
                                   headers={"Origin": "http://evil.example"}) as response:
                assert response.status == 403
            assert book.active() is None
            async with client.post(base + "/api/visits", json={"pseudonym": "p-7f3a9c"},
                                   headers={"Origin": base}) as response:
                assert response.status == 201
            async with client.post(base + "/api/visits", json={"pseudonym": "p-19be02"}) as response:
                assert response.status == 409 and (await response.json())["error"] == "active_visit"
            async with client.post(base + "/api/visits", json={"pseudonym": "山田 花子", "unscheduled": True}
                                   ) as response:
                assert response.status == 400 and (await response.json())["error"] == "bad_pseudonym"
            async with client.get(base + "/api/state") as response:
                state = await response.json()
            assert state["active"]["display_name"] == "山田 花子"
            async with client.post(base + "/api/logout", json={}) as response:
                assert response.status == 200
            async with client.get(base + "/api/state") as response:
                assert response.status == 401
            async with client.get(base + "/assets/nurse.js") as response:
                assert response.status == 200 and "NURSE_I18N" in await response.text()
            async with client.get(base + "/assets/..%2Fpage.py") as response:
                assert response.status == 404
    finally:
        await nurse_page.stop()


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_pin_limits_lock_out_within_the_window_and_release_after_it():
    clock = FakeClock()
    limiter = PinLimiter(LoginLimits(max_failures_per_nurse=2, max_failures_per_address=3, window_s=60), clock)
    limiter.failed("n-01", "10.0.0.5")
    assert limiter.retry_after("n-01", "10.0.0.5") is None
    clock.now += 10
    limiter.failed("n-01", "10.0.0.5")
    assert limiter.retry_after("n-01", "10.0.0.9") == pytest.approx(50)      # the nurse is locked anywhere
    assert limiter.retry_after("n-02", "10.0.0.9") is None
    limiter.failed("n-02", "10.0.0.5")
    assert limiter.retry_after("n-03", "10.0.0.5") == pytest.approx(50)      # the address is locked for anyone
    clock.now += 51
    assert limiter.retry_after("n-01", "10.0.0.9") is None
    limiter.failed("n-01", "10.0.0.9")
    limiter.succeeded("n-01")
    limiter.failed("n-01", "10.0.0.9")
    assert limiter.retry_after("n-01", "10.0.0.9") is None                   # a good sign-in cleared it


def test_sessions_expire_and_end():
    clock = FakeClock()
    sessions = Sessions(ttl_s=30, clock=clock)
    token = sessions.create("n-01")
    assert sessions.nurse_of(token) == "n-01" and sessions.nurse_of("forged") is None
    clock.now += 31
    assert sessions.nurse_of(token) is None
    token = sessions.create("n-01")
    sessions.end(token)
    assert sessions.nurse_of(token) is None
