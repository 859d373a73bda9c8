"""End-to-end latency of a running platform: reading timestamp -> queryable in InfluxDB.

    ./hinode.sh up &                      # or any running pipeline
    .venv/bin/python bench/e2e_latency.py [--data-dir data] [--device meter-01] [--samples 60]

Polls InfluxDB every 10 ms for the newest point of one device; each new point's age at the
moment it first becomes visible is one sample (polling adds at most ~10 ms). Prints p50/p99
and the readings/s the platform stores, counted in InfluxDB over the same window.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import urllib.parse
import urllib.request
from pathlib import Path


def query(url: str, q: str, all_series: bool = False):
    data = urllib.parse.urlencode({"q": q, "db": "hinode", "epoch": "ms"}).encode()
    with urllib.request.urlopen(f"{url}/query", data=data, timeout=5) as resp:
        series = json.loads(resp.read())["results"][0].get("series", [])
    if all_series:
        return [row for s in series for row in s["values"]]
    return series[0]["values"] if series else []


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-dir", type=Path, default=Path("data"))
    parser.add_argument("--device", default="meter-01")
    parser.add_argument("--samples", type=int, default=60)
    args = parser.parse_args()
    ports = json.loads((args.data_dir / "ports.json").read_text())
    url = f"http://127.0.0.1:{ports['influx']}"
    latencies: list[float] = []
    last_ts = None
    start = time.time()
    start_ms = int(start * 1000)
    while len(latencies) < args.samples and time.time() - start < args.samples * 5:
        rows = query(url, f'SELECT last("seq") FROM "meter" WHERE "device"=\'{args.device}\'')
        now_ms = time.time() * 1000
        if rows and rows[0][0] != last_ts:
            if last_ts is not None:
                latencies.append(now_ms - rows[0][0])
            last_ts = rows[0][0]
        time.sleep(0.01)
    elapsed_s = time.time() - start
    readings = 0
    for measurement in ("meter",):
        rows = query(url, f'SELECT count("seq") FROM "{measurement}" WHERE time >= {start_ms}ms GROUP BY "device"',
                     all_series=True)
        readings += sum(r[1] for r in rows) if rows else 0
    latencies.sort()
    p = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))]
    print(f"samples {len(latencies)} from {args.device}")
    print(f"latency reading ts -> queryable: p50 {p(0.50):.0f} ms, p99 {p(0.99):.0f} ms, "
          f"mean {statistics.mean(latencies):.0f} ms, max {latencies[-1]:.0f} ms")
    print(f"points stored in the window: {readings} in {elapsed_s:.1f} s = {readings / elapsed_s:.1f} points/s "
          f"(one point = one device poll, all devices)")


if __name__ == "__main__":
    main()
