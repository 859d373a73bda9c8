"""Statements (kWh, yen, CO2 avoided), the day/night x weekday/holiday breakdown, exports, the
config checks, slot completeness and what the job settles: hand-checked."""

from __future__ import annotations

import csv
import io
from datetime import datetime

import openpyxl
import polars as pl
import pytest
from pydantic import ValidationError

from cloud.domains.interchange import slots as slot_rules
from cloud.domains.interchange import statements
from cloud.domains.interchange.config import Community, InterchangeConfig
from cloud.domains.interchange.service import allocate, flows, participants_frame


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1000)


FRI_NOON, SAT_NOON = ms("2026-06-05T12:00:00+09:00"), ms("2026-06-06T12:00:00+09:00")   # a weekday, a holiday
PARTICIPANTS = [{"site": "P", "role": "producer"}, {"site": "A", "role": "consumer", "static_share": 0.5},
                {"site": "B", "role": "consumer", "static_share": 0.3}, {"site": "C", "role": "consumer",
                                                                         "static_share": 0.2}]


def settled_static() -> tuple[pl.DataFrame, pl.DataFrame]:
    # The static-key example of test_allocation: received A 40 + 15 = 55, B 30 + 9 = 39, C 10 + 2 = 12,
    # P supplied 80 + 26 = 106 and exported 20 + 4 = 24.
    frame = pl.DataFrame({
        "slot_start": [FRI_NOON] * 4 + [SAT_NOON] * 4, "site": ["P", "A", "B", "C"] * 2,
        "generation_kwh": [100.0, None, None, None, 30.0, None, None, None],
        "consumption_kwh": [None, 40.0, 30.0, 10.0, None, 40.0, 30.0, 2.0]})
    allocation = allocate(frame, participants_frame(PARTICIPANTS), "static")
    settled = allocation.with_columns(pl.col("role").cast(pl.String), pl.lit("static").alias("rule"),
                                      (pl.col("slot_start") == SAT_NOON).alias("provisional"))
    return settled, flows(allocation)


def test_a_statement_in_kwh_yen_and_co2_avoided():
    settled, flow = settled_static()
    rows = {r["site"]: r for r in statements.statements(settled, flow, PARTICIPANTS, 16.0,
                                                        {"A": 0.45, "B": None, "C": 0.5})}
    # A: 55 kWh * 16 yen = 880 yen paid; CO2 avoided 55 * 0.45 = 24.75 kg
    assert (rows["A"]["received_kwh"], rows["A"]["yen"], rows["A"]["yen_paid"], rows["A"]["co2_avoided_kg"]) == \
        (55.0, 880.0, 880.0, 24.75)
    # B: 39 * 16 = 624 yen; its retailer's factor is not known
    assert (rows["B"]["yen"], rows["B"]["co2_avoided_kg"], rows["B"]["co2_note"]) == (624.0, None, "factor unknown")
    # C: 12 * 16 = 192 yen, 12 * 0.5 = 6 kg
    assert (rows["C"]["yen"], rows["C"]["co2_avoided_kg"]) == (192.0, 6.0)
    # P earns 106 * 16 = 1696 yen; generation 130 = self 0 + supplied 106 + export 24; its CO2 avoided needs
    # B's factor too, so it is unknown
    p = rows["P"]
    assert (p["supplied_kwh"], p["yen_earned"], p["generation_kwh"], p["export_kwh"], p["self_kwh"],
            p["co2_avoided_kg"], p["slots"], p["slots_provisional"]) == (106.0, 1696.0, 130.0, 24.0, 0.0, None, 2, 1)


def test_a_producers_co2_avoided_is_its_flows_times_each_receivers_factor():
    settled, flow = settled_static()
    rows = {r["site"]: r for r in statements.statements(settled, flow, PARTICIPANTS, 16.0,
                                                        {"A": 0.45, "B": 0.4, "C": 0.5})}
    # 55 * 0.45 + 39 * 0.4 + 12 * 0.5 = 24.75 + 15.6 + 6 = 46.35
    assert rows["P"]["co2_avoided_kg"] == pytest.approx(46.35, abs=1e-9)


def test_yen_is_rounded_half_up():
    assert (statements.yen(2.5), statements.yen(3.5), statements.yen(2.4999)) == (3, 4, 2)


