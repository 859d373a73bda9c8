"""Demo data for the fleet board, in the names the ingest and the fleet domain write
(cloud/domains/fleet/README.md): fleet ``hitachi-scooters`` with ten e-scooters and two walking-speed
vehicles riding between JR Hitachi and JR Omika for the last 6 hours (measurement ``vehicle``, one fix
a minute), their trips over the last 30 days (``fleet_trip``), events and zone violations of the last
hours (``fleet_event``, ``fleet_violation``: one still open, one ended) and hub availability every
5 minutes (``fleet_hub``: the Okubo hillside estate has a coverage gap). Deterministic (seeded).
Coordinates are approximate.

    lines = fleet_lines(datetime.now(timezone.utc))      # written by dashboards.demo
"""

from __future__ import annotations

import math
import random
from datetime import datetime, timedelta

FLEET = "hitachi-scooters"
SITE = FLEET                     # a vehicle's LTE module is an agent of the fleet's site
SCOOTERS = [f"sc-{n:03d}" for n in range(1, 11)]
SLOW = ["sm-01", "sm-02"]
LOW_BATTERY = "sc-007"           # drains below 15 %: counted under "Low battery"
SILENT = "sc-010"                # stops reporting 20 minutes before now
SPEEDER = "sc-003"               # speeding in the station slow zone: the open violation
# (id, kind, lat, lon): hubs of the shipped cloud/domains/fleet/data/hubs_hitachi.yaml (approximate positions)
HUBS = [("jr-hitachi", "rail_station", 36.5908, 140.6615), ("jr-omika", "rail_station", 36.5086, 140.6283),
        ("bus-r6-kokubu", "bus_stop", 36.5690, 140.6420), ("estate-okubo", "estate", 36.5560, 140.6180)]
# zones of the shipped zones_hitachi.geojson
SLOW_ZONE, NO_PARKING_ZONE = "slow-hitachi", "noparking-omika-forecourt"
FIX_STEP_S = 60
HOURS = 6
TRIP_DAYS = 30


def _line(measurement: str, tags: dict[str, str], fields: dict[str, object], t: datetime) -> str:
    def value(v: object) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return f'"{v}"'
        return f"{float(v):.6f}".rstrip("0").rstrip(".") if isinstance(v, float) else f"{v}i"
    tag_text = ",".join(f"{k}={v}" for k, v in sorted(tags.items()) if v)
    field_text = ",".join(f"{k}={value(v)}" for k, v in fields.items())
    return f"{measurement},{tag_text} {field_text} {int(t.timestamp() * 1000)}"


def _vehicle_type(vehicle: str) -> str:
    return "slowmobility" if vehicle in SLOW else "escooter"


def _position(vehicle: str, t: datetime) -> tuple[float, float, float]:
    """(lat, lon, speed km/h): shuttling on the line JR Hitachi - JR Omika, each vehicle its own phase."""
    index = (SCOOTERS + SLOW).index(vehicle)
    period_s = 3600.0 if vehicle in SCOOTERS else 7200.0
    phase = (t.timestamp() / period_s + index / 12) % 1.0
    along = 0.5 - 0.5 * math.cos(phase * 2 * math.pi)          # 0 at Hitachi, 1 at Omika
    (_, _, lat0, lon0), (_, _, lat1, lon1) = HUBS[0], HUBS[1]
    sideways = 0.012 * math.sin(index * 1.7)          # spread east-west over about 2 km
    speed = abs(math.sin(phase * 2 * math.pi)) * (18.0 if vehicle in SCOOTERS else 5.5)
    return lat0 + (lat1 - lat0) * along + sideways, lon0 + (lon1 - lon0) * along + sideways, speed


def _vehicle_lines(now: datetime, rng: random.Random) -> list[str]:
    lines = []
    start = now - timedelta(hours=HOURS)
    steps = int((now - start).total_seconds() // FIX_STEP_S)
    for vehicle in SCOOTERS + SLOW:
        battery = 95.0 - (SCOOTERS + SLOW).index(vehicle) * 3
        for i in range(steps + 1):
            t = start + timedelta(seconds=i * FIX_STEP_S)
            if vehicle == SILENT and t > now - timedelta(minutes=20):
                break
            lat, lon, speed = _position(vehicle, t)
            battery -= (0.35 if vehicle == LOW_BATTERY else 0.12) * rng.uniform(0.8, 1.2)
            if battery < 10 and vehicle != LOW_BATTERY:
                battery = 98.0                                            # swapped
            fields: dict[str, object] = {
                "lat": round(lat, 6), "lon": round(lon, 6), "speed": round(speed, 1), "heading": 200.0,
                "accuracy": 5.0, "battery": round(max(battery, 3.0), 1), "range": max(battery, 3.0) * 300.0,
                "state": "on_trip" if speed > 1 else "available", "seq": i + 1}
            if vehicle in SLOW:
                fields.update(driving_mode="autonomous", passenger=speed > 1)
            lines.append(_line("vehicle", {"site": SITE, "agent": vehicle, "device": vehicle, "fleet": FLEET,
                                           "vehicle_type": _vehicle_type(vehicle)}, fields, t))
    return lines


def _trip_lines(now: datetime, rng: random.Random) -> list[str]:
    """Trips per vehicle per day, more on workdays; today's trips start before ``now``."""
    lines = []
    day0 = now.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=TRIP_DAYS - 1)
    for d in range(TRIP_DAYS):
        day = day0 + timedelta(days=d)
        for vehicle in SCOOTERS + SLOW:
            for _ in range(rng.randint(1, 4 if day.weekday() < 5 else 2)):
                start = day + timedelta(minutes=rng.randint(0, 23 * 60))
                if start >= now - timedelta(minutes=30):
                    continue
                duration = rng.uniform(300, 1500)
                fast = vehicle in SCOOTERS
                distance = duration * rng.uniform(2.5, 4.5 if fast else 1.5)
                lines.append(_line("fleet_trip", {"fleet": FLEET, "vehicle": vehicle,
                                                  "vehicle_type": _vehicle_type(vehicle)}, {
                    "end_ms": int((start + timedelta(seconds=duration)).timestamp() * 1000), "duration_s": duration,
                    "distance_m": distance, "max_speed_kmh": rng.uniform(12, 20) if fast else rng.uniform(4, 6),
                    "start_lat": HUBS[0][2], "start_lon": HUBS[0][3], "end_lat": HUBS[1][2], "end_lon": HUBS[1][3],
                    "route": '{"type":"LineString","coordinates":[]}'}, start))
    return lines


