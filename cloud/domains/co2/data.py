"""What the co2 domain reads from and writes to InfluxDB: co2_input (monthly inputs) and co2_slot."""

from __future__ import annotations

import polars as pl

from cloud.domains._greencity.calendar import month_range_ms
from cloud.domains.co2.accounting import INPUT_SCHEMA, empty_inputs
from cloud.influx import AsyncInfluxClient, quote_string
from cloud.points import Point

INPUT_MEASUREMENT = "co2_input"
SLOT_MEASUREMENT = "co2_slot"
POINTS_PER_WRITE = 5000


def input_point(row: dict) -> Point:
    fields = {"amount": float(row["amount"]), "unit": str(row["unit"]), "source": str(row["source"]),
              "entered_by": str(row["entered_by"])}
    if row.get("cost_yen") is not None:
        fields["cost_yen"] = float(row["cost_yen"])
    return Point(INPUT_MEASUREMENT, {"site": row["site"], "kind": row["kind"], "item": row["item"],
                                     "month": row["month"]}, fields, month_range_ms(row["month"])[0])


def _series_condition(row: dict) -> str:
    return " AND ".join(f'"{tag}" = {quote_string(row[tag])}' for tag in ("site", "kind", "item", "month"))


async def write_inputs(reader: AsyncInfluxClient, frame: pl.DataFrame) -> int:
    """Each (site, kind, item, month) replaces what was stored for it (including a cost now absent)."""
    rows = list(frame.iter_rows(named=True))
    if not rows:
        return 0
    await reader.query(*[f'DELETE FROM "{INPUT_MEASUREMENT}" WHERE {_series_condition(r)}' for r in rows])
    await reader.write_points([input_point(r) for r in rows])
    return len(rows)


async def fetch_inputs(reader: AsyncInfluxClient, sites: list[str], start_ms: int, end_ms: int) -> pl.DataFrame:
    """Inputs of ``sites`` for months starting in [start, end)."""
    if not sites:
        return empty_inputs()
    which = " OR ".join(f'"site" = {quote_string(s)}' for s in sites)
    (series,) = await reader.query(
        f'SELECT "amount", "unit", "cost_yen", "source", "entered_by" FROM "{INPUT_MEASUREMENT}" '
        f'WHERE ({which}) AND time >= {int(start_ms)}ms AND time < {int(end_ms)}ms '
        f'GROUP BY "site", "kind", "item", "month"')
    rows = []
    for s in series:
        for row in s.rows():
            if isinstance(row.get("amount"), (int, float)):
                rows.append({**{t: s.tags.get(t, "") for t in ("site", "kind", "item", "month")},
                             "amount": float(row["amount"]), "unit": row.get("unit") or "",
                             "cost_yen": None if row.get("cost_yen") is None else float(row["cost_yen"]),
                             "source": row.get("source") or "", "entered_by": row.get("entered_by") or ""})
    if not rows:
        return empty_inputs()
    return pl.DataFrame(rows, schema=INPUT_SCHEMA).sort("site", "month", "kind", "item")


async def sites_with_bills(reader: AsyncInfluxClient) -> set[str]:
    (series,) = await reader.query(
        f'SELECT count("amount") FROM "{INPUT_MEASUREMENT}" WHERE "kind" = \'electricity\' GROUP BY "site"')
    return {s.tags.get("site", "") for s in series}


async def write_points(reader: AsyncInfluxClient, points: list[Point]) -> None:
    for i in range(0, len(points), POINTS_PER_WRITE):
        await reader.write_points(points[i:i + POINTS_PER_WRITE])
