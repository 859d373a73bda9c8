"""The GBFS source against the fleet simulator's own GBFS server (written by someone else), both versions:
trips rotate the public ids, the devices stay one per vehicle."""

from __future__ import annotations

from datetime import datetime

import pytest

from edge_agent.sources.gbfs import Source
from hinode.mobility import VehicleType
from simulators.fleet.gbfs_server import vehicle_public_id
from simulators.fleet.model import JST
from simulators.fleet.simulator import FleetSimulator

pytestmark = pytest.mark.timeout(60)

MORNING_PEAK = datetime(2026, 11, 30, 7, 30, tzinfo=JST)


@pytest.mark.parametrize("version", ["2.3", "3.0"])
async def test_simulated_fleet_rotates_ids_and_keeps_one_device_per_vehicle(gbfs_config, source_tools, version):
    simulator = FleetSimulator(mqtt_port=None, gbfs_port=0, gbfs_version=version, scooters=8, slow=2, seed=3,
                               interval_s=0.2, time_scale=600, start=MORNING_PEAK)
    await simulator.start()
    try:
        model, feed = simulator.model, simulator.feed
        context = source_tools.context("sim")
        async with source_tools.run(Source(gbfs_config(simulator.gbfs.url, min_interval_s=0.2), context)) as run:
            def rotated_and_placed() -> bool:
                """Some vehicle came back from a trip with a new public id, and the source gave it a slot."""
                slots = run.source.slots
                return slots is not None and any(
                    v.trip_count >= 1 and slots.device_of(vehicle_public_id(feed.secret, model.fleet, v.id,
                                                                            v.trip_count)) is not None
                    for v in model.vehicles)

            await run.wait_for(rotated_and_placed, 40, "a vehicle back from a trip under a new id")
            assert len(context.devices) <= len(model.vehicles) == 10, "one slot device per vehicle at most"
            assert {b.meta["fleet"] for b in run.batches} == {model.fleet}
            assert {b.meta["vehicle_type"] for b in run.batches} <= {t.value for t in VehicleType}
            assert context.errors[("_source", "bad_vehicle")] == 0
            listed = [b for b in run.batches if {"lat", "lon", "battery", "state"} <= {r.metric for r in b.readings}]
            assert listed, "vehicles carry position, battery and state"
    finally:
        await simulator.stop()
