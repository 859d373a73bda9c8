"""The fleet: vehicles on the Hitachi graph, commuter demand, battery swaps and misbehaviour.

Everything is driven by ``step(dt_s)`` in simulated seconds and by per-vehicle random generators
seeded from (seed, vehicle id), so the same seed gives the same fleet, trips and fixes.
"""

from __future__ import annotations

import math
import random
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from simulators.fleet.vehicles import SWAP_BELOW_PCT, Vehicle, park_spot
from hinode.mobility import VehicleState, VehicleType
from simulators.fleet.world import World, haversine_m
from simulators.fleet.zones import Zone, ZoneMap, load_hubs

JST = ZoneInfo("Asia/Tokyo")
PEAKS = ((7, 9), (17, 19))          # commuter peaks, local hours [start, end)
TRIPS_PER_HOUR = {"peak": 0.9, "day": 0.25, "night": 0.03}    # per parked vehicle
LIMIT_MARGIN_M = 25.0
SUBSTEP_S = 1.0                     # riding vehicles move in steps of at most this
MISBEHAVE_PERIOD_S = 1800.0         # every misbehaviour comes round again after this
ROLES = ("speeder", "parker", "tipper", "silent")
ESCOOTER_TRIP_M = (600, 6000)
SLOW_TRIP_M = (300, 2500)


def _along(points, step_m: float):
    """The polyline's points plus one every ``step_m`` between them."""
    for (la1, lo1), (la2, lo2) in zip(points, points[1:]):
        n = max(1, int(haversine_m(la1, lo1, la2, lo2) / step_m))
        for i in range(n):
            yield la1 + (la2 - la1) * i / n, lo1 + (lo2 - lo1) * i / n
    yield points[-1]


def vehicle_ids(scooters: int, slow: int) -> list[tuple[str, VehicleType]]:
    return ([(f"sc-{i:03d}", VehicleType.ESCOOTER) for i in range(1, scooters + 1)]
            + [(f"sm-{i:03d}", VehicleType.SLOWMOBILITY) for i in range(1, slow + 1)])


def demand_period(local: datetime) -> str:
    hour = local.hour
    if any(start <= hour < end for start, end in PEAKS):
        return "peak"
    return "night" if hour < 6 or hour >= 23 else "day"


