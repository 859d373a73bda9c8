"""The fleet worker end to end: vehicles publish through the contract on a real Mosquitto, the worker
(the domain's lifespan in the real app) tracks them and writes events to a real InfluxDB 1.6."""

from __future__ import annotations

import pytest

from tests.cloud.domains.fleet.test_worker_kit import (FLEET, IN_SLOW, OUTSIDE, SLOW_ZONE, Vehicle, fleet_app,
                                                       now_ms, query)
from tests.support.waiting import wait_until

pytestmark = pytest.mark.timeout(120)


def speeding(vehicle: Vehicle, start_ms: int, fast_s: int = 6, slow_s: int = 6) -> int:
    """Outside, into the slow zone (6 km/h) at 15 km/h for ``fast_s`` s, then 4 km/h for ``slow_s`` s."""
    points = [(OUTSIDE, 12.0)] * 2 + [(IN_SLOW, 15.0)] * fast_s + [(IN_SLOW, 4.0)] * slow_s
    return vehicle.route(start_ms, points, state="on_trip", battery=80.0)


def test_a_speeding_route_gives_one_violation_with_its_start_and_end(tmp_path, broker, influx):
    start = now_ms() - 60_000
    with fleet_app(tmp_path, broker, influx) as app, Vehicle(broker.port, "sc-001") as scooter:
        end = speeding(scooter, start)
        vehicles = wait_until(lambda: [v for v in app.get("/api/fleet/vehicles")["vehicles"]
                                       if v["ts_ms"] == end - 1000], "the last fix in /api/fleet/vehicles")
        (view,) = vehicles
        assert (view["fleet"], view["vehicle"], view["vehicle_type"], view["speed_kmh"], view["zones"]) == \
            (FLEET, "sc-001", "escooter", 4.0, [SLOW_ZONE])

        rows = wait_until(lambda: [r for r in app.get("/api/fleet/violations")["violations"] if not r["open"]],
                          "an ended violation in /api/fleet/violations")
        (violation,) = rows
        assert violation["start_ms"] == start + 2000            # the first fix above the limit
        assert violation["end_ms"] > violation["start_ms"]
        assert (violation["vehicle"], violation["zone"], violation["violation_kind"], violation["max_speed_kmh"]) \
            == ("sc-001", SLOW_ZONE, "speeding", 15.0)
        assert app.get("/api/fleet/violations", open="true")["violations"] == []

        events = app.get("/api/fleet/events", vehicle="sc-001")["events"]
        by_type = {}
        for event in events:
            by_type.setdefault(event["event_type"], []).append(event)
        assert [e["violation_id"] for e in by_type["violation_start"]] == [violation["violation_id"]]
        assert [e["violation_id"] for e in by_type["violation_end"]] == [violation["violation_id"]]
        assert [e["zone"] for e in by_type["zone_enter"]] == [SLOW_ZONE]
        assert by_type["violation_start"][0]["ts_ms"] == violation["start_ms"]
        # the same rows, straight from InfluxDB: one fleet_violation row, rewritten at its end
        stored = query(influx, 'SELECT * FROM "fleet_violation"')
        assert [(r["violation_id"], r["open"], r["end_ms"]) for r in stored] == \
            [(violation["violation_id"], False, violation["end_ms"])]
        assert app.get("/api/fleet/events", vehicle="sc-001", type="zone_enter", zone=SLOW_ZONE)["count"] == 1


def test_a_restart_mid_violation_does_not_reopen_it(tmp_path, broker, influx):
    start = now_ms() - 60_000
    with fleet_app(tmp_path, broker, influx) as app, Vehicle(broker.port, "sc-002") as scooter:
        ts = scooter.route(start, [(OUTSIDE, 12.0)] * 2 + [(IN_SLOW, 15.0)] * 6, state="on_trip")
        (open_row,) = wait_until(lambda: app.get("/api/fleet/violations", open="true")["violations"],
                                 "the open violation")
        assert open_row["end_ms"] == 0
    # the API stopped (the worker saved its state); a new one starts from the same state dir
    with fleet_app(tmp_path, broker, influx) as app, Vehicle(broker.port, "sc-002") as scooter:
        assert [v.violation_id for v in app.worker.tracker.open_violations()] == [open_row["violation_id"]]
        scooter.seq = 100
        scooter.route(ts, [(IN_SLOW, 16.0)] * 2 + [(IN_SLOW, 4.0)] * 6, state="on_trip")
        (ended,) = wait_until(lambda: app.get("/api/fleet/violations", open="false")["violations"],
                              "the violation's end")
        assert (ended["violation_id"], ended["start_ms"]) == (open_row["violation_id"], open_row["start_ms"])
        assert ended["max_speed_kmh"] == 16.0                   # the fastest fix, before or after the restart
        starts = app.get("/api/fleet/events", vehicle="sc-002", type="violation_start")["events"]
        assert [e["violation_id"] for e in starts] == [open_row["violation_id"]]
        assert app.get("/api/fleet/events", vehicle="sc-002", type="zone_enter")["count"] == 1
        assert app.get("/api/fleet/violations")["count"] == 1


