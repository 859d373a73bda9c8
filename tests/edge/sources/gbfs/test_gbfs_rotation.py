"""Rotating vehicle ids map to stable slot devices: a trip's new id takes a free slot, a parked
vehicle's rotated id keeps its own slot; the slots survive a restart."""

from __future__ import annotations

import pytest

from edge_agent.sources.gbfs import Source
from edge_agent.sources.gbfs.feed import VehicleRecord
from edge_agent.sources.gbfs.slots import SlotMap
from tests.edge.sources.gbfs.feed_server import FeedServer

pytestmark = pytest.mark.timeout(30)

BEFORE_MS = 1_795_996_800_000          # 09:00 JST, vehicle_status.json
AFTER_MS = BEFORE_MS + 600_000         # 09:10 JST, vehicle_status_after_trips.json


def position(batch) -> tuple[float, float]:
    got = {r.metric: r.value for r in batch.readings}
    return round(got["lat"], 6), round(got["lon"], 6)


def device_at(run, lat: float, lon: float) -> str:
    return next(b.device for b in run.batches if position(b) == (lat, lon))


async def test_new_ids_after_trips_reuse_slots_and_a_rotation_in_place_keeps_its_slot(
        gbfs_config, source_tools, monkeypatch, tmp_path):
    clock = {"now": BEFORE_MS + 5_000}
    monkeypatch.setattr("edge_agent.sources.gbfs.source.now_ms", lambda: clock["now"])
    async with FeedServer() as feeds:
        feeds.serve_version("v3_0", at_ms=BEFORE_MS)
        context = source_tools.context("feed")
        context.state_dir = tmp_path
        config = gbfs_config(feeds.url("/v3_0/gbfs.json"))
        async with source_tools.run(Source(config, context)) as run:
            await run.wait_for(lambda: len(run.batches) >= 6, 5, "six vehicles")
            parked = device_at(run, 36.59883, 140.65241)              # hr-5e03aa71, disabled, parked
            on_trip = device_at(run, 36.52198, 140.628115)            # hr-c84f6e12, about to leave
            pod = device_at(run, 36.602215, 140.64553)
            docked = device_at(run, 36.590031, 140.66142)            # hr-a9f1402e at st-hitachi-east
            first_round = len(run.batches)
            clock["now"] = AFTER_MS + 5_000
            feeds.serve_file("/v3_0/vehicle_status.json", "v3_0", "vehicle_status_after_trips.json", at_ms=AFTER_MS)
            await run.wait_for(lambda: any(position(b) == (36.530218, 140.635047) for b in run.batches), 5,
                               "the vehicles back from their trips")
            await run.wait_for(lambda: not context.devices[on_trip].online, 5, "the vehicle on a trip offline")
            later = run.batches[first_round:]
            slots = run.source.slots
        assert len(context.devices) == 6, "no new device for a new id: the fleet still has six slots"
        assert slots.device_of("hr-b1c0f9e4") == parked, "rotated where it stands: same slot"
        assert [position(b) for b in later if b.device == parked] == [(36.598842, 140.652398)]
        assert docked not in {b.device for b in later}, "nothing changed for the docked vehicle: not re-sent"
        back = {device_at(run, 36.530218, 140.635047), device_at(run, 36.59514, 140.65879)}
        assert len(back) == 2 and parked not in back and pod not in back
        assert slots.device_of("hr-0d77b3c9") == pod and any(b.device == pod for b in later)
        assert context.devices[on_trip].error.startswith("not listed since ")
        assert all(context.devices[d].online for d in back | {parked, pod})
        remembered = {vid: slots.device_of(vid) for vid in ("hr-e2b8c6d3", "hr-4a6d0e88", "hr-b1c0f9e4")}

        # a restart: the slots come back from the state folder
        restarted = source_tools.context("feed")
        restarted.state_dir = tmp_path
        async with source_tools.run(Source(config, restarted)) as run2:
            await run2.wait_for(lambda: len(run2.batches) >= 5, 5, "the five listed vehicles again")
            slots2 = run2.source.slots
    assert {vid: slots2.device_of(vid) for vid in remembered} == remembered
    assert len(restarted.devices) == 6


def record(vehicle_id: str, lat: float, lon: float, type_id: str = "es") -> VehicleRecord:
    return VehicleRecord(vehicle_id, lat, lon, type_id, False, False, 0.5, 1000.0, None, "")


def test_slots_match_nearest_first_and_respect_the_vehicle_type():
    slots = SlotMap("f", same_spot_m=25, max_slots=10)
    first = slots.assign([record("a", 36.6, 140.6), record("b", 36.6002, 140.6), record("p", 36.6, 140.6, "pod")])
    assert sorted(first.devices.values()) == ["f-0001", "f-0002", "f-0003"]
    # all three ids rotate in place; "b2" is 5 m from b and 17 m from a: nearest pairs go first
    second = slots.assign([record("a2", 36.60005, 140.6), record("b2", 36.60015, 140.6),
                           record("p2", 36.6, 140.6, "pod")])
    assert second.devices == {"a2": first.devices["a"], "b2": first.devices["b"], "p2": first.devices["p"]}
    assert sorted(r[1] for r in second.rotated) == ["a", "b", "p"]


def test_slots_are_bounded_and_an_unreadable_record_keeps_its_slot():
    slots = SlotMap("f", same_spot_m=25, max_slots=2)
    slots.assign([record("a", 36.6, 140.6), record("b", 36.7, 140.6)])
    kept = slots.assign([record("b", 36.7, 140.6)], keep_ids=frozenset({"a"}))
    assert kept.vanished == [] and slots.device_of("a") == "f-0001"
    full = slots.assign([record("a", 36.6, 140.6), record("b", 36.7, 140.6), record("c", 36.8, 140.6)])
    assert full.overflow == ["c"]
    moved = slots.assign([record("b", 36.7, 140.6), record("c", 36.8, 140.6)])
    assert moved.devices["c"] == "f-0001" and moved.vanished == [], "a's free slot went to c"
