"""Helpers for the fleet wiring tests (no tests here): hand-built zones and hubs with known answers,
vehicles publishing through the contract on a real broker, and the real app (``cloud serve``'s
lifespan: the fleet worker) on a real InfluxDB.

    with fleet_app(tmp_path, broker, influx) as app:
        with Vehicle(broker.port, "sc-001") as sc:
            sc.fix(ts, lat=..., lon=..., speed=15.0)
        app.get("/api/fleet/vehicles")
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import httpx
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from cloud.api import create_app
from cloud.config import CloudConfig
from hinode import contract
from hinode.mobility import vehicle_readings
from hinode.security import api_secrets
from tests.cloud.test_api_kit import serve_app
from tests.support.waiting import wait_until

FLEET = "hitachi-scooters"
VIEWER, ADMIN, METERS_ONLY = "fleet-viewer-token", "fleet-admin-token", "meters-only-token"

# A slow zone (6 km/h) around a station square: lon 140.650..140.652, lat 36.590..36.592; a no-parking
# zone east of it: lon 140.655..140.657. Outside both: lon 140.640.
SLOW_ZONE, NO_PARKING_ZONE = "station-square", "bus-lane"
OUTSIDE = (36.591, 140.640)
IN_SLOW = (36.591, 140.651)
IN_NO_PARKING = (36.591, 140.656)


def _box(lon0: float, lat0: float, lon1: float, lat1: float) -> dict:
    return {"type": "Polygon", "coordinates": [[[lon0, lat0], [lon1, lat0], [lon1, lat1], [lon0, lat1],
                                                [lon0, lat0]]]}


ZONES = {"type": "FeatureCollection", "features": [
    {"type": "Feature", "geometry": _box(140.650, 36.590, 140.652, 36.592),
     "properties": {"id": SLOW_ZONE, "name": {"ja": "駅前広場", "en": "Station square"}, "kind": "slow",
                    "max_speed_kmh": 6}},
    {"type": "Feature", "geometry": _box(140.655, 36.590, 140.657, 36.592),
     "properties": {"id": NO_PARKING_ZONE, "name": {"ja": "バス専用レーン", "en": "Bus lane"}, "kind": "no_parking"}},
]}
HUBS = [
    {"id": "jr-test", "name": {"ja": "テスト駅", "en": "Test station"}, "kind": "rail_station",
     "lat": 36.591, "lon": 140.641},
    {"id": "estate-far", "name": {"ja": "遠い団地", "en": "Far estate"}, "kind": "estate",
     "lat": 36.650, "lon": 140.700},
]


def write_data(tmp_path: Path) -> tuple[Path, Path]:
    zones, hubs = tmp_path / "zones.geojson", tmp_path / "hubs.yaml"
    zones.write_text(json.dumps(ZONES, ensure_ascii=False))
    hubs.write_text(json.dumps(HUBS, ensure_ascii=False))     # JSON is YAML
    return zones, hubs


def fleet_config(tmp_path: Path, broker_port: int, influx_url: str, **fleet) -> CloudConfig:
    zones, hubs = write_data(tmp_path)
    section = {"zones_file": str(zones), "hubs_file": str(hubs), "state_dir": str(tmp_path / "fleet-state"),
               "mqtt_client_id": "fleet-test", "snapshot_interval_s": 0.2, "write_retry_initial_s": 0.1,
               "write_retry_max_s": 0.5, "comms_lost_s": 3600, **fleet}
    tokens = [{"name": "viewer", "role": "viewer", "hash": api_secrets.hash_token(VIEWER)},
              {"name": "admin", "role": "admin", "hash": api_secrets.hash_token(ADMIN)},
              {"name": "meters", "role": "viewer", "hash": api_secrets.hash_token(METERS_ONLY),
               "scopes": ["meters:read"]}]
    return CloudConfig.model_validate({
        "mqtt": {"host": "127.0.0.1", "port": broker_port},
        "influx": {"url": influx_url},
        "scheduler": {"enabled": False},
        "api": {"auth": {"tokens": tokens}},
        "domains": {"fleet": section},
    })


@dataclass
class RunningApp:
    app: object
    url: str
    http: httpx.Client

    @property
    def worker(self):
        return self.app.state.fleet

    def get(self, path: str, **params) -> dict:
        response = self.http.get(path, params=params)
        assert response.status_code == 200, f"{path}: {response.status_code} {response.text}"
        return response.json()


@contextlib.contextmanager
def fleet_app(tmp_path: Path, broker, influx, **fleet) -> Iterator[RunningApp]:
    """The app as ``python -m cloud serve`` runs it (services managed: the fleet worker runs), subscribed."""
    app = create_app(fleet_config(tmp_path, broker.port, influx.url, **fleet), manage_services=True)
    with serve_app(app) as url, httpx.Client(base_url=url, headers={"Authorization": f"Bearer {VIEWER}"},
                                             timeout=10) as http:
        wait_until(lambda: app.state.fleet.subscribed, "the fleet worker subscribed", timeout=15)
        yield RunningApp(app, url, http)


class Vehicle:
    """One vehicle's LTE module: its own MQTT connection, publishing envelopes through the contract."""

    def __init__(self, port: int, vehicle: str, fleet: str = FLEET, vehicle_type: str = "escooter"):
        self.fleet, self.vehicle, self.vehicle_type = fleet, vehicle, vehicle_type
        self.seq = 0
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{vehicle}@{fleet}",
                                  protocol=mqtt.MQTTv5)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def __enter__(self) -> "Vehicle":
        return self

    def __exit__(self, *exc) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def publish(self, payload: bytes, topic: str | None = None) -> None:
        info = self.client.publish(topic or contract.telemetry_topic(self.fleet, self.vehicle), payload, qos=1)
        info.wait_for_publish(5)
        assert info.is_published()

    def envelope(self, readings, kind: str = "vehicle") -> contract.TelemetryEnvelope:
        self.seq += 1
        meta = {"fleet": self.fleet, "vehicle_type": self.vehicle_type} if kind == "vehicle" else {}
        return contract.TelemetryEnvelope(site=self.fleet, agent=self.vehicle, device=self.vehicle, kind=kind,
                                          seq=self.seq, meta=meta, readings=readings)

    def fix(self, ts_ms: int, **values) -> None:
        self.publish(contract.encode(self.envelope(vehicle_readings(ts_ms, **values))))

    def route(self, start_ms: int, points: list[tuple[tuple[float, float], float]], step_ms: int = 1000,
              **values) -> int:
        """One fix per ``step_ms`` at ((lat, lon), speed); the ts after the last one."""
        ts = start_ms
        for (lat, lon), speed in points:
            self.fix(ts, lat=lat, lon=lon, speed=speed, **values)
            ts += step_ms
        return ts


def query(influx, q: str) -> list[dict]:
    """Rows of one InfluxQL statement on the hinode database (ms times)."""
    body = influx.query(q, db="hinode")
    series = body["results"][0].get("series", [])
    return [dict(zip(s["columns"], row)) | s.get("tags", {}) for s in series for row in s["values"]]


def now_ms() -> int:
    return int(time.time() * 1000)
