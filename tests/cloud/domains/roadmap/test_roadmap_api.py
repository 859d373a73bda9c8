"""/api/roadmap/* on the real app and a real InfluxDB 1.6: three days of a flat 10 kWh/slot load
stand for the year; scopes; saved roadmaps; a comparison as JSON, CSV and Excel."""

from __future__ import annotations

import io
import time

import httpx
import openpyxl
import pytest

from cloud.api import create_app
from cloud.config import CloudConfig
from cloud.domains._greencity.calendar import DAY_MS, SLOT_MS, day_start
from hinode import services
from hinode.security import api_secrets
from tests.cloud.test_api_kit import serve_app, write_lines

pytestmark = pytest.mark.timeout(90)
VIEWER, ADMIN = "roadmap-viewer", "roadmap-admin"
SITE = {"id": "sme-press", "own_factor": {"basic_kg_per_kwh": 0.5, "adjusted_kg_per_kwh": 0.5},
        "grid_meters": [{"device": "main-meter"}], "baseline_fy": 2013, "baseline_t_co2": 150.0}
EMPTY = {"id": "sme-empty", "own_factor": {"adjusted_kg_per_kwh": 0.5}, "grid_meters": [{"device": "main-meter"}]}


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    influx = services.influxdb(tmp_path_factory.mktemp("roadmap") / "influxdb")
    influx.start()
    first = day_start(int(time.time() * 1000)) - 3 * DAY_MS          # the three full JST days before today
    write_lines(influx.url, [f"energy_slot,site=sme-press,device=main-meter,metric=energy_import "
                             f"consumption=10.0,readings=3i {first + i * SLOT_MS}" for i in range(3 * 48)])
    tokens = [{"name": "viewer", "role": "viewer", "hash": api_secrets.hash_token(VIEWER)},
              {"name": "admin", "role": "admin", "hash": api_secrets.hash_token(ADMIN)}]
    config = CloudConfig.model_validate({"influx": {"url": influx.url}, "api": {"auth": {"tokens": tokens}},
                                         "domains": {"co2": {"sites": [SITE, EMPTY]}}})
    with serve_app(create_app(config)) as url, httpx.Client(base_url=url, timeout=30) as client:
        yield client
    influx.stop()


