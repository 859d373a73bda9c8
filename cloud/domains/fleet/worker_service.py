"""The fleet domain's wiring to the app: its zones and hubs, the worker's lifespan, and the small
frame helpers the routes and the jobs share."""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass

import polars as pl

from cloud.domains.fleet.config import FleetConfig
from cloud.domains.fleet.hubs import Hub, HubFileError, hub_coverage, hubs_frame, load_hubs
from cloud.domains.fleet.tracker import FleetTracker
from cloud.domains.fleet.worker import FleetWorker
from cloud.domains.fleet.zones import ZoneFileError, ZoneIndex

log = logging.getLogger(__name__)

VEHICLE_COLUMNS = {"vehicle": pl.String, "lat": pl.Float64, "lon": pl.Float64, "state": pl.String,
                   "battery_pct": pl.Float64}


@dataclass(frozen=True)
class FleetData:
    zones: ZoneIndex
    hubs: list[Hub]


def load_fleet_data(config: FleetConfig) -> FleetData:
    """Zones and hubs from the configured files; ZoneFileError / HubFileError name the file and the entry."""
    return FleetData(ZoneIndex.from_file(config.resolved_zones_file()), load_hubs(config.resolved_hubs_file()))


def fleet_config(app) -> FleetConfig:
    return app.state.domain_configs.get("fleet") or FleetConfig()


def fleet_data(app) -> FleetData:
    """The app's zones and hubs, loaded once (the running worker's when there is one)."""
    data = getattr(app.state, "fleet_data", None)
    if data is None:
        data = app.state.fleet_data = load_fleet_data(fleet_config(app))
    return data


def vehicles_frame(views) -> pl.DataFrame:
    """VehicleViews as the frame hubs.hub_coverage takes."""
    return pl.DataFrame([{"vehicle": f"{v.fleet}/{v.vehicle}", "lat": v.lat, "lon": v.lon, "state": v.state,
                          "battery_pct": v.battery_pct} for v in views], schema=VEHICLE_COLUMNS)


def hub_coverage_rows(hubs: list[Hub], views, radius_m: float, min_battery_pct: float = 0.0) -> list[dict]:
    """Each hub with ``available`` vehicles within ``radius_m``, ``nearest_m`` and ``gap`` (none available)."""
    if not hubs:
        return []
    coverage = hub_coverage(vehicles_frame(views), hubs_frame(hubs), radius_m, min_battery_pct)
    by_hub = {row["hub"]: row for row in coverage.to_dicts()}
    return [{"id": hub.id, "name": dict(hub.name), "kind": str(hub.kind), "lat": hub.lat, "lon": hub.lon,
             "capacity": hub.capacity, "available": int(by_hub[hub.id]["available"]),
             "nearest_m": by_hub[hub.id]["nearest_m"], "gap": int(by_hub[hub.id]["available"]) == 0}
            for hub in hubs]


def utilisation_summary(trip_rows: list[dict], hub_rows: list[dict], start_ms: int, end_ms: int) -> dict:
    """Per vehicle: trips, seconds on trip, metres, and the share of the range on trip; per hub: the mean
    vehicles available and the share of fleet.hubs samples with none (a gap)."""
    span_s = (end_ms - start_ms) / 1000
    per_vehicle: dict[tuple[str, str], dict] = {}
    for row in trip_rows:
        key = (row.get("fleet") or "", row.get("vehicle") or "")
        entry = per_vehicle.setdefault(key, {"fleet": key[0], "vehicle": key[1],
                                             "vehicle_type": row.get("vehicle_type") or "", "trips": 0,
                                             "on_trip_s": 0.0, "distance_m": 0.0})
        entry["trips"] += 1
        entry["on_trip_s"] += float(row.get("duration_s") or 0.0)
        entry["distance_m"] += float(row.get("distance_m") or 0.0)
    for entry in per_vehicle.values():
        entry["utilisation"] = round(min(1.0, entry["on_trip_s"] / span_s), 4) if span_s > 0 else 0.0
    per_hub: dict[str, dict] = {}
    for row in hub_rows:
        hub = row.get("hub") or ""
        entry = per_hub.setdefault(hub, {"hub": hub, "kind": row.get("hub_kind") or "", "samples": 0,
                                         "available_sum": 0, "gaps": 0})
        entry["samples"] += 1
        entry["available_sum"] += int(row.get("available") or 0)
        entry["gaps"] += 1 if row.get("gap") else 0
    hubs = [{"hub": e["hub"], "kind": e["kind"], "samples": e["samples"],
             "mean_available": round(e["available_sum"] / e["samples"], 3),
             "gap_share": round(e["gaps"] / e["samples"], 4)} for e in per_hub.values()]
    return {"vehicles": sorted(per_vehicle.values(), key=lambda e: (e["fleet"], e["vehicle"])),
            "hubs": sorted(hubs, key=lambda e: e["hub"])}


def tracker_factory(config: FleetConfig, data: FleetData):
    rules = config.tracker_rules()
    stations = [(hub.lat, hub.lon) for hub in data.hubs]

    def make(snapshot: dict | None) -> FleetTracker:
        if snapshot:
            return FleetTracker.restore(snapshot, data.zones, rules, stations)
        return FleetTracker(data.zones, rules, stations)
    return make


class RunningFleet(FleetWorker):
    """The worker as the routes and the GBFS feed see it (``app.state.fleet``): also its zones and hubs."""

    def __init__(self, config: FleetConfig, data: FleetData, app):
        cloud = app.state.config
        super().__init__(config, cloud.api_mqtt(), app.state.reader, tracker_factory(config, data),
                         create_database=cloud.influx.create_database)
        self.zones = data.zones
        self.hubs = data.hubs


@contextlib.asynccontextmanager
async def worker_lifespan(app, config: FleetConfig | None):
    """The domain's lifespan: the worker runs while ``python -m cloud serve`` does."""
    config = config or FleetConfig()
    if not config.enabled:
        log.info("fleet worker disabled (domains.fleet.enabled: false)")
        yield
        return
    try:
        data = fleet_data(app)
    except (ZoneFileError, HubFileError) as exc:
        if config.zones_file is not None or config.hubs_file is not None:
            raise                 # a configured file that cannot be used stops the start, naming it
        log.error("fleet worker not started: the shipped zones/hubs cannot be read (%s)", exc)
        yield
        return
    worker = RunningFleet(config, data, app)
    await worker.start()
    app.state.fleet = worker
    # /metrics reads every domain worker's families from here (cloud/api/metrics.py, "domain workers")
    families = getattr(app.state, "domain_metric_families", None)
    if families is None:
        families = app.state.domain_metric_families = {}
    families["fleet"] = worker.metric_families
    try:
        yield
    finally:
        families.pop("fleet", None)
        app.state.fleet = None
        await worker.stop()
