"""The vocabulary of vehicles, shared by the vehicles (and their simulator), the GBFS poller, the cloud's
fleet domain, its GBFS feed and the boards.

A fleet is an MQTT site; each vehicle's LTE module is an agent of that site with its own credentials
(``<vehicle>@<fleet>``), publishing :class:`hinode.contract.TelemetryEnvelope` of kind ``vehicle`` with
``meta = {"fleet": ..., "vehicle_type": ...}``. Every reading of one position fix shares one ``ts``.

States and most event types are those of MDS 2.0 (Open Mobility Foundation); the event types MDS has no
name for (zones, violations, the walking-speed mobility's own events) are marked as extensions.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from hinode.contract import DeviceKind, Reading, TelemetryEnvelope


class VehicleState(StrEnum):
    """MDS 2.0 ``vehicle_state``."""

    REMOVED = "removed"
    AVAILABLE = "available"
    NON_OPERATIONAL = "non_operational"
    RESERVED = "reserved"
    ON_TRIP = "on_trip"
    STOPPED = "stopped"
    NON_CONTACTABLE = "non_contactable"
    MISSING = "missing"
    ELSEWHERE = "elsewhere"


class DrivingMode(StrEnum):
    """The walking-speed mobility's driving mode."""

    AUTONOMOUS = "autonomous"
    MANUAL = "manual"
    STOPPED = "stopped"


class VehicleType(StrEnum):
    ESCOOTER = "escooter"            # stand-up e-scooter (GBFS scooter_standing)
    SLOWMOBILITY = "slowmobility"    # walking-speed autonomous mobility for elderly people (GBFS other)


@dataclass(frozen=True)
class VehicleTypeInfo:
    form_factor: str          # GBFS vehicle_types.form_factor
    propulsion_type: str      # GBFS vehicle_types.propulsion_type
    max_speed_kmh: float      # what the vehicle can do (and GBFS max_permitted_speed)
    max_range_m: int          # a full battery
    name_ja: str
    name_en: str


VEHICLE_TYPE_INFO: dict[VehicleType, VehicleTypeInfo] = {
    VehicleType.ESCOOTER: VehicleTypeInfo("scooter_standing", "electric", 20.0, 30_000, "電動キックボード", "e-scooter"),
    VehicleType.SLOWMOBILITY: VehicleTypeInfo("other", "electric", 6.0, 15_000, "歩行速度モビリティ",
                                              "walking-speed mobility"),
}


class EventType(StrEnum):
    # MDS 2.0 event_types
    TRIP_START = "trip_start"
    TRIP_END = "trip_end"
    BATTERY_LOW = "battery_low"
    BATTERY_CHARGED = "battery_charged"
    COMMS_LOST = "comms_lost"
    COMMS_RESTORED = "comms_restored"
    MAINTENANCE = "maintenance"
    UNSPECIFIED = "unspecified"
    # extensions (no MDS name)
    ZONE_ENTER = "zone_enter"
    ZONE_EXIT = "zone_exit"
    VIOLATION_START = "violation_start"
    VIOLATION_END = "violation_end"
    TIPPED_OVER = "tipped_over"
    RIGHTED = "righted"
    IDLE_TOO_LONG = "idle_too_long"
    EMERGENCY_STOP = "emergency_stop"
    OBSTACLE = "obstacle"


MDS_EVENT_TYPES = frozenset({EventType.TRIP_START, EventType.TRIP_END, EventType.BATTERY_LOW,
                             EventType.BATTERY_CHARGED, EventType.COMMS_LOST, EventType.COMMS_RESTORED,
                             EventType.MAINTENANCE, EventType.UNSPECIFIED})


class ViolationKind(StrEnum):
    SPEEDING = "speeding"                  # above a slow zone's maximum speed
    NO_RIDE = "no_ride"                    # moving inside a no-ride zone
    NO_PARKING = "no_parking"              # parked inside a no-parking zone
    STATION_PARKING = "station_parking"    # parked inside a station-only zone away from its stations


class ZoneKind(StrEnum):
    NO_RIDE = "no_ride"
    NO_PARKING = "no_parking"
    STATION_PARKING = "station_parking"
    SLOW = "slow"


# metric -> unit: what a vehicle may send; anything else is stored like any metric but means nothing here.
VEHICLE_METRICS: dict[str, str] = {
    "lat": "deg",
    "lon": "deg",
    "heading": "deg",          # 0 = north, clockwise
    "speed": "km/h",
    "accuracy": "m",           # horizontal, one sigma
    "battery": "%",
    "range": "m",              # remaining
    "state": "",               # a VehicleState
    "tipped_over": "",
    "driving_mode": "",        # a DrivingMode (walking-speed mobility)
    "passenger": "",           # someone on board
    "emergency_stop": "",
    "obstacle": "",            # what was detected, only in the fix where it happened
}


def vehicle_readings(ts_ms: int, **values) -> list[Reading]:
    """One fix as readings with the vocabulary's units; ``None`` values are left out.

    ``vehicle_readings(ts, lat=36.59, lon=140.66, speed=12.0, battery=80, state="on_trip")``
    """
    readings = []
    for metric, value in values.items():
        if value is None:
            continue
        if metric not in VEHICLE_METRICS:
            raise ValueError(f"{metric!r} is not a vehicle metric (known: {', '.join(VEHICLE_METRICS)})")
        if isinstance(value, StrEnum):
            value = value.value
        readings.append(Reading(ts=ts_ms, metric=metric, value=value, unit=VEHICLE_METRICS[metric]))
    return readings


def fixes(envelope: TelemetryEnvelope) -> list[dict]:
    """The envelope's readings grouped by ts, oldest first: ``[{"ts": ms, "lat": ..., ...}]``.

    A reading of bad quality, or without a value, is left out of its fix.
    """
    by_ts: dict[int, dict] = {}
    for r in envelope.readings:
        if r.value is None or r.quality == "bad":
            continue
        by_ts.setdefault(r.ts, {"ts": r.ts})[r.metric] = r.value
    return [by_ts[ts] for ts in sorted(by_ts)]


_VEHICLE_KIND_MARK = f'"kind":"{DeviceKind.VEHICLE.value}"'.encode()


def is_vehicle_payload(payload: bytes) -> bool:
    """A cheap look before decoding: does this telemetry payload say it is a vehicle's?

    Our encoders (``contract.encode``) write compact JSON, so the mark appears exactly; a payload
    written with spaces (``"kind": "vehicle"``) is also recognised. A false positive costs one decode.
    """
    return _VEHICLE_KIND_MARK in payload or (b'"vehicle"' in payload and b'"kind"' in payload)