def test_breakdown_shows_the_holiday_surplus():
    settled, _ = settled_static()
    groups = {(g["day_type"], g["period"]): g for g in statements.breakdown(settled)}
    # Friday noon: generation 100, consumption 80, shared 80, export 20 -> 80 % of the surplus shared
    friday = groups[("weekday", "day")]
    assert (friday["slots"], friday["generation_kwh"], friday["consumption_kwh"], friday["shared_kwh"],
            friday["export_kwh"], friday["shared_fraction"], friday["coverage"]) == \
        (1, 100.0, 80.0, 80.0, 20.0, 0.8, 1.0)
    # Saturday (a holiday) noon: generation 30, consumption 72, shared 26, export 4: 26 / 30 = 0.8667 shared,
    # 26 / 72 = 0.3611 of the consumption covered
    saturday = groups[("holiday", "day")]
    assert (saturday["shared_kwh"], saturday["export_kwh"], saturday["shared_fraction"], saturday["coverage"]) == \
        (26.0, 4.0, 0.8667, 0.3611)
    assert groups[("weekday", "night")]["slots"] == 0 and groups[("weekday", "night")]["shared_fraction"] is None


def test_day_view_totals_per_slot_and_flows_per_pair():
    settled, flow = settled_static()
    slots, pairs = statements.day_view(settled.filter(pl.col("slot_start") == FRI_NOON),
                                       flow.filter(pl.col("slot_start") == FRI_NOON))
    assert slots == [{"slot_start": FRI_NOON, "slot": 24, "generation_kwh": 100.0, "consumption_kwh": 80.0,
                      "shared_kwh": 80.0, "export_kwh": 20.0, "provisional": False}]
    assert pairs == [{"from": "P", "to": "A", "kwh": 40.0}, {"from": "P", "to": "B", "kwh": 30.0},
                     {"from": "P", "to": "C", "kwh": 10.0}]


def test_csv_and_xlsx_exports_carry_the_statement():
    settled, flow = settled_static()
    rows = statements.statements(settled, flow, PARTICIPANTS, 16.0, {"A": 0.45, "B": None, "C": 0.5})
    table = list(csv.DictReader(io.StringIO(statements.statements_csv(rows, "omika-pv", "2026-06", 16.0))))
    assert [(r["site"], r["received_kwh"], r["yen"], r["co2_avoided_kg"]) for r in table] == [
        ("P", "0.0", "1696.0", ""), ("A", "55.0", "880.0", "24.75"), ("B", "39.0", "624.0", ""),
        ("C", "12.0", "192.0", "6.0")]
    book = openpyxl.load_workbook(io.BytesIO(statements.statements_xlsx(rows, statements.breakdown(settled),
                                                                        "omika-pv", "2026-06", 16.0)))
    sheet = book["statements"]
    assert [c.value for c in sheet[3]][:5] == ["P", "producer", 106.0, 0.0, 1696.0]
    assert book["breakdown"]["A1"].value == "day_type"


COMMUNITY = {
    "id": "omika-pv", "price_yen_per_kwh": 16.0,
    "rules": [{"from_month": "2025-04", "rule": "pro_rata"}, {"from_month": "2026-01", "rule": "static"}],
    "participants": [
        {"site": "plant", "role": "producer", "meters": {"generation": {"device": "pv", "metric": "energy_export"},
                                                         "export": {"device": "grid", "metric": "energy_export"}}},
        {"site": "shop", "role": "consumer", "meters": {"consumption": {"device": "main"}}, "static_share": 0.6},
        {"site": "hall", "role": "consumer", "meters": {"consumption": {"device": "main"}}, "static_share": 0.3},
    ],
}


def test_config_rules_per_month_and_meters():
    community = Community.model_validate(COMMUNITY)
    assert (community.rule_for("2025-03"), community.rule_for("2025-12"), community.rule_for("2026-04")) == \
        ("pro_rata", "pro_rata", "static")
    assert [(m.site, m.device, m.metric) for m in community.meters()] == [
        ("plant", "pv", "energy_export"), ("plant", "grid", "energy_export"), ("shop", "main", "energy_import"),
        ("hall", "main", "energy_import")]


