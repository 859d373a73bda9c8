"""One simulated vehicle: where it is, how it moves along a route, its battery and its flags.

Speeds are km/h, distances metres, time simulated seconds. What the vehicle reports (``report``)
adds GPS noise (3-8 m) to the true position the model keeps.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from hinode.mobility import VEHICLE_TYPE_INFO, DrivingMode, VehicleState, VehicleType
from simulators.fleet.world import bearing_deg, haversine_m, offset

OBSTACLES = ("pedestrian", "bicycle", "car", "wheelchair", "animal")
SWAP_BELOW_PCT = 20.0          # a trip ends non_operational below this; a rebalancer swaps the battery
IDLE_DRAIN_PCT_PER_H = 0.2     # the LTE module and the lock draw a little while parked


@dataclass
class Vehicle:
    id: str
    vehicle_type: VehicleType
    rng: random.Random
    lat: float
    lon: float
    node: str                              # the graph node it is at or last left
    battery_pct: float = 100.0
    state: VehicleState = VehicleState.AVAILABLE
    heading: float = 0.0
    speed_kmh: float = 0.0
    trip_count: int = 0                    # finished trips (the GBFS id rotates with it)
    odometer_m: float = 0.0
    tipped_over: bool = False
    driving_mode: DrivingMode = DrivingMode.STOPPED
    passenger: bool = False
    emergency_stop: bool = False
    obstacle: str = ""                     # reported in the next fix only
    role: str = ""                         # misbehaviour role ("" = behaves)
    silent: bool = False                   # "LTE lost": the link closes and publishes nothing meanwhile
    # a trip in progress
    route: list[tuple[float, float]] = field(default_factory=list)
    route_leg: int = 0                     # index of the route point we head to
    destination: str = ""
    cruise_kmh: float = 0.0
    stopped_until_s: float = 0.0           # an emergency stop holds the vehicle still until then
    zone_limit_kmh: float = 0.0            # the last slow zone's limit, kept until limit_until_m
    limit_until_m: float = 0.0             # odometer reading where the slow zone's limit is left behind
    # timers (simulated seconds; 0 = none)
    reserved_until_s: float = 0.0
    swap_at_s: float = 0.0
    park_at: tuple[float, float] | None = None   # where to leave it at the end of the route

    @property
    def max_speed_kmh(self) -> float:
        return VEHICLE_TYPE_INFO[self.vehicle_type].max_speed_kmh

    @property
    def max_range_m(self) -> float:
        return float(VEHICLE_TYPE_INFO[self.vehicle_type].max_range_m)

    @property
    def range_m(self) -> int:
        return int(self.max_range_m * self.battery_pct / 100)

    @property
    def on_trip(self) -> bool:
        return self.state == VehicleState.ON_TRIP

    def begin_trip(self, route: list[tuple[float, float]], destination: str,
                   park_at: tuple[float, float] | None = None, cruise_kmh: float | None = None) -> None:
        self.route = [(self.lat, self.lon), *route]
        self.route_leg = 1
        self.destination = destination
        self.park_at = park_at
        self.state = VehicleState.ON_TRIP
        self.reserved_until_s = 0.0
        if cruise_kmh is None:
            top = self.max_speed_kmh
            cruise_kmh = self.rng.uniform(0.6 * top, 0.9 * top)
        self.cruise_kmh = cruise_kmh
        if self.vehicle_type == VehicleType.SLOWMOBILITY:
            self.passenger = True
            self.driving_mode = DrivingMode.AUTONOMOUS if self.rng.random() < 0.85 else DrivingMode.MANUAL

    def point_ahead(self, metres: float) -> tuple[float, float]:
        """Where the route will have taken the vehicle after ``metres`` more."""
        lat, lon = self.lat, self.lon
        for target in self.route[self.route_leg:]:
            gap = haversine_m(lat, lon, *target)
            if gap >= metres and gap > 0:
                frac = metres / gap
                return lat + (target[0] - lat) * frac, lon + (target[1] - lon) * frac
            metres -= gap
            lat, lon = target
        return lat, lon

    def move(self, dt_s: float, now_s: float, limit_kmh: float | None) -> bool:
        """Ride ``dt_s`` along the route; True when the route's end is reached."""
        if now_s < self.stopped_until_s:
            self.speed_kmh = 0.0
            return False
        self.emergency_stop = False
        if self.vehicle_type == VehicleType.SLOWMOBILITY and self.rng.random() < dt_s / 600:
            self.obstacle = self.rng.choice(OBSTACLES)          # roughly one per 10 minutes of riding
            self.emergency_stop = True
            self.stopped_until_s = now_s + self.rng.uniform(3, 8)
            self.speed_kmh = 0.0
            return False
        speed = self.cruise_kmh + self.rng.uniform(-1.0, 1.0)
        if limit_kmh is not None and self.role != "speeder":
            speed = min(speed, limit_kmh - 0.5)
        speed = max(1.0, min(speed, self.max_speed_kmh))
        self.speed_kmh = speed
        remaining = speed / 3.6 * dt_s
        while remaining > 0 and self.route_leg < len(self.route):
            target = self.route[self.route_leg]
            gap = haversine_m(self.lat, self.lon, *target)
            if gap > 0.01:
                self.heading = bearing_deg(self.lat, self.lon, *target)
            if gap <= remaining:
                self._travel(gap)
                self.lat, self.lon = target
                remaining -= gap
                self.route_leg += 1
            else:
                frac = remaining / gap
                self._travel(remaining)
                self.lat += (target[0] - self.lat) * frac
                self.lon += (target[1] - self.lon) * frac
                remaining = 0
        return self.route_leg >= len(self.route)

    def _travel(self, metres: float) -> None:
        self.odometer_m += metres
        self.battery_pct = max(0.0, self.battery_pct - metres * 100.0 / self.max_range_m)

    def end_trip(self, now_s: float) -> None:
        if self.park_at is not None:
            self._travel(haversine_m(self.lat, self.lon, *self.park_at))
            self.lat, self.lon = self.park_at
        self.node = self.destination
        self.route, self.route_leg, self.park_at = [], 0, None
        self.speed_kmh = 0.0
        self.trip_count += 1
        self.passenger = False
        self.emergency_stop = False
        self.driving_mode = DrivingMode.STOPPED
        self.state = VehicleState.AVAILABLE
        if self.battery_pct < SWAP_BELOW_PCT:
            self.need_swap(now_s)

    def need_swap(self, now_s: float) -> None:
        self.state = VehicleState.NON_OPERATIONAL
        self.swap_at_s = now_s + self.rng.uniform(600, 1800)    # the rebalancer's van comes round

    def swap_battery(self) -> None:
        self.battery_pct = self.rng.uniform(95, 100)
        self.swap_at_s = 0.0
        self.state = VehicleState.AVAILABLE

    def idle(self, dt_s: float) -> None:
        self.speed_kmh = 0.0
        self.battery_pct = max(0.0, self.battery_pct - IDLE_DRAIN_PCT_PER_H * dt_s / 3600)

    def report(self) -> dict:
        """What the vehicle's LTE module sends now: metric -> value (mobility.vehicle_readings' names)."""
        accuracy = self.rng.uniform(3.0, 8.0)
        lat, lon = offset(self.lat, self.lon, self.rng.gauss(0, accuracy / 2), self.rng.gauss(0, accuracy / 2))
        values = {"lat": round(lat, 6), "lon": round(lon, 6), "heading": round(self.heading, 1),
                  "speed": round(self.speed_kmh, 1), "accuracy": round(accuracy, 1),
                  "battery": round(self.battery_pct, 1), "range": self.range_m, "state": str(self.state),
                  "tipped_over": self.tipped_over}
        if self.vehicle_type == VehicleType.SLOWMOBILITY:
            values.update(driving_mode=str(self.driving_mode), passenger=self.passenger,
                          emergency_stop=self.emergency_stop)
            if self.obstacle:
                values["obstacle"] = self.obstacle
                self.obstacle = ""
        return values


def park_spot(lat: float, lon: float, rng: random.Random, allowed) -> tuple[float, float]:
    """A spot 3-15 m from (lat, lon) where ``allowed(lat, lon)`` says parking is fine."""
    for attempt in range(60):
        reach = 3 + 12 * rng.random() + attempt * 5     # widen the search when the node sits in a zone
        angle = rng.uniform(0, 2 * math.pi)
        spot = offset(lat, lon, reach * math.cos(angle), reach * math.sin(angle))
        if allowed(*spot):
            return spot
    return lat, lon