def as_(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def test_library_and_evaluate_on_the_measured_load(api):
    library = api.get("/api/roadmap/measures", headers=as_(VIEWER)).json()
    assert sorted(library["measures"]) == ["compressor", "ev_commuting", "heat_pump", "led", "motors", "pv",
                                           "renewable_menu"]
    assert library["measures"]["pv"]["params"]["kw"]["assumption"] is True
    body = {"site": "sme-press", "fy": 2026, "measures": [{"measure": "led", "params": {"fixtures": 40}}]}
    response = api.post("/api/roadmap/evaluate", json=body, headers=as_(VIEWER))
    assert response.status_code == 200, response.text
    result = response.json()
    assert (result["profile"]["slots"], result["factor"]["kg_per_kwh"]) == (144, 0.5)
    assert result["profile"]["kwh_per_year"] == pytest.approx(175_200)        # 10 kWh x 17,520 slots
    led = result["measures"][0]
    assert led["kwh_saved"] == pytest.approx(13_140)                          # 175,200 x 0.15 x 0.5
    assert led["co2_saved_kg"] == pytest.approx(6_570)                        # x 0.5 kg/kWh
    assert led["yen_saved"] == pytest.approx(328_500)                         # x 25 yen/kWh
    assert led["payback_years"] == pytest.approx(600_000 / 328_500)           # 40 x 15,000 yen


@pytest.mark.parametrize("body, status, text", [
    ({"site": "sme-empty", "measures": [{"measure": "led"}]}, 422, "site 'sme-empty' has no measured energy"),
    ({"site": "sme-nowhere", "measures": [{"measure": "led"}]}, 404, "not in domains.co2.sites"),
    ({"site": "sme-press", "measures": [{"measure": "led", "params": {"watts": 1}}]}, 422,
     "led.params.watts: no such parameter"),
])
def test_refusals_say_what_is_wrong(api, body, status, text):
    response = api.post("/api/roadmap/evaluate", json=body, headers=as_(VIEWER))
    assert response.status_code == status and text in response.json()["detail"], response.text


def test_save_list_and_compare_two_roadmaps(api):
    quick = {"name": "quick", "steps": [{"fy": 2026, "measure": "renewable_menu"}]}
    slow = {"name": "slow", "steps": [{"fy": 2027, "measure": "led"}, {"fy": 2029, "measure": "compressor"}]}
    refused = api.post("/api/roadmap/roadmaps", json={"site": "sme-press", "roadmap": quick}, headers=as_(VIEWER))
    assert refused.status_code == 403 and "roadmap:write" in refused.text
    for roadmap in (quick, slow):
        saved = api.post("/api/roadmap/roadmaps", json={"site": "sme-press", "roadmap": roadmap}, headers=as_(ADMIN))
        assert saved.status_code == 200, saved.text
    listed = api.get("/api/roadmap/roadmaps", params={"site": "sme-press"}, headers=as_(VIEWER)).json()
    assert [(r["name"], r["saved_by"]) for r in listed["roadmaps"]] == [("quick", "admin"), ("slow", "admin")]
    assert listed["roadmaps"][1]["roadmap"]["steps"][1]["measure"] == "compressor"

    body = {"site": "sme-press", "fy": 2026, "a": {"name": "quick"}, "b": slow}
    response = api.post("/api/roadmap/compare", json=body, headers=as_(VIEWER))
    assert response.status_code == 200, response.text
    result = response.json()
    # current: 175,200 kWh x 0.5 = 87.6 t; baseline FY2013 150 t -> FY2030 line 81 t
    assert result["a"]["target_fy2030_t_co2"] == pytest.approx(81.0)
    assert result["a"]["t_co2_fy2030"] == pytest.approx(0.0)                  # whole supply at factor 0
    # slow: LED 13,140 kWh, then compressor on the rest: 162,060 x 0.04 = 6,482.4 kWh; 87.6 - 6.57 - 3.2412 t
    assert result["b"]["t_co2_fy2030"] == pytest.approx(77.7888)
    assert result["reaches_fy2030"] == ["quick", "slow"]
    assert result["baseline"] == {"fy": 2013, "t_co2": 150.0, "source": "domains.co2.sites[].baseline_t_co2"}

    csv = api.post("/api/roadmap/compare", params={"format": "csv"}, json=body, headers=as_(VIEWER))
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    assert csv.text.splitlines()[0].startswith("fy,target_t_co2,A quick: t_co2,")
    xlsx = api.post("/api/roadmap/compare", params={"format": "xlsx"}, json=body, headers=as_(VIEWER))
    book = openpyxl.load_workbook(io.BytesIO(xlsx.content))
    assert book.sheetnames == ["years", "summary"]
    assert [c.value for c in book["summary"]["A"]][:2] == [None, "meets_fy2030"]
    missing = api.post("/api/roadmap/compare", json={**body, "a": {"name": "nope"}}, headers=as_(VIEWER))
    assert missing.status_code == 404 and "no roadmap 'nope' saved" in missing.text


def test_trajectory_of_a_heat_pump_with_the_co2_domains_fuel_factor(api):
    body = {"site": "sme-press", "fy": 2026, "roadmap": {"name": "hp", "steps": [{"fy": 2028, "measure": "heat_pump"}]}}
    response = api.post("/api/roadmap/trajectory", json=body, headers=as_(VIEWER))
    assert response.status_code == 200, response.text
    result = response.json()
    (step,) = result["measures"]
    assert step["details"]["fuel_factor"].startswith("co2 domain fuel a_heavy_oil (kL)")
    # fuel: 20 kL x 39.1 x 0.0189 x 44/12 t = 54,192.6 kg; electricity 61,546.3 kWh x 0.5 = 30,773.2 kg
    assert step["co2_saved_kg"] == pytest.approx(54_192.6 - 30_773.2, abs=1)
    # today: 87.6 t bought electricity + 54.19 t of the boiler's fuel (the Scope 1 it replaces)
    assert result["current_t_co2"] == pytest.approx(141.79, abs=0.01)
    years = {row["fy"]: row for row in result["years"]}
    assert years[2027]["t_co2"] == pytest.approx(141.79, abs=0.01)
    assert years[2028]["t_co2"] == pytest.approx(141.79 - 23.42, abs=0.01)
    assert years[2028]["investment_yen"] == 20_000_000                     # 100 kW heat x 200,000 yen
    assert result["summary"]["meets_fy2030"] is False                      # 118.4 t > 81 t
