"""/api/* routes: thin wrappers over the service functions in devices.py and series.py."""

from __future__ import annotations

import asyncio
import time

import polars as pl
from fastapi import APIRouter, HTTPException, Query, Request

from cloud.api import devices as svc
from cloud.api import params
from cloud.api.series import fetch_series, parse_series_request
from cloud.completeness import site_completeness

router = APIRouter(prefix="/api", tags=["data"])

MAX_COMPLETENESS_WINDOW_S = 31 * 24 * 3600


def _now_ms() -> int:
    return int(time.time() * 1000)


def _statuses(request: Request) -> dict | None:
    """Agent statuses, or None when no status tracker runs (then only data age decides online)."""
    tracker = request.app.state.status
    return tracker.snapshot() if tracker is not None else None


def _optional_site(site: str | None) -> str | None:
    return params.check_id("site", site) if site else None


async def _devices(request: Request, site: str | None) -> tuple[list[dict], pl.DataFrame]:
    """All devices of one site (or all sites), judged online/offline, with completeness."""
    state = request.app.state
    seen, catalog = await asyncio.gather(svc.data_index(state.reader, site), svc.device_catalog(state.reader, site))
    statuses = _statuses(request)
    devices = svc.list_devices(seen, statuses, site, _now_ms(), state.config.api.offline_after_s, catalog)
    per_device, _ = await state.completeness.report(state.config.api.completeness_window_s,
                                                    svc.known_devices_frame(devices))
    by_device = svc.completeness_by_device(per_device)
    for dev in devices:
        dev["completeness"] = by_device.get((dev["site"], dev["device"]), svc.empty_completeness())
    return devices, per_device


@router.get("/sites", summary="Sites with their agents, device counts, online counts and completeness")
async def sites(request: Request) -> dict:
    state = request.app.state
    (devices, per_device), (rate_series,) = await asyncio.gather(
        _devices(request, None), state.reader.query(svc.agent_rates_statement()))
    summary = svc.summarize_sites(devices, _statuses(request) or {}, site_completeness(per_device),
                                  svc.parse_agent_rates(rate_series))
    return {"now": _now_ms(), "window_s": state.config.api.completeness_window_s, "sites": summary}


@router.get("/devices", summary="Devices with kind, profile, agent, online state, last seen and completeness")
async def devices(request: Request, site: str | None = Query(None, description="only this site")) -> dict:
    state = request.app.state
    return {"now": _now_ms(), "offline_after_s": state.config.api.offline_after_s,
            "window_s": state.config.api.completeness_window_s,
            "devices": (await _devices(request, _optional_site(site)))[0]}


@router.get("/devices/{site}/{device}/latest", summary="The newest value of every metric of one device")
async def device_latest(request: Request, site: str, device: str) -> dict:
    site, device = params.check_id("site", site), params.check_id("device", device)
    reader = request.app.state.reader
    found, catalog = await asyncio.gather(svc.latest_values(reader, site, device),
                                          svc.device_catalog(reader, site, device))
    if not found:
        raise HTTPException(404, f"no data for device {device!r} at site {site!r} in the last {svc.LOOKBACK_DAYS} d")
    item = found[0]
    return {"site": item["site"], "device": item["device"], "kind": item["kind"], "ts": item["ts"],
            "values": item["values"], "quality": item["quality"], "units": svc.units_of(catalog, site, device)}


@router.get("/latest", summary="The newest values of all devices (of one site) in one call")
async def latest(request: Request, site: str | None = Query(None, description="only this site")) -> dict:
    return {"now": _now_ms(),
            "devices": await svc.latest_values(request.app.state.reader, _optional_site(site))}


@router.get("/positions", summary="The newest position (lat, lon, ts) of every vehicle (of one site)")
async def positions(request: Request, site: str | None = Query(None, description="only this site")) -> dict:
    (series,) = await request.app.state.reader.query(svc.positions_statement(_optional_site(site)))
    return {"now": _now_ms(), "positions": svc.parse_positions(series)}


@router.get("/series", summary="One metric of one device, aggregated in time buckets")
async def series(
    request: Request,
    site: str = Query(..., description="site id"),
    device: str = Query(..., description="device id"),
    metric: str = Query(..., description="metric name, e.g. power_total"),
    start: str = Query("-1h", description="RFC3339 (2024-05-01T08:00:00Z), relative (-1h, -15m) or now"),
    end: str = Query("now", description="RFC3339, relative or now"),
    window: str = Query("1m", description="bucket width: 10s, 1m, 30m, 1h ..."),
    agg: str = Query("mean", description="one of " + ", ".join(params.AGGREGATES)),
) -> dict:
    req = parse_series_request(site, device, metric, start, end, window, agg)
    return await fetch_series(request.app.state.reader, req)


@router.get("/completeness", summary="Received vs expected envelopes per device and per site")
async def completeness(request: Request, window: str | None = Query(None, description="e.g. 15m, 1h, 1d")) -> dict:
    state = request.app.state
    window_s = state.config.api.completeness_window_s
    if window is not None:
        window_ms = params.parse_duration_ms("window", window)
        if not 10_000 <= window_ms <= MAX_COMPLETENESS_WINDOW_S * 1000:
            raise params.InvalidParameter("window", f"must be between 10s and {MAX_COMPLETENESS_WINDOW_S // 86400}d")
        window_s = window_ms // 1000
    seen = await svc.data_index(state.reader, None)
    known = svc.known_devices_frame([{"site": s, "device": d} for (s, d) in seen])
    per_device, per_site = await state.completeness.report(window_s, known)
    return {"now": _now_ms(), "window_s": window_s,
            "devices": per_device.drop("min_seq", "max_seq").to_dicts(),
            "sites": per_site.to_dicts()}
