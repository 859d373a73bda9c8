"""The zones the simulated vehicles ride through: the same GeoJSON the fleet domain enforces.

``load_zones()`` reads cloud/domains/fleet/data/zones_hitachi.geojson (the fleet domain's shipped
zones) so the deliberate misbehaviour hits real zones; until that file exists (or when it is
unreadable) a few zones of our own around JR Hitachi and JR Omika stand in. Point-in-polygon is
a plain ray cast: a few dozen zones and one lookup per vehicle step need nothing faster.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import yaml

from simulators.fleet.world import haversine_m, offset

log = logging.getLogger(__name__)

ZONES_FILE = Path(__file__).resolve().parents[2] / "cloud" / "domains" / "fleet" / "data" / "zones_hitachi.geojson"
HUBS_FILE = ZONES_FILE.parent / "hubs_hitachi.yaml"
KINDS = ("no_ride", "no_parking", "station_parking", "slow")
# The fleet domain lets a vehicle park within 40 m of a hub in a station_parking zone; staying inside
# 25 m and keeping 12 m from any zone edge leaves room for 3-8 m of GPS noise.
HUB_PARKING_M = 25.0
PARK_CLEARANCE_M = 12.0

Ring = list[tuple[float, float]]          # (lon, lat), GeoJSON order


@dataclass(frozen=True)
class Zone:
    id: str
    kind: str
    name_en: str
    name_ja: str
    max_speed_kmh: float | None
    vehicle_types: tuple[str, ...]         # empty: every type
    polygons: tuple[tuple[Ring, ...], ...]  # each polygon: outer ring, then holes
    feature: dict                          # the GeoJSON feature as read (for the GBFS server)

    def applies_to(self, vehicle_type: str) -> bool:
        return not self.vehicle_types or vehicle_type in self.vehicle_types

    def contains(self, lat: float, lon: float) -> bool:
        return any(_in_ring(lon, lat, rings[0]) and not any(_in_ring(lon, lat, hole) for hole in rings[1:])
                   for rings in self.polygons)

    def inner_point(self) -> tuple[float, float]:
        """A (lat, lon) inside the zone: the outer ring's vertex mean if inside, else a grid search."""
        outer = self.polygons[0][0]
        lon = sum(p[0] for p in outer) / len(outer)
        lat = sum(p[1] for p in outer) / len(outer)
        if self.contains(lat, lon):
            return lat, lon
        lons, lats = [p[0] for p in outer], [p[1] for p in outer]
        for i in range(1, 20):
            for j in range(1, 20):
                la = min(lats) + (max(lats) - min(lats)) * i / 20
                lo = min(lons) + (max(lons) - min(lons)) * j / 20
                if self.contains(la, lo):
                    return la, lo
        raise ValueError(f"zone {self.id}: no point found inside it")


def _in_ring(x: float, y: float, ring: Ring) -> bool:
    inside = False
    n = len(ring)
    for i in range(n):
        x1, y1 = ring[i]
        x2, y2 = ring[(i + 1) % n]
        if (y1 > y) != (y2 > y) and x < x1 + (y - y1) * (x2 - x1) / (y2 - y1):
            inside = not inside
    return inside


def _square(lat: float, lon: float, half_north_m: float, half_east_m: float) -> list[list[float]]:
    corners = [offset(lat, lon, dn * half_north_m, de * half_east_m) for dn, de in
               ((-1, -1), (-1, 1), (1, 1), (1, -1), (-1, -1))]
    return [[round(lo, 6), round(la, 6)] for la, lo in corners]


def fallback_geojson() -> dict:
    """Our own zones, used only while the fleet domain's file is missing."""
    def feature(zone_id, kind, en, ja, ring, **extra):
        return {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [ring]},
                "properties": {"id": zone_id, "kind": kind, "name": {"en": en, "ja": ja}, **extra}}
    return {"type": "FeatureCollection", "features": [
        feature("slow-hitachi-station", "slow", "JR Hitachi station square (slow)", "日立駅前 徐行区域",
                _square(36.5908, 140.6600, 180, 260), max_speed_kmh=6),
        feature("no-parking-hitachi-forecourt", "no_parking", "JR Hitachi west forecourt", "日立駅 西口駅前広場",
                _square(36.5907, 140.6603, 30, 40)),
        feature("slow-omika-station", "slow", "JR Omika station square (slow)", "大甕駅前 徐行区域",
                _square(36.5087, 140.6270, 150, 220), max_speed_kmh=6),
        feature("no-parking-omika-forecourt", "no_parking", "JR Omika forecourt", "大甕駅 駅前広場",
                _square(36.5086, 140.6275, 25, 35)),
    ]}


