"""The GBFS 3.0 feed over HTTP: the fleet domain's ``public_router``, served WITHOUT authentication under
``/public/fleet/`` (``/public/fleet/gbfs/gbfs.json`` and the files it lists). Not part of the authenticated
``/api/fleet`` router: a route-search app or OpenTripPlanner polls it with no token.

It reads the live fleet from ``request.app.state.fleet`` (set by the domain's lifespan, worker.py):
``.tracker`` (FleetTracker), ``.zones`` (ZoneIndex), ``.hubs`` (list of Hub) and ``.config`` (FleetConfig).
The files are built by gbfs_out.py and gbfs_out_zones.py; GBFS.md describes them.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse

from cloud.domains.fleet import gbfs_out, gbfs_out_zones
from cloud.domains.fleet.config import FleetConfig
from cloud.domains.fleet.gbfs_out import GbfsSettings

router = APIRouter()

SECRET_FILE_NAME = "gbfs-id-rotation.key"
# GBFS 3.0 requires a contact; a real deployment sets domains.fleet.gbfs.feed_contact_email.
DEFAULT_CONTACT_EMAIL = "fleet-operator@example.com"
SECRET_MIN_BYTES = 16
# More vehicles than this are built off the event loop (about 15 µs each: 10,000 take ~150 ms).
BUILD_IN_THREAD_ABOVE = 2_000


@dataclass
class _FeedState:
    """Per app: the rotation key, read or created once."""
    secret: bytes


def _fleet(request: Request) -> Any:
    fleet = getattr(request.app.state, "fleet", None)
    if fleet is None or getattr(fleet, "tracker", None) is None:
        raise HTTPException(503, "the fleet domain is not running (domains.fleet.enabled false, or still starting)")
    return fleet


def load_or_create_secret(config: FleetConfig) -> bytes:
    """The HMAC key of the rotating vehicle ids: ``domains.fleet.gbfs.id_rotation_secret_file`` if set, else
    a random key created once (mode 0600) in the fleet's state_dir, so ids survive an API restart."""
    configured = config.gbfs.id_rotation_secret_file
    if configured is not None:
        path = Path(configured)
        try:
            key = path.read_bytes().strip()
        except OSError as exc:
            raise RuntimeError(f"domains.fleet.gbfs.id_rotation_secret_file: cannot read {path}: "
                               f"{exc.strerror or exc} (expected a file holding the HMAC key)") from None
        if len(key) < SECRET_MIN_BYTES:
            raise RuntimeError(f"domains.fleet.gbfs.id_rotation_secret_file: {path} holds {len(key)} bytes "
                               f"(expected a key of at least {SECRET_MIN_BYTES} bytes)")
        return key
    path = Path(config.resolved_state_dir()) / SECRET_FILE_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        # Written aside, then linked into place: another API process on the same state_dir either wins the
        # link (and both use its key) or loses it, and never reads a half-written key.
        aside = path.with_name(f".{SECRET_FILE_NAME}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(secrets.token_hex(32).encode() + b"\n")
        try:
            os.link(aside, path)
        except FileExistsError:
            pass
        finally:
            aside.unlink()
    key = path.read_bytes().strip()
    if len(key) < SECRET_MIN_BYTES:
        raise RuntimeError(f"{path}: the GBFS id rotation key is {len(key)} bytes (expected at least "
                           f"{SECRET_MIN_BYTES}); delete the file to have a new one made")
    return key


def _feed_state(request: Request, config: FleetConfig) -> _FeedState:
    state = getattr(request.app.state, "fleet_gbfs", None)
    if state is None:
        try:
            secret = load_or_create_secret(config)
        except (OSError, RuntimeError) as exc:
            raise HTTPException(503, f"GBFS feed unavailable: {exc}") from None
        state = request.app.state.fleet_gbfs = _FeedState(secret=secret)
    return state


def settings_for(config: FleetConfig, secret: bytes, base_url: str) -> GbfsSettings:
    """``domains.fleet`` (FleetConfig) as the feed's settings; ``base_url`` is the request's folder unless
    ``domains.fleet.gbfs.base_url`` says where the public reaches the feed (behind a proxy)."""
    gbfs = config.gbfs
    main = gbfs.language
    languages = (main, *(lang for lang in ("ja", "en") if lang != main))
    name, operator = gbfs.name, gbfs.operator
    return GbfsSettings(
        system_id=gbfs.system_id,
        name=name if isinstance(name, dict) else {main: name},
        operator=operator if isinstance(operator, dict) else {main: operator},
        feed_contact_email=gbfs.feed_contact_email or DEFAULT_CONTACT_EMAIL,
        rotation_secret=secret,
        base_url=(gbfs.base_url or base_url).rstrip("/"),
        timezone=gbfs.timezone,
        languages=languages,
        ttl_s=gbfs.ttl_s,
        station_radius_m=config.tracker_rules().station_radius_m,
        battery_low_pct=config.battery_low_pct,
        fleets=tuple(gbfs.fleets),
    )


def _request_base(request: Request) -> str:
    """The folder this file was asked from (``http://host:port/public/fleet/gbfs``), proxies' root_path included."""
    return str(request.url.replace(query=None, fragment=None)).rsplit("/", 1)[0]


def _build(name: str, settings: GbfsSettings, now_ms: int, views: list, fleet: Any) -> dict:
    if name == "gbfs":
        return gbfs_out.gbfs_json(settings, now_ms)
    if name == "manifest":
        return gbfs_out.manifest_json(settings, now_ms)
    if name == "system_information":
        return gbfs_out.system_information(settings, now_ms)
    if name == "vehicle_types":
        return gbfs_out.vehicle_types(settings, now_ms)
    if name == "vehicle_status":
        return gbfs_out.vehicle_status(settings, now_ms, views, fleet.hubs)
    if name == "station_information":
        return gbfs_out.station_information(settings, now_ms, fleet.hubs)
    if name == "station_status":
        return gbfs_out.station_status(settings, now_ms, views, fleet.hubs)
    if name == "geofencing_zones":
        return gbfs_out_zones.geofencing_zones(settings, now_ms, fleet.zones.zones)
    raise AssertionError(name)


@router.get("/gbfs/{name}.json", summary="GBFS 3.0 feed (public, no token): gbfs.json lists the other files",
            tags=["fleet", "public"])
async def gbfs_file(request: Request, name: str) -> JSONResponse:
    if name not in gbfs_out.FILES:
        raise HTTPException(404, f"no GBFS file {name}.json (published: "
                                 f"{', '.join(f + '.json' for f in gbfs_out.FILES)})")
    fleet = _fleet(request)
    state = _feed_state(request, fleet.config)
    settings = settings_for(fleet.config, state.secret, _request_base(request))
    now_ms = int(time.time() * 1000)
    views = list(fleet.tracker.vehicles()) if name in ("vehicle_status", "station_status") else []
    if len(views) > BUILD_IN_THREAD_ABOVE:
        body = await asyncio.to_thread(_build, name, settings, now_ms, views, fleet)
    else:
        body = _build(name, settings, now_ms, views, fleet)
    return JSONResponse(body, headers={"Cache-Control": f"public, max-age={settings.ttl_s}",
                                       "Access-Control-Allow-Origin": "*"})


@router.get("/zones.geojson", summary="The zones as a plain GeoJSON FeatureCollection (public, no token), for map "
                                      "layers such as Grafana's geomap", tags=["fleet", "public"])
async def zones_geojson(request: Request) -> JSONResponse:
    fleet = _fleet(request)
    return JSONResponse(fleet.zones.to_geojson(), media_type="application/geo+json",
                        headers={"Cache-Control": "public, max-age=300", "Access-Control-Allow-Origin": "*"})
