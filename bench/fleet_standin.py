"""The fleet path without the API around it: MQTT -> decode -> FleetTracker, in a process of its own.

    python bench/fleet_standin.py --port P --zones-file F --out DIR

Helper process of ``bench/fleet_path.py`` (not a benchmark), its ``--worker engine`` mode: what the
fleet worker does per position (shared subscription ``$share/fleet/<telemetry>``, the
``is_vehicle_payload`` pre-filter, ``contract.decode_telemetry``, ``fixes_from_envelope``,
``FleetTracker.update``, ``tick`` every second) with paho as the MQTT client, but no InfluxDB writes,
webhooks or snapshots. ``--count-only`` (file names ``--name``): paho receiving and acknowledging the same
messages and nothing else, on a share group of its own: the MQTT client's cost alone. On SIGTERM it
writes ``DIR/<name>.json``: fixes handled per wall-clock second, events
per type, and (wall time, latency ms) of each zone event, latency = emitted - the fix's ``ts``.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))          # bench/
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))   # the repository


from cloud.domains.fleet.events import fixes_from_envelope  # noqa: E402
from cloud.domains.fleet.tracker import FleetTracker  # noqa: E402
from cloud.domains.fleet.tracker_rules import TrackerRules  # noqa: E402
from cloud.domains.fleet.zones import ZoneIndex  # noqa: E402
from cloud.mqtt_client import new_client  # noqa: E402
from cloud.config import MqttConfig  # noqa: E402
from hinode import contract, mobility  # noqa: E402

ZONE_EVENTS = frozenset({"zone_enter", "zone_exit"})


class EngineTracker:
    def __init__(self, zones: ZoneIndex):
        self.tracker = FleetTracker(zones, TrackerRules())
        self.name = "cloud.domains.fleet.tracker.FleetTracker"

    def update(self, fix) -> list[tuple[str, str]]:
        return [(str(e.event_type), e.zone_id) for e in self.tracker.update(fix)]

    def tick(self, now_ms: int) -> list[tuple[str, str]]:
        return [(str(e.event_type), e.zone_id) for e in self.tracker.tick(now_ms)]


class NoTracker:
    name = "none: messages counted only"

    def tick(self, now_ms: int) -> list:
        return []


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--zones-file", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--name", default="standin", help="client id suffix and output file names")
    parser.add_argument("--count-only", action="store_true",
                        help="only count the messages (the MQTT client's own cost, with its own share group)")
    args = parser.parse_args()

    tracker = NoTracker() if args.count_only else EngineTracker(ZoneIndex.from_file(args.zones_file))
    lock = threading.Lock()
    per_second: dict[int, int] = {}
    events: dict[str, int] = {}
    latencies: list[tuple[float, float]] = []
    refused = [0]
    subscribed = threading.Event()

    def handle(kinds: list[tuple[str, str]], ts_ms: int | None, now: float) -> None:
        for event_type, _zone in kinds:
            events[event_type] = events.get(event_type, 0) + 1
            if ts_ms is not None and event_type in ZONE_EVENTS:
                latencies.append((now, now * 1000 - ts_ms))

    def count_only(client, userdata, msg) -> None:
        second = int(time.time())
        per_second[second] = per_second.get(second, 0) + 1

    def on_message(client, userdata, msg) -> None:
        payload = msg.payload
        if not mobility.is_vehicle_payload(payload):
            return
        try:
            envelope = contract.decode_telemetry(payload, msg.topic)
        except contract.ContractError:
            refused[0] += 1
            return
        with lock:
            for fix in fixes_from_envelope(envelope):
                kinds = tracker.update(fix)
                now = time.time()
                handle(kinds, fix.ts_ms, now)
            second = int(time.time())
            per_second[second] = per_second.get(second, 0) + 1

    client = new_client(MqttConfig(host=args.host, port=args.port), f"bench-fleet-{args.name}")
    client.on_message = count_only if args.count_only else on_message
    group = "fleet-baseline" if args.count_only else "fleet"
    client.on_connect = lambda c, *a: c.subscribe(contract.shared(group, contract.TELEMETRY_FILTER), qos=1)
    client.on_subscribe = lambda *a: subscribed.set()
    client.connect(args.host, args.port, keepalive=60)
    client.loop_start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    signal.signal(signal.SIGINT, lambda *a: stop.set())
    if not subscribed.wait(20):
        print("not subscribed within 20 s", file=sys.stderr)
        return 1
    Path(args.out, f"{args.name}.ready").write_text("subscribed")
    while not stop.wait(1.0):
        with lock:
            now = time.time()
            handle(tracker.tick(int(now * 1000)), None, now)
    client.disconnect()
    client.loop_stop()
    Path(args.out, f"{args.name}.json").write_text(json.dumps({
        "tracker": tracker.name, "per_second": {str(k): v for k, v in per_second.items()}, "events": events,
        "latencies": latencies, "refused": refused[0]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
