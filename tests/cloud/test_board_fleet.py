"""The board's fleet map in a real (headless Debian) chromium, served by uvicorn from the real app with
the fleet domain's worker running (what ``python -m cloud serve`` runs), vehicles publishing through the
wire contract on a real Mosquitto and the events landing in a real InfluxDB 1.6: what an operator sees.
Zones and hubs are the wiring tests' hand-built ones (a slow zone, a no-parking zone, a station hub near
the vehicles and an estate far from them)."""

from __future__ import annotations

import http.server
import re
import threading

import pytest

from hinode import services
from tests.cloud.domains.fleet.test_worker_kit import (
    IN_NO_PARKING, IN_SLOW, NO_PARKING_ZONE, OUTSIDE, SLOW_ZONE, VIEWER, Vehicle, fleet_app, now_ms,
)
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]
playwright_api = pytest.importorskip("playwright.sync_api")

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
COMMS_LOST_S = 300


@pytest.fixture
def browser():
    with playwright_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


class Page:
    """A browser page on the fleet view with every request it made and every script error."""

    def __init__(self, browser, url: str, query: str = "", token: str | None = VIEWER, lang: str = "en"):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.context = browser.new_context(viewport={"width": 1400, "height": 1000}, extra_http_headers=headers,
                                           locale="ja-JP" if lang == "ja" else "en-US", timezone_id="Asia/Tokyo")
        self.page = self.context.new_page()
        self.requests: list[str] = []
        self.errors: list[str] = []
        self.page.on("request", lambda request: self.requests.append(request.url))
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.page.goto(f"{url}/board/fleet.html{query}")
        self.page.wait_for_function("document.body.dataset.loaded", timeout=20_000)

    def wait(self, js: str, arg=None, timeout: float = 20_000):
        return self.page.wait_for_function(js, arg=arg, timeout=timeout)

    def vehicle(self, name: str) -> dict:
        return self.page.eval_on_selector(f'g.vehicle[data-vehicle="{name}"]', "g => ({...g.dataset, "
                                          "transform: g.getAttribute('transform'), title: g.querySelector('title').textContent, "
                                          "marks: [...g.querySelectorAll('.mark')].map(m => m.textContent)})")

    def texts(self, selector: str) -> list[str]:
        return self.page.eval_on_selector_all(selector, "nodes => nodes.map(n => n.textContent.trim())")


def _publish_scene(broker_port: int):
    """sc-001 parked near the station hub; sc-002 speeding in the slow zone (an open violation); sc-003
    tipped over with a low battery in the no-parking zone; sc-004 silent for ten minutes (comms lost);
    sm-01, a walking-speed vehicle, on a trip."""
    now = now_ms()
    vehicles = {name: Vehicle(broker_port, name, vehicle_type="slowmobility" if name.startswith("sm") else "escooter")
                for name in ("sc-001", "sc-002", "sc-003", "sc-004", "sm-01")}
    vehicles["sc-004"].fix(now - 600_000, lat=OUTSIDE[0] + 0.002, lon=OUTSIDE[1], speed=0.0, state="available",
                           battery=55.0)
    vehicles["sc-001"].fix(now - 2_000, lat=OUTSIDE[0], lon=OUTSIDE[1], speed=0.0, state="available", battery=80.0)
    vehicles["sc-003"].fix(now - 2_000, lat=IN_NO_PARKING[0], lon=IN_NO_PARKING[1], speed=0.0,
                           state="non_operational", battery=9.0, tipped_over=True)
    vehicles["sm-01"].fix(now - 2_000, lat=OUTSIDE[0] - 0.002, lon=OUTSIDE[1] + 0.003, speed=5.0, state="on_trip",
                          battery=70.0, driving_mode="autonomous", passenger=True)
    points = [(OUTSIDE, 12.0)] * 2 + [(IN_SLOW, 15.0)] * 6
    vehicles["sc-002"].route(now - 10_000, points, state="on_trip", battery=60.0)
    return vehicles


