"""The simulator's fixes, GPS noise included, through the fleet domain's own tracker (cloud/domains/fleet):
each deliberate misbehaviour becomes the event it is meant to be, and ordinary vehicles break no rule."""

from __future__ import annotations

import collections
from datetime import datetime

import pytest

from cloud.domains.fleet.events import fixes_from_envelope
from cloud.domains.fleet.tracker import FleetTracker
from cloud.domains.fleet.zones import ZoneIndex
from hinode.contract import DeviceKind, TelemetryEnvelope
from hinode.mobility import EventType, vehicle_readings
from simulators.fleet.model import JST, FleetModel
from simulators.fleet.world import World
from simulators.fleet.zones import ZONES_FILE, load_hubs, load_zones

STEP_S = 5
START = datetime(2026, 11, 30, 7, 0, tzinfo=JST)


@pytest.fixture(scope="module")
def events():
    zones, _ = load_zones()
    model = FleetModel(World.hitachi(), zones, scooters=30, slow=4, seed=11, misbehave=True, start=START)
    tracker = FleetTracker(ZoneIndex.from_file(ZONES_FILE), hubs=load_hubs())
    seq = collections.Counter()
    found = []
    start_ms = int(START.timestamp() * 1000)
    for _ in range(3600 // STEP_S):
        model.step(STEP_S)
        now_ms = start_ms + int(model.sim_s * 1000)
        for v in model.vehicles:
            report = v.report()
            if v.silent:                         # LTE lost: nothing reaches the cloud
                continue
            seq[v.id] += 1
            envelope = TelemetryEnvelope(site=model.fleet, agent=v.id, device=v.id, kind=DeviceKind.VEHICLE,
                                         seq=seq[v.id], readings=vehicle_readings(now_ms, **report),
                                         meta={"fleet": model.fleet, "vehicle_type": str(v.vehicle_type)})
            problems: list[str] = []
            for fix in fixes_from_envelope(envelope, problems):
                found += tracker.update(fix)
            assert problems == []
        found += tracker.tick(now_ms)
    return model, found


def of(found, event_type, vehicle=None):
    return [e for e in found if e.event_type == event_type and (vehicle is None or e.vehicle == vehicle)]


def test_each_misbehaviour_is_seen_as_what_it_is(events):
    model, found = events
    roles = {role: v.id for role, v in model.misbehaving.items()}
    speeding = [e for e in of(found, EventType.VIOLATION_START, roles["speeder"]) if e.violation_kind == "speeding"]
    assert speeding and {e.zone_id for e in speeding} <= {z.id for z in model.zones.of_kind("slow")}
    parking = [e for e in of(found, EventType.VIOLATION_START, roles["parker"]) if e.violation_kind == "no_parking"]
    assert parking and {e.zone_id for e in parking} <= {z.id for z in model.zones.of_kind("no_parking")}
    assert of(found, EventType.VIOLATION_END, roles["parker"]), "the rebalancer's move ends it"
    assert of(found, EventType.TIPPED_OVER, roles["tipper"]) and of(found, EventType.RIGHTED, roles["tipper"])
    assert of(found, EventType.COMMS_LOST, roles["silent"]) and of(found, EventType.COMMS_RESTORED, roles["silent"])


def test_ordinary_vehicles_ride_park_and_stop_within_the_rules(events):
    model, found = events
    ordinary = {v.id for v in model.vehicles if not v.role}
    broken = [(e.vehicle, e.violation_kind, e.zone_id) for e in of(found, EventType.VIOLATION_START)
              if e.vehicle in ordinary]
    assert broken == []
    assert len({e.vehicle for e in of(found, EventType.TRIP_END) if e.vehicle in ordinary}) >= 10
    assert not [e for e in of(found, EventType.COMMS_LOST) if e.vehicle in ordinary]
    slow = {v.id for v in model.vehicles if v.vehicle_type == "slowmobility"}
    assert {e.vehicle for e in of(found, EventType.OBSTACLE)} <= slow and of(found, EventType.OBSTACLE)
