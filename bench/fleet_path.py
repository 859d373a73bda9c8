"""The fleet path: 10,000 vehicles, a fix every 5 s each, through broker, ingest and fleet worker, 500 zones.

    ./hinode.sh bench fleet_path [--vehicles 10000] [--zones 500] [--seconds 60] [--interval 5]
                                         [--connections 25] [--worker auto|serve|worker|engine] [--json FILE]
                                         [--quick] [--keep DIR]

Starts a private Mosquitto (``set_tcp_nodelay true``) and InfluxDB 1.x (hinode.services), one
``python -m cloud ingest`` (it stores the fixes as measurement ``vehicle``) and the fleet worker,
then the publishers (``bench/fleet_publishers.py``: ``--connections`` MQTT connections, each
publishing for a slice of the fleet on each vehicle's own topic as that vehicle's agent, QoS 1,
paced to vehicles / interval fixes per second; 10,000 connections from one process would measure
the broker's connection handling, not the fleet path). The world is seeded
(``bench/fleet_scenario.py``): ``--zones`` slow / no-parking / no-ride polygons over Hitachi City and
vehicles riding back and forth through them, so zone entries and exits (and speeding / no-ride
violations) happen all the time: ~1.6 zone events per vehicle-minute.

The fleet worker is, with ``--worker`` (``bench/fleet_workers.py``):

- ``serve``: ``python -m cloud serve --no-ingest`` with ``domains.fleet`` pointing at the bench's
  zones: the real worker (``cloud/domains/fleet/worker.py``) inside the API process.
- ``worker``: ``bench/fleet_harness.py``: the same ``FleetWorker``, built the same way, in a process of
  its own without the API (its counters are sampled even while its event loop is busy).
- ``engine``: ``bench/fleet_standin.py``: paho, the pre-filter, decode and ``FleetTracker`` alone
  (no InfluxDB, webhooks, snapshots or API).
- ``auto`` (default): ``serve`` when the domain has a worker, else ``engine``.

For ``serve`` and ``worker`` the latency is fix ``ts`` -> the zone event first visible in InfluxDB
``fleet_event`` (polled every 100 ms); for ``engine``, -> the tracker's return. The zone events the
fixes of the window must cause are counted from the same points (membership changes); any not seen
by the end of the run count as infinitely late, so a worker that falls behind cannot look fast.

Measured after a warm-up (every vehicle has sent two fixes) over ``--seconds``: the worker's CPU per
position update (its process's user+system CPU from /proc / fixes it handled in the window, or
published when it cannot say), zone event latency p50/p99, and the reference: shapely's bare indexed
point-in-polygon (``STRtree.query(point, predicate="intersects")``, one point per call, as a stream sees them) for
the same points (every fix published, saved by the publishers) and zones, in the same run. Ratio =
worker CPU per update / reference CPU per point (target <= 3); p99 target < 1 s. Then the same
steps in this process, one by one, on the same kind of payloads (``bench/fleet_stages.py``: where the
CPU goes). ``--quick``: 2,000 vehicles, 10 s window after 6 s warm-up (for a test). Prints a table
and writes ``--json``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import fleet_scenario as scenario  # noqa: E402
import fleet_workers as workers  # noqa: E402
from fleet_stages import stage_costs, stage_lines, stage_sum  # noqa: E402
from common import (REPO, CpuMeter, format_cpu, influx_scalar, percentile, private_services,  # noqa: E402
                    ratio_line, start_ingest, stop_process, wait_for_heartbeats)

DATABASE = "hinode"


def shapely_reference(zones: dict, points) -> tuple[dict, object]:
    """CPU seconds per point of shapely's bare STRtree point-in-polygon, one query per point (best of 3),
    and of one vectorised query for all points (for comparison only); also the (point, zone) hits."""
    import numpy as np
    import shapely
    from shapely.geometry import shape

    tree = shapely.STRtree([shape(f["geometry"]) for f in zones["features"]])
    geoms = shapely.points(points)
    best = float("inf")
    hits = 0
    for _ in range(3):
        started = time.process_time()
        hits = 0
        for point in geoms:
            hits += len(tree.query(point, predicate="intersects"))
        best = min(best, time.process_time() - started)
    started = time.process_time()
    bulk = tree.query(geoms, predicate="intersects")
    bulk_s = time.process_time() - started
    if bulk.shape[1] != hits:
        raise RuntimeError(f"per-point and bulk queries disagree: {hits} vs {bulk.shape[1]} hits")
    n = max(1, len(points))
    return {"points": int(len(points)), "hits": int(hits), "per_point_us": 1e6 * best / n,
            "bulk_per_point_us": 1e6 * bulk_s / n, "inside_fraction": float(len(np.unique(bulk[0]))) / n}, bulk


def expected_zone_events(bulk, points, vehicles: int, window: tuple[float, float]) -> int:
    """Zone entries + exits the fixes published in the window must cause: fix i is vehicle i % vehicles
    (the publishers' order); each zone in the symmetric difference with its previous fix is one event."""
    inside: list[set[int]] = [set() for _ in range(len(points))]
    for point, zone in zip(bulk[0].tolist(), bulk[1].tolist()):
        inside[point].add(zone)
    lo, hi = window[0] * 1000, window[1] * 1000
    return sum(len(inside[i] ^ inside[i - vehicles]) for i in range(vehicles, len(points))
               if lo <= points[i, 2] < hi)


def wait_stored(influx, published: int, timeout: float) -> int:
    """Points of measurement ``vehicle`` in InfluxDB once they stop growing or reach ``published``."""
    deadline, last, stored = time.monotonic() + timeout, -1, 0
    while time.monotonic() < deadline:
        stored = influx_scalar(influx.url, DATABASE,
                               f'SELECT count("lat") FROM "vehicle" WHERE "fleet" = \'{scenario.FLEET}\'') or 0
        if stored >= published or (stored == last and stored):
            break
        last = stored
        time.sleep(1.0)
    return stored


def wait_for_publishers(publishers: subprocess.Popen, workdir: Path, timeout: float = 60.0) -> float:
    """The publishers' start (epoch seconds), once every connection is up."""
    deadline = time.monotonic() + timeout
    while not (workdir / "publishers.ready").exists():
        if publishers.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"publishers did not connect; see {workdir}/publishers.log")
        time.sleep(0.05)
    return float((workdir / "publishers.ready").read_text())


