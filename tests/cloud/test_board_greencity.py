"""The board's CO2 and interchange views in a real (headless Debian) chromium, served by uvicorn
from the real app (co2 and interchange domains configured), fed by a real InfluxDB 1.6 with
energy_slot points, a bill entered through the co2 API and a settle call: what a user sees."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import httpx
import pytest

from cloud.domains import discover
from cloud.domains._greencity.calendar import SLOT_MS, date_start_ms
from tests.cloud.test_api_kit import app_on_influx, token_auth

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]
playwright_api = pytest.importorskip("playwright.sync_api")

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
TOKEN = "greencity-board-token"
FY = 2025                                  # 2025-04-01 .. 2026-03-31, wholly in the past
DAY = date(2025, 5, 15)                    # the interchange day
GAP = {date(2025, 6, 10), date(2025, 6, 11), date(2025, 6, 12)}      # sme-press sent nothing these days
SUNNY = range(20, 28)                      # slots 10:00-14:00 JST: the PV exports
PROVISIONAL_SLOT = 40                      # sme-food's meter has no value here: settled provisionally
PRICE = 16.0

CONFIG = {
    "co2": {
        "location_factor_kg_per_kwh": 0.45,
        "sites": [
            {"id": "sme-press", "name": "Press shop A", "grid_meters": [{"device": "main-meter"}],
             "own_factor": {"basic_kg_per_kwh": 0.5, "adjusted_kg_per_kwh": 0.4},
             "baseline_fy": 2024, "baseline_t_co2": 10.0},
            {"id": "sme-food", "grid_meters": [{"device": "main-meter"}],
             "own_factor": {"basic_kg_per_kwh": 0.5, "adjusted_kg_per_kwh": 0.4}},
        ],
    },
    "interchange": {
        "communities": [{
            "id": "test-pv", "name": "Test PV community", "price_yen_per_kwh": PRICE, "grace_s": 7200,
            "rules": [{"from_month": "2025-04", "rule": "pro_rata"}],
            "participants": [
                {"site": "plant-a", "role": "producer",
                 "meters": {"generation": {"device": "pv", "metric": "energy_export"},
                            "export": {"device": "grid", "metric": "energy_export"}}},
                {"site": "sme-press", "role": "consumer", "meters": {"consumption": {"device": "main-meter"}}},
                {"site": "sme-food", "role": "consumer", "meters": {"consumption": {"device": "main-meter"}}},
            ],
        }],
    },
}


def slot_line(site: str, device: str, metric: str, ts: int, kwh: float) -> str:
    return f"energy_slot,site={site},device={device},metric={metric} consumption={kwh},readings=15i {ts}"


def days(first: date, last: date):
    day = first
    while day <= last:
        yield day
        day += timedelta(days=1)


def energy_lines() -> list[str]:
    lines = []
    # sme-press: 2.0 kWh every slot of May and June 2025 (15 kWh on DAY), nothing on the GAP days.
    for day in days(date(2025, 5, 1), date(2025, 6, 30)):
        if day in GAP:
            continue
        for slot in range(48):
            kwh = 15.0 if day == DAY else 2.0
            lines.append(slot_line("sme-press", "main-meter", "energy_import", date_start_ms(day) + slot * SLOT_MS, kwh))
    start = date_start_ms(DAY)
    for slot in range(48):
        ts = start + slot * SLOT_MS
        sunny = slot in SUNNY
        lines.append(slot_line("plant-a", "pv", "energy_export", ts, 50.0 if sunny else 0.0))
        # the grid meter sees what the plant does not use itself; in the last sunny slot only 10 kWh
        lines.append(slot_line("plant-a", "grid", "energy_export", ts, (10.0 if slot == 27 else 30.0) if sunny else 0.0))
        if slot != PROVISIONAL_SLOT:
            lines.append(slot_line("sme-food", "main-meter", "energy_import", ts, 5.0))
    # a meter's slot counts as measured when the counter was also read in an earlier and a later slot
    # (interchange/slots.py): the evening before and the next morning
    for ts in (start - SLOT_MS, date_start_ms(DAY + timedelta(days=1))):
        lines += [slot_line("plant-a", "pv", "energy_export", ts, 0.0),
                  slot_line("plant-a", "grid", "energy_export", ts, 0.0),
                  slot_line("sme-food", "main-meter", "energy_import", ts, 5.0)]
    return lines


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    config = {
        "api": token_auth(manager=("admin", TOKEN)),
        # each view needs only its own domain: the CO2 view is tested even where interchange is absent
        "domains": {name: section for name, section in CONFIG.items() if name in {d.name for d in discover()}},
    }
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with app_on_influx(tmp_path_factory.mktemp("greencity-board"), energy_lines(), config) as (url, influx), httpx.Client(base_url=url, headers=headers, timeout=30) as client:
        # The August bill of sme-press, entered the way a factory does (no meter data that month).
        answer = client.post("/api/co2/sites/sme-press/inputs",
                             json=[{"kind": "electricity", "item": "default/standard", "month": "2025-08",
                                    "amount": 5000, "unit": "kWh"}])
        assert answer.status_code == 200, answer.text
        assert answer.json()["written"] == 1
        yield url, client


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def open_page(browser, url: str, path: str, token: str | None = TOKEN, now: datetime | None = None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    context = browser.new_context(viewport={"width": 1300, "height": 1000}, extra_http_headers=headers,
                                  locale="en-US", timezone_id="Asia/Tokyo")
    # the page's timers: the 60 s refresh is run on demand, not waited for; ``now``: the page's clock
    context.clock.install(**({"time": now} if now else {}))
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(url + path)
    page.wait_for_function("document.body.dataset.loaded", timeout=20_000)
    return page, errors


def group(page, key: str) -> str:
    return f'svg[data-role=monthly-chart] g.bar-group[data-key="{key}"]'


def test_co2_view_shows_the_fiscal_year_by_month_with_gaps_visible(stack, browser):
    url, _ = stack
    page, errors = open_page(browser, url, f"/board/co2.html?site=sme-press&fy={FY}&lang=en")
    try:
        assert page.evaluate("document.body.dataset.loaded") == f"sme-press/{FY}"
        assert page.locator("svg[data-role=monthly-chart] g.bar-group").count() == 12

        # May: 30 days x 48 slots x 2.0 kWh + 48 x 15.0 kWh (DAY) = 2880 + 720 = 3600 kWh;
        # market-based 3600 x 0.4 = 1440 kg, location-based 3600 x 0.45 = 1620 kg.
        may = group(page, "2025-05")
        assert page.get_attribute(may, "data-state") == "complete"
        assert page.text_content(f"{may} .bar-value") == "1,440"
        assert float(page.get_attribute(f'{may} rect[data-series="location"]', "data-value")) == pytest.approx(1620)
        assert "1,440 kg market-based" in page.text_content(f"{may} title")

        # June: 27 of 30 days measured -> completeness 27/30 = 90.0 %; 27 x 48 x 2.0 x 0.4 = 1036.8 kg.
        june = group(page, "2025-06")
        assert page.get_attribute(june, "data-state") == "incomplete"
        assert page.text_content(f"{june} .bar-note") == "90.0 %"
        assert page.text_content(f"{june} .bar-value") == "1,037"
        assert "90.0 %" in page.text_content(f"{june} title")
        assert page.text_content('[data-role=monthly-table] tr[data-period="2025-06"] .state') == "incomplete 90.0 %"

        # August: the bill, 5000 kWh x 0.4 = 2000 kg; a bill covers its whole month.
        august = group(page, "2025-08")
        assert page.get_attribute(august, "data-state") == "complete"
        assert page.text_content(f"{august} .bar-value") == "2,000"

        # July has neither meter data nor a bill: shown as missing, never as a zero bar.
        july = group(page, "2025-07")
        assert page.get_attribute(july, "data-state") == "missing"
        assert page.locator(f"{july} rect.bar").count() == 0
        assert page.text_content(f"{july} .bar-value") == "no data"

        # FY total (1440 + 1036.8 + 2000) / 1000 = 4.4768 t; target 10.0 t x 0.54 = 5.4 t.
        assert page.text_content("[data-stat=fy-total]") == "4.5 t-CO2"
        assert page.text_content("[data-stat=target]") == "5.4 t-CO2"
        assert page.text_content("[data-stat=baseline]") == "10.0 t-CO2"
        # the trajectory: the target line from FY2024 to FY2050; FY2025 has gaps, so its total is a pale
        # "part of a year" dot, not a point of the fiscal-year line
        assert page.locator("svg[data-role=trajectory-chart] .series.target polyline").count() == 1
        assert page.locator("svg[data-role=trajectory-chart] .series.actual circle").count() == 0
        dot = page.locator('svg[data-role=trajectory-chart] .series.partial circle[data-x="2025"]')
        assert float(dot.get_attribute("data-value")) == pytest.approx(4.4768)

        # the printable report of the fiscal year's last month opens; the exports are the summary's
        assert page.get_attribute("[data-role=report-link]", "href") == "/api/co2/sites/sme-press/report?month=2026-03"
        report = stack[1].get(page.get_attribute("[data-role=report-link]", "href"))
        assert report.status_code == 200 and "sme-press" in report.text
        assert page.get_attribute("[data-role=csv-link]", "href").endswith(f"period=month&fy={FY}&format=csv")
        # city: both configured sites have gaps in FY2025
        assert page.text_content("[data-stat=city-complete]") == "0 of 2 sites complete"

        # The July bill arrives: the next refresh (every 60 s) shows the month, 3000 kWh x 0.4 = 1200 kg.
        answer = stack[1].post("/api/co2/sites/sme-press/inputs",
                               json=[{"kind": "electricity", "item": "default/standard", "month": "2025-07",
                                      "amount": 3000, "unit": "kWh"}])
        assert answer.status_code == 200, answer.text
        page.clock.run_for(59_000)
        assert page.get_attribute(july, "data-state") == "missing"
        page.clock.run_for(2_000)
        page.wait_for_selector(f'{july}[data-state="complete"]', timeout=10_000)
        assert page.text_content(f"{july} .bar-value") == "1,200"

        # Japanese labels on the toggle; the figures stay.
        page.click('button[data-lang="ja"]')
        assert page.text_content("#h-monthly") == "月別CO2排出量"
        assert page.text_content(f"{june} .bar-note") == "90.0 %"
        assert page.text_content(f"{group(page, '2025-09')} .bar-value") == "データなし"
        page.screenshot(path="/tmp/board-co2.png", full_page=True)

        # another site from the picker: its own months (sme-food measured one day of May and one of June's)
        page.select_option("[data-role=site]", "sme-food")
        page.wait_for_function(f"document.body.dataset.loaded === 'sme-food/{FY}'", timeout=10_000)
        assert page.get_attribute(group(page, "2025-05"), "data-state") == "incomplete"
        assert page.get_attribute(group(page, "2025-08"), "data-state") == "missing"
        assert "site=sme-food" in page.url
        assert errors == []
    finally:
        page.context.close()


def test_a_running_fiscal_year_is_compared_with_the_baselines_pace_not_a_whole_year(stack, browser):
    """A factory manager looking at the current year in October must not read "-55 % vs baseline"
    because half of the year has not happened yet."""
    url, client = stack
    october = datetime(2025, 10, 1, tzinfo=timezone(timedelta(hours=9)))
    years = client.get("/api/co2/sites/sme-press/progress").json()["years"]
    so_far = next(y["t_co2"] for y in years if y["fy"] == FY)     # 4.4768 t, or 5.6768 once the July bill is in
    page, errors = open_page(browser, url, f"/board/co2.html?site=sme-press&fy={FY}&lang=en", now=october)
    try:
        # 2025-04-01 .. 2025-10-01 is 183 of the fiscal year's 365 days: 50.1 %. The baseline's pace is
        # 10.0 t x 183/365 = 5.0137 t; 4.4768 t so far would be (4.4768 - 5.0137) / 5.0137 = -10.7 % of it
        # (a whole year's baseline would say -55.2 %).
        pace = 10.0 * 183 / 365
        change = (so_far - pace) / pace * 100
        assert page.text_content("[data-stat=vs-baseline]") == f"{'+' if change > 0 else ''}{change:.1f} %"
        assert page.text_content("[data-stat=fy-completeness]").startswith("FY to date: 50.1 % of the year")
        assert errors == []
    finally:
        page.context.close()


def test_views_name_an_unknown_site_and_ask_to_log_in(stack, browser):
    url, _ = stack
    page, errors = open_page(browser, url, "/board/co2.html?site=nowhere&lang=en")
    try:
        assert page.get_attribute("[data-role=error]", "data-status") == "404"
        assert "nowhere" in page.text_content("[data-role=error]")
        assert page.locator("main").is_hidden()
        # the picker still offers the configured sites
        assert page.locator('[data-role=site] option[value="sme-press"]').count() == 1
    finally:
        page.context.close()
    page, errors = open_page(browser, url, "/board/interchange.html?community=nowhere&lang=en")
    try:
        assert page.get_attribute("[data-role=error]", "data-status") == "404"
        assert "nowhere" in page.text_content("[data-role=error]")
    finally:
        page.context.close()
    page, errors = open_page(browser, url, "/board/co2.html?lang=en", token=None)
    try:
        assert page.get_attribute("[data-role=error]", "data-status") == "401"
        assert page.get_attribute("[data-role=error] a", "href") == "/login"
        assert errors == []
    finally:
        page.context.close()


def test_interchange_view_shows_the_day_in_48_slots_and_the_flows(stack, browser):
    url, client = stack
    settled = client.post("/api/interchange/communities/test-pv/settle",
                          params={"start": f"{DAY.isoformat()}T00:00:00+09:00",
                                  "end": f"{(DAY + timedelta(days=1)).isoformat()}T00:00:00+09:00"})
    assert settled.status_code == 200, settled.text
    assert settled.json()["points"] > 0

    page, errors = open_page(browser, url, f"/board/interchange.html?community=test-pv&date={DAY.isoformat()}&lang=en")
    try:
        assert page.evaluate("document.body.dataset.loaded") == f"test-pv/{DAY.isoformat()}"
        slots = page.locator("svg[data-role=slots-chart] g.bar-group")
        assert slots.count() == 48
        assert page.locator('svg[data-role=slots-chart] g.bar-group[data-state="missing"]').count() == 0
        provisional = page.locator('svg[data-role=slots-chart] g.bar-group[data-state="provisional"]')
        assert provisional.count() == 1
        assert provisional.get_attribute("data-key") == str(PROVISIONAL_SLOT)

        # pro rata: slots 20-26 offer 30 kWh for a demand of 15 + 5 = 20 -> press 15, food 5 each;
        # slot 27 offers 10 -> ratio 10/20: press 7.5, food 2.5.
        # press: 7 x 15 + 7.5 = 112.5 kWh; food: 7 x 5 + 2.5 = 37.5 kWh.
        flow = 'svg[data-role=flows-chart] g.flow[data-from="plant-a"][data-to="sme-press"]'
        assert page.text_content(f"{flow} .flow-kwh") == "112.5 kWh"
        assert page.text_content('[data-role=flows-table] tr[data-to="sme-food"] td.num') == "37.5"
        # shared = 150 kWh; exported = 7 x (30 - 20) + 0 = 70 kWh
        assert page.text_content("[data-stat=shared]") == "150.0 kWh"
        assert page.text_content("[data-stat=export]") == "70.0 kWh"
        assert page.text_content("[data-stat=slots]") == "48 of 48"

        # month to date: received 112.5 kWh x 16 yen = 1800 yen; the producer supplied 150 kWh = 2400 yen
        press = '[data-role=statements-table] tr[data-site="sme-press"]'
        cells = page.locator(f"{press} td").all_text_contents()
        # CO2 avoided with the receiver's adjusted factor (co2 config, own_factor 0.4): 112.5 x 0.4 = 45.0 kg
        assert cells[2] == "112.5" and cells[3] == "1,800" and cells[4] == "45.0"
        producer = page.locator('[data-role=statements-table] tr[data-site="plant-a"] td').all_text_contents()
        assert producer[1] == "150.0" and producer[3] == "2,400"
        assert page.get_attribute("[data-role=csv-link]", "href").endswith("statements?month=2025-05&format=csv")
        # 2025-05-15 is a Thursday: all 150 kWh were shared on weekday daytime (10:00-14:00), 70 kWh exported
        weekday_day = page.locator('[data-role=breakdown-table] tr[data-day-type="weekday"][data-period="day"] td')
        assert weekday_day.all_text_contents()[:2] == ["150.0", "70.0"]
        page.screenshot(path="/tmp/board-interchange.png", full_page=True)
        assert errors == []
    finally:
        page.context.close()
