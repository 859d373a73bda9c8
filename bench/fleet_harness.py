"""The fleet worker alone, without the API around it (helper of ``bench/fleet_path.py --worker worker``).

    python bench/fleet_harness.py --port P --influx-url URL --database DB --zones-file F --out DIR

Runs ``cloud.domains.fleet.worker.FleetWorker`` exactly as ``python -m cloud serve`` builds it
(``worker_service.tracker_factory``, the shipped hubs, its own paho connection, its InfluxDB outbox,
snapshots in ``DIR/fleet-state``), on an event loop of its own, with no HTTP server or scheduler
beside it. A thread samples the worker's counters every 200 ms into ``DIR/harness.jsonl`` (time,
fixes fed to the tracker, messages received, points written, points waiting), readable even while
the event loop is busy. ``DIR/harness.ready`` appears once the worker is subscribed. SIGTERM stops it
the way the API stops it (``FleetWorker.stop``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))   # the repository

from cloud.config import InfluxConfig, MqttConfig  # noqa: E402
from cloud.domains.fleet.config import FleetConfig  # noqa: E402
from cloud.domains.fleet.worker import FleetWorker  # noqa: E402
from cloud.domains.fleet.worker_service import load_fleet_data, tracker_factory  # noqa: E402
from cloud.influx import AsyncInfluxClient  # noqa: E402


def sample(worker: FleetWorker, out: Path, stop: threading.Event) -> None:
    ready = out / "harness.ready"
    with open(out / "harness.jsonl", "a") as log:
        while not stop.wait(0.2):
            if not ready.exists() and worker.connected and getattr(worker, "subscribed", True):
                ready.write_text("subscribed")
            outbox = worker.outbox
            log.write(json.dumps({"t": time.time(), "fixes": worker.fixes_total, "received": worker.received_total,
                                  "written": getattr(outbox, "written_total", None), "waiting": len(outbox),
                                  "events": dict(worker.events), "invalid": dict(worker.invalid)}) + "\n")
            log.flush()


async def run(args) -> None:
    config = FleetConfig(zones_file=Path(args.zones_file), state_dir=Path(args.out) / "fleet-state",
                         mqtt_client_id="bench-fleet-harness")
    influx = AsyncInfluxClient(InfluxConfig(url=args.influx_url, database=args.database))
    worker = FleetWorker(config, MqttConfig(host=args.host, port=args.port), influx,
                         tracker_factory(config, load_fleet_data(config)))
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stopping.set)
    loop.add_signal_handler(signal.SIGINT, stopping.set)
    await worker.start()
    stop_sampler = threading.Event()
    sampler = threading.Thread(target=sample, args=(worker, Path(args.out), stop_sampler), daemon=True)
    sampler.start()
    try:
        await stopping.wait()
    finally:
        await worker.stop()
        stop_sampler.set()
        sampler.join(5)
        await influx.aclose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--influx-url", required=True)
    parser.add_argument("--database", required=True)
    parser.add_argument("--zones-file", required=True)
    parser.add_argument("--out", required=True)
    asyncio.run(run(parser.parse_args()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