def test_bad_payloads_are_counted_and_other_kinds_ignored_without_decoding(tmp_path, broker, influx):
    from hinode import contract
    from hinode.contract import Reading
    from hinode.mobility import vehicle_readings
    start = now_ms() - 60_000
    with fleet_app(tmp_path, broker, influx) as app, Vehicle(broker.port, "sc-003") as scooter:
        worker = app.worker
        meter = scooter.envelope([Reading(ts=start, metric="power_total", value=1200.0, unit="W")], kind="meter")
        scooter.publish(contract.encode(meter))
        wait_until(lambda: worker.ignored_total == 1, "the meter's message ignored")
        scooter.publish(b'{"kind":"vehicle", not json')
        scooter.publish(b'{"v":1,"kind":"vehicle","site":"x"}')
        wrong_agent = scooter.envelope(vehicle_readings(start, lat=IN_SLOW[0], lon=IN_SLOW[1]))
        scooter.publish(contract.encode(wrong_agent), topic=contract.telemetry_topic(FLEET, "sc-999"))
        # a reading of the wrong type is left out; the rest of its fix counts
        bad_speed = scooter.envelope([*vehicle_readings(start + 1000, lat=OUTSIDE[0], lon=OUTSIDE[1], battery=55.0),
                                      Reading(ts=start + 1000, metric="speed", value="fast", unit="km/h")])
        scooter.publish(contract.encode(bad_speed))
        wait_until(lambda: worker.invalid["bad_reading"] == 1, "the bad reading counted")
        assert worker.invalid["malformed_json"] == 1
        assert worker.invalid["invalid"] == 1
        assert worker.invalid["topic_mismatch"] == 1
        assert worker.ignored_total == 1 and worker.fixes_total == 1
        (view,) = app.get("/api/fleet/vehicles")["vehicles"]
        assert (view["vehicle"], view["battery_pct"], view["speed_kmh"]) == ("sc-003", 55.0, None)
        # still serving: the next good fix is tracked
        scooter.fix(start + 2000, lat=IN_SLOW[0], lon=IN_SLOW[1], speed=3.0)
        wait_until(lambda: app.get("/api/fleet/vehicles")["vehicles"][0]["zones"] == [SLOW_ZONE], "the next fix")


def test_influxdb_down_events_wait_and_are_written_when_it_is_back(tmp_path, broker, influx):
    start = now_ms() - 60_000
    with fleet_app(tmp_path, broker, influx) as app, Vehicle(broker.port, "sc-004") as scooter:
        worker = app.worker
        influx.stop()
        speeding(scooter, start)
        wait_until(lambda: worker.outbox.retries_total >= 2 and worker.events["violation_end"] == 1,
                   "writes retried while InfluxDB is down")
        waiting = len(worker.outbox)
        assert waiting >= 5 and worker.outbox.written_total == 0    # zone_enter, violation start/end, their rows...
        assert app.get("/api/fleet/vehicles")["count"] == 1          # the live view does not need InfluxDB
        assert app.http.get("/api/fleet/events").status_code == 503  # the stored ones do, and say so
        influx.start()
        wait_until(lambda: len(worker.outbox) == 0, "the waiting points written")
        assert worker.outbox.written_total == waiting and not worker.outbox.dropped
        (violation,) = app.get("/api/fleet/violations")["violations"]
        assert not violation["open"]


def test_the_outbox_is_bounded_and_counts_what_it_drops(tmp_path, broker, influx):
    start = now_ms() - 60_000
    with fleet_app(tmp_path, broker, influx, event_queue_max=10) as app, \
            Vehicle(broker.port, "sc-005") as scooter:
        worker = app.worker
        influx.stop()
        for i in range(4):        # each pass: zone_enter/exit, a violation (2 events, 2 rows)...
            scooter.route(start + i * 40_000, [(OUTSIDE, 12.0)] * 2 + [(IN_SLOW, 15.0)] * 6 + [(OUTSIDE, 12.0)] * 2,
                          state="on_trip")
        wait_until(lambda: worker.outbox.dropped["queue_full"] > 0 and worker.fixes_total == 40, "points dropped")
        assert len(worker.outbox) == 10
        influx.start()
        wait_until(lambda: len(worker.outbox) == 0, "the kept points written")
        assert worker.outbox.written_total == 10


