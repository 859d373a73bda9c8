"""GBFS geofencing zones of either version, with the rule names of 3.0, and as our zone kinds (no I/O).

2.3 -> 3.0 rule names: ``vehicle_type_id`` -> ``vehicle_type_ids``; ``ride_allowed`` (a ride may start
and end here) -> ``ride_start_allowed`` and ``ride_end_allowed``; ``ride_through_allowed``,
``maximum_speed_kph`` and ``station_parking`` keep their names. A 3.0 zone ``name`` is a localized
array; a 2.3 one a string. 3.0's ``global_rules`` apply outside every zone.

The source reads the zones at discovery (``FeedInfo.zones``) and reports how many; it does not send
them anywhere. :func:`as_zone_features` turns them into the fleet domain's zone GeoJSON
(kinds ``no_ride``, ``no_parking``, ``station_parking``, ``slow``) for an operator who wants to load
another operator's geofences.
"""

from __future__ import annotations

from dataclasses import dataclass

from hinode.mobility import ZoneKind


@dataclass(frozen=True, slots=True)
class GeofenceRule:
    vehicle_type_ids: tuple[str, ...] = ()       # empty: every vehicle type
    ride_start_allowed: bool = True
    ride_end_allowed: bool = True
    ride_through_allowed: bool = True
    maximum_speed_kph: float | None = None
    station_parking: bool = False


@dataclass(frozen=True, slots=True)
class GeofenceZone:
    names: dict[str, str]                        # language -> name (2.x: {"": name})
    geometry: dict                               # GeoJSON (Multi)Polygon as published
    rules: tuple[GeofenceRule, ...]


def _flag(rule: dict, key: str, default: bool) -> bool:
    value = rule.get(key, default)
    return value if isinstance(value, bool) else default


def parse_rule(rule: dict, major: int) -> GeofenceRule:
    if major >= 3:
        types = rule.get("vehicle_type_ids") or []
        start, end = _flag(rule, "ride_start_allowed", True), _flag(rule, "ride_end_allowed", True)
    else:
        types = rule.get("vehicle_type_id") or []
        start = end = _flag(rule, "ride_allowed", True)
    speed = rule.get("maximum_speed_kph")
    return GeofenceRule(
        vehicle_type_ids=tuple(t for t in types if isinstance(t, str)), ride_start_allowed=start,
        ride_end_allowed=end, ride_through_allowed=_flag(rule, "ride_through_allowed", True),
        maximum_speed_kph=float(speed) if isinstance(speed, (int, float)) and not isinstance(speed, bool) else None,
        station_parking=_flag(rule, "station_parking", False))


def _names(name: object) -> dict[str, str]:
    if isinstance(name, str):
        return {"": name}
    if isinstance(name, list):
        return {n["language"]: n["text"] for n in name
                if isinstance(n, dict) and isinstance(n.get("language"), str) and isinstance(n.get("text"), str)}
    return {}


def parse_geofencing(data: dict, major: int) -> tuple[list[GeofenceZone], tuple[GeofenceRule, ...]]:
    """The zones of a geofencing_zones ``data`` (features without a polygon skipped) and 3.0's global rules."""
    collection = data.get("geofencing_zones")
    features = collection.get("features") if isinstance(collection, dict) else None
    zones = []
    for feature in features if isinstance(features, list) else []:
        if not isinstance(feature, dict):
            continue
        geometry, properties = feature.get("geometry") or {}, feature.get("properties") or {}
        if not isinstance(geometry, dict) or geometry.get("type") not in ("Polygon", "MultiPolygon"):
            continue
        rules = tuple(parse_rule(r, major) for r in properties.get("rules") or [] if isinstance(r, dict))
        zones.append(GeofenceZone(_names(properties.get("name")), geometry, rules))
    global_rules = tuple(parse_rule(r, major) for r in data.get("global_rules") or [] if isinstance(r, dict))
    return zones, global_rules


def zone_kinds(rule: GeofenceRule) -> list[tuple[ZoneKind, float | None]]:
    """What a rule means in our zone kinds; one rule can mean several (slow and no parking)."""
    kinds: list[tuple[ZoneKind, float | None]] = []
    if not rule.ride_through_allowed:
        kinds.append((ZoneKind.NO_RIDE, None))
    elif not rule.ride_end_allowed:
        kinds.append((ZoneKind.NO_PARKING, None))
    if rule.station_parking:
        kinds.append((ZoneKind.STATION_PARKING, None))
    if rule.maximum_speed_kph is not None:
        kinds.append((ZoneKind.SLOW, rule.maximum_speed_kph))
    return kinds


def as_zone_features(zones: list[GeofenceZone], id_prefix: str, type_tags: dict[str, str]) -> dict:
    """The zones as the fleet domain's zone GeoJSON; ``type_tags`` maps a GBFS vehicle type id to our tag.

    Only the first rule of a zone is used: in 2.3 the earlier rule wins, and in 3.0 the first rule
    matching a vehicle type applies, so a later rule is for other vehicle types or none.
    """
    features = []
    for index, zone in enumerate(zones, start=1):
        if not zone.rules:
            continue
        rule = zone.rules[0]
        types = sorted({type_tags.get(t, t) for t in rule.vehicle_type_ids})
        name = {"ja": zone.names.get("ja") or zone.names.get("") or next(iter(zone.names.values()), ""),
                "en": zone.names.get("en") or zone.names.get("") or next(iter(zone.names.values()), "")}
        for kind, speed in zone_kinds(rule):
            properties = {"id": f"{id_prefix}-{index}-{kind.value}", "name": name, "kind": kind.value}
            if speed is not None:
                properties["max_speed_kmh"] = speed
            if types:
                properties["vehicle_types"] = types
            features.append({"type": "Feature", "geometry": zone.geometry, "properties": properties})
    return {"type": "FeatureCollection", "features": features}
