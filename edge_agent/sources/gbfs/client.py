"""HTTP side of the GBFS source: fetch a feed file, follow discovery (aiohttp, no retries here).

Every failure becomes a :class:`FeedError` whose message names the URL and what was expected,
and whose code is the error counter: ``connect``, ``timeout``, ``http_status``, ``not_found``,
``bad_json``, ``bad_feed``, ``discovery``.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field

import aiohttp

from edge_agent.sources.gbfs.geofence import GeofenceRule, GeofenceZone, parse_geofencing
from edge_agent.sources.gbfs.feed import (Discovery, Document, FeedError, VehicleTypeInfo, as_ident, parse_discovery,
                                          parse_document, parse_station_positions, parse_vehicle_types)

BODY_LIMIT = 64 * 1024 * 1024       # a vehicle feed of a very large system is a few MB


@dataclass
class FeedInfo:
    """What discovery learned: versions, URLs, the fleet id, vehicle types, station positions."""

    discovery: Discovery
    fleet: str
    vehicle_types: dict[str, VehicleTypeInfo] = field(default_factory=dict)
    stations: dict[str, tuple[float, float]] = field(default_factory=dict)
    zones: list[GeofenceZone] = field(default_factory=list)
    global_rules: tuple[GeofenceRule, ...] = ()


class FeedClient:
    def __init__(self, session: aiohttp.ClientSession):
        self.session = session
        self.requests = 0

    async def get(self, url: str) -> Document:
        """One GBFS file: its header and data, or FeedError."""
        return parse_document(await self.get_json(url), url)

    async def get_json(self, url: str) -> object:
        """The decoded JSON at ``url``, or FeedError."""
        self.requests += 1
        try:
            async with self.session.get(url, allow_redirects=True) as response:
                body = await response.content.read(BODY_LIMIT + 1)
                status, content_type = response.status, response.headers.get("Content-Type", "?")
        except asyncio.TimeoutError:
            raise FeedError("timeout", f"{url}: no answer in time") from None
        except aiohttp.ClientError as exc:
            raise FeedError("connect", f"{url}: cannot fetch ({type(exc).__name__}: {exc})") from None
        if status == 404:
            raise FeedError("not_found", f"{url}: HTTP 404 (the feed is not there; discovery is followed again)")
        if status != 200:
            raise FeedError("http_status", f"{url}: HTTP {status}, expected 200 with a GBFS JSON file")
        if len(body) > BODY_LIMIT:
            raise FeedError("bad_feed", f"{url}: larger than {BODY_LIMIT} bytes")
        try:
            doc = json.loads(body)
        except (UnicodeDecodeError, ValueError):
            start = body[:40].decode("utf-8", "replace")
            raise FeedError("bad_json", f"{url}: not JSON (Content-Type {content_type}, starts {start!r})") from None
        return doc

    async def discover(self, url: str, language: str | None, fleet: str | None, fallback_fleet: str,
                       errors: list[tuple[str, str]]) -> FeedInfo:
        """gbfs.json and the optional files; an optional file that fails is noted in ``errors`` (code, message)."""
        discovery = parse_discovery(await self.get_json(url), url, language)
        info = FeedInfo(discovery, fleet or fallback_fleet)
        feeds = discovery.feeds
        if fleet is None and "system_information" in feeds:
            data = await self._optional(feeds["system_information"], errors)
            if data is not None and isinstance(data.get("system_id"), str):
                info.fleet = as_ident(data["system_id"], fallback_fleet)
        if "vehicle_types" in feeds:
            data = await self._optional(feeds["vehicle_types"], errors)
            info.vehicle_types = parse_vehicle_types(data) if data is not None else {}
        if "station_information" in feeds:
            data = await self._optional(feeds["station_information"], errors)
            info.stations = parse_station_positions(data) if data is not None else {}
        if "geofencing_zones" in feeds:
            data = await self._optional(feeds["geofencing_zones"], errors)
            if data is not None:
                info.zones, info.global_rules = parse_geofencing(data, discovery.major)
        return info

    async def _optional(self, url: str, errors: list[tuple[str, str]]) -> dict | None:
        try:
            return (await self.get(url)).data
        except FeedError as exc:
            errors.append((exc.code, str(exc)))
            return None

