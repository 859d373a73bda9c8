"""Charging sessions and their monthly settlement per employee tag. Pure functions over polars frames, no I/O.

A session record (kind ``charging_session``) is written once, when the session ends, timestamped at its
stop; it belongs to the month (Asia/Tokyo) it ended in. Per id_tag and month:

* ``sessions`` = number of records, ``energy_kwh`` = sum of ``energy``, ``pv_kwh`` = sum of ``pv_energy``;
* ``grid_kwh`` = ``energy_kwh - pv_kwh`` (what the site bought for the employee's car);
* ``pv_share`` = ``pv_kwh / energy_kwh`` (0..1), computed from the sums, never the mean of the sessions'
  shares (a 2 kWh session at 100 % must not weigh as much as a 30 kWh one at 0 %); null when no energy.

A record without ``pv_energy`` counts 0 kWh of PV; one without ``energy`` counts 0 kWh.
"""

from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo

import polars as pl

TIMEZONE = "Asia/Tokyo"
SESSIONS_SCHEMA = {
    "charger": pl.String, "evse": pl.String, "id_tag": pl.String, "session_id": pl.String,
    "start_ms": pl.Int64, "stop_ms": pl.Int64, "duration_s": pl.Float64, "energy_kwh": pl.Float64,
    "peak_w": pl.Float64, "pv_kwh": pl.Float64, "pv_share": pl.Float64, "stop_reason": pl.String,
}
SUMMARY_SCHEMA = {"id_tag": pl.String, "sessions": pl.Int64, "energy_kwh": pl.Float64, "pv_kwh": pl.Float64,
                  "grid_kwh": pl.Float64, "pv_share": pl.Float64}
DECIMALS = 3          # kWh to the Wh, shares to 0.1 %: what a settlement sheet shows
_MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


def month_range_ms(month: str, timezone: str = TIMEZONE) -> tuple[int, int]:
    """``"2026-11"`` -> [start, end) in epoch ms, the month cut at local midnight; ValueError if malformed."""
    match = _MONTH.fullmatch(month)
    if not match:
        raise ValueError(f"{month!r} is not a month (expected YYYY-MM, like 2026-11)")
    year, number = int(match.group(1)), int(match.group(2))
    zone = ZoneInfo(timezone)
    start = datetime(year, number, 1, tzinfo=zone)
    end = datetime(year + number // 12, number % 12 + 1, 1, tzinfo=zone)
    return int(start.timestamp() * 1000), int(end.timestamp() * 1000)


def month_of(ts_ms: int, timezone: str = TIMEZONE) -> str:
    """The ``YYYY-MM`` (local time) a timestamp falls in."""
    return datetime.fromtimestamp(ts_ms / 1000, ZoneInfo(timezone)).strftime("%Y-%m")


def clean_sessions(frame: pl.DataFrame) -> pl.DataFrame:
    """Records in SESSIONS_SCHEMA, sorted by stop time, one per (charger, evse, session_id, stop): a record
    sent twice (by another agent or profile, so stored twice) is one session, and records without a
    session id stay apart. A missing duration or share is derived from the other columns."""
    if frame.height == 0:
        return pl.DataFrame(schema=SESSIONS_SCHEMA)
    share = pl.when(pl.col("energy_kwh") > 0).then(pl.col("pv_kwh") / pl.col("energy_kwh"))
    return (
        frame.select([pl.col(name).cast(dtype) for name, dtype in SESSIONS_SCHEMA.items()])
        .with_columns(pl.col("duration_s").fill_null((pl.col("stop_ms") - pl.col("start_ms")) / 1000),
                      pl.col("pv_share").fill_null(share))
        .unique(subset=["charger", "evse", "session_id", "stop_ms"], keep="last", maintain_order=True)
        .sort("stop_ms", "charger", "evse", maintain_order=True)
    )


def summary_per_tag(sessions: pl.DataFrame) -> pl.DataFrame:
    """Per id_tag (sorted): sessions, energy_kwh, pv_kwh, grid_kwh, pv_share; see the module docstring."""
    if sessions.height == 0:
        return pl.DataFrame(schema=SUMMARY_SCHEMA)
    energy, pv = pl.col("energy_kwh"), pl.col("pv_kwh")
    return (
        sessions.group_by("id_tag")
        .agg(pl.len().cast(pl.Int64).alias("sessions"), energy.fill_null(0.0).sum().alias("energy_kwh"),
             pv.fill_null(0.0).sum().alias("pv_kwh"))
        .with_columns((energy - pv).alias("grid_kwh"),
                      pl.when(energy > 0).then(pv / energy).otherwise(None).alias("pv_share"))
        .with_columns(pl.col("energy_kwh", "pv_kwh", "grid_kwh").round(DECIMALS), pl.col("pv_share").round(DECIMALS))
        .select(list(SUMMARY_SCHEMA)).cast(SUMMARY_SCHEMA)
        .sort("id_tag")
    )


def totals(summary: pl.DataFrame) -> dict:
    """The site's month over every tag: the same columns, share from the sums."""
    energy = float(summary["energy_kwh"].sum()) if summary.height else 0.0
    pv = float(summary["pv_kwh"].sum()) if summary.height else 0.0
    return {"sessions": int(summary["sessions"].sum()) if summary.height else 0, "energy_kwh": round(energy, DECIMALS),
            "pv_kwh": round(pv, DECIMALS), "grid_kwh": round(energy - pv, DECIMALS),
            "pv_share": round(pv / energy, DECIMALS) if energy > 0 else None}


def _spreadsheet_safe(text: pl.Expr) -> pl.Expr:
    """A cell starting with = + - @ is a formula to Excel; the tag comes from a charger, so quote it."""
    return pl.when(text.str.contains(r"^[=+\-@]")).then(pl.lit("'") + text).otherwise(text)


def summary_csv(summary: pl.DataFrame, site: str, month: str) -> str:
    """The settlement sheet: one row per tag with the site and month on every row, then a TOTAL row."""
    rows = summary.select(pl.lit(month).alias("month"), pl.lit(site).alias("site"), pl.all()) \
        .with_columns(_spreadsheet_safe(pl.col("id_tag")).alias("id_tag"))
    total = totals(summary)
    total_row = pl.DataFrame([{"month": month, "site": site, "id_tag": "TOTAL", **total}],
                             schema=rows.schema, orient="row")
    return pl.concat([rows, total_row]).write_csv(float_precision=DECIMALS)
