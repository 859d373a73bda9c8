"""A GBFS vehicle record as the readings and meta of a vehicle envelope (vocabulary: hinode.mobility)."""

from __future__ import annotations

from hinode.contract import MetricInfo, Reading
from hinode.mobility import VEHICLE_METRICS, VEHICLE_TYPE_INFO, VehicleState, VehicleType, vehicle_readings

from edge_agent.sources.gbfs.feed import VehicleRecord, VehicleTypeInfo, as_ident

SCOOTER_FORM_FACTORS = frozenset({"scooter_standing", "scooter_seated", "scooter"})   # "scooter": 2.x, deprecated
WALKING_SPEED_KMH = VEHICLE_TYPE_INFO[VehicleType.SLOWMOBILITY].max_speed_kmh
UNKNOWN_TYPE = "unknown"
OUR_TYPES = frozenset(t.value for t in VehicleType)
SENT_METRICS = ("lat", "lon", "battery", "range", "state")


def vehicle_type_tag(type_id: str, info: VehicleTypeInfo | None) -> str:
    """Our vehicle_type tag for a GBFS vehicle type: escooter / slowmobility, else the form factor.

    A type id that is one of our own tags (a feed written with this vocabulary, like our simulator's) is taken as is.
    """
    if type_id in OUR_TYPES:
        return type_id
    if info is None:
        return UNKNOWN_TYPE
    if info.form_factor in SCOOTER_FORM_FACTORS:
        return VehicleType.ESCOOTER.value
    if info.form_factor == "other" and info.max_speed_kmh is not None and info.max_speed_kmh <= WALKING_SPEED_KMH:
        return VehicleType.SLOWMOBILITY.value
    return as_ident(info.form_factor, UNKNOWN_TYPE)


def vehicle_state(record: VehicleRecord) -> str:
    """GBFS flags as an MDS vehicle state; a disabled vehicle is not rentable whether reserved or not."""
    if record.disabled:
        return VehicleState.NON_OPERATIONAL.value
    if record.reserved:
        return VehicleState.RESERVED.value
    return VehicleState.AVAILABLE.value


def values_of(record: VehicleRecord) -> dict[str, object]:
    """The metric values a record carries (absent fields are left out, not sent as null)."""
    values: dict[str, object] = {}
    if record.lat is not None:
        values["lat"], values["lon"] = round(record.lat, 7), round(record.lon, 7)
    if record.fuel_fraction is not None:
        values["battery"] = round(record.fuel_fraction * 100, 2)
    if record.range_m is not None:
        values["range"] = record.range_m
    values["state"] = vehicle_state(record)
    return values


def readings_of(ts_ms: int, values: dict[str, object]) -> list[Reading]:
    return vehicle_readings(ts_ms, **values)


def metric_catalog() -> list[MetricInfo]:
    """What a GBFS vehicle reports (units as hinode.mobility gives them)."""
    return [MetricInfo(metric=metric, unit=VEHICLE_METRICS[metric]) for metric in SENT_METRICS]
