"""The green-city calendar: JST slots, fiscal years, holidays (national, Obon, New Year) and day/night."""

from __future__ import annotations

from datetime import date, datetime

import polars as pl
import pytest

from cloud.domains._greencity import calendar as cal


def jst_ms(text: str) -> int:
    return int(datetime.fromisoformat(text + "+09:00").timestamp() * 1000)


def test_slots_start_at_jst_midnight_and_a_day_has_48():
    assert cal.slot_start(jst_ms("2026-05-01T00:29:59")) == jst_ms("2026-05-01T00:00:00")
    assert cal.slot_start(jst_ms("2026-05-01T23:45:00")) == jst_ms("2026-05-01T23:30:00")
    assert cal.day_start(jst_ms("2026-05-01T08:00:00")) == jst_ms("2026-05-01T00:00:00")
    day = cal.slot_starts(jst_ms("2026-05-01T00:00:00"), jst_ms("2026-05-02T00:00:00"))
    assert day.len() == 48 and day[0] == jst_ms("2026-05-01T00:00:00") and day[-1] == jst_ms("2026-05-01T23:30:00")


def test_fiscal_year_runs_april_to_march():
    assert cal.fiscal_year(date(2026, 3, 31)) == 2025 and cal.fiscal_year(date(2026, 4, 1)) == 2026
    start, end = cal.fiscal_year_range_ms(2026)
    assert (start, end) == (jst_ms("2026-04-01T00:00:00"), jst_ms("2027-04-01T00:00:00"))
    assert cal.fiscal_months(2026)[0] == "2026-04" and cal.fiscal_months(2026)[-1] == "2027-03"
    assert cal.month_range_ms("2026-12") == (jst_ms("2026-12-01T00:00:00"), jst_ms("2027-01-01T00:00:00"))
    assert cal.month_of_ms(jst_ms("2026-04-30T23:59:00")) == "2026-04"
    with pytest.raises(ValueError, match="YYYY-MM"):
        cal.parse_month("2026-13")


@pytest.mark.parametrize("day, holiday", [
    (date(2026, 11, 27), False),   # Friday
    (date(2026, 11, 28), True),    # Saturday
    (date(2026, 11, 23), True),    # Labour Thanksgiving Day (national holiday, a Monday)
    (date(2026, 8, 13), True),     # Obon closing (Thursday)
    (date(2026, 8, 17), False),    # back to work after Obon (Monday)
    (date(2026, 12, 29), True),    # New Year closing starts (Tuesday)
    (date(2027, 1, 4), False),     # first working day (Monday)
    (date(2026, 5, 6), True),      # substitute holiday after Golden Week
])
def test_holidays_are_weekends_national_days_obon_and_new_year(day, holiday):
    assert cal.is_holiday(day) is holiday


def test_a_site_adds_its_own_closing_days():
    assert cal.is_holiday(date(2026, 11, 27), extra=frozenset({date(2026, 11, 27)}))


def test_with_calendar_labels_each_slot():
    frame = pl.DataFrame({"slot_start": [jst_ms("2026-03-31T07:30:00"), jst_ms("2026-04-01T08:00:00"),
                                         jst_ms("2026-04-01T21:30:00"), jst_ms("2026-04-01T22:00:00"),
                                         jst_ms("2026-04-29T12:00:00")]})
    out = cal.with_calendar(frame).to_dicts()
    assert [r["fiscal_year"] for r in out] == [2025, 2026, 2026, 2026, 2026]
    assert [r["slot"] for r in out] == [15, 16, 43, 44, 24]
    assert [r["period"] for r in out] == ["night", "day", "day", "night", "day"]
    assert [r["day_type"] for r in out] == ["weekday", "weekday", "weekday", "weekday", "holiday"]  # 4/29 Showa Day
    assert [r["month"] for r in out] == ["2026-03", "2026-04", "2026-04", "2026-04", "2026-04"]
    assert out[1]["weekday"] == 3 and out[1]["date"] == date(2026, 4, 1)     # a Wednesday


def test_with_calendar_on_an_empty_frame_keeps_the_columns():
    out = cal.with_calendar(pl.DataFrame(schema={"slot_start": pl.Int64}))
    assert out.height == 0 and {"date", "slot", "month", "fiscal_year", "day_type", "period"} <= set(out.columns)
