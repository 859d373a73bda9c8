"""Ingest throughput: readings/s stored in InfluxDB vs. what a plain subscriber receives.

    ./hinode.sh bench ingest_throughput [--k 1,10,50] [--seconds 6] [--profile DIR]

Starts its own private Mosquitto + InfluxDB 1.x (hinode.services). For each K (readings per
message) the same pre-generated stream of contract TelemetryEnvelopes (100 devices, one
timestamp per envelope, K metrics) is published at QoS 1 by ``mosquitto_pub -l`` (C, its own
process, reading the payloads from a file, so the publisher is not the bottleneck) and
consumed three ways, each on its own run:

  (a) raw       ``mosquitto_sub -q 1`` on the same topic: the broker's delivery rate;
  (b) ingest    one ``python -m cloud ingest`` process, counted IN InfluxDB (count of
                points; each envelope is one point with K fields, checked with count(*));
  (c) ingest x2 two ingest processes, different client ids, one share group.

Rate = readings / (last reading received or stored - first publish). CPU per process is
read from /proc over the same window; ``other`` is whatever else ran on the machine.
``--profile DIR`` records py-spy collapsed stacks (flamegraph.pl input) of the ingest during each (b) run.
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

from common import (REPO, CpuMeter, exited_cpu_seconds, format_cpu, influx_scalar, private_services,  # noqa: E402
                    ratio_line, start_ingest, stop_process, wait_for_heartbeats)

from hinode import contract  # noqa: E402

SITE, AGENT, DEVICES = "bench-site", "bench-pub", 100


def write_payloads(path: Path, k: int, messages: int) -> int:
    """One JSON envelope per line, as mosquitto_pub -l sends them; returns bytes per message."""
    base = int(time.time() * 1000) - 3_600_000
    lines = []
    for i in range(messages):
        envelope = {"v": 1, "site": SITE, "agent": AGENT, "device": f"dev-{i % DEVICES:03d}", "kind": "meter",
                    "profile": "bench-meter", "seq": i // DEVICES + 1,
                    "readings": [{"ts": base + i, "metric": f"metric_{j:02d}", "value": round(1000 + i * 0.5 + j, 2),
                                  "unit": "W", "quality": "good"} for j in range(k)],
                    "meta": {}}
        lines.append(json.dumps(envelope, separators=(",", ":")))
    contract.decode_telemetry(lines[0].encode(), contract.telemetry_topic(SITE, AGENT))  # the contract holds
    path.write_text("\n".join(lines) + "\n")
    return len(lines[0])


def publish(broker, payload_file: Path) -> tuple[float, float]:
    """Publish every line at QoS 1; returns (start monotonic, publisher CPU seconds)."""
    topic = contract.telemetry_topic(SITE, AGENT)
    with open(payload_file, "rb") as stdin:
        started = time.monotonic()
        proc = subprocess.Popen(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(broker.port), "-V", "mqttv5", "-q", "1",
                                 "-M", "100", "-i", "bench-publisher", "-t", topic, "-l"], stdin=stdin)
    cpu = exited_cpu_seconds(proc)
    if proc.returncode != 0:
        raise RuntimeError(f"mosquitto_pub exited with {proc.returncode}")
    return started, cpu


def run_raw(broker, influx, payload_file: Path, k: int, messages: int) -> dict:
    sub = subprocess.Popen(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(broker.port), "-V", "mqttv5", "-q", "1",
                            "-i", "bench-raw-sub", "-t", contract.TELEMETRY_FILTER, "-C", str(messages)],
                           stdout=subprocess.DEVNULL)
    time.sleep(0.5)  # subscribed (a QoS 1 subscription before the first publish)
    meter = CpuMeter({"broker": broker.process.pid, "influxdb": influx.process.pid})
    started, pub_cpu = publish(broker, payload_file)
    sub_cpu = exited_cpu_seconds(sub)
    elapsed = time.monotonic() - started
    cpu = meter.stop({"publisher": pub_cpu, "subscriber": sub_cpu})
    return {"readings_s": messages * k / elapsed, "elapsed_s": elapsed, "cpu": cpu}


def run_ingest(workdir: Path, broker, influx, payload_file: Path, k: int, messages: int, processes: int,
               label: str, profile_dir: Path | None, timeout_s: float, ingest_options: dict) -> dict:
    database = f"bench_k{k}_{label}"
    names = [f"bench-ingest-k{k}-{label}-{n + 1}" for n in range(processes)]
    procs = [start_ingest(workdir, name, broker, influx, database=database, share_group=f"bench-k{k}-{label}",
                          **ingest_options)
             for name in names]
    spy = None
    try:
        wait_for_heartbeats(broker.port, names)
        if profile_dir is not None:
            spy = subprocess.Popen([str(REPO / ".venv/bin/py-spy"), "record", "-r", "200", "-f", "raw", "-o",
                                    str(profile_dir / f"ingest-k{k}-{label}.txt"), "--pid", str(procs[0].pid)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1.0)
        pids = {"broker": broker.process.pid, "influxdb": influx.process.pid}
        pids.update({f"ingest{n + 1}": proc.pid for n, proc in enumerate(procs)})
        meter = CpuMeter(pids)
        started, pub_cpu = publish(broker, payload_file)
        points = 0
        deadline = time.monotonic() + timeout_s
        while points < messages and time.monotonic() < deadline:
            time.sleep(0.1)
            points = influx_scalar(influx.url, database, 'SELECT count("seq") FROM "meter"') or 0
        elapsed = time.monotonic() - started
        cpu = meter.stop({"publisher": pub_cpu})
        fields = influx_scalar(influx.url, database, f'SELECT count("metric_{k - 1:02d}") FROM "meter"') or 0
        if points < messages or fields != messages:
            raise RuntimeError(f"{label}: InfluxDB holds {points} points / {fields} last fields of {messages} "
                               f"after {timeout_s}s; logs in {workdir}")
        ingest_cpu = sum(sec for name, sec in cpu["cpu_s"].items() if name.startswith("ingest"))
        return {"readings_s": messages * k / elapsed, "elapsed_s": elapsed, "cpu": cpu,
                "us_per_message": 1e6 * ingest_cpu / messages}
    finally:
        if spy is not None:
            spy.send_signal(2)
            spy.wait(30)
        for proc in procs:
            stop_process(proc)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--k", default="1,10,50", help="readings per message, comma-separated")
    parser.add_argument("--readings", type=int, default=0,
                        help="readings per run (default: per K, sized for a few seconds of ingest)")
    parser.add_argument("--profile", type=Path, help="write py-spy flame graphs of the single ingest here")
    parser.add_argument("--ingest", action="append", default=[], metavar="KEY=VALUE",
                        help="ingest config override, e.g. --ingest batch_max_messages=1000 (repeatable)")
    parser.add_argument("--timeout", type=float, default=180.0, help="give up on a run after this many seconds")
    args = parser.parse_args()
    ks = [int(k) for k in args.k.split(",")]
    ingest_options = {key: json.loads(value) for key, value in (opt.split("=", 1) for opt in args.ingest)}
    default_readings = {1: 40_000, 10: 300_000, 50: 600_000}
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    results: dict[int, dict] = {}
    workdir = Path(tempfile.mkdtemp(prefix="hinode-bench-ingest-"))
    try:
        with private_services(workdir) as (broker, influx):
            for k in ks:
                readings = args.readings or default_readings.get(k, 200_000)
                messages = max(DEVICES, readings // k)
                payload_file = workdir / f"payloads-k{k}.txt"
                size = write_payloads(payload_file, k, messages)
                print(f"K={k}: {messages} messages of {size} bytes ({messages * k} readings)", flush=True)
                runs = {"a": run_raw(broker, influx, payload_file, k, messages)}
                print(f"  (a) raw subscriber   {runs['a']['readings_s']:10.0f} readings/s  "
                      f"{runs['a']['elapsed_s']:5.2f} s  cpu: {format_cpu(runs['a']['cpu'])}", flush=True)
                for label, procs, title in (("b", 1, "ingest x1"), ("c", 2, "ingest x2")):
                    runs[label] = run_ingest(workdir, broker, influx, payload_file, k, messages, procs, label,
                                             args.profile if label == "b" else None, args.timeout, ingest_options)
                    print(f"  ({label}) {title:<15} {runs[label]['readings_s']:10.0f} readings/s  "
                          f"{runs[label]['elapsed_s']:5.2f} s  ingest CPU {runs[label]['us_per_message']:.0f} us/message  "
                          f"cpu: {format_cpu(runs[label]['cpu'])}", flush=True)
                a, b, c = (runs[x]["readings_s"] for x in "abc")
                print(f"  K={k}: (b)/(a) = {b / a:.3f}   (c)/(b) = {c / b:.2f}", flush=True)
                results[k] = runs
                payload_file.unlink()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print()
    print(f"{'K':>3} {'(a) raw/s':>11} {'(b) ingest/s':>13} {'(c) x2/s':>11} {'b/a':>6} {'c/b':>6}")
    for k, runs in results.items():
        a, b, c = (runs[x]["readings_s"] for x in "abc")
        print(f"{k:>3} {a:11.0f} {b:13.0f} {c:11.0f} {b / a:6.3f} {c / b:6.2f}")
    if 10 in results:
        runs = results[10]
        print(ratio_line("K=10 ingest/raw (b)/(a)", runs["b"]["readings_s"], runs["a"]["readings_s"], ">= 0.8"))
        print(ratio_line("K=10 two ingests/one (c)/(b)", runs["c"]["readings_s"], runs["b"]["readings_s"],
                         ">= 1.6 where cores allow"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
