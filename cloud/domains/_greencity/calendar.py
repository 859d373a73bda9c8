"""The green-city calendar: 30-minute slots in JST, Japanese fiscal years (April-March),
weekday/holiday (Saturdays, Sundays, national holidays, Obon and New Year closing) and
day/night (08:00-22:00 JST is "day", as Japanese time-of-use tariffs split it).

Timestamps are epoch milliseconds (UTC); JST has no DST, so every day has 48 slots.
"""

from __future__ import annotations

import functools
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import holidays
import polars as pl
import yaml

TIMEZONE = "Asia/Tokyo"
JST = timezone(timedelta(hours=9))
OFFSET_MS = 9 * 3_600_000
SLOT_MS = 1_800_000
DAY_MS = 86_400_000
SLOTS_PER_DAY = 48
DAY_START_HOUR, DAY_END_HOUR = 8, 22           # "day" period: 08:00 <= local time < 22:00
FY2030, FY2013 = 2030, 2013
CALENDAR_FILE = Path(__file__).with_name("factory_calendar.yaml")


def slot_start(ts_ms: int) -> int:
    """Start of the 30-minute slot containing ``ts_ms``."""
    return (ts_ms + OFFSET_MS) // SLOT_MS * SLOT_MS - OFFSET_MS


def day_start(ts_ms: int) -> int:
    """JST midnight at or before ``ts_ms``."""
    return (ts_ms + OFFSET_MS) // DAY_MS * DAY_MS - OFFSET_MS


def local_date(ts_ms: int) -> date:
    return datetime.fromtimestamp(ts_ms / 1000, JST).date()


def date_start_ms(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=JST).timestamp() * 1000)


def fiscal_year(day: date) -> int:
    """Japanese fiscal year: FY2026 runs from 2026-04-01 to 2027-03-31."""
    return day.year if day.month >= 4 else day.year - 1


def fiscal_year_range_ms(fy: int) -> tuple[int, int]:
    return date_start_ms(date(fy, 4, 1)), date_start_ms(date(fy + 1, 4, 1))


def parse_month(month: str) -> tuple[int, int]:
    """``"2026-04"`` -> (2026, 4); ValueError naming what was expected."""
    try:
        year, mon = (int(part) for part in month.split("-"))
        date(year, mon, 1)
    except (ValueError, TypeError):
        raise ValueError(f"expected a month as YYYY-MM, got {month!r}") from None
    return year, mon


def month_range_ms(month: str) -> tuple[int, int]:
    year, mon = parse_month(month)
    nxt = date(year + (mon == 12), mon % 12 + 1, 1)
    return date_start_ms(date(year, mon, 1)), date_start_ms(nxt)


def month_of_ms(ts_ms: int) -> str:
    return local_date(ts_ms).strftime("%Y-%m")


def fiscal_months(fy: int) -> list[str]:
    return [f"{fy + (m < 4)}-{m:02d}" for m in (*range(4, 13), 1, 2, 3)]


@functools.lru_cache(maxsize=1)
def _closed_ranges() -> tuple[tuple[str, str, str], ...]:
    data = yaml.safe_load(CALENDAR_FILE.read_text())
    return tuple((entry["name"], entry["from"], entry["to"]) for entry in data["closed"])


def _in_closed(day: date) -> bool:
    md = day.strftime("%m-%d")
    for _, first, last in _closed_ranges():
        if (first <= md <= last) if first <= last else (md >= first or md <= last):
            return True
    return False


@functools.lru_cache(maxsize=64)
def _national(year: int) -> frozenset[date]:
    return frozenset(holidays.Japan(years=year))


def is_holiday(day: date, extra: frozenset[date] = frozenset()) -> bool:
    """Saturday, Sunday, a national holiday, Obon or New Year closing, or one of ``extra``."""
    return day.weekday() >= 5 or day in _national(day.year) or _in_closed(day) or day in extra


def holiday_dates(first: date, last: date, extra: frozenset[date] = frozenset()) -> list[date]:
    """Every holiday (as :func:`is_holiday`) from ``first`` to ``last`` inclusive."""
    out, day = [], first
    while day <= last:
        if is_holiday(day, extra):
            out.append(day)
        day += timedelta(days=1)
    return out


def with_calendar(frame: pl.DataFrame, ts_col: str = "slot_start",
                  extra_holidays: frozenset[date] = frozenset()) -> pl.DataFrame:
    """Adds ``date`` (JST), ``slot`` (0-47), ``month`` ("YYYY-MM"), ``fiscal_year``, ``weekday``
    (1=Monday), ``day_type`` ("weekday"/"holiday") and ``period`` ("day"/"night") for ``ts_col`` (ms)."""
    local_ms = pl.col(ts_col) + OFFSET_MS
    frame = frame.with_columns(
        (local_ms // DAY_MS).cast(pl.Int32).cast(pl.Date).alias("date"),
        ((local_ms % DAY_MS) // SLOT_MS).cast(pl.Int32).alias("slot"),
    )
    if frame.height:
        dates = frame["date"]
        first, last = dates.min(), dates.max()
        holiday_set = holiday_dates(first, last, extra_holidays)
    else:
        holiday_set = []
    hour = pl.col("slot") // 2
    return frame.with_columns(
        pl.col("date").dt.strftime("%Y-%m").alias("month"),
        (pl.col("date").dt.year() - (pl.col("date").dt.month() < 4).cast(pl.Int32)).cast(pl.Int32).alias("fiscal_year"),
        pl.col("date").dt.weekday().cast(pl.Int8).alias("weekday"),
        pl.when(pl.col("date").is_in(pl.Series(holiday_set, dtype=pl.Date).implode())).then(pl.lit("holiday"))
        .otherwise(pl.lit("weekday")).alias("day_type"),
        pl.when((hour >= DAY_START_HOUR) & (hour < DAY_END_HOUR)).then(pl.lit("day"))
        .otherwise(pl.lit("night")).alias("period"),
    )


def slot_starts(start_ms: int, end_ms: int) -> pl.Series:
    """Every slot start in [start, end) (start aligned down to a slot)."""
    first = slot_start(start_ms)
    return pl.Series("slot_start", range(first, end_ms, SLOT_MS), dtype=pl.Int64)
