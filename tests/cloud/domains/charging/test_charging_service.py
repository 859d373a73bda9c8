"""Monthly settlement per employee tag: hand-checked sums and PV shares, months cut at midnight in Tokyo,
duplicate records, missing values and the CSV a payroll clerk opens in a spreadsheet."""

from __future__ import annotations

import csv
import io
from datetime import datetime

import polars as pl
import pytest

from cloud.domains.charging.service import (
    SESSIONS_SCHEMA, clean_sessions, month_of, month_range_ms, summary_csv, summary_per_tag, totals,
)


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1000)


def session(tag: str, session_id: str | None, energy: float | None, pv: float | None, stop: str = "2026-11-10T17:00:00+09:00",
            charger: str = "cp-1", start: str = "2026-11-10T09:00:00+09:00", duration: float | None = None,
            share: float | None = None) -> dict:
    return {"charger": charger, "evse": "1", "id_tag": tag, "session_id": session_id, "start_ms": ms(start),
            "stop_ms": ms(stop), "duration_s": duration, "energy_kwh": energy, "peak_w": 11.0, "pv_kwh": pv,
            "pv_share": share, "stop_reason": "EVDisconnected"}


def frame(*rows: dict) -> pl.DataFrame:
    return pl.DataFrame(list(rows), schema=SESSIONS_SCHEMA, orient="row")


def test_months_are_cut_at_midnight_in_tokyo():
    start, end = month_range_ms("2026-11")
    assert start == ms("2026-11-01T00:00:00+09:00") == ms("2026-10-31T15:00:00+00:00")
    assert end == ms("2026-12-01T00:00:00+09:00")
    assert month_range_ms("2026-12") == (ms("2026-12-01T00:00:00+09:00"), ms("2027-01-01T00:00:00+09:00"))
    # 30 minutes after midnight JST on 1 November is still October in UTC
    assert month_of(ms("2026-10-31T15:30:00+00:00")) == "2026-11"
    assert month_of(ms("2026-10-31T23:59:59+09:00")) == "2026-10"


@pytest.mark.parametrize("bad", ["2026-13", "2026-1", "26-11", "2026-11-01", "", "2026-00"])
def test_a_malformed_month_says_what_was_expected(bad):
    with pytest.raises(ValueError, match="expected YYYY-MM"):
        month_range_ms(bad)


def test_per_tag_sums_and_a_share_from_the_sums_not_the_mean_of_shares():
    sessions = clean_sessions(frame(
        session("A", "1", 30.0, 0.0), session("A", "2", 2.0, 2.0),    # shares 0 % and 100 %: A is 2/32, not 50 %
        session("B", "3", 10.0, 4.0), session("B", "4", 5.0, 3.5), session("B", "5", 5.0, 0.5),
    ))
    summary = summary_per_tag(sessions)
    assert summary.to_dicts() == [
        {"id_tag": "A", "sessions": 2, "energy_kwh": 32.0, "pv_kwh": 2.0, "grid_kwh": 30.0, "pv_share": 0.062},
        {"id_tag": "B", "sessions": 3, "energy_kwh": 20.0, "pv_kwh": 8.0, "grid_kwh": 12.0, "pv_share": 0.4},
    ]
    assert totals(summary) == {"sessions": 5, "energy_kwh": 52.0, "pv_kwh": 10.0, "grid_kwh": 42.0,
                               "pv_share": round(10 / 52, 3)}


def test_a_record_written_twice_counts_once_and_missing_values_count_zero():
    sessions = clean_sessions(frame(
        session("A", "7", 12.0, 3.0), session("A", "7", 12.0, 3.0),          # the outbox replayed it
        session("A", "7", 12.0, 3.0, charger="cp-2"),                        # same id on another charger: its own
        session("A", "8", 4.0, None),                                         # no PV figure: 0 kWh of PV
        session("C", "9", None, None),                                        # no energy at all
        session("D", None, 1.0, 0.0, stop="2026-11-10T10:00:00+09:00"),       # no session ids: still two
        session("D", None, 2.0, 0.0, stop="2026-11-10T11:00:00+09:00"),
    ))
    assert sessions.height == 6
    rows = {r["id_tag"]: r for r in summary_per_tag(sessions).to_dicts()}
    assert (rows["A"]["sessions"], rows["A"]["energy_kwh"], rows["A"]["pv_kwh"]) == (3, 28.0, 6.0)
    assert rows["A"]["pv_share"] == pytest.approx(0.214)
    assert (rows["D"]["sessions"], rows["D"]["energy_kwh"]) == (2, 3.0)
    assert (rows["C"]["sessions"], rows["C"]["energy_kwh"], rows["C"]["pv_share"]) == (1, 0.0, None)


def test_clean_sessions_derives_duration_and_share_and_sorts_by_stop():
    sessions = clean_sessions(frame(
        session("A", "2", 10.0, 2.5, stop="2026-11-11T12:00:00+09:00", start="2026-11-11T10:30:00+09:00"),
        session("A", "1", 8.0, 8.0, stop="2026-11-10T12:00:00+09:00", duration=100.0, share=0.99),
    ))
    assert sessions["session_id"].to_list() == ["1", "2"]
    assert sessions["duration_s"].to_list() == [100.0, 5400.0]            # given; else stop - start
    assert sessions["pv_share"].to_list() == [0.99, 0.25]                 # as recorded; else pv / energy


def test_no_sessions_give_an_empty_summary_and_zero_totals():
    summary = summary_per_tag(clean_sessions(pl.DataFrame(schema=SESSIONS_SCHEMA)))
    assert summary.height == 0
    assert totals(summary) == {"sessions": 0, "energy_kwh": 0.0, "pv_kwh": 0.0, "grid_kwh": 0.0, "pv_share": None}


def test_the_settlement_csv_has_a_row_per_tag_and_a_total_and_no_formulas():
    summary = summary_per_tag(clean_sessions(frame(
        session("04A1B2C3", "1", 10.0, 4.0), session("04A1B2C3", "2", 6.0, 6.0),
        session("=HYPERLINK(1)", "3", 20.0, 5.0),
    )))
    rows = list(csv.DictReader(io.StringIO(summary_csv(summary, "plant-a", "2026-11"))))
    assert [r["id_tag"] for r in rows] == ["04A1B2C3", "'=HYPERLINK(1)", "TOTAL"]
    assert rows[0] == {"month": "2026-11", "site": "plant-a", "id_tag": "04A1B2C3", "sessions": "2",
                       "energy_kwh": "16.000", "pv_kwh": "10.000", "grid_kwh": "6.000", "pv_share": "0.625"}
    assert (rows[2]["sessions"], rows[2]["energy_kwh"], rows[2]["pv_kwh"], rows[2]["pv_share"]) == \
        ("3", "36.000", "15.000", "0.417")
