"""The fleet tracker: comms, battery, tipping, slow-mobility events, idle, duplicates, snapshots, envelopes."""

from __future__ import annotations

import json

import pytest

from cloud.domains.fleet.events import fixes_from_envelope
from cloud.domains.fleet.tracker import FleetTracker
from cloud.domains.fleet.tracker_rules import TrackerRules
from hinode import contract
from hinode.contract import Reading, TelemetryEnvelope
from hinode.mobility import EventType, vehicle_readings
from tests.cloud.domains.fleet.test_tracker import T0, drive_north, fix, slow_zone_index, zone_story


def types(events) -> list[str]:
    return [str(e.event_type) for e in events]


def test_comms_lost_after_the_silence_stamped_at_its_end_and_restored_by_the_next_fix():
    tracker = FleetTracker(slow_zone_index(), TrackerRules(comms_lost_s=120))
    tracker.update(fix(0, -500, speed=0, state="available"))
    assert tracker.tick(T0 + 119_999) == []
    [lost] = tracker.tick(T0 + 125_000)
    assert (lost.event_type, lost.ts_ms, lost.vehicle_state) == (EventType.COMMS_LOST, T0 + 120_000, "non_contactable")
    assert tracker.tick(T0 + 200_000) == []                 # once
    assert tracker.vehicles()[0].online is False
    restored = tracker.update(fix(300, -500, speed=0, state="available"))
    assert [(str(e.event_type), e.ts_ms) for e in restored] == [("comms_restored", T0 + 300_000)]
    assert tracker.vehicles()[0].online is True


def test_battery_low_and_charged_with_hysteresis():
    tracker = FleetTracker(slow_zone_index(), TrackerRules(battery_low_pct=15, battery_charged_pct=90))
    levels = [40, 20, 15, 14, 16, 14, 50, 89, 90, 89, 40, 15]
    story = []
    for i, level in enumerate(levels):
        for event in tracker.update(fix(i * 5, -500, speed=0, state="available", battery_pct=level)):
            story.append((str(event.event_type), level))
    assert story == [("battery_low", 15), ("battery_charged", 90), ("battery_low", 15)]
    assert tracker.vehicles()[0].battery_low is True


def test_tipped_over_righted_emergency_stop_and_obstacle():
    tracker = FleetTracker(slow_zone_index())
    kw = dict(speed=0, state="available", vehicle="slow-01", vehicle_type="slowmobility")
    assert types(tracker.update(fix(0, -500, tipped_over=False, **kw))) == []
    assert types(tracker.update(fix(5, -500, tipped_over=True, **kw))) == ["tipped_over"]
    assert types(tracker.update(fix(10, -500, tipped_over=True, **kw))) == []
    assert types(tracker.update(fix(15, -500, tipped_over=False, **kw))) == ["righted"]
    assert types(tracker.update(fix(20, -500, emergency_stop=True, driving_mode="stopped", **kw))) == ["emergency_stop"]
    assert types(tracker.update(fix(25, -500, emergency_stop=True, **kw))) == []
    [obstacle] = tracker.update(fix(30, -500, emergency_stop=False, obstacle="pedestrian", **kw))
    assert (obstacle.event_type, obstacle.detail) == (EventType.OBSTACLE, "pedestrian")
    view = tracker.vehicle("hitachi-scooters", "slow-01")
    assert view.driving_mode == "stopped" and view.tipped_over is False


def test_idle_too_long_once_until_it_moves():
    tracker = FleetTracker(slow_zone_index(), TrackerRules(idle_too_long_s=3600, comms_lost_s=10_000, idle_move_m=50))
    tracker.update(fix(0, -500, speed=0, state="available"))
    tracker.update(fix(1800, -490, speed=0, state="available"))       # 10 m of GPS wander is not moving
    assert tracker.tick(T0 + 3_599_000) == []
    [idle] = tracker.tick(T0 + 3_600_000)
    assert (idle.event_type, idle.ts_ms) == (EventType.IDLE_TOO_LONG, T0 + 3_600_000)
    assert tracker.tick(T0 + 3_700_000) == []
    assert tracker.vehicles()[0].idle_too_long and tracker.vehicles()[0].idle_since_ms == T0
    tracker.update(fix(3800, -400, speed=0, state="available"))       # moved 100 m: the clock restarts
    assert tracker.tick(T0 + 7_300_000) == []
    assert tracker.vehicles()[0].idle_too_long is False
    assert types(tracker.tick(T0 + 7_400_000)) == ["idle_too_long"]


def test_duplicate_and_out_of_order_fixes_are_ignored_and_counted():
    tracker = FleetTracker(slow_zone_index())
    tracker.update(fix(10, -500, speed=0, state="available", battery_pct=50))
    assert tracker.update(fix(10, 0, speed=20, state="on_trip", battery_pct=5)) == []
    assert tracker.update(fix(5, 0, speed=20, state="on_trip", battery_pct=5)) == []
    assert (tracker.counters["duplicate"], tracker.counters["out_of_order"], tracker.counters["fixes"]) == (1, 1, 1)
    [view] = tracker.vehicles()
    assert (view.battery_pct, view.state, view.zones) == (50, "available", [])


