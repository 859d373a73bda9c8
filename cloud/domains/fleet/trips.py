"""Trips from a recorded track, and utilisation per vehicle and per hub, over polars.

``trips_from_track`` runs the live tracker's own trip rules (``tracker_trip.TripDetector``) over a
recorded track, so a trip found live and one found later from the stored telemetry are the same trip.
"""

from __future__ import annotations

import json

import polars as pl

from .hubs import haversine_expr
from .tracker_rules import TrackerRules
from .tracker_trip import TripDetector

TRIP_SCHEMA = {
    "fleet": pl.String, "vehicle": pl.String, "vehicle_type": pl.String,
    "start_ms": pl.Int64, "end_ms": pl.Int64, "duration_s": pl.Float64, "distance_m": pl.Float64,
    "max_speed_kmh": pl.Float64, "start_lat": pl.Float64, "start_lon": pl.Float64,
    "end_lat": pl.Float64, "end_lon": pl.Float64, "route": pl.String,
}


def trips_from_track(track: pl.DataFrame, rules: TrackerRules | None = None, *, fleet: str = "",
                     vehicle: str = "", vehicle_type: str = "") -> pl.DataFrame:
    """The finished trips in ``track`` (columns ts_ms, lat, lon, speed_kmh, state; optional accuracy_m,
    and fleet / vehicle / vehicle_type to hold several vehicles). A trip still open at the end of the
    track is not returned. Rows out of time order are sorted; repeated timestamps keep the first row.

    Result (TRIP_SCHEMA): fleet, vehicle, vehicle_type, start_ms, end_ms, duration_s, distance_m,
    max_speed_kmh, start/end lat/lon, route (a GeoJSON LineString as a string).
    """
    rules = rules or TrackerRules()
    missing = [c for c in ("ts_ms", "lat", "lon", "speed_kmh", "state") if c not in track.columns]
    if missing:
        raise ValueError(f"trips_from_track: the track lacks column(s) {', '.join(missing)}")
    frame = track
    for column, value in (("fleet", fleet), ("vehicle", vehicle), ("vehicle_type", vehicle_type)):
        if column not in frame.columns:
            frame = frame.with_columns(pl.lit(value, pl.String).alias(column))
    if "accuracy_m" not in frame.columns:
        frame = frame.with_columns(pl.lit(None, pl.Float64).alias("accuracy_m"))
    frame = frame.sort("fleet", "vehicle", "ts_ms").unique(["fleet", "vehicle", "ts_ms"], keep="first",
                                                           maintain_order=True)
    rows: list[dict] = []
    for (fleet_id, vehicle_id), group in frame.group_by(["fleet", "vehicle"], maintain_order=True):
        reports_state = group["state"].drop_nulls().len() > 0
        detector = TripDetector()
        for row in group.iter_rows(named=True):
            accurate = (row["lat"] is not None and row["lon"] is not None
                        and (row["accuracy_m"] is None or row["accuracy_m"] <= rules.max_accuracy_m))
            markers = detector.step(fleet_id, vehicle_id, row["vehicle_type"] or "", int(row["ts_ms"]),
                                    row["lat"] if accurate else None, row["lon"] if accurate else None,
                                    row["speed_kmh"], row["state"], reports_state, rules)
            for marker, trip in markers:
                if marker == "end":
                    rows.append({"fleet": trip.fleet, "vehicle": trip.vehicle, "vehicle_type": trip.vehicle_type,
                                 "start_ms": trip.start_ms, "end_ms": trip.end_ms, "duration_s": trip.duration_s,
                                 "distance_m": trip.distance_m, "max_speed_kmh": trip.max_speed_kmh,
                                 "start_lat": trip.start_lat, "start_lon": trip.start_lon,
                                 "end_lat": trip.end_lat, "end_lon": trip.end_lon,
                                 "route": json.dumps(trip.route_geojson(), separators=(",", ":"))})
    return pl.DataFrame(rows, schema=TRIP_SCHEMA)


def utilisation(trips: pl.DataFrame, start_ms: int, end_ms: int, hubs: pl.DataFrame | None = None,
                radius_m: float = 500.0) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Per vehicle and per hub, over the window [start_ms, end_ms).

    ``trips``: columns fleet, vehicle, start_ms, end_ms, distance_m, start_lat, start_lon, end_lat, end_lon
    (``trips_from_track``'s result or the ``fleet_trip`` measurement). A trip counts for the window when it
    starts in it; its time on trip is clipped to the window.

    Returns (per_vehicle: fleet, vehicle, trips, km, on_trip_s, share (on_trip_s / window),
    per_hub: hub, trips_started, trips_ended, within ``radius_m`` of the hub; empty without ``hubs``).
    """
    if end_ms <= start_ms:
        raise ValueError(f"utilisation: end_ms ({end_ms}) must be after start_ms ({start_ms})")
    window_s = (end_ms - start_ms) / 1000
    in_window = trips.filter((pl.col("start_ms") >= start_ms) & (pl.col("start_ms") < end_ms))
    clipped_s = (pl.min_horizontal(pl.col("end_ms"), pl.lit(end_ms)) - pl.col("start_ms")) / 1000
    per_vehicle = (in_window.group_by("fleet", "vehicle")
                   .agg(pl.len().cast(pl.Int64).alias("trips"),
                        (pl.col("distance_m").sum() / 1000).alias("km"),
                        clipped_s.sum().cast(pl.Float64).alias("on_trip_s"))
                   .with_columns((pl.col("on_trip_s") / window_s).alias("share"))
                   .sort("fleet", "vehicle"))
    hub_schema = {"hub": pl.String, "trips_started": pl.Int64, "trips_ended": pl.Int64}
    if hubs is None or hubs.is_empty():
        return per_vehicle, pl.DataFrame(schema=hub_schema)
    hub_points = hubs.select(pl.col("id").alias("hub"), pl.col("lat").alias("h_lat"),
                             pl.col("lon").alias("h_lon")).with_row_index("_order")
    if in_window.is_empty():
        per_hub = hub_points.select("hub", pl.lit(0, pl.Int64).alias("trips_started"),
                                    pl.lit(0, pl.Int64).alias("trips_ended"))
        return per_vehicle, per_hub
    pairs = hub_points.join(in_window.select("start_lat", "start_lon", "end_lat", "end_lon"), how="cross")
    near_start = haversine_expr(pl.col("h_lat"), pl.col("h_lon"), pl.col("start_lat"), pl.col("start_lon")) <= radius_m
    near_end = haversine_expr(pl.col("h_lat"), pl.col("h_lon"), pl.col("end_lat"), pl.col("end_lon")) <= radius_m
    per_hub = (pairs.group_by("_order", "hub")
               .agg(near_start.fill_null(False).sum().cast(pl.Int64).alias("trips_started"),
                    near_end.fill_null(False).sum().cast(pl.Int64).alias("trips_ended"))
               .sort("_order").select("hub", "trips_started", "trips_ended"))
    return per_vehicle, per_hub
