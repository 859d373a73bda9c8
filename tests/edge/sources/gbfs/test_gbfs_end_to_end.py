"""A GBFS feed's vehicles in InfluxDB: feed server -> edge agent (gbfs source) -> Mosquitto -> the cloud's
ingest -> InfluxDB measurement ``vehicle``, each point at the vehicle's last_reported time."""

from __future__ import annotations

import asyncio

import pytest

from edge_agent.sources.gbfs.feed import parse_timestamp
from tests.e2e.pipeline import Pipeline
from tests.edge.sources.gbfs.feed_server import FeedServer

pytestmark = pytest.mark.timeout(150)


async def test_gbfs_vehicles_reach_influxdb(tmp_path):
    async with FeedServer() as feeds:
        feeds.serve_version("v3_0")
        served = feeds.routes["/v3_0/vehicle_status.json"][1]
        pipeline = await asyncio.to_thread(Pipeline(tmp_path).start)
        try:
            source = {"type": "gbfs", "name": "hitachi-ride", "url": feeds.url("/v3_0/gbfs.json"),
                      "min_interval_s": 0.5, "max_interval_s": 2.0}
            await asyncio.to_thread(pipeline.agent, [source], site="hitachi-city", agent="gbfs-poller")

            def stored() -> list[dict]:
                rows = pipeline.query('SELECT "lat", "lon", "battery", "state", "range", "seq" FROM "vehicle" '
                                      'GROUP BY "device", "fleet", "vehicle_type"')
                return rows if len(rows) >= 6 else []

            rows = await asyncio.to_thread(pipeline.wait, stored, "six vehicle points in InfluxDB", 60)
        finally:
            await asyncio.to_thread(pipeline.stop)
    assert len(rows) == 6, "one point per vehicle: nothing changed, nothing re-sent"
    assert {r["fleet"] for r in rows} == {"hitachi-ride"}
    assert sorted(r["vehicle_type"] for r in rows) == ["escooter"] * 5 + ["slowmobility"]
    by_time = {r["time"]: r for r in rows}
    for vehicle in served["data"]["vehicles"]:
        row = by_time[parse_timestamp(vehicle["last_reported"], "last_reported")]
        assert row["battery"] == pytest.approx(vehicle["current_fuel_percent"] * 100)
        assert row["range"] == vehicle["current_range_meters"] and row["seq"] == 1
        state = "non_operational" if vehicle["is_disabled"] else "reserved" if vehicle["is_reserved"] else "available"
        assert row["state"] == state
        if "lat" in vehicle:
            assert (row["lat"], row["lon"]) == (vehicle["lat"], vehicle["lon"])
