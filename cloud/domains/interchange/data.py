"""What the interchange domain reads from and writes to InfluxDB: settled slots
(``interchange_slot``), flows (``interchange_flow``) and forecasts for the charging target."""

from __future__ import annotations

import polars as pl

from cloud.domains.forecast.data import fetch_forecast
from cloud.domains.interchange.service import FLOW_SCHEMA
from cloud.domains.interchange.slots import SETTLED_SCHEMA
from cloud.influx import AsyncInfluxClient, quote_identifier, quote_string
from cloud.points import Point

SLOT_MEASUREMENT = "interchange_slot"
FLOW_MEASUREMENT = "interchange_flow"
STORED_FIELDS = ("generation_kwh", "consumption_kwh", "supplied_kwh", "received_kwh", "self_kwh", "export_kwh",
                 "grid_kwh")
STORED_SCHEMA = {"slot_start": pl.Int64, "site": pl.String, "role": pl.String,
                 **{f: pl.Float64 for f in STORED_FIELDS}, "provisional": pl.Boolean, "rule": pl.String}
WRITE_CHUNK = 5000


def _range(community_id: str, start_ms: int, end_ms: int) -> str:
    return (f'"community" = {quote_string(community_id)} AND time >= {int(start_ms)}ms '
            f'AND time < {int(end_ms)}ms')


async def fetch_settled(reader: AsyncInfluxClient, community_id: str, start_ms: int, end_ms: int) -> pl.DataFrame:
    """Stored interchange_slot rows with slot_start in [start, end): STORED_SCHEMA."""
    fields = ", ".join(quote_identifier(f) for f in (*STORED_FIELDS, "provisional", "rule"))
    where = _range(community_id, start_ms, end_ms)
    (series,) = await reader.query(f'SELECT {fields} FROM "{SLOT_MEASUREMENT}" WHERE {where} GROUP BY "site", "role"')
    rows = [(int(values[0]), s.tags.get("site", ""), s.tags.get("role", ""),
             *(float(v) if v is not None else None for v in values[1:1 + len(STORED_FIELDS)]),
             bool(values[-2]), values[-1]) for s in series for values in s.values]
    return pl.DataFrame(rows, schema=STORED_SCHEMA, orient="row").sort("slot_start", "site")


async def fetch_flows(reader: AsyncInfluxClient, community_id: str, start_ms: int, end_ms: int) -> pl.DataFrame:
    """Stored interchange_flow with kWh > 0 in [start, end): FLOW_SCHEMA."""
    where = _range(community_id, start_ms, end_ms)
    (series,) = await reader.query(f'SELECT "kwh" FROM "{FLOW_MEASUREMENT}" WHERE {where} AND "kwh" > 0 '
                                   'GROUP BY "from", "to"')
    rows = [(int(ts), s.tags.get("from", ""), s.tags.get("to", ""), float(kwh)) for s in series for ts, kwh in s.values]
    return pl.DataFrame(rows, schema=FLOW_SCHEMA, orient="row").sort("slot_start", "from", "to")


async def flow_pairs(reader: AsyncInfluxClient, community_id: str) -> pl.DataFrame:
    """from, to of every flow series stored for the community (whatever its time)."""
    (series,) = await reader.query(f'SELECT last("kwh") FROM "{FLOW_MEASUREMENT}" '
                                   f'WHERE "community" = {quote_string(community_id)} GROUP BY "from", "to"')
    return pl.DataFrame([(s.tags.get("from", ""), s.tags.get("to", "")) for s in series],
                        schema={"from": pl.String, "to": pl.String}, orient="row")


async def settled_status(reader: AsyncInfluxClient, community_id: str, start_ms: int, end_ms: int) -> pl.DataFrame:
    """slot_start, provisional of the slots stored in [start, end) (provisional if any row is)."""
    (series,) = await reader.query(f'SELECT "provisional" FROM "{SLOT_MEASUREMENT}" '
                                   f'WHERE {_range(community_id, start_ms, end_ms)} GROUP BY "site"')
    rows = [(int(ts), bool(p)) for s in series for ts, p in s.values]
    frame = pl.DataFrame(rows, schema={"slot_start": pl.Int64, "provisional": pl.Boolean}, orient="row")
    return frame.group_by("slot_start").agg(pl.col("provisional").any()).sort("slot_start")


def settled_points(community_id: str, settled: pl.DataFrame, flows: pl.DataFrame) -> list[Point]:
    """interchange_slot per (slot, participant) and interchange_flow per (slot, pair) of ``settled``
    (SETTLED_SCHEMA) and its ``flows`` (with the 0 of each stored pair: a flow that is gone is overwritten)."""
    provisional = dict(settled.group_by("slot_start").agg(pl.col("provisional").any()).iter_rows())
    points = [Point(SLOT_MEASUREMENT, {"community": community_id, "site": r["site"], "role": str(r["role"])},
                    {**{f: float(r[f]) for f in STORED_FIELDS if r[f] is not None},   # unmetered: left out
                     "provisional": bool(r["provisional"]),
                     "rule": str(r["rule"])}, int(r["slot_start"]))
              for r in settled.select(list(SETTLED_SCHEMA)).iter_rows(named=True)]
    points += [Point(FLOW_MEASUREMENT, {"community": community_id, "from": source, "to": target},
                     {"kwh": float(kwh), "provisional": bool(provisional.get(start, False))}, int(start))
               for start, source, target, kwh in flows.select("slot_start", "from", "to", "kwh").iter_rows()]
    return points


async def write(reader: AsyncInfluxClient, points: list[Point]) -> None:
    for i in range(0, len(points), WRITE_CHUNK):
        await reader.write_points(points[i:i + WRITE_CHUNK])


async def fetch_expected(reader: AsyncInfluxClient, site: str, target: str, start_ms: int, end_ms: int) -> pl.DataFrame:
    """slot_start, kwh of the forecast domain's day-ahead forecast (empty when it has none)."""
    frame = await fetch_forecast(reader, site, target, start_ms, end_ms)
    return frame.select(pl.col("slot_start").cast(pl.Int64), pl.col("kwh").cast(pl.Float64))