def test_the_worker_resubscribes_after_a_broker_restart(tmp_path, broker, influx):
    start = now_ms() - 60_000
    with fleet_app(tmp_path, broker, influx) as app:
        worker = app.worker
        with Vehicle(broker.port, "sc-006") as scooter:
            scooter.fix(start, lat=OUTSIDE[0], lon=OUTSIDE[1], speed=0.0)
        wait_until(lambda: worker.fixes_total == 1, "the first fix")
        broker.stop()
        wait_until(lambda: not worker.subscribed, "the worker noticing the broker is gone")
        broker.start()
        wait_until(lambda: worker.subscribed and worker.connects_total == 2, "the worker back and subscribed",
                   timeout=30)
        with Vehicle(broker.port, "sc-006") as scooter:
            scooter.fix(start + 1000, lat=IN_SLOW[0], lon=IN_SLOW[1], speed=3.0)
        wait_until(lambda: app.get("/api/fleet/vehicles")["vehicles"][0]["zones"] == [SLOW_ZONE],
                   "a fix after the restart tracked")


def test_a_refused_point_is_dropped_alone_and_the_good_ones_are_written(tmp_path, broker, influx):
    from tests.cloud.test_api_kit import write_lines
    # fleet_event's "lat" already holds strings in this shard (this week's): InfluxDB refuses a float there
    start = now_ms() - 60_000
    write_lines(influx.url, [f'fleet_event,fleet=other,vehicle=x lat="north" {start - 1000}'])
    with fleet_app(tmp_path, broker, influx) as app, Vehicle(broker.port, "sc-007") as scooter:
        worker = app.worker
        scooter.route(start, [(OUTSIDE, 12.0), (IN_SLOW, 4.0)], state="on_trip")
        wait_until(lambda: worker.outbox.dropped["refused"] >= 1 and len(worker.outbox) == 0, "the refusal")
        # the zone_enter event (with a lat) was refused; nothing else was lost with it
        assert worker.outbox.dropped == {"refused": worker.events.total()}
        assert app.get("/api/fleet/events", fleet=FLEET)["count"] == 0
        scooter.fix(start + 5000, lat=IN_SLOW[0], lon=IN_SLOW[1], speed=15.0, state="on_trip")
        scooter.fix(start + 9000, lat=IN_SLOW[0], lon=IN_SLOW[1], speed=15.0, state="on_trip")
        wait_until(lambda: worker.events["violation_start"] == 1 and len(worker.outbox) == 0, "the next points")
        # fleet_violation has no conflict: its row is written although the event beside it was refused
        assert [r["violation_kind"] for r in app.get("/api/fleet/violations")["violations"]] == ["speeding"]


def test_an_unreadable_state_file_is_moved_aside_and_the_worker_starts_fresh(tmp_path, broker, influx):
    state_dir = tmp_path / "fleet-state"
    state_dir.mkdir()
    (state_dir / "fleet-state.json").write_text('{"version": 1, "tracker": ')
    with fleet_app(tmp_path, broker, influx) as app, Vehicle(broker.port, "sc-008") as scooter:
        assert app.worker.tracker.vehicles() == []
        scooter.fix(now_ms(), lat=OUTSIDE[0], lon=OUTSIDE[1], speed=0.0)
        wait_until(lambda: app.get("/api/fleet/vehicles")["count"] == 1, "the worker tracking")
    (aside,) = state_dir.glob("fleet-state.json.corrupt-*")
    assert aside.read_text() == '{"version": 1, "tracker": '
    assert '"sc-008"' in (state_dir / "fleet-state.json").read_text()


def test_fixes_sent_while_the_api_is_down_are_tracked_when_it_is_back(tmp_path, broker, influx):
    start = now_ms() - 60_000
    with fleet_app(tmp_path, broker, influx) as app, Vehicle(broker.port, "sc-009") as scooter:
        ts = scooter.route(start, [(OUTSIDE, 12.0)] * 2 + [(IN_SLOW, 15.0)] * 6, state="on_trip")
        wait_until(lambda: app.get("/api/fleet/violations", open="true")["count"] == 1, "the open violation")
    with Vehicle(broker.port, "sc-009") as scooter:         # the API is down; the broker keeps its session
        scooter.seq = 100
        scooter.route(ts, [(IN_SLOW, 4.0)] * 6 + [(OUTSIDE, 4.0)], state="on_trip")
    with fleet_app(tmp_path, broker, influx) as app:
        (ended,) = wait_until(lambda: app.get("/api/fleet/violations", open="false")["violations"],
                              "the violation ended by the fixes sent meanwhile")
        assert ended["end_ms"] <= ts + 6000
        assert app.get("/api/fleet/vehicles")["vehicles"][0]["zones"] == []
        assert app.get("/api/fleet/events", type="zone_exit")["count"] == 1