class FleetModel:
    def __init__(self, world: World, zones: list[Zone], fleet: str = "hitachi-scooters", scooters: int = 40,
                 slow: int = 4, seed: int = 0, misbehave: bool = False, start: datetime | None = None,
                 hubs: list[tuple[float, float]] | None = None):
        if scooters < 0 or slow < 0 or scooters + slow == 0:
            raise ValueError(f"--scooters/--slow: expected at least one vehicle, got {scooters} and {slow}")
        self.world, self.fleet, self.seed = world, fleet, seed
        self.zones = ZoneMap(zones, load_hubs() if hubs is None else hubs)
        self.start = (start or datetime.now(JST)).astimezone(JST)
        self.sim_s = 0.0
        self._steer_around_no_ride()
        self.vehicles: list[Vehicle] = []
        starts = [n.id for n in world.nodes.values() if n.kind in ("station", "estate", "bus_stop")]
        for vehicle_id, vehicle_type in vehicle_ids(scooters, slow):
            rng = random.Random(f"{seed}:{fleet}:{vehicle_id}")
            node = world.nodes[rng.choice(starts)]
            lat, lon = self.park_near(node.lat, node.lon, vehicle_type, rng)
            self.vehicles.append(Vehicle(vehicle_id, vehicle_type, rng, lat, lon, node.id,
                                         battery_pct=rng.uniform(40, 100)))
        self.misbehaving: dict[str, Vehicle] = {}
        if misbehave:
            self._cast_roles()

    # ------------------------------------------------------------------ set-up
    def _steer_around_no_ride(self) -> None:
        """Ordinary routes avoid roads through no-ride zones (a hundredfold cost), looked at every 10 m."""
        for edges in self.world.edges.values():
            for edge in edges:
                if any(z.kind == "no_ride" for p in _along(edge.points, 10.0) for z in self.zones.at(*p)):
                    self.world.edge_cost[(edge.a, edge.b)] = 100.0

    def park_near(self, lat: float, lon: float, vehicle_type: VehicleType, rng: random.Random) -> tuple[float, float]:
        base = self.zones.parking_base(lat, lon, vehicle_type)
        return park_spot(*base, rng, lambda la, lo: self.zones.may_park(la, lo, vehicle_type))

    def _cast_roles(self) -> None:
        scooters = [v for v in self.vehicles if v.vehicle_type == VehicleType.ESCOOTER] or self.vehicles
        for role, vehicle in zip(ROLES, scooters):
            vehicle.role = role
            vehicle.battery_pct = max(vehicle.battery_pct, 80.0)      # misbehaving is not cut short by a swap
            self.misbehaving[role] = vehicle
        # the speeder and the parker start a short ride from their scene, so a demo shows them in minutes
        zone = self.slow_zone()
        if zone is not None and "speeder" in self.misbehaving:
            inside = [n for n in self.world.nodes.values() if zone.contains(n.lat, n.lon)]
            if inside:
                self._place(self.misbehaving["speeder"], self._nearby(inside[0].id, 1000))
        no_parking = next(iter(self.zones.of_kind("no_parking")), None)
        if no_parking is not None and "parker" in self.misbehaving:
            self._place(self.misbehaving["parker"], self._nearby(self.nearest_node(*no_parking.inner_point()), 1000))

    def _nearby(self, node_id: str, metres: float) -> str:
        here = self.world.nodes[node_id]
        return min((n for n in self.world.nodes.values() if n.id != node_id),
                   key=lambda n: abs(haversine_m(n.lat, n.lon, here.lat, here.lon) - metres)).id

    def _place(self, v: Vehicle, node_id: str) -> None:
        node = self.world.nodes[node_id]
        v.node = node_id
        v.lat, v.lon = self.park_near(node.lat, node.lon, v.vehicle_type, v.rng)

    def local_time(self) -> datetime:
        return self.start + timedelta(seconds=self.sim_s)

    def nearest_node(self, lat: float, lon: float) -> str:
        return min(self.world.nodes.values(), key=lambda n: haversine_m(lat, lon, n.lat, n.lon)).id

    def slow_zone(self) -> Zone | None:
        """The slow zone the speeder rides through: JR Hitachi's if it has one, else any around a station."""
        around = [(z, n) for n in self.world.of_kind("station") for z in self.zones.of_kind("slow")
                  if z.contains(n.lat, n.lon)]
        around.sort(key=lambda zn: zn[1].id != "st-hitachi")
        return around[0][0] if around else next(iter(self.zones.of_kind("slow")), None)

    # ------------------------------------------------------------------ time
    def step(self, dt_s: float) -> None:
        """Advance the fleet by ``dt_s`` simulated seconds."""
        end = self.sim_s + dt_s
        while self.sim_s < end - 1e-9:
            dt = min(SUBSTEP_S, end - self.sim_s)
            riding = any(v.on_trip for v in self.vehicles)
            if not riding:            # nothing moves: parked vehicles need no fine steps
                dt = min(end - self.sim_s, 60.0)
            self.sim_s += dt
            period = demand_period(self.local_time())
            for vehicle in self.vehicles:
                self._step_vehicle(vehicle, dt, period)

    def _step_vehicle(self, v: Vehicle, dt: float, period: str) -> None:
        now = self.sim_s
        if v.role:
            self._misbehave(v, now)
        if v.on_trip:
            arrived = v.move(dt, now, self._limit(v))
            if v.battery_pct <= 0 and not arrived:          # flat: the ride ends where it stands
                v.destination, v.park_at, arrived = self.nearest_node(v.lat, v.lon), (v.lat, v.lon), True
            if arrived:
                v.end_trip(now)
            return
        v.idle(dt)
        if v.state == VehicleState.NON_OPERATIONAL:
            if v.swap_at_s and now >= v.swap_at_s:
                v.swap_battery()
            return
        if v.state == VehicleState.RESERVED:
            if now >= v.reserved_until_s:
                self._start_trip(v)
            return
        if v.battery_pct < SWAP_BELOW_PCT:
            v.need_swap(now)
            return
        if v.role or v.tipped_over:
            return                                     # misbehaving vehicles ride on their own schedule
        rate = TRIPS_PER_HOUR[period]
        if v.rng.random() < 1 - math.exp(-rate * dt / 3600):
            if v.rng.random() < 0.3:
                v.state = VehicleState.RESERVED
                v.reserved_until_s = now + v.rng.uniform(60, 300)
            else:
                self._start_trip(v)

    def _limit(self, v: Vehicle) -> float | None:
        """The slow-zone limit to keep: from LIMIT_MARGIN_M before a slow zone to LIMIT_MARGIN_M after it,
        so GPS noise near the edge does not look like speeding."""
        limits = [limit for p in ((v.lat, v.lon), v.point_ahead(LIMIT_MARGIN_M))
                  if (limit := self.zones.speed_limit(*p, v.vehicle_type)) is not None]
        if limits:
            v.zone_limit_kmh, v.limit_until_m = min(limits), v.odometer_m + LIMIT_MARGIN_M
            return v.zone_limit_kmh
        return v.zone_limit_kmh if v.odometer_m < v.limit_until_m else None

    def _start_trip(self, v: Vehicle, destination: str | None = None, via: str | None = None,
                    park_at: tuple[float, float] | None = None, cruise_kmh: float | None = None) -> None:
        destination = destination or self._pick_destination(v)
        if via is None:
            route = self.world.route(v.node, destination)
        else:
            route = self.world.route(v.node, via) + self.world.route(via, destination)[1:]
        if park_at is None:
            end = self.world.nodes[destination]
            park_at = self.park_near(end.lat, end.lon, v.vehicle_type, v.rng)
        v.begin_trip(route, destination, park_at, cruise_kmh)

    def _pick_destination(self, v: Vehicle) -> str:
        low, high = SLOW_TRIP_M if v.vehicle_type == VehicleType.SLOWMOBILITY else ESCOOTER_TRIP_M
        here = self.world.nodes[v.node]
        hour = self.local_time().hour
        if 5 <= hour < 12 and here.kind == "estate":
            wanted = ("station", "factory")            # to the train and to work
        elif hour >= 15 and here.kind in ("station", "factory"):
            wanted = ("estate", "bus_stop")            # home again
        else:
            wanted = ("station", "factory", "estate", "bus_stop")
        candidates = [n for n in self.world.nodes.values() if n.id != v.node and n.kind in wanted
                      and low <= haversine_m(here.lat, here.lon, n.lat, n.lon) <= high]
        if not candidates:
            candidates = sorted((n for n in self.world.nodes.values() if n.id != v.node),
                                key=lambda n: haversine_m(here.lat, here.lon, n.lat, n.lon))[:3]
        return v.rng.choice(candidates).id

    # ------------------------------------------------------------------ misbehaviour
    def _misbehave(self, v: Vehicle, now: float) -> None:
        """Each role acts at a fixed point of every MISBEHAVE_PERIOD_S, so a demo shows all of them soon."""
        phase = now % MISBEHAVE_PERIOD_S
        if v.role == "speeder" and v.state == VehicleState.AVAILABLE and 20 <= phase < MISBEHAVE_PERIOD_S / 2:
            zone = self.slow_zone()
            if zone is not None:
                inside = [n for n in self.world.nodes.values() if zone.contains(n.lat, n.lon)]
                via = inside[0].id if inside else self.nearest_node(*zone.inner_point())
                hub = self.world.nodes[via]
                onward = sorted((n for n in self.world.nodes.values() if n.id not in (v.node, via)),
                                key=lambda n: abs(haversine_m(n.lat, n.lon, hub.lat, hub.lon) - 1500))[:4]
                # through the zone and out the other side, at 15 km/h all the way
                target = max(onward, key=lambda n: haversine_m(n.lat, n.lon, v.lat, v.lon))
                self._start_trip(v, target.id, via=via, cruise_kmh=15.0)
        elif v.role == "parker" and not v.on_trip and v.state == VehicleState.AVAILABLE:
            zone = next(iter(self.zones.of_kind("no_parking")), None)
            if zone is None:
                return
            spot = zone.inner_point()
            parked_there = zone.contains(v.lat, v.lon)
            if not parked_there and 30 <= phase < 600:
                self._start_trip(v, self.nearest_node(*spot), park_at=spot)
            elif parked_there and phase >= 900:     # the rebalancer moves it to a legal spot
                node = self.world.nodes[self.nearest_node(*spot)]
                v.lat, v.lon = self.park_near(node.lat, node.lon, v.vehicle_type, v.rng)
        elif v.role == "tipper" and not v.on_trip:
            v.tipped_over = 60 <= phase < 240
        elif v.role == "silent":
            v.silent = 90 <= phase < 330
