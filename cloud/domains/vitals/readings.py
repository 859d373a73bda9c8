"""Vital-sign readings from the personal database, limited to what consent allows.

Only the fields of the categories a grant covers are SELECTed (hinode.vitals.fields_of), never ``*``;
every query names one patient (the ``subject`` tag) and a bounded time range. The ingest writes one
row per reading with its category's fields plus ``visit_id``/``time_source`` (present in every row),
so a row that holds none of the requested fields (another category's reading) is dropped here.
"""

from __future__ import annotations

import polars as pl
from fastapi import HTTPException, Request

from cloud.api import params
from cloud.domains.vitals.access import acting_user, grant_for, registry_of
from cloud.domains.vitals.registry import now_ms
from cloud.influx import AsyncInfluxClient, quote_identifier, quote_string
from hinode.vitals import ABSENT_SUFFIX, STATUS_SUFFIX, TEXT_FIELDS, VITAL_METRICS, Category, category_of, fields_of

MEASUREMENT = "vitals"
BASE_COLUMNS = ("time", "device", "profile", "visit_id")
DAY_MS = 86_400_000


def fields_for(categories) -> list[str]:
    """Every stored field of these categories, in category order."""
    return [f for c in sorted(Category(c) for c in categories) for f in fields_of(c)]


def frame_schema(fields: list[str]) -> dict[str, pl.DataType]:
    schema: dict[str, pl.DataType] = {"time": pl.Int64, "device": pl.Utf8, "profile": pl.Utf8, "visit_id": pl.Utf8}
    for f in fields:
        schema[f] = pl.Float64 if f in VITAL_METRICS else pl.Utf8
    return schema


def readings_statement(pseudonym: str, fields: list[str], start_ms: int, end_ms: int, limit: int) -> str:
    selected = ", ".join(quote_identifier(f) for f in (*fields, "device", "profile", "visit_id"))
    return (f"SELECT {selected} FROM {quote_identifier(MEASUREMENT)} "
            f"WHERE {quote_identifier('subject')} = {quote_string(pseudonym)} "
            f"AND time >= {int(start_ms)}ms AND time < {int(end_ms)}ms ORDER BY time ASC LIMIT {int(limit)}")


def _cell(value, numeric: bool):
    if numeric:
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    return None if value is None else str(value)


async def query_vitals(reader: AsyncInfluxClient, database: str, pseudonym: str, fields: list[str],
                       start_ms: int, end_ms: int, max_rows: int) -> pl.DataFrame:
    """The readings of one patient holding at least one of ``fields``; no consent check (callers: a
    request through :func:`fetch_vitals`, or a job acting for nobody, e.g. alert evaluation)."""
    unknown = [f for f in fields if category_of(f) is None]
    if unknown or not fields:
        raise ValueError(f"not vital-sign fields: {unknown or 'none given'}")
    params.check_id("patient", pseudonym)
    (series,) = await reader.query(readings_statement(pseudonym, fields, start_ms, end_ms, max_rows + 1),
                                   database=database)
    schema = frame_schema(fields)
    rows = []
    for s in series:
        index = {name: i for i, name in enumerate(s.columns)}
        for values in s.values:
            cells = [int(values[index["time"]])]
            cells += [_cell(values[index[c]], False) if c in index else None for c in BASE_COLUMNS[1:]]
            cells += [_cell(values[index[f]], schema[f] == pl.Float64) if f in index else None for f in fields]
            rows.append(cells)
    if len(rows) > max_rows:
        raise params.InvalidParameter("start", f"more than {max_rows} readings in this range; narrow it")
    frame = pl.DataFrame(rows, schema=schema, orient="row")
    if frame.height:
        frame = frame.filter(pl.any_horizontal([pl.col(f).is_not_null() for f in fields]))
    return frame


