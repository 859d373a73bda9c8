"""The co2 domain against a real InfluxDB 1.6 and the real app: inputs (JSON, CSV, xlsx), summaries,
exports, the monthly report, the city aggregate, scopes, recompute and the co2.slots job."""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import datetime

import httpx
import pytest
from openpyxl import Workbook, load_workbook

from cloud.config import InfluxConfig, SchedulerConfig
from cloud.domains._greencity.calendar import SLOT_MS, month_range_ms
from cloud.domains.co2 import DOMAIN
from cloud.domains.co2.config import Co2Config
from cloud.influx import AsyncInfluxClient
from cloud.scheduler import Scheduler
from tests.cloud.domains.co2.factor_files import write_factor_dir
from tests.cloud.test_api_kit import app_on_influx, token_auth
from tests.support.waiting import wait_until

pytestmark = pytest.mark.timeout(120)

VIEWER, ADMIN = "co2-viewer-token", "co2-admin-token"
MAY, JUNE = month_range_ms("2024-05"), month_range_ms("2024-06")
GAP_DAY = (JUNE[0] + 48 * SLOT_MS, JUNE[0] + 96 * SLOT_MS)          # 2024-06-02 has no data


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1000)


def slot_line(site: str, ts: int, kwh: float) -> str:
    return f"energy_slot,site={site},device=main-meter,metric=energy_import consumption={kwh},readings=3i {ts}"


def energy_lines() -> list[str]:
    lines = [slot_line("sme-press", t, 2.0) for t in range(*MAY, SLOT_MS)]
    lines += [slot_line("sme-press", t, 1.0) for t in range(*JUNE, SLOT_MS) if not GAP_DAY[0] <= t < GAP_DAY[1]]
    lines += [slot_line("sme-press", ms("2025-03-31T23:30:00+09:00"), 10.0),
              slot_line("sme-press", ms("2025-04-01T00:00:00+09:00"), 10.0)]
    return lines


def co2_config(factor_dir) -> dict:
    return {"factors_dir": str(factor_dir), "sites": [
        {"id": "sme-press", "name": "Press shop A", "retailer": "testco",
         "grid_meters": [{"device": "main-meter"}], "baseline_fy": 2024},
        {"id": "sme-machining", "name": "Machining B", "retailer": "testco", "production_unit": "t",
         "baseline_t_co2": 10.0, "baseline_fy": 2013},
        {"id": "city-hall-annex", "retailer": "testco", "grid_meters": [{"device": "main-meter"}]}]}


MACHINING_INPUTS = [
    {"kind": "electricity", "item": "testco/standard", "month": "2024-04", "amount": 800, "unit": "kWh"},
    {"kind": "electricity", "month": "2024-05", "amount": 1000, "cost_yen": 31000},
    {"kind": "electricity", "month": "2024-06", "amount": 1200, "cost_yen": 36000},
    {"kind": "fuel", "item": "city_gas_13a", "month": "2024-05", "amount": 1000, "unit": "m3"},
    {"kind": "production", "item": "t", "month": "2024-05", "amount": 90},
]


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    factor_dir = write_factor_dir(tmp_path_factory.mktemp("factors"))
    config = {
        "api": token_auth(viewer=("viewer", VIEWER), admin=("admin", ADMIN)),
        "domains": {"co2": co2_config(factor_dir)},
    }
    with app_on_influx(tmp_path_factory.mktemp("co2"), energy_lines(), config) as (url, influx), \
            httpx.Client(base_url=url, headers={"Authorization": f"Bearer {VIEWER}"}, timeout=30) as viewer, \
            httpx.Client(base_url=url, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=30) as admin:
        # the machining shop's bills, gas and production; the import tests enter the same again
        entered = admin.post("/api/co2/sites/sme-machining/inputs", json=MACHINING_INPUTS)
        assert entered.status_code == 200 and entered.json()["written"] == len(MACHINING_INPUTS), entered.text
        yield viewer, admin, influx, factor_dir


