"""200 chargers on the edge agent's OCPP central system, against a bare one built on the
``ocpp`` library alone, in the same run.

    ./hinode.sh bench ocpp_chargers [--chargers 200] [--interval 10] [--duration 120]

The load (``bench/ocpp_load.py``, its own process, raw frames) boots N OCPP 1.6J charge
points, starts a transaction on each, then sends MeterValues with 8 sampled values every
``--interval`` seconds per charger, staggered, for ``--duration`` seconds. It runs twice:

(a) against ``bench/ocpp_bare_csms.py`` — a central system as the library's README writes it;
(a') the same with the library's ``ASYNC_VALIDATION`` off (it validates each payload in a thread
    by default; on the loop is cheaper for small payloads, and the agent does that): the library's
    minimum cost for the same stream;
(b) against ``python -m edge_agent run`` with an ``ocpp`` source for the same chargers (its
    site controller on, no grid meter), which also turns every message into readings, commits
    them to its durable outbox and publishes them to a private Mosquitto.

For each: CPU of the central system's process over the steady window (after every charger
booted), CPU per answered MeterValues, the round trip of a MeterValues (send → CALLRESULT) and,
for (b), RSS and the end-to-end latency from a reading's timestamp (the charger's send time) to
its arrival at an MQTT subscriber. Ends with the two ratio lines of issue 9's targets.
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

from common import CpuMeter, format_cpu, percentile, ratio_line, stop_process  # noqa: E402
from edge_harness import Capture, Sampler, mosquitto, start_agent, write_agent_config  # noqa: E402

from hinode import contract  # noqa: E402
from hinode.services import free_port  # noqa: E402

HERE = Path(__file__).resolve().parent
PYTHON = sys.executable


def run_load(url: str, args, out: Path, meter: dict, pids: dict[str, int], sampler_pid: int | None = None):
    """Run the load; measure the named processes over its steady window."""
    load = subprocess.Popen([PYTHON, str(HERE / "ocpp_load.py"), "--url", url, "--chargers", str(args.chargers),
                             "--interval", str(args.interval), "--duration", str(args.duration), "--out", str(out)],
                            stdout=subprocess.PIPE, text=True)
    line = load.stdout.readline()
    if not line.startswith("booted"):
        load.wait(30)
        raise RuntimeError(f"load did not boot its chargers: {line!r}")
    window_start, window_end = (float(x) for x in line.split()[3:5])
    time.sleep(max(0.0, window_start - time.time()))
    cpu = CpuMeter(pids)
    sampler = Sampler(sampler_pid).run(window_end - time.time()) if sampler_pid else None
    if sampler is None:
        time.sleep(max(0.0, window_end - time.time()))
    meter["cpu"] = cpu.stop()
    meter["rss"] = sampler
    if load.wait(60) != 0:
        raise RuntimeError("load failed")
    answered = json.loads(out.read_text())["answered"]
    meter["answered"] = [(sent, rtt) for sent, rtt in answered if window_start <= sent < window_end]
    meter["window_s"] = window_end - window_start


def summary(name: str, meter: dict, proc_name: str) -> tuple[float, float]:
    cpu_s = meter["cpu"]["cpu_s"][proc_name]
    n = len(meter["answered"])
    rtts = sorted(rtt * 1000 for _, rtt in meter["answered"])
    per_message_us = cpu_s / n * 1e6 if n else float("nan")
    share = 100 * cpu_s / meter["window_s"]
    print(f"{name}: {n} MeterValues in {meter['window_s']:.0f} s ({n / meter['window_s']:.1f}/s); "
          f"CPU {share:.1f}% of one core, {per_message_us:.0f} us per message; "
          f"round trip p50 {percentile(rtts, 0.5):.1f} ms p99 {percentile(rtts, 0.99):.1f} ms")
    print(f"  CPU: {format_cpu(meter['cpu'])}")
    return share, per_message_us


def agent_sources(port: int, chargers: int) -> list[dict]:
    return [{"type": "ocpp", "name": "chargers", "host": "127.0.0.1", "port": port, "security_profile": 0,
             "chargers": [{"id": f"CP{i:03d}"} for i in range(1, chargers + 1)],
             "auth_list": ["EMP0001"]}]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chargers", type=int, default=200)
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument("--duration", type=float, default=120.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hinode-bench-ocpp-") as tmp:
        run_dir = Path(tmp)
        # (a) the bare library, as its README shows it and (a') with validation on the loop
        references: list[dict] = []
        for extra in ([], ["--sync-validation"]):
            bare = subprocess.Popen([PYTHON, str(HERE / "ocpp_bare_csms.py"), "--port", "0", *extra],
                                    stdout=subprocess.PIPE, text=True)
            port = int(bare.stdout.readline().split()[1])
            references.append({})
            try:
                run_load(f"ws://127.0.0.1:{port}", args, run_dir / "bare.json", references[-1], {"bare-csms": bare.pid})
            finally:
                stop_process(bare)
        # (b) the edge agent
        broker_port = free_port()
        broker = mosquitto(run_dir, broker_port)
        ocpp_port = free_port()
        config = write_agent_config(run_dir, broker_port, agent_sources(ocpp_port, args.chargers))
        agent = start_agent(run_dir, config)
        measured: dict = {}
        capture = None
        try:
            agent.wait_port(ocpp_port, timeout=30)
            # Telemetry and the catalog, as an ingest takes them (a catalog nobody takes is sent again).
            capture = Capture(broker_port, [contract.telemetry_topic("bench", "edge-01"),
                                            contract.catalog_topic("bench", "edge-01")])
            run_load(f"ws://127.0.0.1:{ocpp_port}", args, run_dir / "agent.json", measured,
                     {"edge-agent": agent.pid, "mosquitto": broker.pid}, sampler_pid=agent.pid)
        finally:
            if capture:
                capture.stop()
            agent.stop()
            broker.stop()
        print(f"{args.chargers} chargers, MeterValues with 8 measurands every {args.interval:.0f} s, "
              f"{args.duration:.0f} s window")
        _, ref_us = summary("(a) bare ocpp library, its defaults", references[0], "bare-csms")
        _, sync_us = summary("(a') bare ocpp library, ASYNC_VALIDATION off", references[1], "bare-csms")
        share, us = summary("(b) edge agent", measured, "edge-agent")
        rss = measured["rss"]
        print(f"  agent RSS median {rss.rss_median:.0f} MB, peak {rss.hwm_mb:.0f} MB, "
              f"slope {rss.rss_slope_mb_per_min:+.2f} MB/min")
        latencies = end_to_end_ms(capture.messages if capture else [])
        if latencies:
            print(f"  end to end (charger send -> MQTT subscriber): p50 {percentile(latencies, 0.5):.0f} ms "
                  f"p99 {percentile(latencies, 0.99):.0f} ms over {len(latencies)} readings batches")
        print(f"agent CPU in total: {share:.1f}% of one core (target <= 20%)")
        print(ratio_line("agent CPU per message / bare library's (a)", us, ref_us, "<= 1.5"))
        print(ratio_line("agent CPU per message / bare library's minimum (a')", us, min(ref_us, sync_us), "<= 1.5"))
    return 0


def end_to_end_ms(messages: list) -> list[float]:
    """Per charger envelope: arrival at the subscriber minus its newest reading's timestamp
    (the MeterValues' sample time, which the load sets to its send time)."""
    latencies = []
    for received, _topic, payload in messages:
        envelope = json.loads(payload)
        if envelope.get("kind") == "charger" and "readings" in envelope:
            latencies.append(received * 1000 - max(r["ts"] for r in envelope["readings"]))
    return sorted(latencies)


if __name__ == "__main__":
    sys.exit(main())
