"""Per-slot energy of meters for the green-city domains, against a real InfluxDB 1.6: stored
``energy_slot`` rows, slots recomputed from raw counters (late readings count) and completeness."""

from __future__ import annotations

import asyncio
from datetime import datetime

import pytest

from cloud.config import InfluxConfig
from cloud.domains._greencity.energy import (MeterRef, fetch_slot_energy, recompute_slot_energy,
                                             slot_completeness)
from cloud.influx import AsyncInfluxClient
from tests.cloud.test_api_kit import write_lines

pytestmark = pytest.mark.timeout(60)

MIN = 60_000
SLOT = 30 * MIN
BASE = int(datetime.fromisoformat("2026-06-01T10:00:00+09:00").timestamp() * 1000)


def catalog(device: str) -> str:
    return (f"hinode_catalog,site=sme-a,agent=a1,device={device},kind=meter,profile=p,metric=energy_import "
            f'unit="kWh",counter=true,rollover=0,writable=false {BASE - 86_400_000}')


def reading(device: str, minute: int, kwh: float) -> str:
    return f"meter,site=sme-a,agent=a1,device={device},profile=p energy_import={kwh} {BASE + minute * MIN}"


def stored_slot(device: str, slot: int, kwh: float, readings: int) -> str:
    return (f"energy_slot,site=sme-a,device={device},metric=energy_import consumption={kwh},readings={readings}i "
            f"{BASE + slot * SLOT}")


def run(coro_fn):
    async def main(url):
        reader = AsyncInfluxClient(InfluxConfig(url=url, database="hinode"))
        try:
            return await coro_fn(reader)
        finally:
            await reader.aclose()
    return main


def test_stored_slots_and_completeness_count_missing_meters(influx):
    write_lines(influx.url, [stored_slot("m1", 0, 4.0, 3), stored_slot("m1", 1, 5.5, 0), stored_slot("m2", 0, 1.0, 2),
                             stored_slot("m3", 0, 9.0, 1)])    # m3 is not asked for
    meters = [MeterRef("sme-a", "m1"), MeterRef("sme-a", "m2")]
    frame = asyncio.run(run(lambda r: fetch_slot_energy(r, meters, BASE, BASE + 2 * SLOT))(influx.url))
    assert frame.select("device", "slot_start", "kwh", "readings").rows() == [
        ("m1", BASE, 4.0, 3), ("m1", BASE + SLOT, 5.5, 0), ("m2", BASE, 1.0, 2)]
    done = slot_completeness(frame, meters, BASE, BASE + 2 * SLOT)
    # slot 0: both measured; slot 1: m1 interpolated across a gap, m2 has nothing -> incomplete
    assert done.select("slot_start", "meters_expected", "meters_measured", "meters_interpolated", "complete").rows() == [
        (BASE, 2, 2, 0, True), (BASE + SLOT, 2, 0, 1, False)]


def test_recomputed_slots_include_readings_that_arrived_late(influx):
    write_lines(influx.url, [catalog("m1")] + [reading("m1", m, v) for m, v in [(0, 100.0), (10, 101.0), (20, 102.0)]])
    meters = [MeterRef("sme-a", "m1")]
    first = asyncio.run(run(lambda r: recompute_slot_energy(r, meters, BASE, BASE + 2 * SLOT))(influx.url))
    assert first.select("slot_start", "kwh", "readings").rows() == [(BASE, 2.0, 2)]
    # the rest of the hour arrives late (an outbox backlog): 102 -> 104 at :30, -> 107 at :60
    write_lines(influx.url, [reading("m1", 30, 104.0), reading("m1", 60, 107.0)])
    again = asyncio.run(run(lambda r: recompute_slot_energy(r, meters, BASE, BASE + 2 * SLOT))(influx.url))
    assert again.select("slot_start", "kwh", "readings").rows() == [(BASE, 4.0, 3), (BASE + SLOT, 3.0, 1)]


def test_a_meter_not_in_the_catalog_gives_no_rows_not_zeros(influx):
    write_lines(influx.url, [reading("m9", 0, 1.0), reading("m9", 10, 2.0)])
    frame = asyncio.run(run(lambda r: recompute_slot_energy(r, [MeterRef("sme-a", "m9")], BASE, BASE + SLOT))(influx.url))
    assert frame.height == 0