def bills_xlsx() -> bytes:
    book = Workbook()
    sheet = book.active
    sheet.append(["種別", "品目", "年月", "数量", "単位", "金額(円)"])
    sheet.append(["fuel", "city_gas_13a", "2024-05", 1000, "m3", 150000])
    sheet.append(["production", "t", "2024-05", 90, "t", None])
    sheet.append(["fuel", "city_gas_13a", "2024-06", 5, "kL", None])          # a gas amount in kL: refused
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def test_a_viewer_cannot_enter_inputs_an_admin_can(stack):
    viewer, admin, _, _ = stack
    entry = [{"kind": "electricity", "item": "testco/standard", "month": "2024-04", "amount": 800, "unit": "kWh"}]
    refused = viewer.post("/api/co2/sites/sme-machining/inputs", json=entry)
    assert refused.status_code == 403 and "co2:write" in refused.text
    done = admin.post("/api/co2/sites/sme-machining/inputs", json=entry)
    assert done.status_code == 200 and done.json()["written"] == 1, done.text
    assert viewer.get("/api/co2/sites/sme-machining/inputs", params={"fy": 2024}).json()["inputs"][0]["amount"] == 800


def test_csv_and_xlsx_imports_write_good_rows_and_list_bad_ones(stack):
    viewer, admin, _, _ = stack
    content = "年月,使用量(kWh),金額(円)\n2024-05,\"1,000\",31000\n2024/06,abc,1\n2024年6月,1200,36000\n".encode()
    answer = admin.post("/api/co2/sites/sme-machining/inputs/import", params={"filename": "bills.csv"},
                        content=content, headers={"Content-Type": "text/csv"})
    assert answer.status_code == 200, answer.text
    assert (answer.json()["written"], answer.json()["rejected"]) == (2, [{"row": 3, "reason": "amount 'abc' is not a number"}])
    answer = admin.post("/api/co2/sites/sme-machining/inputs/import", params={"filename": "fuel.xlsx"},
                        content=bills_xlsx())
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["written"] == 2 and [r["row"] for r in body["rejected"]] == [4] and "kL" in body["rejected"][0]["reason"]
    nothing = admin.post("/api/co2/sites/sme-machining/inputs/import", params={"filename": "x.csv"},
                         content="年月,使用量(kWh)\n2024-13,5\n".encode())
    assert nothing.status_code == 422 and nothing.json()["detail"]["rejected"][0]["row"] == 2
    inputs = viewer.get("/api/co2/sites/sme-machining/inputs", params={"fy": 2024}).json()["inputs"]
    by_key = {(i["kind"], i["month"]): i for i in inputs}
    assert by_key[("electricity", "2024-05")]["source"] == "csv:bills.csv"
    assert by_key[("fuel", "2024-05")]["amount"] == pytest.approx(1.0) and by_key[("fuel", "2024-05")]["unit"] == "千m3"
    metrics = admin.get("/metrics").text
    assert 'hinode_api_invalid_parameters_total{parameter="co2_input_row"} 3.0' in metrics
    sites = {s["site"]: s for s in viewer.get("/api/co2/sites").json()["sites"]}
    assert (sites["sme-machining"]["has_bills"], sites["sme-machining"]["meters"]) == (True, 0)
    assert (sites["sme-press"]["has_bills"], sites["sme-press"]["meters"]) == (False, 1)


def test_entering_a_month_again_replaces_it_cost_included(stack):
    viewer, admin, _, _ = stack
    path = "/api/co2/sites/sme-machining/inputs"
    first = {"kind": "electricity", "month": "2023-08", "amount": 500, "cost_yen": 15000}
    assert admin.post(path, json=[first]).status_code == 200
    assert admin.post(path, json=[{"kind": "electricity", "month": "2023-08", "amount": 450}]).status_code == 200
    (entry,) = [i for i in viewer.get(path, params={"fy": 2023}).json()["inputs"] if i["month"] == "2023-08"]
    assert (entry["amount"], entry["cost_yen"], entry["item"], entry["entered_by"]) == (450.0, None, "testco/standard",
                                                                                        "admin")


