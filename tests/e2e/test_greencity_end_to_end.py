"""The green-city domains through the processes a user runs: ``python -m cloud serve --config``
with co2, interchange and roadmap sections, Mosquitto, InfluxDB and ``python -m edge_agent run``
with an OCPP source whose controller takes a site target.

What the issue's users do: a factory manager imports last year's bills and reads the site's CO2 by
month and fiscal year, compares two roadmaps; a community's month is settled and its statements
exported; tomorrow's expected surplus becomes the charging site's target through a command the
edge agent executes.
"""

from __future__ import annotations

import csv
import io
import json
import time
import urllib.error
import urllib.request
from datetime import datetime, timedelta, timezone

import pytest

from cloud.domains._greencity.calendar import DAY_MS, SLOT_MS, day_start, month_of_ms
from hinode.services import free_port
from tests.e2e.pipeline import Pipeline

pytestmark = pytest.mark.timeout(180)

SITE, COMMUNITY = "plant-1", "omika-pv"
SUNNY_SLOTS = range(20, 30)            # 10:00-15:00 JST
CLOUD_CONFIG = {"domains": {
    "co2": {"sites": [
        {"id": SITE, "retailer": "default", "own_factor": {"basic_kg_per_kwh": 0.5, "adjusted_kg_per_kwh": 0.44},
         "grid_meters": [{"device": "grid-meter", "metric": "energy_import"}]},
        {"id": "sme-press", "retailer": "default", "own_factor": {"basic_kg_per_kwh": 0.5, "adjusted_kg_per_kwh": 0.44},
         "grid_meters": [{"device": "main-meter"}]},
        {"id": "sme-machining", "retailer": "tepco-ep", "baseline_fy": 2013, "baseline_t_co2": 95.0}]},
    "interchange": {"communities": [{
        "id": COMMUNITY, "price_yen_per_kwh": 16.0, "rules": [{"from_month": "2020-04", "rule": "pro_rata"}],
        "participants": [
            {"site": SITE, "role": "producer",
             "meters": {"generation": {"device": "pv-inverter", "metric": "energy_export"},
                        "export": {"device": "grid-meter", "metric": "energy_export"}},
             "charging": {"agent": "edge-01", "source": "chargers", "max_kw": 30}},
            {"site": "sme-press", "role": "consumer", "meters": {"consumption": {"device": "main-meter"}}}]}]},
}}


def history_lines(days: int, now_ms: int) -> list[str]:
    """``energy_slot`` of the last ``days`` JST days: PV 40 kWh and export 30 kWh per sunny slot at the
    plant; the press shop uses 10 kWh per slot from 08:00 to 17:00 and 2 kWh otherwise."""
    lines = []
    first = day_start(now_ms) - days * DAY_MS
    for i in range(days * 48 + 48):
        ts = first + i * SLOT_MS
        slot = i % 48
        sunny = slot in SUNNY_SLOTS
        for device, metric, site, kwh in (("pv-inverter", "energy_export", SITE, 40.0 if sunny else 0.0),
                                          ("grid-meter", "energy_export", SITE, 30.0 if sunny else 0.0),
                                          ("grid-meter", "energy_import", SITE, 0.0 if sunny else 20.0),
                                          ("main-meter", "energy_import", "sme-press", 10.0 if 16 <= slot < 34 else 2.0)):
            lines.append(f"energy_slot,device={device},metric={metric},site={site} consumption={kwh},readings=3i {ts}")
    return lines