async def fetch_vitals(request: Request, pseudonym: str, fields: list[str], start_ms: int,
                       end_ms: int) -> pl.DataFrame:
    """Columns time (ms), device, profile, visit_id and ``fields``, for the acting user.

    Call :func:`access.require_grant` first (it audits); this refuses (403) any field whose category
    the acting user's consent does not cover at this moment, so no caller can read more than allowed.
    """
    user, _ = acting_user(request)
    grant = grant_for(registry_of(request), user, pseudonym, now_ms())
    allowed = grant.categories if grant is not None else frozenset()
    refused = sorted({f for f in fields if category_of(f) not in allowed})
    if refused:
        raise HTTPException(403, f"no consent to read {', '.join(refused)} of this patient")
    config = request.app.state.domain_configs["vitals"]
    database = request.app.state.config.influx.personal.database
    return await query_vitals(request.app.state.reader, database, pseudonym, fields, start_ms, end_ms,
                              config.max_rows)


def time_range(request: Request, start: str | None, end: str | None, *, default_days: int | None = None) -> tuple[int, int]:
    """(start, end) ms from the query; start defaults to ``default_range_days`` before end."""
    config = request.app.state.domain_configs["vitals"]
    now = now_ms()
    end_ms = params.parse_time_ms("end", end or "now", now)
    days = default_days or config.default_range_days
    start_ms = params.parse_time_ms("start", start, now) if start else end_ms - days * DAY_MS
    if end_ms <= start_ms:
        raise params.InvalidParameter("end", "must be after start")
    if end_ms - start_ms > config.max_range_days * DAY_MS:
        raise params.InvalidParameter("start", f"the range may span at most {config.max_range_days} days")
    return start_ms, end_ms


def parse_category(value: str | None) -> Category | None:
    if value is None or value == "":
        return None
    try:
        return Category(value)
    except ValueError:
        raise params.InvalidParameter("category", f"{value[:40]!r} is not one of "
                                                  f"{', '.join(c.value for c in Category)}") from None


def units_of(fields: list[str]) -> dict[str, str]:
    return {f: VITAL_METRICS[f].unit for f in fields if f in VITAL_METRICS}


def rows_of(frame: pl.DataFrame) -> list[dict]:
    """JSON rows without the empty cells."""
    return [{k: v for k, v in row.items() if v is not None} for row in frame.iter_rows(named=True)]


def latest_of(frame: pl.DataFrame, category: Category) -> dict | None:
    """The newest reading of a category: its values, special values, status flags and text fields."""
    fields = [f for f in fields_of(category) if f in frame.columns]
    rows = frame.filter(pl.any_horizontal([pl.col(f).is_not_null() for f in fields])) if fields else frame.head(0)
    if rows.height == 0:
        return None
    row = rows.sort("time").row(-1, named=True)
    values = {m: row[m] for m in fields if m in VITAL_METRICS and row[m] is not None}
    absent = {f[: -len(ABSENT_SUFFIX)]: row[f] for f in fields if f.endswith(ABSENT_SUFFIX) and row[f]}
    status = row.get(category.value + STATUS_SUFFIX) or ""
    text = {f: row[f] for f in fields if f in TEXT_FIELDS and row[f]}
    return {"ts": row["time"], "device": row["device"], "visit_id": row["visit_id"], "values": values,
            "absent": absent, "status": [s for s in status.split(",") if s], "text": text,
            "units": units_of(list(values))}


def trends_of(frame: pl.DataFrame, category: Category) -> dict[str, list[list]]:
    """metric -> [[ts, value], ...] in time order, for the metrics of the category that have values."""
    trends = {}
    for metric in (m for m in fields_of(category) if m in VITAL_METRICS and m in frame.columns):
        points = frame.filter(pl.col(metric).is_not_null()).sort("time").select("time", metric)
        if points.height:
            trends[metric] = [[ts, value] for ts, value in points.iter_rows()]
    return trends


def last_visit_of(frame: pl.DataFrame) -> dict | None:
    visits = frame.filter(pl.col("visit_id").is_not_null() & (pl.col("visit_id") != ""))
    if visits.height == 0:
        return None
    row = visits.sort("time").row(-1, named=True)
    return {"visit_id": row["visit_id"], "ts": row["time"]}