def run(args, workdir: Path) -> dict:
    zones = scenario.make_zones(args.zones, args.seed)
    zones_file = workdir / "zones.geojson"
    zones_file.write_text(json.dumps(zones, ensure_ascii=False))
    with private_services(workdir) as (broker, influx):
        ingest = start_ingest(workdir, "bench-fleet-ingest", broker, influx, database=DATABASE)
        worker = workers.start(args.worker, workdir, broker, influx, zones_file, DATABASE)
        baseline = workers.start_mqtt_baseline(workdir, broker) if args.mqtt_baseline else None
        publishers = None
        try:
            wait_for_heartbeats(broker.port, ["bench-fleet-ingest"])
            worker.wait_ready(90)
            if baseline is not None:
                baseline.wait_ready(30)
            idle = CpuMeter({"worker": worker.pid})
            time.sleep(2.0)
            idle_share = idle.stop()["cpu_s"]["worker"] / 2.0
            total_s = args.warmup + args.seconds
            log = open(workdir / "publishers.log", "ab")
            publishers = subprocess.Popen(
                [sys.executable, str(REPO / "bench" / "fleet_publishers.py"), "--port", str(broker.port),
                 "--vehicles", str(args.vehicles), "--zones", str(args.zones), "--seed", str(args.seed),
                 "--connections", str(args.connections), "--interval", str(args.interval),
                 "--seconds", str(total_s + 1.0), "--out", str(workdir)],
                cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
            log.close()
            start_at = wait_for_publishers(publishers, workdir)
            window = (start_at + args.warmup, start_at + total_s)
            worker.observe(window)
            time.sleep(max(0.0, window[0] - time.time()))
            pids = {"fleet worker": worker.pid, "ingest": ingest.pid, "publishers": publishers.pid,
                    "broker": broker.process.pid, "influxdb": influx.process.pid}
            if baseline is not None:
                pids["paho alone"] = baseline.pid
            meter = CpuMeter(pids)
            time.sleep(max(0.0, window[1] - time.time()))
            cpu = meter.stop()
            if publishers.wait(60) != 0:
                raise RuntimeError(f"publishers exited with {publishers.returncode}; see {workdir}/publishers.log")
            pub = json.loads((workdir / "publishers.json").read_text())
            observed = worker.finish(window, settle_s=3.0)
            paho = baseline.finish(window, settle_s=0.0) if baseline is not None else None
            stored = wait_stored(influx, pub["published"], timeout=60)
        finally:
            if publishers is not None:
                stop_process(publishers)
            worker.stop()
            if baseline is not None:
                baseline.stop()
            stop_process(ingest)
    import numpy as np
    points = np.load(workdir / "points.npy")
    reference, bulk = shapely_reference(zones, points[:, :2])
    expected = expected_zone_events(bulk, points, args.vehicles, window)
    stages = stage_costs(zones, scenario.make_vehicles(args.vehicles, zones, args.seed), args.interval, rounds=2)
    second0 = int(args.warmup)
    in_window = sum(pub["per_second"][second0:second0 + int(args.seconds)])
    worker_cpu = cpu["cpu_s"]["fleet worker"]
    handled = observed.get("handled")
    updates, basis = (handled, "fixes the worker handled in the window") if handled else \
        (in_window, "fixes published in the window (the worker's own count was not available)")
    latencies = sorted(observed["latencies_ms"])
    unseen = max(0, expected - len(latencies))      # still queued in the worker at the end: later than the run
    latencies += [float("inf")] * unseen
    return {
        "vehicles": args.vehicles, "zones": args.zones, "interval_s": args.interval, "window_s": args.seconds,
        "warmup_s": args.warmup, "connections": args.connections, "worker": worker.name,
        "published": pub["published"], "acked": pub["acked"], "refused": pub["refused"], "unacked": pub["unacked"],
        "published_in_window": in_window, "fixes_per_s": in_window / args.seconds,
        "worker_handled_in_window": observed.get("handled"), "stored_by_ingest": stored,
        "worker_cpu_s": worker_cpu, "worker_us_per_update": 1e6 * worker_cpu / max(1, updates),
        "per_update_basis": basis,
        "worker_idle_cpu_share": idle_share,
        "zone_events_expected": expected, "zone_events_seen": len(latencies) - unseen, "events": observed["events"],
        "events_scope": observed["events_scope"],
        "latency_ms": {"p50": percentile(latencies, 0.5), "p99": percentile(latencies, 0.99),
                       "max_seen": max((x for x in latencies if x != float("inf")), default=float("nan"))},
        "latency_source": observed["latency_source"], "reference": reference, "stages": stages, "cpu": cpu,
        "paho_alone": paho and {"handled": paho["handled"], "cpu_s": cpu["cpu_s"]["paho alone"],
                                "us_per_message": 1e6 * cpu["cpu_s"]["paho alone"] / max(1, paho["handled"])},
        "notes": observed["notes"], "snapshots_on_path": not isinstance(worker, workers.EngineWorker),
    }


def report(r: dict) -> list[str]:
    ref = r["reference"]
    lat = r["latency_ms"]
    handled = r["worker_handled_in_window"]
    lines = [
        f"fleet path: {r['vehicles']} vehicles, a fix every {r['interval_s']:g} s each, {r['zones']} zones, "
        f"{r['connections']} publisher connections; {r['window_s']:g} s window after {r['warmup_s']:g} s warm-up",
        f"worker: {r['worker']}",
        f"published {r['published']} fixes ({r['fixes_per_s']:.0f}/s in the window), acked {r['acked']}, "
        f"refused {r['refused']}, unacked {r['unacked']}; stored by the ingest {r['stored_by_ingest']}"
        + (f"; worker handled {handled} of {r['published_in_window']} in the window" if handled is not None else ""),
        f"fleet worker CPU {r['worker_cpu_s']:.2f} s = {r['worker_us_per_update']:.0f} us per position update "
        f"(per {r['per_update_basis']}; its process used {100 * r['worker_idle_cpu_share']:.1f} % of a core "
        f"idle, before the fixes)",
        f"zone events caused by fixes in the window: {r['zone_events_expected']} expected (zone membership "
        f"changes), {r['zone_events_seen']} seen by the end of the run + 3 s (any missing count as infinitely late)",
        f"latency fix ts -> zone event ({r['latency_source']}): "
        f"p50 {lat['p50']:.0f} ms  p99 {lat['p99']:.0f} ms  max of those seen {lat['max_seen']:.0f} ms",
        f"events by type ({r['events_scope']}): " + ", ".join(f"{k} {v}" for k, v in sorted(r["events"].items())),
        f"reference, shapely STRtree.query(point, predicate='intersects') one point per call: "
        f"{ref['per_point_us']:.1f} us/point ({ref['points']} points, {100 * ref['inside_fraction']:.0f} % inside "
        f"a zone); one vectorised call for all: {ref['bulk_per_point_us']:.2f} us/point",
        *([f"MQTT client alone (paho, QoS 1, receive + ack + count, a share group of its own): "
           f"{r['paho_alone']['us_per_message']:.0f} us per message ({r['paho_alone']['handled']} in the window)"]
          if r["paho_alone"] else []),
        "cpu: " + format_cpu(r["cpu"]),
        *stage_lines(r["stages"]),
        f"  {'the rest (MQTT client, hand-over, points, writes, API)':<48} "
        f"{r['worker_us_per_update'] - stage_sum(r['stages'], r['snapshots_on_path']):7.1f} us/fix  "
        f"(measured worker - stage sum)",
    ]
    lines += [f"note: {note}" for note in r["notes"]]
    lines.append(ratio_line("fleet worker CPU per update / shapely per-point query", r["worker_us_per_update"],
                            ref["per_point_us"], "<= 3"))
    lines.append(f"ratio p99 latency / target: {lat['p99'] / 1000:.2f} (target < 1.0: p99 < 1 s)")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vehicles", type=int, default=10_000)
    parser.add_argument("--zones", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=60.0, help="measured window")
    parser.add_argument("--warmup", type=float, default=None, help="before the window (default 2 intervals)")
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between a vehicle's fixes")
    parser.add_argument("--connections", type=int, default=25, help="publisher MQTT connections")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--worker", choices=("auto", "serve", "worker", "engine"), default="auto")
    parser.add_argument("--no-mqtt-baseline", dest="mqtt_baseline", action="store_false",
                        help="leave out the paho subscriber that only counts (the MQTT client's own cost)")
    parser.add_argument("--quick", action="store_true", help="2,000 vehicles, 10 s window (for a test)")
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--keep", type=Path, help="keep the work directory (logs, zones) here")
    args = parser.parse_args()
    if args.quick:
        args.vehicles, args.seconds, args.connections = min(args.vehicles, 2_000), min(args.seconds, 10.0), 10
    if args.warmup is None:
        args.warmup = 6.0 if args.quick else 2 * args.interval
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
    workdir = args.keep or Path(tempfile.mkdtemp(prefix="hinode-bench-fleet-"))
    try:
        result = run(args, workdir)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    for line in report(result):
        print(line)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