def post_raw(pipeline: Pipeline, path: str, body: bytes, content_type: str) -> tuple[int, dict]:
    request = urllib.request.Request(f"http://127.0.0.1:{pipeline.api_port}{path}", data=body, method="POST",
                                     headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def get_text(pipeline: Pipeline, path: str) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{pipeline.api_port}{path}", timeout=30) as resp:
        return resp.read().decode("utf-8-sig")


@pytest.fixture(scope="module")
def city(tmp_path_factory):
    pipeline = Pipeline(tmp_path_factory.mktemp("greencity"), cloud_config=CLOUD_CONFIG).start()
    try:
        now_ms = int(time.time() * 1000)
        lines = history_lines(9, now_ms)
        for i in range(0, len(lines), 5000):
            status = urllib.request.urlopen(urllib.request.Request(
                f"{pipeline.influx.url}/write?db=hinode&precision=ms", data="\n".join(lines[i:i + 5000]).encode(),
                method="POST"), timeout=30).status
            assert status == 204
        yield pipeline
    finally:
        pipeline.stop()


def test_a_factory_manager_imports_last_years_bills_and_reads_co2_by_month_and_fiscal_year(city):
    bills = "年月,使用量(kWh),金額(円)\n2025/04,12000,330000\n2025/05,\"11,000\",302500\n2025/06,lots,0\n"
    status, answer = post_raw(city, "/api/co2/sites/sme-machining/inputs/import?filename=bills.csv",
                              bills.encode("shift_jis"), "text/csv")
    assert status == 200, answer
    assert [r["row"] for r in answer["rejected"]] == [4]           # the bad row is named, the good ones kept
    months = {r["period"]: r for r in city.api("/api/co2/sites/sme-machining/summary?period=month&fy=2025")["rows"]}
    april = months["2025-04"]
    assert april["kwh_billed"] == 12000 and april["electricity_source"] == "bill"
    # tepco-ep: the newest verified factor (FY2015 results, adjusted 0.491) -> 12,000 x 0.491 = 5,892 kg
    assert april["scope2_market_kg"] == pytest.approx(5892.0)
    assert months["2025-05"]["kwh_billed"] == 11000
    assert months["2025-06"]["kwh"] is None or months["2025-06"]["kwh"] == 0 or months["2025-06"]["completeness"] in (None, 0)
    fiscal = city.api("/api/co2/sites/sme-machining/summary?period=fy&fy=2025")["rows"]
    assert fiscal[0]["scope2_market_kg"] == pytest.approx(5892.0 + 11000 * 0.491)
    progress = city.api("/api/co2/sites/sme-machining/progress")
    assert progress["baseline"]["t_co2"] == 95.0
    assert {"fy": 2030, "t_co2": pytest.approx(95.0 * 0.54)} in progress["target_line"]


def test_two_roadmaps_are_compared_on_the_sites_own_profile(city):
    body = {"site": "sme-press", "fy": 2026,
            "a": {"name": "led-and-pv", "steps": [{"measure": "led", "fy": 2026},
                                                   {"measure": "pv", "fy": 2027, "params": {"kw": 30}}]},
            "b": {"name": "nothing", "steps": []}}
    status, answer = city.post("/api/roadmap/compare", body)
    assert status == 200, answer
    by_fy = {r["fy"]: r for r in answer["rows"]}
    assert by_fy[2030]["a_t_co2"] < by_fy[2030]["b_t_co2"]          # the measures lower the trajectory
    assert by_fy[2026]["a_t_co2"] < by_fy[2026]["b_t_co2"]          # LED counts from its first fiscal year
    assert min(by_fy) == 2026 and answer["a"] and answer["b"]


def test_a_communitys_month_is_settled_and_its_statements_exported(city):
    now_ms = int(time.time() * 1000)
    status, settled = city.post("/api/interchange/communities/omika-pv/settle?start=-9d", {})
    assert status == 200, settled
    assert settled["points"] > 0 and settled["slots"] >= 7 * 48
    day = datetime.fromtimestamp((day_start(now_ms) - 3 * DAY_MS) / 1000, timezone(timedelta(hours=9))).date()
    view = city.api(f"/api/interchange/communities/omika-pv/day?date={day.isoformat()}")
    flows = {(f["from"], f["to"]): f["kwh"] for f in view["flows"]}
    # pro rata: 30 kWh shareable, the shop takes its 10 kWh in each of the 10 sunny slots
    assert flows == {(SITE, "sme-press"): pytest.approx(100.0)}
    month = month_of_ms(day_start(now_ms) - 3 * DAY_MS)
    text = get_text(city, f"/api/interchange/communities/omika-pv/statements?month={month}&format=csv")
    rows = {r["site"]: r for r in csv.DictReader(line for line in io.StringIO(text) if "," in line)
            if r.get("site")}
    assert float(rows["sme-press"]["received_kwh"]) > 0
    assert float(rows["sme-press"]["yen"]) == pytest.approx(float(rows["sme-press"]["received_kwh"]) * 16, abs=1)


def test_tomorrows_expected_surplus_reaches_the_charging_site_as_its_target(city):
    port = free_port()
    city.agent([{"type": "ocpp", "name": "chargers", "host": "127.0.0.1", "port": port, "security_profile": 0,
                 "chargers": [{"id": "CP01", "mode": "pv"}],
                 "controller": {"interval_s": 1, "grid_meter": {"device": "grid-meter", "metric": "power_total"}}}])
    city.wait(lambda: any(a.get("agent") == "edge-01" and a.get("state") == "online"
                          for s in city.api("/api/sites")["sites"] for a in s.get("agents", [])),
              "the charging site's agent online", timeout=60)
    city.post("/api/interchange/communities/omika-pv/settle?start=-9d", {})
    status, answer = city.post("/api/interchange/communities/omika-pv/charging-target", {})
    assert status == 200, answer
    (target,) = answer["targets"]
    # a week before tomorrow: 30 kWh offered - 10 kWh the shop takes = 20 kWh per sunny slot = 40 kW,
    # capped at the participant's max_kw 30; the window is the 10 sunny slots
    assert target["target"]["power_kw"] == 30.0
    assert target["target"]["until_ts"] - target["target"]["from_ts"] == len(SUNNY_SLOTS) * SLOT_MS
    assert target["command"], target["reason"]
    outcome = city.wait(lambda: (o := city.api(f"/api/commands/{target['command']['id']}"))["status"] == "done" and o,
                        "the site_target command done by the agent", timeout=60)
    assert outcome["issued_by"] == "local (auth off)" and outcome["target"] == "chargers"
    # the controller took it: it replaces the PV surplus as its budget during tomorrow's window
    assert outcome["message"] == "site target 30 kW" and outcome["data"] == {"power_kw": 30.0}