def test_the_monthly_summary_of_a_metered_site(stack):
    viewer, _, _, _ = stack
    body = viewer.get("/api/co2/sites/sme-press/summary", params={"fy": 2024}).json()
    rows = {r["period"]: r for r in body["rows"]}
    # May: 1488 slots x 2.0 = 2976 kWh; x 0.450 (FY2023 results) = 1339.2 kg market, x 0.400 = 1190.4 basic
    assert rows["2024-05"]["kwh"] == pytest.approx(2976.0) and rows["2024-05"]["completeness"] == 1.0
    assert rows["2024-05"]["scope2_market_kg"] == pytest.approx(1339.2)
    assert rows["2024-05"]["scope2_basic_kg"] == pytest.approx(1190.4)
    # June: 1440 slots, one day missing -> 1392 kWh, completeness 1392/1440; July: nothing -> 0, not a zero figure
    assert rows["2024-06"]["kwh"] == pytest.approx(1392.0)
    assert rows["2024-06"]["completeness"] == pytest.approx(1392 / 1440) and rows["2024-06"]["incomplete"]
    assert rows["2024-07"]["completeness"] == 0.0 and rows["2024-07"]["kwh"] is None
    assert rows["2024-07"]["total_kg"] is None
    assert body["factor"]["retailer"] == "testco" and body["factor"]["source"] == "test doc FY2023"
    # baseline FY2024 computed: 1339.2 + 1392 x 0.45 (626.4) + March's 10 x 0.45 (4.5) = 1970.1 kg
    assert body["baseline"]["t_co2"] == pytest.approx(1.9701) and body["baseline"]["fy"] == 2024
    assert body["target_fy2030_t_co2"] == pytest.approx(1.9701 * 0.54)
    days = {r["period"]: r for r in viewer.get("/api/co2/sites/sme-press/summary",
                                                params={"fy": 2024, "period": "day"}).json()["rows"]}
    assert (days["2024-06-01"]["kwh"], days["2024-06-01"]["completeness"]) == (48.0, 1.0)
    assert (days["2024-06-02"]["kwh"], days["2024-06-02"]["completeness"]) == (None, 0.0)
    fy = viewer.get("/api/co2/sites/sme-press/summary", params={"fy": 2024, "period": "fy"}).json()["rows"]
    assert fy[0]["kwh"] == pytest.approx(2976 + 1392 + 10) and fy[0]["completeness"] < 0.2


def test_a_site_without_meters_reports_its_bills_and_fuels(stack):
    viewer, _, _, _ = stack
    rows = {r["period"]: r for r in viewer.get("/api/co2/sites/sme-machining/summary",
                                               params={"fy": 2024}).json()["rows"]}
    may = rows["2024-05"]
    # bill 1000 kWh x 0.450 = 450 kg; gas 1 千m3 x 2053.33 = 2053.33 kg; total 2503.33 kg over 90 t = 27.81 kg/t
    assert (may["electricity_source"], may["kwh"], may["completeness"]) == ("bill", 1000.0, 1.0)
    assert may["scope1_kg"] == pytest.approx(2053.333, abs=1e-2)
    assert may["total_kg"] == pytest.approx(2503.333, abs=1e-2)
    assert may["intensity_kg_per_unit"] == pytest.approx(2503.333 / 90, abs=1e-3)
    assert rows["2024-06"]["kwh"] == 1200.0


def test_a_fiscal_year_boundary_in_the_slots(stack):
    viewer, _, _, _ = stack
    march = viewer.get("/api/co2/sites/sme-press/slots", params={"date": "2025-03-31"}).json()["slots"]
    april = viewer.get("/api/co2/sites/sme-press/slots", params={"date": "2025-04-01"}).json()["slots"]
    assert len(march) == 48 and len(april) == 48
    # 10 kWh x 0.450 (FY2024 slot, FY2023 results) vs 10 kWh x 0.350 (FY2025 slot, FY2024 results)
    assert (march[47]["kwh"], march[47]["kg_market"], march[47]["completeness"]) == (10.0, pytest.approx(4.5), 1.0)
    assert (april[0]["kwh"], april[0]["kg_market"]) == (10.0, pytest.approx(3.5))
    assert (march[0]["kwh"], march[0]["kg_market"], march[0]["completeness"]) == (None, None, 0.0)


def test_exports_parse_back(stack):
    viewer, _, _, _ = stack
    text = viewer.get("/api/co2/sites/sme-press/summary", params={"fy": 2024, "format": "csv"})
    assert text.status_code == 200 and text.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(text.text)))
    may = next(r for r in rows if r["period"] == "2024-05")
    assert (may["site"], float(may["kwh"]), float(may["scope2_market_kg"])) == ("sme-press", 2976.0, pytest.approx(1339.2))
    sheet = viewer.get("/api/co2/city", params={"fy": 2024, "format": "xlsx"})
    book = load_workbook(io.BytesIO(sheet.content))
    assert book.sheetnames == ["months", "sites"]
    header, *site_rows = list(book["sites"].iter_rows(values_only=True))
    assert header == ("fy", "site", "t_co2", "completeness") and len(site_rows) == 3


def test_the_monthly_report_shows_the_figures(stack):
    viewer, _, _, _ = stack
    page = viewer.get("/api/co2/sites/sme-press/report", params={"month": "2024-06"})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    assert "Press shop A" in html and "2024-06" in html and "@media print" in html
    assert "1,392.0" in html and "626.4" in html and "96.7 %" in html      # kWh, 1392 x 0.45, completeness
    assert "2,976.0" not in html and "test doc FY2023" in html and "Data gaps" in html
    bad = viewer.get("/api/co2/sites/sme-press/report", params={"month": "June"})
    assert bad.status_code == 422 and "month" in bad.text


