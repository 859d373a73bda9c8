"""GBFS 3.0 ``geofencing_zones.json`` from the fleet's zones (pure; GBFS.md, "geofencing_zones").

Each zone kind becomes one rule. GBFS 3.0 applies only the FIRST feature covering a point for a vehicle
type ("Geofencing Rule Precedence"), whereas our zones all apply at once (a no-parking forecourt inside a
6 km/h station area is both). So features go most restrictive kind first, and a zone lying wholly inside
other zones carries their restrictions too (the forecourt's rule also says 6 km/h). Where zones only
partly overlap, the shared part keeps the first feature's rules alone: GBFS.md names this limit.
"""

from __future__ import annotations

import json
import math
from typing import Any, Iterable

from shapely.geometry import MultiPolygon, Polygon, mapping
from shapely.geometry.polygon import orient
from shapely.strtree import STRtree

from cloud.domains.fleet.gbfs_out import GbfsSettings, coord, header, localized
from hinode.mobility import VEHICLE_TYPE_INFO, ZoneKind

ZONE_KIND_PRECEDENCE = (ZoneKind.NO_RIDE, ZoneKind.NO_PARKING, ZoneKind.SLOW, ZoneKind.STATION_PARKING)
# Outside every zone anyone may ride and park (the city has no service-area boundary yet).
GLOBAL_RULES = [{"ride_start_allowed": True, "ride_end_allowed": True, "ride_through_allowed": True}]


def kind_rule(kind: str, max_speed_kmh: float | None = None) -> dict:
    """What one zone kind restricts, as a GBFS 3.0 rule without ``vehicle_type_ids``."""
    if kind == ZoneKind.NO_RIDE:
        return {"ride_start_allowed": False, "ride_end_allowed": False, "ride_through_allowed": False}
    if kind == ZoneKind.NO_PARKING:
        # a vehicle left there may be taken away, and riders may pass through; a ride may not end there
        return {"ride_start_allowed": True, "ride_end_allowed": False, "ride_through_allowed": True}
    if kind == ZoneKind.SLOW:
        return {"ride_start_allowed": True, "ride_end_allowed": True, "ride_through_allowed": True,
                "maximum_speed_kph": int(math.floor(max_speed_kmh or 0))}   # GBFS wants an integer: round down
    if kind == ZoneKind.STATION_PARKING:
        return {"ride_start_allowed": True, "ride_end_allowed": True, "ride_through_allowed": True,
                "station_parking": True}
    raise ValueError(f"zone kind {kind!r} has no GBFS rule (known: {', '.join(k.value for k in ZoneKind)})")


def combined(a: dict, b: dict) -> dict:
    """Both rules at once: allowed only where both allow, the lower speed limit, station parking if either."""
    rule = {key: a[key] and b[key] for key in ("ride_start_allowed", "ride_end_allowed", "ride_through_allowed")}
    speeds = [r["maximum_speed_kph"] for r in (a, b) if "maximum_speed_kph" in r]
    if speeds:
        rule["maximum_speed_kph"] = min(speeds)
    if a.get("station_parking") or b.get("station_parking"):
        rule["station_parking"] = True
    return rule


def zone_rules(zone: Any, covering: Iterable[Any] = (), all_types: Iterable[str] | None = None) -> list[dict]:
    """The rules of one feature: its own kind's, combined per vehicle type with those of the zones that
    wholly cover it; ``vehicle_type_ids`` only where the answer differs by type or the zone is restricted."""
    all_types = sorted(str(t) for t in (VEHICLE_TYPE_INFO if all_types is None else all_types))
    types = sorted(str(t) for t in zone.vehicle_types) or all_types
    covering = list(covering)
    groups: dict[str, tuple[dict, list[str]]] = {}
    for vehicle_type in types:
        rule = kind_rule(zone.kind, zone.max_speed_kmh)
        for outer in covering:
            if outer.applies_to(vehicle_type):
                rule = combined(rule, kind_rule(outer.kind, outer.max_speed_kmh))
        key = json.dumps(rule, sort_keys=True)
        groups.setdefault(key, (rule, []))[1].append(vehicle_type)
    if len(groups) == 1 and not zone.vehicle_types:
        return [next(iter(groups.values()))[0]]
    return [{"vehicle_type_ids": group_types, **rule} for rule, group_types in groups.values()]


def multipolygon(geometry: Any) -> dict:
    """A shapely Polygon or MultiPolygon as a GeoJSON MultiPolygon with 6-decimal coordinates, its rings
    following the right-hand rule GBFS asks for (RFC 7946: exterior counter-clockwise, holes clockwise)."""
    if isinstance(geometry, Polygon):
        geometry = MultiPolygon([geometry])
    if not isinstance(geometry, MultiPolygon):
        raise ValueError(f"a zone's geometry must be a Polygon or MultiPolygon, not {geometry.geom_type}")
    geometry = MultiPolygon([orient(polygon, sign=1.0) for polygon in geometry.geoms])
    return {"type": "MultiPolygon",
            "coordinates": [[[[coord(x), coord(y)] for x, y, *_ in ring] for ring in polygon]
                            for polygon in mapping(geometry)["coordinates"]]}


def geofencing_zones(settings: GbfsSettings, now_ms: int, zones: Iterable[Any]) -> dict:
    """Zones (``ZoneIndex.zones``: id, name, kind, geometry, max_speed_kmh, vehicle_types, applies_to) as
    GBFS features, most restrictive kind first; ``global_rules`` for everywhere else."""
    zones = list(zones)
    rank = {kind: i for i, kind in enumerate(ZONE_KIND_PRECEDENCE)}
    ordered = sorted(range(len(zones)), key=lambda i: (rank.get(zones[i].kind, len(rank)), i))
    tree = STRtree([zone.geometry for zone in zones]) if zones else None
    features = []
    for i in ordered:
        zone = zones[i]
        # tree.query(g, "covered_by") gives the zones g lies wholly inside (boundary included)
        outer = [zones[j] for j in sorted(tree.query(zone.geometry, predicate="covered_by").tolist()) if j != i]
        features.append({
            "type": "Feature",
            "geometry": multipolygon(zone.geometry),
            "properties": {"name": localized(zone.name, settings.languages), "rules": zone_rules(zone, outer)},
        })
    data = {"geofencing_zones": {"type": "FeatureCollection", "features": features},
            "global_rules": [dict(rule) for rule in GLOBAL_RULES]}
    return header(data, now_ms, settings)
