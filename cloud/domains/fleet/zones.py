"""Zones as GeoJSON: no-ride, no-parking, station-only parking and slow zones, with a spatial index.

A zones file is a GeoJSON FeatureCollection; each Feature has a Polygon or MultiPolygon geometry
(lon, lat in WGS 84) and these properties:

- ``id``: an Ident (the zone's tag in InfluxDB and its id in events)
- ``name``: ``{"ja": ..., "en": ...}``
- ``kind``: ``no_ride | no_parking | station_parking | slow``
- ``max_speed_kmh``: a positive number, required for ``slow`` (and only allowed there)
- ``vehicle_types``: a list of vehicle types the zone applies to (default: all)

A file that breaks any of this raises :class:`ZoneFileError` naming the file, the feature index and
the key. Point lookups are on the fleet's hot path (one per position fix): the index keeps the polygons
prepared and, once, asks shapely's STRtree which polygons touch each cell of a fine grid; a lookup is
then a dict lookup, and where zones are, one vectorised ``intersects_xy`` over that cell's polygons.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from shapely.geometry import mapping, shape
from shapely.strtree import STRtree

from hinode.contract import is_id
from hinode.mobility import VehicleType, ZoneKind   # ZoneKind: no_ride, no_parking, station_parking, slow

EARTH_RADIUS_M = 6_371_008.8
# Cell size of the lookup grid, in degrees (about 450 m x 550 m in Hitachi City).
GRID_DEG = 0.005
MAX_ZONE_DEG = 1.0     # a zone wider than this (~100 km) is a mistake, and would need 40,000 grid cells


class ZoneFileError(ValueError):
    """A zones file that cannot be used; the message names the file, the feature and the key."""


@dataclass(frozen=True)
class Zone:
    id: str
    name: dict[str, str]
    kind: ZoneKind
    geometry: Any = field(repr=False, compare=False)   # shapely Polygon / MultiPolygon
    max_speed_kmh: float | None = None
    vehicle_types: frozenset[str] = frozenset()           # empty: every vehicle type

    def applies_to(self, vehicle_type: str) -> bool:
        return not self.vehicle_types or vehicle_type in self.vehicle_types

    def to_feature(self) -> dict:
        properties: dict[str, Any] = {"id": self.id, "name": dict(self.name), "kind": str(self.kind)}
        if self.max_speed_kmh is not None:
            properties["max_speed_kmh"] = self.max_speed_kmh
        if self.vehicle_types:
            properties["vehicle_types"] = sorted(self.vehicle_types)
        return {"type": "Feature", "geometry": mapping(self.geometry), "properties": properties}


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


class ZoneIndex:
    """Zones with an STRtree over their polygons; ``zones_at`` answers which contain a point."""

    def __init__(self, zones: list[Zone], source: str = "<zones>"):
        self.source = source
        self.zones = list(zones)
        self.by_id = {zone.id: zone for zone in self.zones}
        self._geometries = np.array([zone.geometry for zone in self.zones], dtype=object)
        shapely.prepare(self._geometries)   # in place; makes each candidate's point-in-polygon test cheap
        self.tree = STRtree(self._geometries)
        self._cells = self._grid_cells()

    def _grid_cells(self) -> dict[tuple[int, int], tuple[np.ndarray, list[int]]]:
        """Grid cell -> the zones whose polygon touches the cell (asked of the STRtree once, here), so a
        point lookup is a dict lookup and, only where zones are, one vectorised point-in-polygon test."""
        if not self.zones:
            return {}
        keys: set[tuple[int, int]] = set()
        for geometry in self._geometries:
            minx, miny, maxx, maxy = geometry.bounds
            x0, x1, y0, y1 = (math.floor(minx / GRID_DEG), math.floor(maxx / GRID_DEG),
                              math.floor(miny / GRID_DEG), math.floor(maxy / GRID_DEG))
            keys.update((ix, iy) for ix in range(x0, x1 + 1) for iy in range(y0, y1 + 1))
        ordered = sorted(keys)
        boxes = shapely.box(*np.array([[ix * GRID_DEG, iy * GRID_DEG, (ix + 1) * GRID_DEG, (iy + 1) * GRID_DEG]
                                       for ix, iy in ordered]).T)
        box_index, zone_index = self.tree.query(boxes, predicate="intersects")
        found: dict[tuple[int, int], list[int]] = {}
        for b, z in zip(box_index.tolist(), zone_index.tolist()):
            found.setdefault(ordered[b], []).append(z)
        return {key: (self._geometries[sorted(ids)], sorted(ids)) for key, ids in found.items()}

    def __len__(self) -> int:
        return len(self.zones)

    @classmethod
    def empty(cls) -> ZoneIndex:
        return cls([], source="<no zones>")

    @classmethod
    def from_file(cls, path: str | Path) -> ZoneIndex:
        path = Path(path)
        try:
            obj = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ZoneFileError(f"{path}: cannot read the zones file: {exc.strerror or exc}") from None
        except ValueError as exc:
            raise ZoneFileError(f"{path}: not JSON: {exc}") from None
        return cls.from_geojson(obj, source=str(path))

    @classmethod
    def from_geojson(cls, obj: Any, source: str = "<zones>") -> ZoneIndex:
        if not isinstance(obj, dict) or obj.get("type") != "FeatureCollection":
            raise ZoneFileError(f"{source}: expected a GeoJSON FeatureCollection (\"type\": \"FeatureCollection\")")
        features = obj.get("features")
        if not isinstance(features, list):
            raise ZoneFileError(f"{source}: key 'features': expected a list of Features")
        zones: list[Zone] = []
        seen: set[str] = set()
        for index, feature in enumerate(features):
            zone = _zone_from_feature(feature, f"{source}: feature {index}")
            if zone.id in seen:
                raise ZoneFileError(f"{source}: feature {index}: key 'properties.id': {zone.id!r} is used twice")
            seen.add(zone.id)
            zones.append(zone)
        return cls(zones, source=source)

    def zones_at(self, lon: float, lat: float, vehicle_type: str | None = None) -> list[Zone]:
        """The zones containing the point (boundary included), in file order; only those applying to
        ``vehicle_type`` when one is given."""
        cell = self._cells.get((math.floor(lon / GRID_DEG), math.floor(lat / GRID_DEG)))
        if cell is None:
            return []
        geometries, ids = cell
        inside = shapely.intersects_xy(geometries, lon, lat)
        found = [self.zones[i] for i, hit in zip(ids, inside.tolist()) if hit]
        if vehicle_type is None:
            return found
        return [zone for zone in found if zone.applies_to(vehicle_type)]

    def to_geojson(self) -> dict:
        return {"type": "FeatureCollection", "features": [zone.to_feature() for zone in self.zones]}


def _zone_from_feature(feature: Any, where: str) -> Zone:
    if not isinstance(feature, dict) or feature.get("type") != "Feature":
        raise ZoneFileError(f"{where}: key 'type': expected \"Feature\"")
    geometry = feature.get("geometry")
    if not isinstance(geometry, dict) or geometry.get("type") not in ("Polygon", "MultiPolygon"):
        raise ZoneFileError(f"{where}: key 'geometry.type': expected Polygon or MultiPolygon, "
                            f"got {geometry.get('type') if isinstance(geometry, dict) else geometry!r}")
    try:
        polygon = shape(geometry)
    except Exception as exc:   # shapely raises several kinds for malformed coordinates
        raise ZoneFileError(f"{where}: key 'geometry.coordinates': not a valid {geometry['type']}: {exc}") from None
    if polygon.is_empty or not polygon.is_valid:
        reason = shapely.is_valid_reason(polygon) if not polygon.is_empty else "empty"
        raise ZoneFileError(f"{where}: key 'geometry.coordinates': invalid polygon ({reason})")
    minx, miny, maxx, maxy = polygon.bounds
    if minx < -180 or maxx > 180 or miny < -90 or maxy > 90:
        raise ZoneFileError(f"{where}: key 'geometry.coordinates': expected [lon, lat] in degrees "
                            f"(lon -180..180, lat -90..90), got bounds {polygon.bounds}")
    if maxx - minx > MAX_ZONE_DEG or maxy - miny > MAX_ZONE_DEG:
        raise ZoneFileError(f"{where}: key 'geometry.coordinates': spans more than {MAX_ZONE_DEG} degree "
                            f"(bounds {polygon.bounds}); zones are streets and districts of a city")
    props = feature.get("properties")
    if not isinstance(props, dict):
        raise ZoneFileError(f"{where}: key 'properties': expected an object")
    zone_id = props.get("id")
    if not isinstance(zone_id, str) or not is_id(zone_id):
        raise ZoneFileError(f"{where}: key 'properties.id': expected an id (letters, digits, '-', '_', '.'), "
                            f"got {zone_id!r}")
    name = props.get("name")
    if not isinstance(name, dict) or not all(isinstance(name.get(lang), str) and name[lang] for lang in ("ja", "en")):
        raise ZoneFileError(f"{where} ({zone_id}): key 'properties.name': expected {{\"ja\": ..., \"en\": ...}}")
    try:
        kind = ZoneKind(props.get("kind"))
    except ValueError:
        raise ZoneFileError(f"{where} ({zone_id}): key 'properties.kind': expected one of "
                            f"{', '.join(k.value for k in ZoneKind)}, got {props.get('kind')!r}") from None
    max_speed = props.get("max_speed_kmh")
    if kind is ZoneKind.SLOW:
        if isinstance(max_speed, bool) or not isinstance(max_speed, (int, float)) or not max_speed > 0:
            raise ZoneFileError(f"{where} ({zone_id}): key 'properties.max_speed_kmh': a slow zone needs a "
                                f"positive number (km/h), got {max_speed!r}")
        max_speed = float(max_speed)
    elif max_speed is not None:
        raise ZoneFileError(f"{where} ({zone_id}): key 'properties.max_speed_kmh': only slow zones have a "
                            f"maximum speed (this one is {kind.value})")
    vehicle_types = props.get("vehicle_types", [])
    known = {vt.value for vt in VehicleType}
    if not isinstance(vehicle_types, list) or not all(vt in known for vt in vehicle_types):
        raise ZoneFileError(f"{where} ({zone_id}): key 'properties.vehicle_types': expected a list of "
                            f"{', '.join(sorted(known))}, got {vehicle_types!r}")
    return Zone(id=zone_id, name={"ja": name["ja"], "en": name["en"]}, kind=kind, geometry=polygon,
                max_speed_kmh=max_speed, vehicle_types=frozenset(vehicle_types))