def zones_from_geojson(data: dict, source: str) -> list[Zone]:
    if not isinstance(data, dict) or data.get("type") != "FeatureCollection":
        raise ValueError(f"{source}: expected a GeoJSON FeatureCollection")
    zones = []
    for index, feature in enumerate(data.get("features") or []):
        where = f"{source}: features[{index}]"
        props = feature.get("properties") or {}
        geometry = feature.get("geometry") or {}
        kind = props.get("kind")
        if kind not in KINDS:
            raise ValueError(f"{where}.properties.kind: expected one of {', '.join(KINDS)}, got {kind!r}")
        if geometry.get("type") == "Polygon":
            polygons = (geometry["coordinates"],)
        elif geometry.get("type") == "MultiPolygon":
            polygons = tuple(geometry["coordinates"])
        else:
            raise ValueError(f"{where}.geometry.type: expected Polygon or MultiPolygon, got {geometry.get('type')!r}")
        name = props.get("name") or {}
        max_speed = props.get("max_speed_kmh")
        if kind == "slow" and not isinstance(max_speed, (int, float)):
            raise ValueError(f"{where}.properties.max_speed_kmh: a slow zone needs a number")
        zones.append(Zone(
            id=str(props.get("id") or f"zone-{index}"), kind=kind,
            name_en=str(name.get("en", props.get("id", ""))), name_ja=str(name.get("ja", name.get("en", ""))),
            max_speed_kmh=float(max_speed) if isinstance(max_speed, (int, float)) else None,
            vehicle_types=tuple(props.get("vehicle_types") or ()),
            polygons=tuple(tuple([(float(p[0]), float(p[1])) for p in ring] for ring in poly) for poly in polygons),
            feature=feature))
    return zones


def load_zones(path: Path | str | None = None) -> tuple[list[Zone], str]:
    """The zones and where they came from (a path, or "built-in" for the stand-in zones)."""
    path = Path(path) if path else ZONES_FILE
    if not path.exists():
        if path != ZONES_FILE:
            raise ValueError(f"--zones {path}: no such file")
        return zones_from_geojson(fallback_geojson(), "built-in"), "built-in"
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: cannot read zones: {exc}") from None
    return zones_from_geojson(data, str(path)), str(path)


def load_hubs(path: Path | str | None = None) -> list[tuple[float, float]]:
    """(lat, lon) of the fleet domain's hubs (where a station_parking zone allows parking); none if missing."""
    path = Path(path) if path else HUBS_FILE
    if not path.exists():
        return []
    try:
        hubs = yaml.safe_load(path.read_text()) or []
        return [(float(h["lat"]), float(h["lon"])) for h in hubs]
    except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: expected a list of hubs with lat and lon: {exc}") from None


class ZoneMap:
    """The zones with a bounding-box pre-check per zone, and the hubs station_parking zones allow."""

    def __init__(self, zones: list[Zone], hubs: list[tuple[float, float]] = ()):
        self.zones = zones
        self.hubs = list(hubs)
        self._boxes = []
        for zone in zones:
            pts = [p for poly in zone.polygons for p in poly[0]]
            self._boxes.append((min(p[1] for p in pts), min(p[0] for p in pts),
                                max(p[1] for p in pts), max(p[0] for p in pts)))

    def at(self, lat: float, lon: float, vehicle_type: str | None = None) -> list[Zone]:
        return [zone for zone, (s, w, n, e) in zip(self.zones, self._boxes)
                if s <= lat <= n and w <= lon <= e and (vehicle_type is None or zone.applies_to(vehicle_type))
                and zone.contains(lat, lon)]

    def speed_limit(self, lat: float, lon: float, vehicle_type: str) -> float | None:
        limits = [z.max_speed_kmh for z in self.at(lat, lon, vehicle_type) if z.kind == "slow" and z.max_speed_kmh]
        return min(limits) if limits else None

    def may_park(self, lat: float, lon: float, vehicle_type: str) -> bool:
        """Parking here breaks no rule, with PARK_CLEARANCE_M to spare around the spot."""
        around = [(lat, lon)] + [offset(lat, lon, dn * PARK_CLEARANCE_M, de * PARK_CLEARANCE_M)
                                 for dn, de in ((1, 0), (-1, 0), (0, 1), (0, -1))]
        if any(z.kind in ("no_parking", "no_ride") for p in around for z in self.at(*p, vehicle_type)):
            return False
        if any(z.kind == "station_parking" for z in self.at(lat, lon, vehicle_type)):
            return any(haversine_m(lat, lon, *hub) <= HUB_PARKING_M for hub in self.hubs)
        return True

    def parking_base(self, lat: float, lon: float, vehicle_type: str) -> tuple[float, float]:
        """Where to look for a spot near (lat, lon): the nearest hub inside a station_parking zone."""
        if self.hubs and any(z.kind == "station_parking" for z in self.at(lat, lon, vehicle_type)):
            return min(self.hubs, key=lambda hub: haversine_m(lat, lon, *hub))
        return lat, lon

    def of_kind(self, kind: str) -> list[Zone]:
        return [z for z in self.zones if z.kind == kind]
