"""Modbus TCP meters whose values are a per-update counter: mixed records become visible.

    .venv/bin/python bench/counter_meter.py --port 15020 --meters 50 --interval 0.1

Runs the project's :class:`simulators.modbus.ModbusSimulator` (real pymodbus server, unit
ids 1..N on one port) with the 10 x float32 profile ``bench/profiles/bench-meter-10f.yaml``,
but every value of every meter equals the number of the current refresh (1, 2, 3, ...).
A client that reads one snapshot gets ten equal values; a record holding two different
values mixes two updates. The simulator package itself is not changed: only the bank of
values it encodes is swapped.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from simulators.modbus import ModbusSimulator  # noqa: E402

PROFILE = ROOT / "bench" / "profiles" / "bench-meter-10f.yaml"


class CounterBank:
    """Stands in for simulators.meters.MeterBank: every metric of every meter = refresh number."""

    def __init__(self, count: int, metrics: list[str]):
        self.count = count
        self.metrics = metrics
        self.counter = 0
        self.updated_at = 0.0
        self._values: dict[str, float] = {}

    @property
    def indexes(self) -> range:
        return range(1, self.count + 1)

    def refresh(self, t: float | None = None) -> float:
        t = time.time() if t is None else t
        self.counter += 1
        self._values = {metric: float(self.counter) for metric in self.metrics}
        self.updated_at = t
        return t

    def values(self, index: int) -> dict[str, float]:
        return self._values


def counter_simulator(meters: int, port: int, interval: float) -> ModbusSimulator:
    sim = ModbusSimulator(meters=meters, port=port, profile=str(PROFILE), interval=interval)
    sim.bank = CounterBank(meters, [register.metric for register in sim.profile.registers])
    return sim


async def serve(args: argparse.Namespace) -> None:
    sim = counter_simulator(args.meters, args.port, args.interval)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await sim.start()
    print(sim.describe() + " (counter values)", flush=True)
    await stop.wait()
    await sim.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=15020)
    parser.add_argument("--meters", type=int, default=50)
    parser.add_argument("--interval", type=float, default=1.0)
    asyncio.run(serve(parser.parse_args()))