@pytest.mark.parametrize("change, message", [
    ({"participants": [*COMMUNITY["participants"][:2],
                       {**COMMUNITY["participants"][2], "static_share": 0.5}]},
     "participants' static_share sum to 1.1; expected at most 1"),
    ({"participants": [{**COMMUNITY["participants"][0], "meters": {"consumption": {"device": "m"}}},
                       *COMMUNITY["participants"][1:]]}, "participant plant: a producer needs meters.generation"),
    ({"rules": [{"from_month": "2025-13", "rule": "static"}]}, "expected a month as YYYY-MM"),
    ({"rules": [{"from_month": "2025-04", "rule": "fair"}]}, "'static', 'pro_rata' or 'priority'"),
])
def test_config_errors_name_the_key(change, message):
    with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        InterchangeConfig.model_validate({"communities": [{**COMMUNITY, **change}]})


SLOT = 1_800_000


def energy(rows: list[tuple[str, str, int, float, int]]) -> pl.DataFrame:
    return pl.DataFrame([(site, device, "energy_import", start, kwh, readings) for site, device, start, kwh, readings
                         in rows], orient="row", schema=["site", "device", "metric", "slot_start", "kwh", "readings"])


def test_a_slot_is_complete_once_every_meter_was_read_after_it():
    meters = pl.DataFrame({"site": ["P", "A"], "device": ["pv", "m"], "metric": ["energy_import"] * 2,
                           "kind": ["generation", "consumption"]})
    data = energy([("P", "pv", -SLOT, 1.0, 1), ("P", "pv", 0, 10.0, 3), ("P", "pv", SLOT, 10.0, 3),
                   ("P", "pv", 2 * SLOT, 1.0, 1), ("A", "m", -SLOT, 1.0, 1), ("A", "m", 0, 5.0, 3),
                   ("A", "m", SLOT, 2.0, 1), ("A", "m", 3 * SLOT, 0.0, 0)])
    status = slot_rules.slot_status(data, meters, [-SLOT, 0, SLOT, 2 * SLOT, 3 * SLOT])
    # slot -1: nobody was read before it; slot 0: both read before and after; slot 1: A's last reading is in
    # it (nothing after) -> 1 of 2; slot 2: P's last slot, A has none; slot 3: A interpolated (reporting, not read)
    assert status.rows() == [(-SLOT, 2, 0, 2, False), (0, 2, 2, 2, True), (SLOT, 2, 1, 2, False),
                             (2 * SLOT, 2, 0, 1, False), (3 * SLOT, 2, 0, 1, False)]
    stored = pl.DataFrame({"slot_start": [-SLOT, 0], "provisional": [True, False]})
    # slot 0 is final already; slots -1 (provisional before) and 1 are past their grace period
    # (end + 600 s <= 4200 s), slot 2 is not
    chosen = slot_rules.to_settle(status, stored, as_of_ms=2 * SLOT + 600_000, grace_s=600)
    assert chosen.rows() == [(-SLOT, True), (SLOT, True)]
    # much later: slot 2 (P reported) is settled provisionally; a slot where no meter reported is not settled
    later = slot_rules.to_settle(status.filter(pl.col("slot_start") >= 2 * SLOT), stored, 10**9, 600)
    assert later.rows() == [(2 * SLOT, True), (3 * SLOT, True)]
    empty = status.with_columns(pl.lit(0, dtype=pl.Int64).alias("meters_reporting"))
    assert slot_rules.to_settle(empty.filter(pl.col("slot_start") == 2 * SLOT), stored, 10**9, 600).height == 0


def test_community_slots_keep_missing_meters_null_and_a_missing_export_offers_nothing():
    community = Community.model_validate(COMMUNITY)
    data = pl.DataFrame([("plant", "pv", "energy_export", 0, 30.0, 3), ("plant", "grid", "energy_export", 0, 18.0, 3),
                         ("shop", "main", "energy_import", 0, 15.0, 3),
                         ("plant", "pv", "energy_export", SLOT, 30.0, 3)],
                        orient="row", schema=["site", "device", "metric", "slot_start", "kwh", "readings"])
    got = slot_rules.community_slots(data, slot_rules.meters_frame(community), [0, SLOT])
    assert got.rows() == [
        (0, "hall", None, None, None), (0, "plant", 30.0, None, 18.0), (0, "shop", None, 15.0, None),
        # slot 1: the grid (export) meter is missing: the plant offers 0, not its 30 kWh of generation
        (SLOT, "hall", None, None, None), (SLOT, "plant", 30.0, None, 0.0), (SLOT, "shop", None, None, None)]
