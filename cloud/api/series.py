"""Time-bucketed series of one metric of one device (GET /api/series)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from cloud.api import params
from cloud.api.devices import KINDS_FROM
from cloud.influx import AsyncInfluxClient, quote_identifier, quote_string


@dataclass(frozen=True)
class SeriesRequest:
    site: str
    device: str
    metric: str
    agg: str
    start_ms: int
    end_ms: int
    window_ms: int


def parse_series_request(site: str, device: str, metric: str, start: str = "-1h", end: str = "now",
                         window: str = "1m", agg: str = "mean", now_ms: int | None = None) -> SeriesRequest:
    """Validate every parameter; raises params.InvalidParameter naming the bad one."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    request = SeriesRequest(
        site=params.check_id("site", site),
        device=params.check_id("device", device),
        metric=params.check_metric(metric),
        agg=params.check_agg(agg),
        start_ms=params.parse_time_ms("start", start, now_ms),
        end_ms=params.parse_time_ms("end", end, now_ms),
        window_ms=params.parse_duration_ms("window", window),
    )
    params.check_range(request.start_ms, request.end_ms, request.window_ms)
    return request


def series_statement(req: SeriesRequest) -> str:
    # Every piece is either validated against a strict pattern and quoted, or an integer.
    return (f"SELECT {req.agg}({quote_identifier(req.metric)}) AS value FROM {KINDS_FROM} "
            f'WHERE "site" = {quote_string(req.site)} AND "device" = {quote_string(req.device)} '
            f"AND time >= {int(req.start_ms)}ms AND time < {int(req.end_ms)}ms "
            f"GROUP BY time({int(req.window_ms)}ms) fill(none)")


async def fetch_series(reader: AsyncInfluxClient, req: SeriesRequest) -> dict:
    (series,) = await reader.query(series_statement(req))
    points: dict[int, object] = {}
    for s in series:
        for ts, value in s.values:
            if value is not None:
                points[int(ts)] = value
    return {"site": req.site, "device": req.device, "metric": req.metric, "agg": req.agg,
            "start": req.start_ms, "end": req.end_ms, "window_ms": req.window_ms,
            "points": [{"ts": ts, "value": points[ts]} for ts in sorted(points)]}