def test_the_city_counts_incomplete_sites(stack):
    viewer, _, _, _ = stack
    body = viewer.get("/api/co2/city", params={"fy": 2024}).json()
    assert (body["fy"], body["sites"], body["sites_complete"]) == (2024, 3, 0)
    per_site = {s["site"]: s for s in body["per_site"]}
    assert per_site["city-hall-annex"]["completeness"] == 0.0 and per_site["city-hall-annex"]["t_co2"] is None
    may = next(m for m in body["months"] if m["period"] == "2024-05")
    # sme-press 1339.2 kg + sme-machining 2503.33 kg = 3.8425 t, two sites reporting
    assert may["sites_reporting"] == 2 and may["t_co2"] == pytest.approx(3.8425, abs=1e-4)


def test_progress_against_a_configured_baseline(stack):
    viewer, _, _, _ = stack
    body = viewer.get("/api/co2/sites/sme-machining/progress").json()
    assert body["baseline"] == {"fy": 2013, "t_co2": 10.0, "source": "configured"}
    line = {p["fy"]: p["t_co2"] for p in body["target_line"]}
    assert line[2030] == pytest.approx(5.4) and line[2050] == 0.0
    years = {y["fy"]: y for y in body["years"]}
    # FY2024: April bill 800 x 0.45 = 360 kg, May 2503.33 kg, June bill 1200 x 0.45 = 540 kg -> 3.4033 t;
    # bills for 3 months of 12: completeness (30 + 31 + 30) days / 365 days = 0.2493
    assert years[2013] == {"fy": 2013, "t_co2": None, "completeness": 0.0}
    assert years[2024]["t_co2"] == pytest.approx(3.40333, abs=1e-4)
    assert years[2024]["completeness"] == pytest.approx(91 / 365)


def test_unknown_site_and_bad_parameters(stack):
    viewer, _, _, _ = stack
    missing = viewer.get("/api/co2/sites/nowhere/summary")
    assert missing.status_code == 404 and "sme-press" in missing.json()["detail"]
    assert viewer.get("/api/co2/sites/sme-press/summary", params={"period": "week"}).status_code == 422
    assert httpx.get(f"{viewer.base_url}/api/co2/sites").status_code == 401


def test_recompute_and_the_job_write_co2_slot(stack):
    viewer, admin, influx, factor_dir = stack
    params = {"start": "2024-05-01T00:00:00+09:00", "end": "2024-07-01T00:00:00+09:00"}
    assert viewer.post("/api/co2/recompute", params=params).status_code == 403
    answer = admin.post("/api/co2/recompute", params=params)
    assert answer.status_code == 200, answer.text
    # 2 metered sites x (1488 + 1440) slots, a point for each (gaps carry meters_measured = 0)
    assert answer.json()["points"] == 2 * (1488 + 1440)
    query = ('SELECT sum("kwh"), sum("kg_market"), sum("meters_measured"), sum("meters_expected") FROM "co2_slot" '
             f'WHERE "site" = \'sme-press\' AND time >= {JUNE[0]}ms AND time < {JUNE[1]}ms')
    row = wait_until(lambda: httpx.get(f"{influx.url}/query", params={"db": "hinode", "q": query})
                     .json()["results"][0]["series"][0]["values"][0], "co2_slot points for June")
    assert row[1:] == [pytest.approx(1392.0), pytest.approx(626.4), 1392, 1440]
    (job,) = DOMAIN.jobs
    config = Co2Config.model_validate(co2_config(factor_dir))

    async def run():
        client = AsyncInfluxClient(InfluxConfig(url=influx.url))
        scheduler = Scheduler(client, SchedulerConfig(), now_ms=lambda: MAY[0] + 3600_000)
        scheduler.add(job, config)
        try:
            return await scheduler.run_slot(job.name, MAY[0])
        finally:
            await client.aclose()

    points = asyncio.run(run())
    by_site = {p.tags["site"]: p.fields for p in points}
    assert by_site["sme-press"] == {"meters_expected": 1, "meters_measured": 1, "kwh": 2.0,
                                    "kg_location": pytest.approx(0.88), "kg_market": pytest.approx(0.9),
                                    "kg_basic": pytest.approx(0.8)}
    assert by_site["city-hall-annex"] == {"meters_expected": 1, "meters_measured": 0}