def test_snapshot_and_restore_mid_violation_does_not_reopen_it_and_ends_it_with_the_same_id():
    tracker = FleetTracker(slow_zone_index())
    before = drive_north(tracker, start_m=-300, speed_kmh=15, until_s=60)
    snapshot = json.loads(json.dumps(tracker.snapshot()))          # it must survive JSON
    restored = FleetTracker.restore(snapshot, slow_zone_index())
    [open_violation] = restored.open_violations()
    after = []
    for t in range(65, 155, 5):
        after += [(t, e) for e in restored.update(fix(t, -300 + 15 / 3.6 * t, speed=15))]
    assert zone_story(after) == [(110, "violation_end", 110, "slow-station"), (110, "zone_exit", 110, "slow-station")]
    start = next(e for _, e in before if e.event_type == EventType.VIOLATION_START)
    assert after[0][1].violation_id == start.violation_id == open_violation.violation_id
    # the trip carried over too: it ends with the whole distance (0 s .. 155 s at 4.1667 m/s = 645.8 m)
    [trip_end] = restored.update(fix(160, -300 + 15 / 3.6 * 155, speed=0, state="available"))
    assert trip_end.event_type == EventType.TRIP_END
    assert trip_end.trip.start_ms == T0 and trip_end.trip.distance_m == pytest.approx(15 / 3.6 * 155, abs=0.5)
    assert restored.vehicles()[0].trip_count == 1


def test_restore_refuses_a_snapshot_of_another_version():
    with pytest.raises(ValueError, match="version"):
        FleetTracker.restore({"version": 99, "vehicles": []}, slow_zone_index())


def test_fixes_from_envelope_groups_readings_by_ts_and_keeps_a_fix_without_a_bad_reading():
    lat, lon = 36.5908, 140.6615
    readings = (vehicle_readings(T0, lat=lat, lon=lon, speed=12.5, battery=80, state="on_trip", heading=90)
                + vehicle_readings(T0 + 5000, lat=lat + 0.0001, lon=lon, speed=13.0, battery=79, state="on_trip")
                + [Reading(ts=T0 + 5000, metric="tipped_over", value="yes"),
                   Reading(ts=T0 + 10_000, metric="lat", value=236.59, unit="deg"),
                   Reading(ts=T0 + 10_000, metric="speed", value=-3.0, unit="km/h"),
                   Reading(ts=T0 + 10_000, metric="battery", value=78, unit="%")])
    envelope = TelemetryEnvelope(site="hitachi-scooters", agent="sc-001", device="sc-001",
                                 kind=contract.DeviceKind.VEHICLE, seq=1, readings=readings,
                                 meta={"fleet": "hitachi-scooters", "vehicle_type": "escooter"})
    problems: list[str] = []
    first, second, third = fixes_from_envelope(envelope, problems)
    assert (first.fleet, first.vehicle, first.vehicle_type, first.ts_ms) == (
        "hitachi-scooters", "sc-001", "escooter", T0)
    assert (first.lat, first.lon, first.speed_kmh, first.battery_pct, first.state, first.heading) == (
        lat, lon, 12.5, 80, "on_trip", 90)
    assert second.ts_ms == T0 + 5000 and second.tipped_over is None and second.battery_pct == 79
    assert (third.lat, third.speed_kmh, third.battery_pct) == (None, None, 78)      # the good reading stays
    assert len(problems) == 3 and "tipped_over" in problems[0]
    assert "lat: expected -90 .. 90, got 236.59" in problems[1] and "speed: expected 0 .. inf" in problems[2]
    tracker = FleetTracker(slow_zone_index())
    assert types(tracker.update(first)) == ["trip_start", "zone_enter"]


def test_a_parking_grace_under_way_survives_a_restore():
    from tests.cloud.domains.fleet.test_tracker import parking_index
    tracker = FleetTracker(parking_index(), TrackerRules(parking_grace_s=60, comms_lost_s=600))
    tracker.update(fix(0, 0, speed=0, state="available"))
    tracker.update(fix(30, 1, speed=0, state="available"))
    restored = FleetTracker.restore(json.loads(json.dumps(tracker.snapshot())), parking_index(),
                                    TrackerRules(parking_grace_s=60, comms_lost_s=600))
    assert restored.tick(T0 + 59_000) == []
    [start] = restored.tick(T0 + 60_000)
    assert (start.event_type, start.ts_ms, start.zone_id) == (EventType.VIOLATION_START, T0, "noparking-forecourt")
    assert restored.counters["fixes"] == 2
