"""Our edge agent vs the ThingsBoard IoT Gateway: CPU and memory for the same Modbus poll.

    ./hinode.sh bench edge_vs_tbgw                  # 1 s and 100 ms, ours then theirs, ~7 min
    ./hinode.sh bench edge_vs_tbgw --minutes 2 --polls 100 --only ours

50 simulated Modbus TCP meters (unit ids 1..50 on one port, ``bench/counter_meter.py``), each
10 float32 values in registers 0..19 that all equal the simulator's update counter. Each
agent reads one 20-register block per meter per poll over one TCP connection and publishes
QoS 1 to a private Mosquitto (``set_tcp_nodelay true``) where a subscriber records
everything.

- ours: ``python -m edge_agent run``, durable SQLite outbox on (WAL, synchronous=FULL,
  100 ms commits), ``mqtt.wait_for_ingest: false`` (no cloud ingest runs here; a plain
  subscriber consumes the telemetry).
- theirs: ``thingsboard-gateway`` 3.8.5 from PyPI in its own venv (``bench/.peer-venv``,
  created on first use), memory storage, one block read per meter (its best configuration,
  see bench/tbgw/gateway_config.py); the capture answers its getSessionLimits RPC.

For each (agent, poll) the stack starts fresh; after a warm-up the agent's pid is sampled
once a second (CPU = utime+stime of the process and its children, RSS = VmRSS, peak =
VmHWM). Delivery is checked on what the subscriber received inside the window: records
per meter against the schedule, interval between a meter's records, records mixing two
simulator updates (values not all equal), seq gaps (ours), ts -> broker latency.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from edge_harness import (PYTHON, ROOT, Capture, Proc, Sampler, free_port, mosquitto, percentile,
                          start_agent, write_agent_config)
from tbgw.gateway_config import write_gateway_config

from hinode import contract  # noqa: E402  (edge_harness put the repository on sys.path)

PEER_VENV = ROOT / "bench" / ".peer-venv"
PEER_PACKAGES = ["thingsboard-gateway==3.8.5", "pymodbus==3.9.2", "pyserial==3.5", "pyserial-asyncio==0.6"]
TELEMETRY = {"ours": contract.telemetry_topic("bench", "edge-01"), "theirs": "v1/gateway/telemetry"}


def peer_venv(path: Path) -> Path:
    """The gateway's own venv; created with pip on first use (its pymodbus pin clashes with ours)."""
    gateway = path / "bin" / "thingsboard-gateway"
    if not gateway.exists():
        print(f"creating {path} with {' '.join(PEER_PACKAGES)}", flush=True)
        subprocess.run(["python3", "-m", "venv", str(path)], check=True)
        subprocess.run([str(path / "bin" / "pip"), "install", "-q", *PEER_PACKAGES], check=True)
    return gateway


def peer_package_dir(venv: Path) -> Path:
    out = subprocess.run([str(venv / "bin" / "python"), "-c",
                          "import os, thingsboard_gateway as t; print(os.path.dirname(t.__file__))"],
                         check=True, capture_output=True, text=True)
    return Path(out.stdout.strip())


# ---------------------------------------------------------------- one configuration

def run_one(who: str, poll_ms: int, args, base: Path) -> dict:
    run_dir = base / f"{who}-{poll_ms}ms"
    run_dir.mkdir(parents=True)
    started: list[Proc] = []
    capture = None
    try:
        mqtt_port, modbus_port = free_port(), free_port()
        broker = mosquitto(run_dir, mqtt_port)
        started.append(broker)
        sim = Proc("simulator", [PYTHON, str(ROOT / "bench" / "counter_meter.py"), "--port", str(modbus_port),
                                 "--meters", str(args.meters), "--interval", str(poll_ms / 1000)],
                   run_dir / "simulator.log")
        started.append(sim)
        sim.wait_port(modbus_port)
        capture = Capture(mqtt_port, [TELEMETRY[who]], answer_thingsboard=(who == "theirs"))
        if who == "ours":
            devices = [{"id": f"meter-{u:02d}", "unit": u, "profile": "bench-meter-10f"}
                       for u in range(1, args.meters + 1)]
            config = write_agent_config(run_dir, mqtt_port, [{
                "type": "modbus", "name": "bench", "transport": "tcp", "host": "127.0.0.1", "port": modbus_port,
                "timeout_s": 1.0, "poll_interval_s": poll_ms / 1000, "devices": devices}])
            agent = start_agent(run_dir, config)
        else:
            gateway = peer_venv(args.peer_venv)
            config_dir = write_gateway_config(run_dir / "config", peer_package_dir(args.peer_venv), mqtt_port,
                                              modbus_port, args.meters, poll_ms)
            (run_dir / "logs").mkdir()
            agent = Proc("thingsboard-gateway", [str(gateway)], run_dir / "gateway.out", cwd=run_dir,
                         env={"TB_GW_CONFIG_DIR": f"{config_dir}/"})
        started.append(agent)
        time.sleep(args.warmup)
        if not agent.alive():
            raise RuntimeError(f"{who} exited: {agent.log_path.read_text(errors='replace')[-2000:]}")
        sampler = Sampler(agent.pid, others={"simulator": sim.pid, "broker": broker.pid}).run(args.minutes * 60)
        time.sleep(1.0)          # let what was polled inside the window arrive
        result = analyze(who, poll_ms, capture.messages, sampler, args.meters)
        result["run_dir"] = str(run_dir)
        return result
    finally:
        if capture:
            capture.stop()
        for proc in reversed(started):
            proc.stop()


