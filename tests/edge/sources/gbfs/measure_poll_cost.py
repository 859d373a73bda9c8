"""CPU cost of one poll of a large GBFS 3.0 vehicle file (the README's "Measured" figures).

    .venv/bin/python -m tests.edge.sources.gbfs.measure_poll_cost [--vehicles 5000]

Two cases, five polls each: the same ids every poll and nothing sent (the common case), and every id
rotated at every poll with every vehicle's readings built (the worst case). Counts JSON decoding, record
checks, slot matching and readings; not the HTTP transfer.
"""

from __future__ import annotations

import argparse
import json
import time

from edge_agent.sources.gbfs.feed import parse_vehicles
from edge_agent.sources.gbfs.slots import SlotMap
from edge_agent.sources.gbfs.vehicles import readings_of, values_of


def vehicle_file(count: int, generation: int) -> bytes:
    vehicles = [{"vehicle_id": f"v{generation}-{i}", "lat": 36.5 + (i % 100) * 0.002,
                 "lon": 140.6 + (i // 100) * 0.002, "is_reserved": False, "is_disabled": False,
                 "vehicle_type_id": "es", "current_fuel_percent": 0.5, "current_range_meters": 10000,
                 "last_reported": "2026-11-30T09:00:00+09:00"} for i in range(count)]
    return json.dumps({"vehicles": vehicles}).encode()


def poll_ms(slots: SlotMap, body: bytes, send: bool) -> float:
    started = time.process_time()
    vehicles, _bad = parse_vehicles(json.loads(body), 3, "measure", {})
    slots.assign(vehicles)
    for vehicle in vehicles:
        values = values_of(vehicle)
        if send:
            readings_of(1, values)
    return (time.process_time() - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vehicles", type=int, default=5000)
    count = parser.parse_args().vehicles
    same = vehicle_file(count, 0)
    slots = SlotMap("m", 25, count)
    poll_ms(slots, same, send=True)
    steady = sorted(poll_ms(slots, same, send=False) for _ in range(5))
    rotating = SlotMap("r", 25, count)
    poll_ms(rotating, vehicle_file(count, 0), send=True)
    worst = sorted(poll_ms(rotating, vehicle_file(count, g), send=True) for g in range(1, 6))
    print(f"{count} vehicles, {len(same) / 1e6:.1f} MB: unchanged poll median {steady[2]:.0f} ms CPU; "
          f"every id rotated and sent: median {worst[2]:.0f} ms CPU")


if __name__ == "__main__":
    main()
