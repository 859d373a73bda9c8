"""OPC UA source in poll mode against a real asyncua server."""

from __future__ import annotations

import asyncio
import time

import pytest

from hinode.contract import Quality

from tests.edge.sources.opcua_peer import METRICS, MeterPeer, Run, section

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(30)]


async def test_poll_reads_every_node_of_each_device_once_per_interval(peer):
    async with Run(section(peer.endpoint, mode="poll", poll_interval_s=0.2)) as run:
        await run.wait_for(lambda: len(run.of("M1")) >= 2 and len(run.of("M2")) >= 2, 5, "first polls")
        started, count = time.monotonic(), len(run.of("M1"))
        await asyncio.sleep(1.0)         # a rate window: the polls in 1 s are what is counted
        polls = len(run.of("M1")) - count
        assert 3 <= polls <= 7, f"{polls} polls in {time.monotonic() - started:.2f} s at 0.2 s"
        for device in ("M1", "M2"):
            assert run.online(device)
            for batch in run.of(device):
                assert {r.metric for r in batch.readings} == METRICS, "one batch per poll with every node"
                assert len({r.ts for r in batch.readings}) == 1, "one timestamp per poll"
                assert all(r.quality is Quality.GOOD for r in batch.readings)
            stamps = [b.readings[0].ts for b in run.of(device)]
            assert stamps == sorted(stamps) and abs(stamps[-1] - time.time() * 1000) < 2000
            assert len({r.value for r in run.values(device, "voltage_l1")}) >= 3, "values change"
        energy = [r.value for r in run.values("M1", "energy_import")]
        assert energy == sorted(energy) and energy[-1] > energy[0]
        assert not run.context.errors


async def test_poll_bad_status_and_missing_device(peer):
    devices = ("M1", "M2", "M9")
    async with Run(section(peer.endpoint, mode="poll", devices=devices)) as run:
        await run.wait_for(lambda: run.online("M1") and run.online("M2"), 5, "M1 and M2 online")
        assert not run.online("M9") and run.errors("M9", "bad_node") >= 1
        assert run.context.devices["M9"].error.startswith("bad_node: 13 of 13 nodes unusable")
        await peer.set_bad("M2")
        await run.wait_for(lambda: run.of("M2")[-1].readings[0].quality is Quality.BAD, 3, "a Bad poll of M2")
        last = run.of("M2")[-1].readings
        assert all(r.quality is Quality.BAD and r.value is None for r in last)
        assert run.errors("M2", "bad_status") >= len(METRICS)
        assert all(r.quality is Quality.GOOD for r in run.of("M1")[-1].readings)
        assert run.errors("M1", "bad_status") == 0
        assert not run.of("M9")
