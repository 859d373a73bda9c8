"""/api/interchange/* on the real app against a real InfluxDB 1.6: a day of energy_slot settled in one
go (admin only), then the day, per-participant slots, statements (JSON, CSV, xlsx, CO2 avoided with
the co2 domain's site factor) and the day/night x weekday/holiday breakdown."""

from __future__ import annotations

import csv
import io
from datetime import datetime

import httpx
import openpyxl
import pytest

from tests.cloud.test_api_kit import app_on_influx, token_auth

pytestmark = pytest.mark.timeout(60)

SLOT = 1_800_000
DAY = int(datetime.fromisoformat("2026-06-05T00:00:00+09:00").timestamp() * 1000)    # a Friday
VIEWER, ADMIN = "interchange-viewer", "interchange-admin"
COMMUNITY = {
    "id": "omika-pv", "name": "Omika rooftop PV community", "price_yen_per_kwh": 16.0, "grace_s": 600,
    "rules": [{"from_month": "2025-04", "rule": "static"}],
    "participants": [
        {"site": "plant", "role": "producer", "meters": {"generation": {"device": "pv", "metric": "energy_export"}}},
        {"site": "shop", "role": "consumer", "meters": {"consumption": {"device": "main"}}, "static_share": 0.5},
        {"site": "hall", "role": "consumer", "meters": {"consumption": {"device": "main"}}, "static_share": 0.5},
    ]}


def slot_line(site: str, device: str, metric: str, slot: int, kwh: float) -> str:
    return (f"energy_slot,site={site},device={device},metric={metric} consumption={kwh},readings=3i "
            f"{DAY + slot * SLOT}")


def day_of_slots() -> list[str]:
    # Every slot of the day: shop uses 4 kWh, hall 2 kWh. The plant generates 10 kWh per slot from 08:00 to
    # 16:00 (slots 16..31), nothing otherwise. Static 50/50: shop gets min(5, 4) = 4, hall min(5, 2) = 2,
    # the plant exports 10 - 6 = 4 per sunny slot. Nothing follows slot 47, so it is not complete (its end
    # may be missing) and, long past its grace period, settled provisionally.
    lines = []
    for slot in range(48):
        lines += [slot_line("shop", "main", "energy_import", slot, 4.0),
                  slot_line("hall", "main", "energy_import", slot, 2.0),
                  slot_line("plant", "pv", "energy_export", slot, 10.0 if 16 <= slot < 32 else 0.0)]
    lines += [slot_line(s, d, m, -1, 1.0) for s, d, m in (("shop", "main", "energy_import"),
                                                           ("hall", "main", "energy_import"),
                                                           ("plant", "pv", "energy_export"))]
    return lines


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    config = {
        "scheduler": {"enabled": False},
        "api": token_auth(v=("viewer", VIEWER), a=("admin", ADMIN)),
        "domains": {"interchange": {"communities": [COMMUNITY]},
                    "co2": {"sites": [{"id": "shop", "own_factor": {"adjusted_kg_per_kwh": 0.44}}]}},
    }
    with app_on_influx(tmp_path_factory.mktemp("interchange"), day_of_slots(), config) as (url, influx), \
            httpx.Client(base_url=url, headers={"Authorization": f"Bearer {VIEWER}"}, timeout=30) as viewer, \
            httpx.Client(base_url=url, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=30) as admin:
        settle = admin.post("/api/interchange/communities/omika-pv/settle",
                            params={"start": "2026-06-05T00:00:00+09:00", "end": "2026-06-06T00:00:00+09:00"})
        assert settle.status_code == 200, settle.text
        yield viewer, admin, settle.json()


def test_settling_a_day_needs_the_write_scope_and_counts_its_points(stack):
    viewer, _, settled = stack
    # 48 slots (slot 47 provisional) x 3 participants + 16 sunny slots x 2 flows (no flow stored before: no zeros)
    assert (settled["slots"], settled["provisional"], settled["unsettled"], settled["points"]) == \
        (48, 1, 0, 48 * 3 + 16 * 2)
    # settling again: the two stored pairs now get their 0 in the night slots too, so 48 x (3 + 2) points
    again = stack[1].post("/api/interchange/communities/omika-pv/settle",
                          params={"start": "2026-06-05T00:00:00+09:00", "end": "2026-06-06T00:00:00+09:00"})
    assert again.json()["points"] == 48 * 5
    refused = viewer.post("/api/interchange/communities/omika-pv/settle", params={"start": "-1d"})
    assert refused.status_code == 403 and "interchange:write" in refused.text
    too_long = stack[1].post("/api/interchange/communities/omika-pv/settle", params={"start": "-401d"})
    assert too_long.status_code == 422 and "at most 400 days" in too_long.text


def test_communities_and_an_unknown_one(stack):
    viewer, _, _ = stack
    body = viewer.get("/api/interchange/communities").json()
    assert body["communities"][0]["id"] == "omika-pv" and body["communities"][0]["rule"] == "static"
    assert body["communities"][0]["participants"][1] == {"site": "shop", "role": "consumer"}
    missing = viewer.get("/api/interchange/communities/nope/day")
    assert missing.status_code == 404 and "omika-pv" in missing.json()["detail"]
    assert httpx.get(f"{viewer.base_url}/api/interchange/communities").status_code == 401