def _event(now: datetime, minutes_ago: float, vehicle: str, event_type: str, zone: str = "", state: str = "on_trip",
           battery: float = 60.0, detail: str = "", violation: tuple[str, str] = ("", "")) -> str:
    t = now - timedelta(minutes=minutes_ago)
    ts = int(t.timestamp() * 1000)
    event_id = f"{FLEET}:{vehicle}:{ts}:{event_type}" + (f":{zone}" if zone else "")
    return _line("fleet_event", {"fleet": FLEET, "vehicle": vehicle, "vehicle_type": _vehicle_type(vehicle),
                                 "event_type": event_type, "zone": zone}, {
        "event_id": event_id, "vehicle_state": state, "lat": HUBS[0][2], "lon": HUBS[0][3], "battery_pct": battery,
        "violation_id": violation[0], "violation_kind": violation[1], "detail": detail}, t)


def _violation(now: datetime, vehicle: str, zone: str, kind: str, started_min: float, ended_min: float | None,
               max_speed: float) -> str:
    start = now - timedelta(minutes=started_min)
    start_ms = int(start.timestamp() * 1000)
    end_ms = 0 if ended_min is None else int((now - timedelta(minutes=ended_min)).timestamp() * 1000)
    return _line("fleet_violation", {"fleet": FLEET, "vehicle": vehicle, "zone": zone, "violation_kind": kind}, {
        "violation_id": f"{FLEET}:{vehicle}:{start_ms}:{kind}:{zone}", "start_ms": start_ms, "end_ms": end_ms,
        "open": ended_min is None, "max_speed_kmh": max_speed, "lat": HUBS[0][2], "lon": HUBS[0][3]}, start)


def _event_lines(now: datetime) -> list[str]:
    speeding = f"{FLEET}:{SPEEDER}:violation"
    return [
        _event(now, 170, "sc-001", "trip_start"), _event(now, 150, "sc-001", "trip_end", state="available"),
        _event(now, 95, "sc-005", "zone_enter", zone=NO_PARKING_ZONE),
        _event(now, 94, "sc-005", "violation_start", zone=NO_PARKING_ZONE, state="available",
               violation=("v-parked", "no_parking")),
        _event(now, 60, "sc-005", "violation_end", zone=NO_PARKING_ZONE, state="available",
               violation=("v-parked", "no_parking")),
        _event(now, 40, LOW_BATTERY, "battery_low", battery=14.0, state="available"),
        _event(now, 20, SILENT, "comms_lost", state="non_contactable"),
        _event(now, 12, "sm-01", "obstacle", detail="pedestrian"),
        _event(now, 8, SPEEDER, "zone_enter", zone=SLOW_ZONE),
        _event(now, 7, SPEEDER, "violation_start", zone=SLOW_ZONE, detail="17.5 km/h in a 6 km/h zone",
               violation=(speeding, "speeding")),
        _event(now, 3, "sc-008", "tipped_over", state="non_operational"),
    ]


def _violation_lines(now: datetime) -> list[str]:
    return [_violation(now, SPEEDER, SLOW_ZONE, "speeding", 7, None, 17.5),
            _violation(now, "sc-005", NO_PARKING_ZONE, "no_parking", 94, 60, 0.0)]


def _hub_lines(now: datetime) -> list[str]:
    lines = []
    start = now - timedelta(hours=HOURS)
    for i in range(HOURS * 12 + 1):
        t = start + timedelta(minutes=5 * i)
        for hub, kind, _lat, _lon in HUBS:
            wave = 0.5 + 0.5 * math.sin(i / 9 + len(hub))
            available = 0 if kind == "estate" else int(2 + 4 * wave)
            nearest = 820.0 if kind == "estate" else 60.0 + 200 * (1 - wave)
            lines.append(_line("fleet_hub", {"hub": hub, "hub_kind": kind},
                               {"available": available, "nearest_m": nearest, "gap": available == 0}, t))
    return lines


def fleet_lines(now: datetime, seed: int = 12) -> list[str]:
    """Line protocol (ms precision) for the fleet board, ending at ``now``."""
    rng = random.Random(seed)
    return (_vehicle_lines(now, rng) + _trip_lines(now, rng) + _event_lines(now) + _violation_lines(now)
            + _hub_lines(now))
