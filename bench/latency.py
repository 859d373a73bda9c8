"""End-to-end latency: reading timestamp -> queryable in InfluxDB, through the whole chain.

    ./hinode.sh bench latency [--devices 22] [--metrics 14] [--seconds 20]
                                      [--configs 100/100,20/100,100/20,20/20]
    ./hinode.sh bench latency --attach data   # a running `hinode up` (its data dir)

Starts a private Mosquitto + InfluxDB 1.x, one ``python -m cloud ingest`` process and one
edge agent (``python -m edge_agent run``) with a ``type: synthetic`` source: ``--devices``
devices each sending ``--metrics`` readings every second — the shape of ``hinode up``
(22 meters at 1 s). Chain: synthetic poll (sets ``ts``) -> SQLite outbox commit -> MQTT
QoS 1 -> Mosquitto -> ingest batch -> InfluxDB /write -> visible to /query.

A poller asks InfluxDB every ``--poll-ms`` for the points of the last seconds; the first
time a point (device, ts) shows up, ``now - ts`` is one sample (polling adds up to one
poll interval, reported). Each config is ``commit_interval_ms/batch_max_ms``: the agent's
``queue.commit_interval_ms`` and the ingest's ``ingest.batch_max_ms``; the CPU the agent
and the ingest use is printed with it, so the price of a shorter interval is visible.
The final ratio line is p99 of the default config against the 1 s target.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (REPO, CpuMeter, influx_scalar, percentile, private_services, start_ingest,  # noqa: E402
                    stop_process, wait_for_heartbeats)

import urllib.parse  # noqa: E402
import urllib.request  # noqa: E402

from hinode.services import free_port  # noqa: E402

DATABASE = "hinode"


def recent_points(influx_url: str, database: str, since_ms: int) -> list[tuple[str, int]]:
    """(device, ts) of every meter point newer than since_ms."""
    q = f'SELECT "seq" FROM "meter" WHERE time > {since_ms}ms GROUP BY "device"'
    data = urllib.parse.urlencode({"q": q, "db": database, "epoch": "ms"}).encode()
    with urllib.request.urlopen(f"{influx_url}/query", data=data, timeout=5) as resp:
        body = json.loads(resp.read())
    out = []
    for series in body["results"][0].get("series", []) or []:
        device = series["tags"]["device"]
        out += [(device, row[0]) for row in series["values"]]
    return out


def sample_latencies(influx_url: str, database: str, seconds: float, poll_ms: int,
                     warmup_s: float = 3.0) -> tuple[list[float], float]:
    """Latency samples (ms) of points first seen during ``seconds``; also the mean query time."""
    seen: set[tuple[str, int]] = set()
    latencies: list[float] = []
    query_ms: list[float] = []
    started = time.time()
    while time.time() - started < warmup_s + seconds:
        asked = time.time()
        try:
            points = recent_points(influx_url, database, int(asked * 1000) - 30_000)
        except OSError:
            points = []
        now_ms = time.time() * 1000
        query_ms.append(now_ms - asked * 1000)
        for point in points:
            if point not in seen:
                seen.add(point)
                if asked - started >= warmup_s and point[1] >= started * 1000:
                    latencies.append(now_ms - point[1])
        time.sleep(max(0.0, poll_ms / 1000 - (time.time() - asked)))
    return sorted(latencies), sum(query_ms) / max(1, len(query_ms))


def write_agent_config(workdir: Path, broker_port: int, devices: int, metrics: int, commit_ms: int) -> Path:
    config = {
        "site": "bench-site", "agent": "bench-edge",
        "mqtt": {"host": "127.0.0.1", "port": broker_port},
        "queue": {"path": str(workdir / f"outbox-{commit_ms}.db"), "commit_interval_ms": commit_ms},
        "metrics": {"listen": f"127.0.0.1:{free_port()}"},
        "health_interval_s": 10,
        "sources": [{"type": "synthetic", "name": "bench-meters", "interval_s": 1.0, "metrics": metrics,
                     "kind": "meter", "devices": [{"id": f"meter-{n + 1:02d}"} for n in range(devices)]}],
    }
    path = workdir / f"agent-{commit_ms}.json"
    path.write_text(json.dumps(config))
    return path


def run_config(workdir: Path, broker, influx, args, commit_ms: int, batch_ms: int) -> dict:
    database = f"latency_{commit_ms}_{batch_ms}"
    name = f"bench-latency-ingest-{commit_ms}-{batch_ms}"
    ingest = start_ingest(workdir, name, broker, influx, database=database, share_group=f"lat-{commit_ms}-{batch_ms}",
                          batch_max_ms=batch_ms)
    agent = None
    try:
        wait_for_heartbeats(broker.port, [name])
        log = open(workdir / f"agent-{commit_ms}.log", "ab")
        agent = subprocess.Popen([sys.executable, "-m", "edge_agent", "run", "--config",
                                  str(write_agent_config(workdir, broker.port, args.devices, args.metrics, commit_ms))],
                                 cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + 20
        while not influx_scalar_safe(influx.url, database) and time.monotonic() < deadline:
            time.sleep(0.2)
        meter = CpuMeter({"agent": agent.pid, "ingest": ingest.pid, "broker": broker.process.pid,
                          "influxdb": influx.process.pid})
        latencies, query_ms = sample_latencies(influx.url, database, args.seconds, args.poll_ms, warmup_s=1.0)
        cpu = meter.stop()
        return {"latencies": latencies, "query_ms": query_ms, "cpu": cpu}
    finally:
        if agent is not None:
            stop_process(agent)
        stop_process(ingest)


def influx_scalar_safe(url: str, database: str):
    try:
        return influx_scalar(url, database, 'SELECT count("seq") FROM "meter"')
    except OSError:
        return None


def summary(latencies: list[float]) -> str:
    if not latencies:
        return "no samples"
    return (f"p50 {percentile(latencies, 0.5):5.0f} ms  p99 {percentile(latencies, 0.99):5.0f} ms  "
            f"max {latencies[-1]:5.0f} ms  ({len(latencies)} points)")


def attach(data_dir: Path, args) -> int:
    ports = json.loads((data_dir / "ports.json").read_text())
    url = f"http://127.0.0.1:{ports['influx']}"
    latencies, query_ms = sample_latencies(url, DATABASE, args.seconds, args.poll_ms)
    print(f"running platform in {data_dir}: {summary(latencies)}; poll every {args.poll_ms} ms, "
          f"query {query_ms:.0f} ms")
    print(f"ratio p99/target: {percentile(latencies, 0.99) / 1000:.2f} (target < 1.0: p99 < 1 s)")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=22)
    parser.add_argument("--metrics", type=int, default=14, help="readings per device per second")
    parser.add_argument("--seconds", type=float, default=20.0, help="sampling time per config")
    parser.add_argument("--poll-ms", type=int, default=20, help="how often InfluxDB is asked for new points")
    parser.add_argument("--configs", default="100/100,20/100,100/20,20/20",
                        help="commit_interval_ms/batch_max_ms pairs; the first is the reference")
    parser.add_argument("--attach", type=Path, metavar="DATA_DIR", help="measure a running `hinode up` instead")
    args = parser.parse_args()
    if args.attach:
        return attach(args.attach, args)
    configs = [tuple(int(x) for x in pair.split("/")) for pair in args.configs.split(",")]
    results = {}
    with tempfile.TemporaryDirectory(prefix="hinode-bench-latency-") as tmp:
        workdir = Path(tmp)
        with private_services(workdir) as (broker, influx):
            for commit_ms, batch_ms in configs:
                run = run_config(workdir, broker, influx, args, commit_ms, batch_ms)
                results[(commit_ms, batch_ms)] = run
                wall = run["cpu"]["wall_s"]
                cpu = run["cpu"]["cpu_s"]
                print(f"commit_interval_ms {commit_ms:4d} batch_max_ms {batch_ms:4d}: {summary(run['latencies'])}"
                      f" | cpu agent {100 * cpu['agent'] / wall:.1f}% ingest {100 * cpu['ingest'] / wall:.1f}%"
                      f" broker {100 * cpu['broker'] / wall:.1f}% influxdb {100 * cpu['influxdb'] / wall:.1f}%"
                      f" other {100 * run['cpu']['other_s'] / wall:.0f}%", flush=True)
    print(f"{args.devices} devices x {args.metrics} readings every 1 s; InfluxDB polled every {args.poll_ms} ms "
          f"(adds up to that much; one query took {results[configs[0]]['query_ms']:.0f} ms on average)")
    p99 = percentile(results[configs[0]]["latencies"], 0.99)
    print(f"ratio p99/target at {configs[0][0]}/{configs[0][1]}: {p99 / 1000:.2f} (target < 1.0: p99 < 1 s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