def records(who: str, messages: list[tuple[float, str, bytes]]):
    """(receive time, device, ts ms, values, seq or None, ts values in the record)"""
    for received, _topic, payload in messages:
        data = json.loads(payload)
        if who == "ours":
            if data.get("kind") != "meter":
                continue
            readings = data["readings"]
            yield (received, data["device"], readings[0]["ts"], [r["value"] for r in readings], data["seq"],
                   {r["ts"] for r in readings})
        else:
            for device, entries in data.items():
                for entry in entries:
                    yield received, device, entry["ts"], list(entry["values"].values()), None, {entry["ts"]}


def analyze(who: str, poll_ms: int, messages, sampler: Sampler, meters: int) -> dict:
    window = sampler.t_end - sampler.t_start
    by_device: dict[str, list] = defaultdict(list)
    mixed = multi_ts = wrong_width = 0
    latencies = []
    receive_times = []
    for received, device, ts, values, seq, stamps in records(who, messages):
        if not sampler.t_start <= ts / 1000 < sampler.t_end:
            continue
        by_device[device].append((ts, values[0], seq))
        receive_times.append(received)
        latencies.append(received * 1000 - ts)
        mixed += len(set(values)) > 1
        multi_ts += len(stamps) > 1
        wrong_width += len(values) != 10
    intervals, seq_gaps, repeats = [], 0, 0
    for rows in by_device.values():
        rows.sort()
        for (t0, c0, s0), (t1, c1, s1) in zip(rows, rows[1:]):
            intervals.append(t1 - t0)
            repeats += c1 == c0
            if s0 is not None and s1 != s0 + 1:
                seq_gaps += 1
    expected = meters * window * 1000 / poll_ms
    got = sum(len(rows) for rows in by_device.values())
    receive_times.sort()
    silence = max((b - a for a, b in zip(receive_times, receive_times[1:])), default=float("nan"))
    return {
        "who": who, "poll_ms": poll_ms, "window_s": window,
        "cpu_s_per_min": sampler.cpu_s_per_min, "rss_median_mb": sampler.rss_median,
        "rss_peak_mb": sampler.hwm_mb, "rss_slope_mb_per_min": sampler.rss_slope_mb_per_min,
        "records": got, "expected": expected, "delivered_pct": 100 * got / expected,
        "meters_seen": len(by_device), "values_per_s": got * 10 / window,
        "interval_p50_ms": percentile(intervals, 0.5), "interval_p99_ms": percentile(intervals, 0.99),
        "interval_max_ms": max(intervals, default=float("nan")),
        "latency_p50_ms": percentile(latencies, 0.5), "latency_p99_ms": percentile(latencies, 0.99),
        "mixed_records": mixed, "multi_ts_records": multi_ts, "wrong_width_records": wrong_width,
        "seq_gaps": seq_gaps if who == "ours" else None, "repeated_counter_pct": 100 * repeats / max(1, got),
        "longest_silence_s": silence,
        "machine_busy_s_per_min": sampler.machine_busy, "simulator_cpu_s_per_min": sampler.other_cpu["simulator"],
        "broker_cpu_s_per_min": sampler.other_cpu["broker"],
    }


# ---------------------------------------------------------------- report

