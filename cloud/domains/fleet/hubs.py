"""Mobility hubs (rail stations, bus stops, hillside estates as demand points) and their coverage:
how many available vehicles stand within a walking radius of each, so a gap shows. Pure polars.

A hubs file is a YAML list of ``{id, name: {ja, en}, kind: rail_station | bus_stop | estate, lat, lon,
capacity?}``; a file that breaks this raises :class:`HubFileError` naming the file, the entry and the key.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import polars as pl
import yaml

from hinode.contract import is_id
from hinode.mobility import VehicleState

from .zones import EARTH_RADIUS_M


class HubKind(StrEnum):
    RAIL_STATION = "rail_station"
    BUS_STOP = "bus_stop"
    ESTATE = "estate"          # a housing estate: a demand point, where people start from


class HubFileError(ValueError):
    """A hubs file that cannot be used; the message names the file, the entry and the key."""


@dataclass(frozen=True)
class Hub:
    id: str
    name: dict[str, str]
    kind: HubKind
    lat: float
    lon: float
    capacity: int | None = None


HUB_SCHEMA = {"id": pl.String, "name_ja": pl.String, "name_en": pl.String, "kind": pl.String,
              "lat": pl.Float64, "lon": pl.Float64, "capacity": pl.Int64}


def load_hubs(path: str | Path) -> list[Hub]:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise HubFileError(f"{path}: cannot read the hubs file: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise HubFileError(f"{path}: not YAML: {exc}") from None
    return parse_hubs(data, source=str(path))


def parse_hubs(data: Any, source: str = "<hubs>") -> list[Hub]:
    if not isinstance(data, list):
        raise HubFileError(f"{source}: expected a list of hubs, got {type(data).__name__}")
    hubs: list[Hub] = []
    seen: set[str] = set()
    for index, entry in enumerate(data):
        where = f"{source}: hub {index}"
        if not isinstance(entry, dict):
            raise HubFileError(f"{where}: expected a mapping with id, name, kind, lat, lon")
        unknown = sorted(set(entry) - {"id", "name", "kind", "lat", "lon", "capacity"})
        if unknown:
            raise HubFileError(f"{where}: key {unknown[0]!r}: not a hub key (id, name, kind, lat, lon, capacity)")
        hub_id = entry.get("id")
        if not isinstance(hub_id, str) or not is_id(hub_id):
            raise HubFileError(f"{where}: key 'id': expected an id (letters, digits, '-', '_', '.'), got {hub_id!r}")
        if hub_id in seen:
            raise HubFileError(f"{where}: key 'id': {hub_id!r} is used twice")
        seen.add(hub_id)
        where = f"{where} ({hub_id})"
        name = entry.get("name")
        if not isinstance(name, dict) or not all(isinstance(name.get(lang), str) and name[lang]
                                                 for lang in ("ja", "en")):
            raise HubFileError(f"{where}: key 'name': expected {{ja: ..., en: ...}}")
        try:
            kind = HubKind(entry.get("kind"))
        except ValueError:
            raise HubFileError(f"{where}: key 'kind': expected one of {', '.join(k.value for k in HubKind)}, "
                               f"got {entry.get('kind')!r}") from None
        coords = {}
        for key, low, high in (("lat", -90, 90), ("lon", -180, 180)):
            value = entry.get(key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
                raise HubFileError(f"{where}: key {key!r}: expected degrees between {low} and {high}, got {value!r}")
            coords[key] = float(value)
        capacity = entry.get("capacity")
        if capacity is not None and (isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 0):
            raise HubFileError(f"{where}: key 'capacity': expected a whole number >= 0, got {capacity!r}")
        hubs.append(Hub(id=hub_id, name={"ja": name["ja"], "en": name["en"]}, kind=kind, capacity=capacity, **coords))
    return hubs


def hubs_frame(hubs: list[Hub]) -> pl.DataFrame:
    return pl.DataFrame([{"id": h.id, "name_ja": h.name["ja"], "name_en": h.name["en"], "kind": h.kind.value,
                          "lat": h.lat, "lon": h.lon, "capacity": h.capacity} for h in hubs], schema=HUB_SCHEMA)


def haversine_expr(lat1: pl.Expr, lon1: pl.Expr, lat2: pl.Expr, lon2: pl.Expr) -> pl.Expr:
    """Great-circle distance in metres between two columns of points."""
    p1, p2 = lat1.radians(), lat2.radians()
    a = ((p2 - p1) / 2).sin() ** 2 + p1.cos() * p2.cos() * ((lon2.radians() - lon1.radians()) / 2).sin() ** 2
    return 2 * EARTH_RADIUS_M * a.sqrt().clip(upper_bound=1.0).arcsin()


def hub_coverage(vehicles: pl.DataFrame, hubs: pl.DataFrame, radius_m: float = 500.0,
                 min_battery_pct: float = 0.0) -> pl.DataFrame:
    """Per hub: ``available`` vehicles within ``radius_m`` and ``nearest_m``, the distance to the nearest
    available vehicle anywhere (null when none is available).

    ``vehicles``: columns vehicle, lat, lon, state, battery_pct; a vehicle is available when its state is
    ``available`` and its battery (when known) is at least ``min_battery_pct``. ``hubs``: id, lat, lon.
    Result: hub, available, nearest_m, in the hubs' order.
    """
    usable = vehicles.filter(
        (pl.col("state") == VehicleState.AVAILABLE.value)
        & pl.col("lat").is_not_null() & pl.col("lon").is_not_null()
        & (pl.col("battery_pct").is_null() | (pl.col("battery_pct") >= min_battery_pct))
    ).select(pl.col("lat").cast(pl.Float64).alias("v_lat"), pl.col("lon").cast(pl.Float64).alias("v_lon"))
    base = hubs.select(pl.col("id").alias("hub"), pl.col("lat").cast(pl.Float64), pl.col("lon").cast(pl.Float64))
    base = base.with_row_index("_order")
    if usable.is_empty():
        return base.select("hub", pl.lit(0, pl.UInt32).alias("available"), pl.lit(None, pl.Float64).alias("nearest_m"))
    pairs = base.join(usable, how="cross").with_columns(
        haversine_expr(pl.col("lat"), pl.col("lon"), pl.col("v_lat"), pl.col("v_lon")).alias("distance_m"))
    return (pairs.group_by("_order", "hub")
            .agg((pl.col("distance_m") <= radius_m).sum().cast(pl.UInt32).alias("available"),
                 pl.col("distance_m").min().alias("nearest_m"))
            .sort("_order").select("hub", "available", "nearest_m"))


def coverage_gaps(coverage: pl.DataFrame, hubs: pl.DataFrame, min_available: int = 1,
                  kinds: tuple[str, ...] | None = None) -> pl.DataFrame:
    """The hubs with fewer than ``min_available`` vehicles within the radius (``hub_coverage``'s result),
    optionally only of some kinds (e.g. ``("estate",)`` for the hillside estates): hub, kind, available,
    nearest_m, in the hubs' order."""
    joined = coverage.join(hubs.select(pl.col("id").alias("hub"), "kind"), on="hub", how="left", maintain_order="left")
    gaps = joined.filter(pl.col("available") < min_available)
    if kinds is not None:
        gaps = gaps.filter(pl.col("kind").is_in(list(kinds)))
    return gaps.select("hub", "kind", "available", "nearest_m")
