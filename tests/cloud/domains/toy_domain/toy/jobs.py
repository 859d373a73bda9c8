"""I/O of the toy: read the gauge from InfluxDB, hand it to the pure service."""

import polars as pl

from cloud.influx import AsyncInfluxClient, quote_identifier, quote_string
from cloud.points import Point

from .config import ToyConfig
from .service import READINGS, peaks


async def read_gauge(reader: AsyncInfluxClient, config: ToyConfig, start_ms: int, end_ms: int,
                     site: str | None = None) -> pl.DataFrame:
    where = f' AND "site" = {quote_string(site)}' if site else ""
    (series,) = await reader.query(
        f"SELECT {quote_identifier(config.metric)} AS value FROM {quote_identifier(config.kind.value)} "
        f'WHERE time >= {int(start_ms)}ms AND time < {int(end_ms)}ms{where} GROUP BY "site", "device"')
    rows = [(s.tags["site"], s.tags["device"], ts, value) for s in series for ts, value in s.values]
    return pl.DataFrame(rows, schema=READINGS, orient="row")


async def write_peaks(slot_start_ms: int, slot_end_ms: int, ctx) -> list[Point]:
    """The scheduler writes what this returns: ts = slot start, tags = what the point describes."""
    frame = await read_gauge(ctx.influx, ctx.config, slot_start_ms, slot_end_ms)
    return [Point("toy_peak", {"site": row["site"], "device": row["device"]},
                  {"peak": float(row["peak"]), "readings": int(row["readings"])}, slot_start_ms)
            for row in peaks(frame, ctx.job.every_s).iter_rows(named=True)]