def test_the_operator_sees_the_fleet_move_and_a_violation_start_and_end(tmp_path, broker, influx, browser):
    with fleet_app(tmp_path, broker, influx, comms_lost_s=COMMS_LOST_S) as app:
        vehicles = _publish_scene(broker.port)
        try:
            wait_until(lambda: app.get("/api/fleet/violations", open="true")["violations"], "the open violation")
            wait_until(lambda: len(app.get("/api/fleet/vehicles")["vehicles"]) == 5, "five vehicles tracked")
            wait_until(lambda: not next(v for v in app.get("/api/fleet/vehicles")["vehicles"]
                                        if v["vehicle"] == "sc-004")["online"], "sc-004's comms lost")
            page = Page(browser, app.url)
            page.wait("document.querySelectorAll('g.vehicle').length === 5 && "
                      "document.querySelector('g.vehicle[data-vehicle=\"sc-004\"]').dataset.online === 'false' && "
                      "document.querySelectorAll('[data-role=violations] tbody tr[data-violation]').length === 1 && "
                      "document.querySelector('[data-role=events] tr[data-event=violation_start]')")

            # the map: zones by kind, hubs with the vehicles within walking distance, vehicles by state
            zones = page.page.eval_on_selector_all("path.zone", "ps => ps.map(p => [p.dataset.zone, p.dataset.kind])")
            assert sorted(zones) == sorted([[SLOW_ZONE, "slow"], [NO_PARKING_ZONE, "no_parking"]])
            hubs = page.page.eval_on_selector_all("g.hub", "gs => Object.fromEntries(gs.map(g => [g.dataset.hub, "
                                                  "[g.dataset.gap, g.querySelector('.hub-count').textContent]]))")
            api_hubs = {h["id"]: h for h in app.get("/api/fleet/hubs")["hubs"]}
            assert hubs["estate-far"] == ["true", "0"]                         # nothing within 500 m: a gap
            assert hubs["jr-test"] == ["false", str(api_hubs["jr-test"]["available"])]
            assert api_hubs["jr-test"]["available"] >= 1                      # sc-001 parked ~90 m away
            parked, speeder, tipped, silent, slow = (page.vehicle(v) for v in ("sc-001", "sc-002", "sc-003", "sc-004", "sm-01"))
            assert (parked["state"], parked["battery"], parked["online"], parked["tipped"]) == ("available", "ok", "true", "false")
            assert (speeder["state"], speeder["type"]) == ("on_trip", "escooter")
            assert (tipped["state"], tipped["battery"], tipped["tipped"], tipped["marks"]) == ("non_operational", "low", "true", ["!"])
            assert (silent["online"], silent["marks"]) == ("false", ["×"])
            assert slow["type"] == "slowmobility" and page.page.locator('g.vehicle[data-vehicle="sm-01"] rect.body').count() == 1
            assert "tipped over" in tipped["title"] and "9 %" in tipped["title"]
            counts = {k: page.page.text_content(f"[data-stat={k}]") for k in ("vehicles", "online", "on_trip", "available", "violations")}
            assert counts == {"vehicles": "5", "online": "4", "on_trip": "2", "available": "2", "violations": "1"}

            # side panels: the open violation with its zone's name, the event, the alerts
            assert page.texts("[data-role=violations] tbody tr td")[:3] == ["sc-002", "speeding", "Station square"]
            assert re.fullmatch(r"\d+ (s|min)", page.texts("[data-role=violations] tbody td[data-role=duration]")[0])
            alerts = page.page.eval_on_selector_all("[data-role=alerts] li[data-kind]", "ls => ls.map(l => [l.dataset.vehicle, l.dataset.kind])")
            assert {("sc-003", "battery_low"), ("sc-003", "tipped_over"), ("sc-004", "comms_lost"), ("sc-002", "violation")} <= {tuple(a) for a in alerts}

            # hover text and a click: the vehicle's details beside the map
            page.page.click('g.vehicle[data-vehicle="sm-01"]')
            page.wait("document.querySelector('[data-role=details]:not([hidden]) h3')?.textContent === 'sm-01'")
            details = page.texts("[data-role=details] dd")
            assert "autonomous" in details and "yes" in details and "70 %" in details

            # live: sc-001 rides off (its dot moves within a poll), sc-002 slows down (the violation ends)
            before = parked["transform"]
            now = now_ms()
            vehicles["sc-001"].route(now, [((OUTSIDE[0] - 0.004, OUTSIDE[1] + 0.004), 14.0)] * 2, state="on_trip", battery=79.0)
            vehicles["sc-002"].route(now - 1_000, [(IN_SLOW, 4.0)] * 5, state="on_trip", battery=59.0)
            page.wait("t => document.querySelector('g.vehicle[data-vehicle=\"sc-001\"]').getAttribute('transform') !== t "
                      "&& document.querySelector('g.vehicle[data-vehicle=\"sc-001\"]').dataset.state === 'on_trip'", before)
            page.wait("document.querySelectorAll('[data-role=violations] tbody tr[data-violation]').length === 0 && "
                      "document.querySelector('[data-role=events] tr[data-event=violation_end]') !== null")
            assert page.page.text_content("[data-stat=violations]") == "0"
            assert page.errors == []
            # no request left the API's origin: no tiles, fonts or scripts from elsewhere
            assert page.requests and all(r.startswith(app.url + "/") for r in page.requests), \
                sorted({r for r in page.requests if not r.startswith(app.url)})
            assert any("/api/fleet/vehicles" in r for r in page.requests)
        finally:
            for vehicle in vehicles.values():
                vehicle.__exit__(None, None, None)


