"""/api/fleet (scope fleet:read): the live fleet from the worker, and events, violations, trips and
utilisation from InfluxDB (README.md in this folder, "API")."""

from __future__ import annotations

import json
import time
from dataclasses import asdict

from fastapi import APIRouter, HTTPException, Query, Request

from cloud.api import params
from cloud.domains.fleet.alerts import ALERT_KINDS, open_alerts
from cloud.domains.fleet.worker_points import (EVENT_MEASUREMENT, HUB_MEASUREMENT, TRIP_MEASUREMENT,
                                               VIOLATION_MEASUREMENT)
from cloud.domains.fleet.worker_service import fleet_data, hub_coverage_rows, utilisation_summary
from cloud.influx import quote_string
from hinode.mobility import EventType, VehicleState, VehicleType, ViolationKind

router = APIRouter()

DEFAULT_START = "-1d"
MAX_ROWS = 10_000
START_QUERY = Query(DEFAULT_START, description="RFC3339, relative (-1d) or now")
END_QUERY = Query("now", description="RFC3339, relative or now")
LIMIT_QUERY = Query(500, ge=1, le=MAX_ROWS, description="rows at most, newest first")


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def running_worker(request: Request):
    worker = getattr(request.app.state, "fleet", None)
    if worker is None or worker.tracker is None:
        raise HTTPException(503, "the fleet worker is not running in this API process (it runs in "
                                 "`python -m cloud serve` with domains.fleet.enabled)")
    return worker


def _choice(name: str, value: str | None, allowed) -> str | None:
    if value is not None and value not in {str(v) for v in allowed}:
        raise params.InvalidParameter(name, f"{value!r} is not one of {', '.join(str(v) for v in allowed)}")
    return value


def _range(start: str, end: str) -> tuple[int, int]:
    now = now_ms()
    start_ms, end_ms = params.parse_time_ms("start", start, now), params.parse_time_ms("end", end, now)
    if end_ms <= start_ms:
        raise params.InvalidParameter("end", "must be after start")
    return start_ms, end_ms


def _where(start_ms: int, end_ms: int, **tags: str | None) -> str:
    conditions = [f"time >= {start_ms}ms", f"time < {end_ms}ms"]
    conditions += [f'"{tag}" = {quote_string(value)}' for tag, value in tags.items() if value]
    return " AND ".join(conditions)


async def _rows(request: Request, measurement: str, where: str, limit: int, columns: str = "*") -> list[dict]:
    (series,) = await request.app.state.reader.query(
        f'SELECT {columns} FROM "{measurement}" WHERE {where} ORDER BY time DESC LIMIT {int(limit)}')
    rows = [row for s in series for row in s.rows()]
    for row in rows:
        row["ts_ms"] = row.pop("time")
    return rows


def _ids(**values: str | None) -> dict[str, str | None]:
    return {name: params.check_id(name, value) if value else None for name, value in values.items()}


# ------------------------------------------------------------------ live

@router.get("/vehicles", summary="Every vehicle's newest fix, state and zones (live, from the fleet worker)")
async def vehicles(request: Request, fleet: str | None = Query(None), vehicle_type: str | None = Query(None),
                   state: str | None = Query(None, description="an MDS vehicle_state")) -> dict:
    _ids(fleet=fleet)
    _choice("vehicle_type", vehicle_type, VehicleType)
    _choice("state", state, VehicleState)
    worker = running_worker(request)
    views = [v for v in worker.tracker.vehicles()
             if (fleet is None or v.fleet == fleet) and (vehicle_type is None or v.vehicle_type == vehicle_type)
             and (state is None or v.state == state)]
    views.sort(key=lambda v: (v.fleet, v.vehicle))
    return {"now": now_ms(), "count": len(views), "vehicles": [asdict(v) for v in views]}


@router.get("/vehicles/{fleet}/{vehicle}", summary="One vehicle: its newest fix, open violations, recent events")
async def vehicle(request: Request, fleet: str, vehicle: str,
                  events: int = Query(20, ge=0, le=1000, description="recent events to include")) -> dict:
    _ids(fleet=fleet, vehicle=vehicle)
    worker = running_worker(request)
    view = worker.tracker.vehicle(fleet, vehicle)
    if view is None:
        raise HTTPException(404, f"no vehicle {vehicle!r} in fleet {fleet!r} has sent a fix")
    violations = [asdict(v) for v in worker.tracker.open_violations() if v.fleet == fleet and v.vehicle == vehicle]
    recent = []
    if events:
        recent = await _rows(request, EVENT_MEASUREMENT, _where(now_ms() - 7 * 86_400_000, now_ms() + 60_000,
                                                                fleet=fleet, vehicle=vehicle), events)
    return {"vehicle": asdict(view), "open_violations": violations, "events": recent}


@router.get("/alerts", summary="What needs the operator now: low battery, comms lost, tipped over, idle too long, "
                               "open violations")
