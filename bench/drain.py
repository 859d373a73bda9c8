"""Store-and-forward drain: how fast a 1,000,000-reading backlog leaves the outbox, with live data
flowing, and the agent's memory while it builds that backlog and while it drains it.

    ./hinode.sh bench drain                        # 1,000,000 readings backlog, ~2 min
    ./hinode.sh bench drain --readings 200000      # quicker

1. Build, broker down: ``python -m edge_agent run`` with a synthetic source of backlog
   devices (``--build-devices`` x 10 values every ``--build-interval`` s) commits into its
   SQLite outbox until it holds N readings, as in a long outage; then it stops cleanly.
   Its RSS is sampled every 0.1 s (peak = VmHWM).
2. The agent starts again on that outbox with a live synthetic source (50 more devices,
   10 values each, every 1 s) while the broker is still down.
3. The broker comes back with a QoS 1 subscriber on the telemetry topic, which also sends
   the ingest heartbeat, so the agent's ingest gate opens only once the subscriber
   listens (exactly how the cloud ingest works; nothing published before is lost).
4. Drain rate = backlog readings / time from the first to the last backlog envelope
   received. Live data is checked for delay during the drain. When the agent has stopped,
   every device's seqs received are compared with the seqs its outbox assigned
   (``device_seq``) minus those still stored: lost = assigned - received - stored.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import tempfile
import threading
import time
import urllib.request
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as mqtt
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from edge_harness import (Proc, Sampler, cpu_seconds, free_port, mosquitto, percentile, start_agent, status_kb,
                          write_agent_config)
from hinode import contract
from hinode.contract import IngestHeartbeat

SITE, AGENT = "bench", "edge-01"
READINGS_PER_ENVELOPE = 10


@dataclass
class Memory:
    """VmRSS samples of one agent process (MB), what its outbox held at each, and its VmHWM."""
    samples: list[float] = field(default_factory=list)
    stored: list[float] = field(default_factory=list)
    hwm: float = 0.0

    def sample(self, pid: int, stored: float = 0) -> None:
        self.samples.append(status_kb(pid, "VmRSS") / 1024)
        self.stored.append(stored)
        self.hwm = status_kb(pid, "VmHWM") / 1024

    def rss_while_stored(self, low: float, high: float) -> float:
        """Median RSS of the samples taken while the outbox held ``low`` to ``high`` readings."""
        return percentile([rss for rss, stored in zip(self.samples, self.stored) if low <= stored <= high], 0.5)

    @property
    def peak(self) -> float:
        return max(self.hwm, *self.samples)


def build_backlog(run_dir: Path, args) -> tuple[float, int, Memory]:
    """The agent fills its own outbox with the broker down (nothing listens on its port)."""
    build_dir = run_dir / "build"
    build_dir.mkdir()
    config = write_agent_config(build_dir, free_port(), [{
        "type": "synthetic", "name": "backlog", "interval_s": args.build_interval, "metrics": READINGS_PER_ENVELOPE,
        "devices": [{"id": f"backlog-{i:03d}"} for i in range(args.build_devices)]}],
        queue={"path": str(run_dir / "outbox.db"), "max_bytes": "4GiB"})
    metrics_url = f"http://{yaml.safe_load(config.read_text())['metrics']['listen']}/metrics"
    agent = start_agent(build_dir, config)
    memory, started, stored = Memory(), time.monotonic(), 0
    try:
        while stored < args.readings:
            time.sleep(0.1)
            if not agent.alive():
                raise RuntimeError(f"agent exited: {(build_dir / 'agent.log').read_text()[-2000:]}")
            try:
                stored = agent_metrics(metrics_url)["hinode_agent_queue_readings"]
            except OSError:
                continue                           # /metrics not up yet
            memory.sample(agent.pid, stored)
    finally:
        agent.stop()
    return time.monotonic() - started, int(stored), memory


def outbox_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))


def agent_metrics(url: str) -> dict[str, float]:
    out = {}
    for line in urllib.request.urlopen(url, timeout=5).read().decode().splitlines():
        if line and not line.startswith("#") and " " in line:
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


class Heartbeat(threading.Thread):
    """Publishes the cloud ingest heartbeat once a second (the agent's gate opens on it)."""

    def __init__(self, port: int):
        super().__init__(daemon=True)
        self.stopping = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-drain-heartbeat")
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def run(self) -> None:
        while not self.stopping.is_set():
            beat = IngestHeartbeat(ingest="bench-drain", ts=int(time.time() * 1000))
            self.client.publish(contract.INGEST_HEARTBEAT_TOPIC, contract.encode(beat), qos=0)
            self.stopping.wait(1.0)

    def stop(self) -> None:
        self.stopping.set()
        self.client.disconnect()
        self.client.loop_stop()


def read_capture(path: Path) -> list[tuple[float, dict]]:
    """mosquitto_sub -F '%U %p' lines -> (receive time, envelope)."""
    out = []
    with open(path, "rb") as lines:
        for line in lines:
            stamp, _, payload = line.partition(b" ")
            if payload.strip():
                out.append((float(stamp), json.loads(payload)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readings", type=int, default=1_000_000, help="backlog size in readings")
    parser.add_argument("--build-devices", type=int, default=500, help="backlog devices while the broker is down")
    parser.add_argument("--build-interval", type=float, default=0.25, help="their poll interval while building")
    parser.add_argument("--live-devices", type=int, default=50)
    parser.add_argument("--live-interval", type=float, default=1.0)
    parser.add_argument("--max-inflight", type=int, default=200, help="the agent's mqtt.max_inflight")
    parser.add_argument("--timeout", type=float, default=600, help="give up draining after this many seconds")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="drain-") as tmp:
        run_dir = Path(tmp)
        outbox = run_dir / "outbox.db"
        build_s, built, build_memory = build_backlog(run_dir, args)
        backlog_disk = outbox_bytes(outbox)
        with sqlite3.connect(outbox) as db:
            backlog_envelopes = db.execute("SELECT count(*) FROM outbox "
                                           "WHERE CAST(payload AS TEXT) LIKE '%\"backlog-%'").fetchone()[0]
        print(f"build: the agent stored {built:,} readings ({backlog_envelopes:,} backlog envelopes of "
              f"{READINGS_PER_ENVELOPE}) with the broker down in {build_s:.1f} s; RSS peak {build_memory.peak:.1f} MB;"
              f" RSS median {percentile(build_memory.samples, 0.5):.1f} MB, with 10-20 % of the backlog stored "
              f"{build_memory.rss_while_stored(0.1 * built, 0.2 * built):.1f} MB, with 90-100 % "
              f"{build_memory.rss_while_stored(0.9 * built, built):.1f} MB; outbox on disk {backlog_disk / 1e6:.1f} MB",
              flush=True)

        broker_port = free_port()
        config = write_agent_config(run_dir, broker_port, [{
            "type": "synthetic", "name": "live", "interval_s": args.live_interval, "metrics": READINGS_PER_ENVELOPE,
            "devices": [{"id": f"live-{i:02d}"} for i in range(args.live_devices)]}],
            mqtt={"wait_for_ingest": True, "ingest_timeout_s": 5.0, "max_inflight": args.max_inflight})
        metrics_url = f"http://{yaml.safe_load(config.read_text())['metrics']['listen']}/metrics"
        agent = start_agent(run_dir, config)
        broker = subscriber = heartbeat = None
        published: list[tuple[float, float]] = []        # (time, envelopes PUBACKed so far)
        drain_memory = Memory()
        try:
            time.sleep(3.0)                       # broker down: live data joins the backlog
            opened_memory = Memory()
            opened_memory.sample(agent.pid)
            broker = mosquitto(run_dir, broker_port)
            # A C subscriber (QoS 1) records receive time and payload; the analysis comes after.
            subscriber = Proc("mosquitto_sub", ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(broker_port), "-q", "1",
                                                "-i", "bench-drain-sub", "-t", contract.telemetry_topic(SITE, AGENT),
                                                "-F", "%U %p"], run_dir / "capture.txt")
            time.sleep(0.5)
            heartbeat = Heartbeat(broker_port)
            heartbeat.start()
            sampler = Sampler(agent.pid)
            sampler.t_start, sampler.cpu_start = time.time(), cpu_seconds(agent.pid)
            deadline = time.monotonic() + args.timeout
            while time.monotonic() < deadline:
                time.sleep(0.1)
                drain_memory.sample(agent.pid)
                m = agent_metrics(metrics_url)
                published.append((time.time(), m["hinode_agent_published_envelopes_total"]))
                if m["hinode_agent_queue_envelopes"] < 100 and published[-1][1] >= backlog_envelopes:
                    break
            sampler.t_end, sampler.cpu_end = time.time(), cpu_seconds(agent.pid)
            time.sleep(3.0)                       # live data keeps flowing after the drain
            after_disk = outbox_bytes(outbox)
        finally:
            agent.stop()
            if heartbeat:
                heartbeat.stop()
            time.sleep(1.0)
            if subscriber:
                subscriber.stop()
            if broker:
                broker.stop()
        print(f"agent on the stored backlog, broker still down: RSS {opened_memory.samples[-1]:.1f} MB")
        report(args, backlog_envelopes, read_capture(run_dir / "capture.txt"), published, outbox, backlog_disk,
               after_disk, sampler, drain_memory)


def report(args, target: int, messages: list[tuple[float, dict]], published: list[tuple[float, float]], outbox: Path,
           backlog_disk: int, after_disk: int, sampler: Sampler, memory: Memory) -> None:
    received: dict[str, list[int]] = defaultdict(list)
    backlog_times = []
    for received_at, envelope in messages:
        received[envelope["device"]].append(envelope["seq"])
        if envelope["device"].startswith("backlog-"):
            backlog_times.append(received_at)
    first_backlog, last_backlog = min(backlog_times), max(backlog_times)
    # Live data produced while the backlog drained (what was produced during the outage is backlog too).
    live_delays_during, live_delays_after = [], []
    for received_at, envelope in messages:
        produced = envelope["readings"][0]["ts"] / 1000
        if envelope["device"].startswith("live-") and produced >= first_backlog:
            (live_delays_during if produced <= last_backlog else live_delays_after).append(received_at - produced)
    db = sqlite3.connect(outbox)
    assigned = dict(db.execute("SELECT device, seq FROM device_seq"))
    stored: dict[str, set[int]] = defaultdict(set)
    for (payload,) in db.execute("SELECT payload FROM outbox"):  # what the agent still holds (not lost)
        envelope = json.loads(payload)
        stored[envelope["device"]].add(envelope["seq"])
    db.close()
    lost = duplicates = expected = 0
    for device, last_seq in assigned.items():
        if device == AGENT:
            continue                               # the agent's own health telemetry
        got = set(received.get(device, []))
        duplicates += len(received.get(device, [])) - len(got)
        expected += last_seq
        lost += len(set(range(1, last_seq + 1)) - got - stored[device])
    backlog_envelopes = sum(len(set(v)) for d, v in received.items() if d.startswith("backlog-"))
    drain_s = last_backlog - first_backlog
    rate = backlog_envelopes * READINGS_PER_ENVELOPE / drain_s
    # Agent side: envelopes PUBACKed by the broker (from /metrics every 0.1 s), first to last.
    start_index = next(i for i, (_, n) in enumerate(published) if n > 0)
    started_at = published[max(0, start_index - 1)][0]      # last sample before anything was acknowledged
    done_at = next((t for t, n in published if n >= target), published[-1][0])
    agent_rate = min(target, published[-1][1]) * READINGS_PER_ENVELOPE / max(1e-3, done_at - started_at)
    live_during = len(live_delays_during)
    print(f"agent -> broker: {target * READINGS_PER_ENVELOPE:,} backlog readings PUBACKed within "
          f"{done_at - started_at:.1f} s (/metrics every 0.1 s) = {agent_rate:,.0f} readings/s")
    print(f"subscriber: {backlog_envelopes * READINGS_PER_ENVELOPE:,} backlog readings in {drain_s:.1f} s = "
          f"{rate:,.0f} readings/s ({backlog_envelopes / drain_s:,.0f} envelopes/s of {READINGS_PER_ENVELOPE})")
    print(f"live data produced during the drain: {live_during} envelopes, ts -> subscriber p50 "
          f"{percentile(live_delays_during, 0.5) * 1000:.0f} ms, max {max(live_delays_during, default=0) * 1000:.0f} ms;"
          f" produced after it: {len(live_delays_after)} envelopes, p50 {percentile(live_delays_after, 0.5) * 1000:.0f} ms")
    print(f"agent during the drain: CPU {sampler.cpu_end - sampler.cpu_start:.1f} s over {drain_s:.1f} s, "
          f"RSS peak {max(memory.samples):.1f} MB (VmHWM since start {memory.hwm:.1f} MB)")
    print(f"outbox on disk: {backlog_disk / 1e6:.1f} MB with the backlog "
          f"({backlog_disk / (target * READINGS_PER_ENVELOPE):.0f} B/reading), {after_disk / 1e6:.1f} MB after the drain")
    distinct = sum(len(set(v)) for d, v in received.items() if d != AGENT)
    print(f"sequence accounting: {expected:,} envelopes assigned a seq, {distinct:,}"
          f" distinct received, {sum(len(s) for s in stored.values())} still stored, lost {lost}, duplicates {duplicates}")
    print(f"target: drain >= 20,000 readings/s: {'yes' if rate >= 20_000 else 'NO'} ({rate:,.0f}); nothing lost: "
          f"{'yes' if lost == 0 else 'NO'}")
    print(f"ratio drain/target: {rate / 20_000:.2f} (subscriber-side drain rate / 20,000 readings/s)")


if __name__ == "__main__":
    main()