class _Tiles(http.server.BaseHTTPRequestHandler):
    PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                        "1f15c4890000000d49444154789c6360000002000001e221bc330000000049454e44ae426082")
    seen: list[str] = []

    def do_GET(self):  # noqa: N802 (http.server's name)
        type(self).seen.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.end_headers()
        self.wfile.write(self.PNG)

    def log_message(self, *args):
        pass


def test_tiles_only_when_configured_japanese_and_a_login_link_without_a_session(tmp_path, broker, influx, browser):
    port = services.free_port()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), _Tiles)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with fleet_app(tmp_path, broker, influx) as app, Vehicle(broker.port, "sc-001") as scooter:
        try:
            scooter.fix(now_ms(), lat=OUTSIDE[0], lon=OUTSIDE[1], speed=0.0, state="available", battery=80.0)
            wait_until(lambda: app.get("/api/fleet/vehicles")["vehicles"], "the vehicle tracked")
            tile_url = f"http://127.0.0.1:{port}/osm/{{z}}/{{x}}/{{y}}.png"
            page = Page(browser, app.url, f"?tiles={tile_url}&lang=ja", lang="ja")
            page.wait("document.querySelectorAll('g.vehicle').length === 1")
            images = page.page.eval_on_selector_all("g[data-layer=tiles] image", "is => is.map(i => i.getAttribute('href'))")
            assert images and all(re.fullmatch(rf"http://127\.0\.0\.1:{port}/osm/\d+/\d+/\d+\.png", h) for h in images)
            wait_until(lambda: len(_Tiles.seen) >= len(images), "the tiles fetched from the configured server")
            z, x, y = (int(n) for n in re.findall(r"\d+", _Tiles.seen[0].split("/osm/")[1]))
            assert 10 <= z <= 19                                               # a city-sized view
            assert {r.split("/")[2] for r in page.requests} == {app.url.split("/")[2], f"127.0.0.1:{port}"}
            # Japanese: titles, labels, the vehicle's state and the hub names
            assert page.page.text_content("h1") == "モビリティ車両"
            assert "利用可能" in page.vehicle("sc-001")["title"]
            assert "テスト駅" in page.texts("g.hub .hub-name")

            # a tile URL that is not http(s) is ignored: no tile, no request
            bad = Page(browser, app.url, "?tiles=javascript:alert(1)/{z}/{x}/{y}")
            bad.wait("document.querySelectorAll('g.vehicle').length === 1")
            assert bad.page.locator("g[data-layer=tiles] image").count() == 0

            # without a session: the view says to log in (401 from the API), with a link to /login
            anonymous = Page(browser, app.url, token=None)
            assert anonymous.page.get_attribute("[data-role=error]", "data-status") == "401"
            assert anonymous.page.get_attribute("[data-role=error] a", "href") == "/login"
            assert anonymous.page.locator("main").is_hidden()
            assert page.errors == [] and bad.errors == [] and anonymous.errors == []
        finally:
            server.shutdown()