def line(r: dict) -> str:
    seq = "" if r["seq_gaps"] is None else f" | seq gaps {r['seq_gaps']}"
    return (f"{r['who']:6} {r['poll_ms']:5d} ms | CPU {r['cpu_s_per_min']:6.2f} s/min | RSS median "
            f"{r['rss_median_mb']:6.1f} MB, peak {r['rss_peak_mb']:6.1f} MB, trend {r['rss_slope_mb_per_min']:+6.1f} MB/min"
            f" | delivered {r['records']}/{r['expected']:.0f} ({r['delivered_pct']:.1f} %) from {r['meters_seen']} meters"
            f" | interval p50/p99/max {r['interval_p50_ms']:.0f}/{r['interval_p99_ms']:.0f}/{r['interval_max_ms']:.0f} ms"
            f" | ts->broker p50/p99 {r['latency_p50_ms']:.0f}/{r['latency_p99_ms']:.0f} ms"
            f" | mixed records {r['mixed_records']}, multi-ts {r['multi_ts_records']}{seq}"
            f" | CPU s/min: simulator {r['simulator_cpu_s_per_min']:.1f}, broker {r['broker_cpu_s_per_min']:.1f}, "
            f"whole machine {r['machine_busy_s_per_min']:.1f} of {60 * os.cpu_count()}")


def verdicts(results: dict[tuple[str, int], dict], polls: list[int]) -> list[str]:
    out = []
    for poll in polls:
        ours, theirs = results.get(("ours", poll)), results.get(("theirs", poll))
        if ours and theirs:
            out.append(f"ratio ours/theirs at {poll} ms: CPU {ours['cpu_s_per_min'] / theirs['cpu_s_per_min']:.3f}"
                       f" ({ours['cpu_s_per_min']:.2f} / {theirs['cpu_s_per_min']:.2f} s/min), RSS peak "
                       f"{ours['rss_peak_mb'] / theirs['rss_peak_mb']:.3f} ({ours['rss_peak_mb']:.1f} / "
                       f"{theirs['rss_peak_mb']:.1f} MB)")
    best = [r["cpu_s_per_min"] for (who, _), r in results.items() if who == "theirs" and r["delivered_pct"] >= 99]
    for (who, poll), r in sorted(results.items()):
        if who != "ours":
            continue
        checks = [f"RSS peak {r['rss_peak_mb']:.1f} MB {'<=' if r['rss_peak_mb'] <= 60 else '>'} 60 MB"]
        if poll == 1000 and results.get(("theirs", 1000)):
            ratio = r["cpu_s_per_min"] / results[("theirs", 1000)]["cpu_s_per_min"]
            checks.append(f"CPU {ratio:.3f} x theirs at 1 s ({'<=' if ratio <= 0.3 else '>'} 0.3)")
        elif best and poll == 1000:
            pass
        if poll == 100:
            ok = (r["delivered_pct"] >= 99.5 and r["mixed_records"] == 0 and r["seq_gaps"] == 0
                  and abs(r["rss_slope_mb_per_min"]) < 1.0)
            checks.append(f"every poll delivered, flat memory: {'yes' if ok else 'NO'} "
                          f"({r['delivered_pct']:.1f} %, seq gaps {r['seq_gaps']}, mixed {r['mixed_records']}, "
                          f"RSS trend {r['rss_slope_mb_per_min']:+.2f} MB/min)")
        out.append(f"target ours {poll} ms: " + "; ".join(checks))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description="our edge agent vs ThingsBoard IoT Gateway (CPU, RSS, delivery)")
    parser.add_argument("--minutes", type=float, default=1.0, help="measured window per configuration")
    parser.add_argument("--warmup", type=float, default=20.0, help="seconds before the window starts")
    parser.add_argument("--meters", type=int, default=50)
    parser.add_argument("--polls", default="1000,100", help="poll periods in ms, comma-separated")
    parser.add_argument("--only", choices=("ours", "theirs"), help="run one agent only")
    parser.add_argument("--peer-venv", type=Path, default=PEER_VENV)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--keep", type=Path, help="keep logs and configs in this folder (default: a temp dir)")
    args = parser.parse_args()
    polls = [int(p) for p in args.polls.split(",")]
    whos = [args.only] if args.only else ["ours", "theirs"]
    results: dict[tuple[str, int], dict] = {}
    with tempfile.TemporaryDirectory(prefix="edge-vs-tbgw-") as tmp:
        tmp = args.keep or tmp
        for who in whos:
            for poll in polls:
                print(f"--- {who}, poll {poll} ms: warm-up {args.warmup:.0f} s, window {args.minutes * 60:.0f} s",
                      flush=True)
                results[(who, poll)] = r = run_one(who, poll, args, Path(tmp))
                print(line(r), flush=True)
    print()
    print(f"{args.meters} Modbus TCP meters x 10 float32, one block read per meter per poll, QoS 1 to Mosquitto")
    for r in results.values():
        print(line(r))
    texts = verdicts(results, polls)
    for text in sorted(texts, key=lambda t: t.startswith("ratio")):     # the ratio lines last
        print(text)
    if args.json:
        args.json.write_text(json.dumps([r for r in results.values()], indent=2))


if __name__ == "__main__":
    main()