def test_the_day_has_its_slots_and_the_flows_per_pair(stack):
    viewer, _, _ = stack
    body = viewer.get("/api/interchange/communities/omika-pv/day", params={"date": "2026-06-05"}).json()
    assert (body["community"], body["date"], body["rule"], len(body["slots"])) == \
        ("omika-pv", "2026-06-05", "static", 48)
    noon = next(s for s in body["slots"] if s["slot"] == 24)
    assert (noon["generation_kwh"], noon["consumption_kwh"], noon["shared_kwh"], noon["export_kwh"],
            noon["provisional"]) == (10.0, 6.0, 6.0, 4.0, False)
    assert [s["slot"] for s in body["slots"] if s["provisional"]] == [47]
    # 16 sunny slots: shop 16 * 4 = 64, hall 16 * 2 = 32
    assert body["flows"] == [{"from": "plant", "to": "hall", "kwh": 32.0}, {"from": "plant", "to": "shop", "kwh": 64.0}]
    rows = viewer.get("/api/interchange/communities/omika-pv/slots", params={"date": "2026-06-05"}).json()["slots"]
    shop_noon = next(r for r in rows if r["site"] == "shop" and r["slot_start"] == DAY + 24 * SLOT)
    assert (shop_noon["received_kwh"], shop_noon["grid_kwh"], shop_noon["rule"]) == (4.0, 0.0, "static")
    bad = viewer.get("/api/interchange/communities/omika-pv/day", params={"date": "05/06/2026"})
    assert bad.status_code == 422 and "expected YYYY-MM-DD" in bad.text


def test_statements_with_yen_and_co2_avoided_and_exports(stack):
    viewer, _, _ = stack
    body = viewer.get("/api/interchange/communities/omika-pv/statements", params={"month": "2026-06"}).json()
    assert (body["month"], body["rule"], body["provisional"], body["slots_settled"], body["slots_expected"]) == \
        ("2026-06", "static", True, 48, 30 * 48)
    rows = {r["site"]: r for r in body["participants"]}
    # shop: 64 kWh * 16 = 1024 yen, * 0.44 (its own factor in domains.co2) = 28.16 kg
    assert (rows["shop"]["received_kwh"], rows["shop"]["yen"], rows["shop"]["co2_avoided_kg"]) == (64.0, 1024.0, 28.16)
    # hall: 32 * 16 = 512 yen; no co2 site and no shipped national default -> factor unknown
    assert (rows["hall"]["yen"], rows["hall"]["co2_avoided_kg"], rows["hall"]["co2_note"]) == \
        (512.0, None, "factor unknown")
    # plant: supplied 96 kWh (1536 yen), generated 160, exported 64
    assert (rows["plant"]["supplied_kwh"], rows["plant"]["yen"], rows["plant"]["export_kwh"]) == (96.0, 1536.0, 64.0)
    text = viewer.get("/api/interchange/communities/omika-pv/statements",
                      params={"month": "2026-06", "format": "csv"})
    assert text.headers["content-type"].startswith("text/csv")
    assert [(r["site"], r["yen"]) for r in csv.DictReader(io.StringIO(text.text))] == [
        ("plant", "1536.0"), ("shop", "1024.0"), ("hall", "512.0")]
    book = viewer.get("/api/interchange/communities/omika-pv/statements", params={"month": "2026-06", "format": "xlsx"})
    sheet = openpyxl.load_workbook(io.BytesIO(book.content))["statements"]
    assert [c.value for c in sheet[4]][:5] == ["shop", "consumer", 0.0, 64.0, 1024.0]
    bad_month = viewer.get("/api/interchange/communities/omika-pv/statements", params={"month": "2026-13"})
    assert bad_month.status_code == 422 and "YYYY-MM" in bad_month.text


def test_breakdown_day_night_weekday_holiday(stack):
    viewer, _, _ = stack
    groups = {(g["day_type"], g["period"]): g for g in viewer.get(
        "/api/interchange/communities/omika-pv/breakdown", params={"month": "2026-06"}).json()["groups"]}
    # weekday day = 08:00-22:00 = slots 16..43 (28 slots): generation 16 * 10 = 160, shared 16 * 6 = 96,
    # export 64, consumption 28 * 6 = 168
    day = groups[("weekday", "day")]
    assert (day["slots"], day["generation_kwh"], day["shared_kwh"], day["export_kwh"], day["consumption_kwh"]) == \
        (28, 160.0, 96.0, 64.0, 168.0)
    # night: slots 0..15 and 44..47: 20 slots, nothing to share
    assert (groups[("weekday", "night")]["slots"], groups[("weekday", "night")]["shared_kwh"]) == (20, 0.0)
    assert groups[("holiday", "day")]["slots"] == 0
