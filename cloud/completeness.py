"""Data completeness from envelope sequence numbers.

Every device numbers its envelopes 1, 2, 3, ... (surviving agent restarts). Over a
time window, a device whose envelopes seq=min..max reached InfluxDB should have
``max - min + 1`` of them; the distinct seq values actually stored are what arrived.
The pure functions work on polars frames; ``CompletenessService`` fetches the counts
from InfluxDB and caches them briefly so a board refreshing every second is cheap.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

import polars as pl

from hinode.contract import DeviceKind, is_personal

if TYPE_CHECKING:
    from cloud.influx import AsyncInfluxClient

COUNT_SCHEMA = {"site": pl.String, "device": pl.String, "received": pl.Int64,
                "min_seq": pl.Int64, "max_seq": pl.Int64}
DEVICE_SCHEMA = {"site": pl.String, "device": pl.String}


def _ratio(received: pl.Expr, expected: pl.Expr) -> pl.Expr:
    # No envelope in the window means nothing to judge: the ratio is unknown, not 0 or 1.
    return pl.when(expected > 0).then(received / expected).otherwise(None).cast(pl.Float64)


def device_completeness(counts: pl.DataFrame, known_devices: pl.DataFrame | None = None) -> pl.DataFrame:
    """Per device: expected, received, missing, ratio.

    ``counts`` has one row per device (site, device, received=count of distinct seq,
    min_seq, max_seq). ``known_devices`` (site, device) adds devices that sent nothing
    in the window, with zeros and a null ratio.
    """
    per_device = (
        counts.select(list(COUNT_SCHEMA)).cast(COUNT_SCHEMA)
        .group_by("site", "device")
        .agg(pl.col("received").sum(), pl.col("min_seq").min(), pl.col("max_seq").max())
    )
    if known_devices is not None and known_devices.height:
        silent = (known_devices.select("site", "device").cast(DEVICE_SCHEMA).unique()
                  .join(per_device, on=["site", "device"], how="anti"))
        per_device = pl.concat([per_device, silent], how="diagonal")
    expected = (pl.col("max_seq") - pl.col("min_seq") + 1).fill_null(0)
    return (
        per_device
        .with_columns(expected.alias("expected"), pl.col("received").fill_null(0))
        # A device seen under two kinds could count a seq twice; missing never goes below 0.
        .with_columns((pl.col("expected") - pl.col("received")).clip(lower_bound=0).alias("missing"))
        .with_columns(_ratio(pl.col("received"), pl.col("expected")).alias("ratio"))
        .select("site", "device", "expected", "received", "missing", "ratio", "min_seq", "max_seq")
        .sort("site", "device")
    )


def site_completeness(per_device: pl.DataFrame) -> pl.DataFrame:
    """Per site: number of devices and the sums of expected/received/missing, with their ratio."""
    return (
        per_device.group_by("site")
        .agg(pl.len().alias("devices"), pl.col("expected").sum(), pl.col("received").sum(),
             pl.col("missing").sum())
        .with_columns(_ratio(pl.col("received"), pl.col("expected")).alias("ratio"))
        .select("site", "devices", "expected", "received", "missing", "ratio")
        .sort("site")
    )


def completeness_query(window_s: int) -> str:
    kinds = ",".join(f'"{kind.value}"' for kind in DeviceKind if not is_personal(kind))
    return (f'SELECT count(distinct("seq")) AS received, min("seq") AS min_seq, max("seq") AS max_seq '
            f'FROM {kinds} WHERE time > now() - {int(window_s)}s GROUP BY "site","device"')


class CompletenessService:
    """Fetches per-device seq counts for a window; answers from a cache for ``cache_s``."""

    def __init__(self, reader: "AsyncInfluxClient", cache_s: float = 3.0):
        self._reader = reader
        self._cache_s = cache_s
        self._cache: dict[int, tuple[float, pl.DataFrame]] = {}
        self._lock = asyncio.Lock()
        self.cache_hits = 0
        self.cache_misses = 0

    async def counts(self, window_s: int) -> pl.DataFrame:
        cached = self._cache.get(window_s)
        if cached and cached[0] > time.monotonic():
            self.cache_hits += 1
            return cached[1]
        async with self._lock:  # concurrent refreshes wait for one query instead of each sending one
            cached = self._cache.get(window_s)
            if cached and cached[0] > time.monotonic():
                self.cache_hits += 1
                return cached[1]
            self.cache_misses += 1
            (series,) = await self._reader.query(completeness_query(window_s))
            rows = [{"site": s.tags.get("site", ""), "device": s.tags.get("device", ""),
                     "received": row["received"], "min_seq": row["min_seq"], "max_seq": row["max_seq"]}
                    for s in series for row in s.rows()]
            frame = pl.DataFrame(rows, schema=COUNT_SCHEMA)
            if len(self._cache) >= 16:  # windows come from users: keep the cache small
                self._cache.clear()
            self._cache[window_s] = (time.monotonic() + self._cache_s, frame)
            return frame

    async def report(self, window_s: int, known_devices: pl.DataFrame | None = None) -> tuple[pl.DataFrame, pl.DataFrame]:
        per_device = device_completeness(await self.counts(window_s), known_devices)
        return per_device, site_completeness(per_device)
