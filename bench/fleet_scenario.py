"""The fleet bench's seeded world (helper of ``bench/fleet_path.py``, no benchmark here).

``make_zones(n, seed)``        a GeoJSON FeatureCollection of ``n`` zones (slow / no-parking / no-ride)
                               in the fleet domain's format, scattered over Hitachi City
``Vehicle`` / ``make_vehicles(n, zones, seed)``
                               each vehicle rides back and forth along a straight line through one
                               zone (so it enters and leaves a zone every minute or so) at its own speed
``Vehicle.position(t_s)``      (lon, lat, heading) at t seconds after the scenario's start
``fix_payload(...)``           one contract TelemetryEnvelope (JSON bytes) for one fix, built from a
                               template: the publishers encode 2,000 of them a second

Both the publishers and the orchestrator rebuild the same world from the seed.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from hinode import contract
from hinode.mobility import VEHICLE_METRICS, VehicleState, VehicleType, ZoneKind

FLEET = "bench-fleet"
# Hitachi City, roughly from JR Oda (south) to north of JR Hitachi, the coast to the hills.
LON_MIN, LON_MAX = 140.60, 140.70
LAT_MIN, LAT_MAX = 36.53, 36.63
_M_PER_DEG_LAT = 111_320.0
_M_PER_DEG_LON = 111_320.0 * math.cos(math.radians((LAT_MIN + LAT_MAX) / 2))

ZONE_KINDS = ((ZoneKind.SLOW, 0.4), (ZoneKind.NO_PARKING, 0.35), (ZoneKind.NO_RIDE, 0.25))
SLOW_LIMITS_KMH = (6.0, 10.0, 12.0)


def make_zones(n: int, seed: int) -> dict:
    """Star-shaped polygons (6-14 vertices, radius 80-250 m), overlapping where they fall."""
    rng = random.Random(seed)
    kinds, weights = zip(*ZONE_KINDS)
    features = []
    for i in range(n):
        lon0, lat0 = rng.uniform(LON_MIN, LON_MAX), rng.uniform(LAT_MIN, LAT_MAX)
        radius_m = rng.uniform(80, 250)
        corners = rng.randint(6, 14)
        angles = [2 * math.pi * (k + rng.uniform(0.0, 0.6)) / corners for k in range(corners)]  # simple polygon
        ring = []
        for angle in angles:
            r = radius_m * rng.uniform(0.7, 1.0)
            ring.append([round(lon0 + r * math.cos(angle) / _M_PER_DEG_LON, 7),
                         round(lat0 + r * math.sin(angle) / _M_PER_DEG_LAT, 7)])
        ring.append(ring[0])
        kind = rng.choices(kinds, weights)[0]
        properties = {"id": f"z{i:04d}", "name": {"ja": f"ベンチ区域 {i}", "en": f"bench zone {i}"},
                      "kind": kind.value}
        if kind is ZoneKind.SLOW:
            properties["max_speed_kmh"] = rng.choice(SLOW_LIMITS_KMH)
        features.append({"type": "Feature", "properties": properties,
                         "geometry": {"type": "Polygon", "coordinates": [ring]}})
    return {"type": "FeatureCollection", "features": features}


@dataclass(frozen=True)
class Vehicle:
    id: str
    vehicle_type: str
    lon0: float            # one end of its line
    lat0: float
    dlon: float            # degrees per metre along the line
    dlat: float
    length_m: float
    speed_kmh: float
    phase_m: float         # where on its back-and-forth it is at t = 0
    heading: float         # of the outward leg
    battery: int

    def position(self, t_s: float) -> tuple[float, float, float]:
        s = (self.phase_m + self.speed_kmh / 3.6 * t_s) % (2 * self.length_m)
        outward = s <= self.length_m
        x = s if outward else 2 * self.length_m - s
        heading = self.heading if outward else (self.heading + 180.0) % 360.0
        return self.lon0 + self.dlon * x, self.lat0 + self.dlat * x, heading


def _zone_centre(feature: dict) -> tuple[float, float, float]:
    ring = feature["geometry"]["coordinates"][0][:-1]
    lon = sum(p[0] for p in ring) / len(ring)
    lat = sum(p[1] for p in ring) / len(ring)
    radius_m = max(math.hypot((p[0] - lon) * _M_PER_DEG_LON, (p[1] - lat) * _M_PER_DEG_LAT) for p in ring)
    return lon, lat, radius_m


def make_vehicles(n: int, zones: dict, seed: int) -> list[Vehicle]:
    """95 % e-scooters at 12-20 km/h, 5 % walking-speed mobility at 4-6 km/h; each on a line through a zone."""
    rng = random.Random(seed + 1)
    centres = [_zone_centre(f) for f in zones["features"]]
    vehicles = []
    for v in range(n):
        lon, lat, radius_m = centres[rng.randrange(len(centres))]
        slow = rng.random() < 0.05
        heading = rng.uniform(0, 360)
        east, north = math.sin(math.radians(heading)), math.cos(math.radians(heading))
        length_m = 2 * (radius_m + rng.uniform(40, 120))
        vehicles.append(Vehicle(
            id=f"v{v:05d}", vehicle_type=(VehicleType.SLOWMOBILITY if slow else VehicleType.ESCOOTER).value,
            lon0=lon - east * length_m / 2 / _M_PER_DEG_LON, lat0=lat - north * length_m / 2 / _M_PER_DEG_LAT,
            dlon=east / _M_PER_DEG_LON, dlat=north / _M_PER_DEG_LAT, length_m=length_m,
            speed_kmh=round(rng.uniform(4, 6) if slow else rng.uniform(12, 20), 1),
            phase_m=rng.uniform(0, 2 * length_m), heading=heading, battery=rng.randint(30, 100)))
    return vehicles


_U = VEHICLE_METRICS
_TEMPLATE = (
    '{{"v":1,"site":"{fleet}","agent":"{vid}","device":"{vid}","kind":"vehicle","profile":"","seq":{seq},'
    '"readings":['
    '{{"ts":{ts},"metric":"lat","value":{lat:.7f},"unit":"' + _U["lat"] + '","quality":"good"}},'
    '{{"ts":{ts},"metric":"lon","value":{lon:.7f},"unit":"' + _U["lon"] + '","quality":"good"}},'
    '{{"ts":{ts},"metric":"speed","value":{speed},"unit":"' + _U["speed"] + '","quality":"good"}},'
    '{{"ts":{ts},"metric":"heading","value":{heading:.1f},"unit":"' + _U["heading"] + '","quality":"good"}},'
    '{{"ts":{ts},"metric":"battery","value":{battery},"unit":"' + _U["battery"] + '","quality":"good"}},'
    '{{"ts":{ts},"metric":"range","value":{range_m},"unit":"' + _U["range"] + '","quality":"good"}},'
    '{{"ts":{ts},"metric":"state","value":"' + VehicleState.ON_TRIP.value + '","unit":"","quality":"good"}}'
    '],"meta":{{"fleet":"{fleet}","vehicle_type":"{vtype}"}}}}'
)


def fix_payload(vehicle: Vehicle, seq: int, ts_ms: int, lon: float, lat: float, heading: float) -> bytes:
    return _TEMPLATE.format(fleet=FLEET, vid=vehicle.id, seq=seq, ts=ts_ms, lat=lat, lon=lon,
                            speed=vehicle.speed_kmh, heading=heading, battery=vehicle.battery,
                            range_m=vehicle.battery * 300, vtype=vehicle.vehicle_type).encode()


def check_payload(vehicle: Vehicle) -> None:
    """The template follows the contract (raises ContractError otherwise)."""
    lon, lat, heading = vehicle.position(0.0)
    contract.decode_telemetry(fix_payload(vehicle, 1, 1_700_000_000_000, lon, lat, heading),
                              contract.telemetry_topic(FLEET, vehicle.id))