async def alerts(request: Request, fleet: str | None = Query(None),
                 kind: str | None = Query(None, description="battery_low, comms_lost, tipped_over, idle_too_long "
                                                            "or violation")) -> dict:
    _ids(fleet=fleet)
    _choice("kind", kind, ALERT_KINDS)
    worker = running_worker(request)
    found = open_alerts(worker.tracker.vehicles(), worker.tracker.open_violations(), worker.config.battery_low_pct)
    found = [a for a in found if (fleet is None or a["fleet"] == fleet) and (kind is None or a["kind"] == kind)]
    return {"now": now_ms(), "count": len(found), "alerts": found}


@router.get("/zones", summary="The zones in use, as a GeoJSON FeatureCollection")
async def zones(request: Request) -> dict:
    return fleet_data(request.app).zones.to_geojson()


@router.get("/hubs", summary="Mobility hubs with the vehicles available within walking distance (live)")
async def hubs(request: Request, radius_m: float | None = Query(None, gt=0, le=10_000,
                                                               description="default: walking_radius_m")) -> dict:
    worker = running_worker(request)
    radius = radius_m or worker.config.walking_radius_m
    return {"now": now_ms(), "radius_m": radius, "hubs": hub_coverage_rows(worker.hubs, worker.tracker.vehicles(),
                                                                           radius)}


# ------------------------------------------------------------------ stored (InfluxDB)

@router.get("/events", summary="Events (MDS 2.0 names and extensions), newest first")
async def events(request: Request, fleet: str | None = Query(None), vehicle: str | None = Query(None),
                 zone: str | None = Query(None), type: str | None = Query(None, description="an event type"),
                 start: str = START_QUERY, end: str = END_QUERY, limit: int = LIMIT_QUERY) -> dict:
    tags = _ids(fleet=fleet, vehicle=vehicle, zone=zone)
    _choice("type", type, EventType)
    start_ms, end_ms = _range(start, end)
    rows = await _rows(request, EVENT_MEASUREMENT, _where(start_ms, end_ms, **tags, event_type=type), limit)
    return {"start": start_ms, "end": end_ms, "count": len(rows), "events": rows}


@router.get("/violations", summary="Violations with their start and end (end_ms 0 while open), newest first")
async def violations(request: Request, open: bool | None = Query(None, description="only open (true) or ended "
                                                                                    "(false) ones"),
                     fleet: str | None = Query(None), vehicle: str | None = Query(None),
                     zone: str | None = Query(None), kind: str | None = Query(None),
                     start: str = Query("-7d", description="violations that started since"), end: str = END_QUERY,
                     limit: int = LIMIT_QUERY) -> dict:
    tags = _ids(fleet=fleet, vehicle=vehicle, zone=zone)
    _choice("kind", kind, ViolationKind)
    start_ms, end_ms = _range(start, end)
    rows = await _rows(request, VIOLATION_MEASUREMENT, _where(start_ms, end_ms, **tags, violation_kind=kind),
                       MAX_ROWS)
    if open is not None:
        rows = [r for r in rows if bool(r.get("open")) == open]
    return {"start": start_ms, "end": end_ms, "count": len(rows[:limit]), "violations": rows[:limit]}


@router.get("/trips", summary="Trips (start, end, distance, duration, route as GeoJSON), newest first")
async def trips(request: Request, fleet: str | None = Query(None), vehicle: str | None = Query(None),
                vehicle_type: str | None = Query(None), start: str = START_QUERY, end: str = END_QUERY,
                limit: int = LIMIT_QUERY, route: bool = Query(True, description="include each trip's route")) -> dict:
    tags = _ids(fleet=fleet, vehicle=vehicle)
    _choice("vehicle_type", vehicle_type, VehicleType)
    start_ms, end_ms = _range(start, end)
    rows = await _rows(request, TRIP_MEASUREMENT, _where(start_ms, end_ms, **tags, vehicle_type=vehicle_type), limit)
    for row in rows:
        text = row.pop("route", None)
        if route:
            row["route"] = json.loads(text) if text else None
    return {"start": start_ms, "end": end_ms, "count": len(rows), "trips": rows}


@router.get("/utilisation", summary="Per vehicle: trips, time on trip and distance; per hub: vehicles available "
                                    "and how often none was (fleet.hubs job)")
async def utilisation(request: Request, fleet: str | None = Query(None), start: str = START_QUERY,
                      end: str = END_QUERY) -> dict:
    tags = _ids(fleet=fleet)
    start_ms, end_ms = _range(start, end)
    trip_rows = await _rows(request, TRIP_MEASUREMENT, _where(start_ms, end_ms, **tags), 1_000_000,
                            '"duration_s","distance_m","fleet","vehicle","vehicle_type"')
    hub_rows = await _rows(request, HUB_MEASUREMENT, _where(start_ms, end_ms), 1_000_000,
                           '"available","gap","nearest_m","hub","hub_kind"')
    return {"start": start_ms, "end": end_ms, **utilisation_summary(trip_rows, hub_rows, start_ms, end_ms)}
