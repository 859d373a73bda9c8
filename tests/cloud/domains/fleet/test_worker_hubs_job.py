"""The fleet.hubs job on a real InfluxDB holding vehicle telemetry as the ingest stores it: each hub's
vehicles available within the walking radius at the slot's start, and the gaps."""

from __future__ import annotations

import asyncio
import logging

import pytest

from cloud.config import InfluxConfig
from cloud.domains.fleet.config import FleetConfig
from cloud.domains.fleet.jobs import HUBS_JOB
from cloud.influx import AsyncInfluxClient
from cloud.lineproto import encode_envelope
from cloud.scheduler import JobContext
from hinode.contract import TelemetryEnvelope
from hinode.mobility import vehicle_readings
from tests.cloud.domains.fleet.test_worker_kit import FLEET, write_data
from tests.cloud.test_api_kit import write_lines

pytestmark = pytest.mark.timeout(60)
MIN = 60_000
SLOT = 1_795_000_200_000        # a multiple of 5 minutes


def vehicle_lines(vehicle: str, ts: int, **values) -> list[str]:
    envelope = TelemetryEnvelope(site=FLEET, agent=vehicle, device=vehicle, kind="vehicle", seq=1,
                                 meta={"fleet": FLEET, "vehicle_type": "escooter"},
                                 readings=vehicle_readings(ts, **values))
    return encode_envelope(envelope, meta=envelope.meta).lines


def run_slot(influx_url: str, config: FleetConfig, slot_start: int) -> list:
    async def run():
        client = AsyncInfluxClient(InfluxConfig(url=influx_url))
        try:
            ctx = JobContext(client, config, HUBS_JOB, logging.getLogger("test.fleet.hubs"))
            return await HUBS_JOB.run(slot_start, slot_start + HUBS_JOB.every_ms, ctx)
        finally:
            await client.aclose()
    return asyncio.run(run())


def test_hub_coverage_at_the_slot_start_from_stored_positions(tmp_path, influx):
    zones, hubs = write_data(tmp_path)
    write_lines(influx.url, [
        # near jr-test (36.591, 140.641): sc-1 available ~89 m away; sc-2 reserved there; sc-3 available
        # but its newest fix is after the slot start (not counted); sc-4 was available there too long ago
        *vehicle_lines("sc-1", SLOT - 2 * MIN, lat=36.591, lon=140.642, state="available", battery=80.0),
        *vehicle_lines("sc-2", SLOT - MIN, lat=36.591, lon=140.641, state="reserved", battery=80.0),
        *vehicle_lines("sc-3", SLOT + MIN, lat=36.591, lon=140.641, state="available", battery=80.0),
        *vehicle_lines("sc-4", SLOT - 20 * MIN, lat=36.591, lon=140.641, state="available", battery=80.0),
        # sc-5 moved: its newest fix (on a trip, far away) is what counts, not the earlier available one
        *vehicle_lines("sc-5", SLOT - 3 * MIN, lat=36.591, lon=140.641, state="available", battery=80.0),
        *vehicle_lines("sc-5", SLOT - MIN, lat=36.600, lon=140.700, state="on_trip", battery=79.0),
    ])
    config = FleetConfig(zones_file=zones, hubs_file=hubs)
    points = run_slot(influx.url, config, SLOT)
    by_hub = {p.tags["hub"]: p for p in points}
    assert set(by_hub) == {"jr-test", "estate-far"}
    assert all(p.ts_ms == SLOT and p.measurement == "fleet_hub" for p in points)
    station = by_hub["jr-test"]
    assert station.tags["hub_kind"] == "rail_station"
    assert (station.fields["available"], station.fields["gap"]) == (1, False)
    assert round(station.fields["nearest_m"]) == 89
    estate = by_hub["estate-far"]
    assert (estate.fields["available"], estate.fields["gap"]) == (0, True)
    assert estate.fields["nearest_m"] > 7000
    # a wider radius finds sc-1 from the estate too; a disabled domain writes nothing
    wide = run_slot(influx.url, FleetConfig(zones_file=zones, hubs_file=hubs, walking_radius_m=10_000), SLOT)
    assert {p.tags["hub"]: p.fields["available"] for p in wide} == {"jr-test": 1, "estate-far": 1}
    assert run_slot(influx.url, FleetConfig(zones_file=zones, hubs_file=hubs, enabled=False), SLOT) == []


def test_no_vehicle_anywhere_is_a_gap_everywhere_without_a_distance(tmp_path, influx):
    zones, hubs = write_data(tmp_path)
    points = run_slot(influx.url, FleetConfig(zones_file=zones, hubs_file=hubs), SLOT)
    assert [(p.tags["hub"], p.fields) for p in points] == [("jr-test", {"available": 0, "gap": True}),
                                                           ("estate-far", {"available": 0, "gap": True})]
