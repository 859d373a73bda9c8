"""Where the fleet worker's CPU per position goes, stage by stage (helper of ``bench/fleet_path.py``).

``stage_costs(zones, vehicles, interval, rounds)`` runs the worker's steps in this process on the same
kind of payloads the publishers send (every vehicle ``rounds`` times, fixes ``interval`` apart) and
returns CPU microseconds per fix for each: the byte pre-filter, the ingest's ``decode_envelope`` (what
the worker calls), ``contract.decode_telemetry`` (the reference decoder, for comparison), ``fixes_from_envelope``,
``ZoneIndex.zones_at`` alone, ``FleetTracker.update`` (zones included) and the tracker's snapshot
(``snapshot()`` + JSON, which the worker makes every ``snapshot_interval_s``), amortised per fix at
``vehicles / interval`` fixes per second. What the whole worker costs beyond their sum is its MQTT
client (paho), the hand-over to the event loop, the InfluxDB points and writes, and the API process.
"""

from __future__ import annotations

import json
import time

import fleet_scenario as scenario

from hinode import contract, mobility


def stage_costs(zones: dict, vehicles: list, interval: float, rounds: int, snapshot_interval_s: float | None = None) -> dict:
    from cloud.domains.fleet.events import fixes_from_envelope
    from cloud.domains.fleet.tracker import FleetTracker
    from cloud.domains.fleet.tracker_rules import TrackerRules
    from cloud.domains.fleet.zones import ZoneIndex
    from cloud.ingest.decode import decode_envelope

    index = ZoneIndex.from_geojson(zones, source="bench")
    t0 = time.time() - rounds * interval
    payloads, coords = [], []
    for k in range(rounds):
        for i, vehicle in enumerate(vehicles):
            t = k * interval + i * interval / len(vehicles)
            lon, lat, heading = vehicle.position(t)
            coords.append((lon, lat))
            payloads.append((contract.telemetry_topic(scenario.FLEET, vehicle.id),
                             scenario.fix_payload(vehicle, k + 1, int((t0 + t) * 1000), lon, lat, heading)))
    n = len(payloads)
    # The worker's steps one payload at a time, as it runs them (nothing kept but the tracker's state),
    # each timed with this thread's CPU clock.
    names = ("pre-filter is_vehicle_payload", "decode: the ingest's decode_envelope", "fixes_from_envelope",
             "FleetTracker.update (zones included)")
    ns = dict.fromkeys(names, 0)
    tracker = FleetTracker(index, TrackerRules())
    clock = time.thread_time_ns
    events = 0
    for topic, payload in payloads:
        a = clock()
        mobility.is_vehicle_payload(payload)
        b = clock()
        envelope = decode_envelope(payload, topic)
        c = clock()
        fixes = fixes_from_envelope(envelope)
        d = clock()
        for fix in fixes:
            events += len(tracker.update(fix))
        e = clock()
        for name, start, end in zip(names, (a, b, c, d), (b, c, d, e)):
            ns[name] += end - start
    started = clock()
    for topic, payload in payloads:
        contract.decode_telemetry(payload, topic)
    ns["(decode: contract.decode_telemetry)"] = clock() - started
    started = clock()
    for lon, lat in coords:
        index.zones_at(lon, lat)
    ns["(ZoneIndex.zones_at alone)"] = clock() - started
    started = clock()
    body = json.dumps(tracker.snapshot())
    snapshot_ns = clock() - started
    if snapshot_interval_s is None:      # what the worker does by default
        from cloud.domains.fleet.config import FleetConfig
        snapshot_interval_s = FleetConfig().snapshot_interval_s
    fixes_per_snapshot = len(vehicles) / interval * snapshot_interval_s
    us = {name: value / 1000 / n for name, value in ns.items()}
    us[f"snapshot + JSON every {snapshot_interval_s:g} s, amortised"] = snapshot_ns / 1000 / fixes_per_snapshot
    return {"fixes": n, "events": events, "snapshot_ms": snapshot_ns / 1e6, "snapshot_bytes": len(body),
            "us_per_fix": us}


def stage_sum(stages: dict, snapshots: bool = True) -> float:
    """The stages on the worker's path (``snapshots``: the worker makes them; the engine stand-in does not)."""
    return sum(v for k, v in stages["us_per_fix"].items()
               if not k.startswith("(") and (snapshots or not k.startswith("snapshot")))


def stage_lines(stages: dict) -> list[str]:
    lines = [f"cost split in-process ({stages['fixes']} fixes of the same vehicles; () = not on the worker's path):"]
    for name, value in stages["us_per_fix"].items():
        lines.append(f"  {name:<48} {value:7.1f} us/fix")
    lines.append(f"  {'sum of the worker path stages':<48} {stage_sum(stages):7.1f} us/fix")
    lines.append(f"  {'  without the snapshot':<48} {stage_sum(stages, snapshots=False):7.1f} us/fix")
    if stages.get("snapshot_ms") is not None:
        lines.append(f"  one tracker snapshot: {stages['snapshot_ms']:.0f} ms CPU, "
                     f"{stages['snapshot_bytes'] / 1e6:.1f} MB")
    return lines
