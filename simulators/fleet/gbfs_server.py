"""The simulated fleet as a public GBFS feed (2.3 or 3.0), for the edge GBFS poller to read.

``/gbfs/gbfs.json`` links every file. Vehicles on a trip are not listed; a listed vehicle's id is
``HMAC(secret, fleet|vehicle|trip_count)``, so it changes after each trip (GBFS requires ids to
rotate). Stations are the graph's rail stations and bus stops (virtual stations); geofencing zones
are the same zones the vehicles ride through, their kinds mapped to GBFS rules.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import time
from datetime import datetime, timezone

from aiohttp import web

from simulators.fleet.model import FleetModel
from hinode.mobility import VEHICLE_TYPE_INFO, VehicleState, VehicleType
from simulators.fleet.world import haversine_m
from simulators.fleet.zones import Zone

VERSIONS = ("2.3", "3.0")
STATION_RADIUS_M = 150.0
FEEDS = ("system_information", "vehicle_types", "station_information", "station_status", "geofencing_zones")


def vehicle_public_id(secret: bytes, fleet: str, vehicle: str, trip_count: int) -> str:
    return hmac.new(secret, f"{fleet}|{vehicle}|{trip_count}".encode(), hashlib.sha256).hexdigest()[:20]


def _rfc3339(ts_s: float) -> str:
    return datetime.fromtimestamp(int(ts_s), timezone.utc).isoformat().replace("+00:00", "Z")


class GbfsFeed:
    """Pure builders: the model's state now as GBFS documents of one version."""

    def __init__(self, model: FleetModel, version: str = "3.0", ttl_s: int = 5, secret: bytes | None = None,
                 name: str = "Hitachi City shared mobility (simulated)", language: str = "ja"):
        if version not in VERSIONS:
            raise ValueError(f"--gbfs-version: expected one of {', '.join(VERSIONS)}, got {version!r}")
        self.model, self.version, self.ttl_s, self.language, self.name = model, version, int(ttl_s), language, name
        self.secret = secret or secrets.token_bytes(32)
        self.updated_s = time.time()            # when the model last changed (set by the simulator's clock)

    @property
    def v3(self) -> bool:
        return self.version == "3.0"

    def _text(self, ja: str, en: str):
        return [{"text": ja, "language": "ja"}, {"text": en, "language": "en"}] if self.v3 else (
            ja if self.language == "ja" else en)

    def _wrap(self, data: dict) -> dict:
        updated = _rfc3339(self.updated_s) if self.v3 else int(self.updated_s)
        return {"last_updated": updated, "ttl": self.ttl_s, "version": self.version, "data": data}

    def vehicles_file(self) -> str:
        return "vehicle_status" if self.v3 else "free_bike_status"

    def feed_names(self) -> tuple[str, ...]:
        return (*FEEDS[:2], self.vehicles_file(), *FEEDS[2:])

    def gbfs(self, base_url: str) -> dict:
        feeds = [{"name": name, "url": f"{base_url}/{name}.json"} for name in self.feed_names()]
        return self._wrap({"feeds": feeds} if self.v3 else {self.language: {"feeds": feeds}})

    def system_information(self) -> dict:
        data = {"system_id": self.model.fleet, "name": self._text("日立市シェアモビリティ（シミュレーション）", self.name),
                "timezone": "Asia/Tokyo", "operator": self._text("hinode-iot simulator", "hinode-iot simulator")}
        if self.v3:
            data.update(languages=["ja", "en"], opening_hours="24/7", feed_contact_email="fleet-sim@example.jp")
        else:
            data["language"] = self.language
        return self._wrap(data)

    def vehicle_types(self) -> dict:
        present = sorted({v.vehicle_type for v in self.model.vehicles})
        types = []
        for vt in present:
            info = VEHICLE_TYPE_INFO[vt]
            entry = {"vehicle_type_id": str(vt), "form_factor": info.form_factor,
                     "propulsion_type": info.propulsion_type, "max_range_meters": float(info.max_range_m),
                     "name": self._text(info.name_ja, info.name_en)}
            if self.v3:
                entry["max_permitted_speed"] = int(info.max_speed_kmh)
            types.append(entry)
        return self._wrap({"vehicle_types": types})

    def vehicles(self) -> dict:
        listed = []
        for v in self.model.vehicles:
            if v.state == VehicleState.ON_TRIP:
                continue
            entry = {"lat": round(v.lat, 6), "lon": round(v.lon, 6),
                     "is_reserved": v.state == VehicleState.RESERVED,
                     "is_disabled": v.state == VehicleState.NON_OPERATIONAL or v.tipped_over,
                     "vehicle_type_id": str(v.vehicle_type), "current_range_meters": float(v.range_m),
                     "current_fuel_percent": round(v.battery_pct / 100, 3),
                     "last_reported": _rfc3339(self.updated_s) if self.v3 else int(self.updated_s)}
            vid = vehicle_public_id(self.secret, self.model.fleet, v.id, v.trip_count)
            listed.append({"vehicle_id" if self.v3 else "bike_id": vid, **entry})
        return self._wrap({"vehicles" if self.v3 else "bikes": listed})

    def _stations(self):
        return [n for n in self.model.world.nodes.values() if n.kind in ("station", "bus_stop")]

    def station_information(self) -> dict:
        stations = [{"station_id": n.id, "name": self._text(n.name_ja, n.name_en), "lat": n.lat, "lon": n.lon,
                     "is_virtual_station": True} for n in self._stations()]
        return self._wrap({"stations": stations})

    def station_status(self) -> dict:
        stations = []
        for n in self._stations():
            near = [v for v in self.model.vehicles if v.state != VehicleState.ON_TRIP
                    and haversine_m(n.lat, n.lon, v.lat, v.lon) <= STATION_RADIUS_M]
            available = [v for v in near if v.state == VehicleState.AVAILABLE and not v.tipped_over]
            by_type = {vt: sum(1 for v in available if v.vehicle_type == vt)
                       for vt in sorted({v.vehicle_type for v in self.model.vehicles})}
            entry = {"station_id": n.id, "is_installed": True, "is_renting": True, "is_returning": True,
                     "last_reported": _rfc3339(self.updated_s) if self.v3 else int(self.updated_s),
                     "vehicle_types_available": [{"vehicle_type_id": str(vt), "count": c} for vt, c in by_type.items()]}
            key = "vehicles" if self.v3 else "bikes"
            entry[f"num_{key}_available"] = len(available)
            entry[f"num_{key}_disabled"] = len(near) - len(available)
            stations.append(entry)
        return self._wrap({"stations": stations})

    def _rule(self, zone: Zone) -> dict:
        types = [str(vt) for vt in VehicleType if zone.applies_to(str(vt))
                 and any(v.vehicle_type == vt for v in self.model.vehicles)]
        through = zone.kind != "no_ride"
        may_end = zone.kind not in ("no_ride", "no_parking")
        rule = ({"vehicle_type_ids": types, "ride_start_allowed": may_end, "ride_end_allowed": may_end}
                if self.v3 else {"vehicle_type_id": types, "ride_allowed": may_end})
        rule["ride_through_allowed"] = through
        if zone.kind == "slow" and zone.max_speed_kmh:
            rule["maximum_speed_kph"] = int(math.floor(zone.max_speed_kmh))
        if zone.kind == "station_parking":
            rule["station_parking"] = True
        return rule

    def geofencing_zones(self) -> dict:
        features = []
        for zone in self.model.zones.zones:
            coordinates = [[[list(p) for p in ring] for ring in poly] for poly in zone.polygons]
            features.append({"type": "Feature", "geometry": {"type": "MultiPolygon", "coordinates": coordinates},
                             "properties": {"name": self._text(zone.name_ja, zone.name_en),
                                            "rules": [self._rule(zone)]}})
        data = {"geofencing_zones": {"type": "FeatureCollection", "features": features}}
        if self.v3:
            data["global_rules"] = [{"ride_start_allowed": True, "ride_end_allowed": True,
                                     "ride_through_allowed": True}]
        return self._wrap(data)

    def document(self, name: str, base_url: str) -> dict:
        if name == "gbfs":
            return self.gbfs(base_url)
        if name == self.vehicles_file():
            return self.vehicles()
        if name in FEEDS:
            return getattr(self, name)()
        raise KeyError(name)


class GbfsServer:
    """aiohttp on ``host:port`` (0 = a free port) serving ``/gbfs/<name>.json``."""

    def __init__(self, feed: GbfsFeed, host: str = "127.0.0.1", port: int = 0):
        self.feed, self.host, self.port = feed, host, port
        self.runner: web.AppRunner | None = None

    async def _serve(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        base = f"{request.scheme}://{request.host}/gbfs"
        try:
            return web.json_response(self.feed.document(name, base),
                                     headers={"Cache-Control": f"max-age={self.feed.ttl_s}"})
        except KeyError:
            raise web.HTTPNotFound(text=f"no GBFS file {name}.json in version {self.feed.version}") from None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/gbfs/{name}.json", self._serve)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, self.host, self.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/gbfs/gbfs.json"
