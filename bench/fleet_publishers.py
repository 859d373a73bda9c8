"""The fleet bench's vehicles: a few MQTT connections publishing fixes for slices of the fleet.

    python bench/fleet_publishers.py --port P --vehicles 10000 --zones 500 --seed 0 --connections 25 \
        --interval 5 --seconds 60 --out DIR

Helper process of ``bench/fleet_path.py`` (not a benchmark). 10,000 vehicles are 10,000 LTE modules
in the field, each with its own connection; one process opening 10,000 TCP connections measures the
broker's connection handling, not the fleet path, so ``--connections`` connections (default 25) each
publish for every N-th vehicle, on each vehicle's own topic (``telemetry_topic(fleet, vehicle)``) as
that vehicle's own agent, QoS 1. Once connected, it writes ``DIR/publishers.ready`` (the epoch
second of its start, half a second later); vehicle i publishes at
``start + i/vehicles*interval + k*interval`` (evenly spread, 2,000 fixes/s for 10,000 vehicles every
5 s); a fix's ``ts`` is the moment it is encoded, just before it is written to the socket, so the
latency measured from it includes any delay in the publisher's own send path.

MQTT is spoken with the ingest's own codec (``cloud/ingest/mqtt_codec.py``) on asyncio, one event
loop for all connections, so the publisher costs a few microseconds per message. The broker's
Receive Maximum is honoured per connection. At the end it writes ``DIR/publishers.json`` (counts,
per-second rates, its CPU) and ``DIR/points.npy`` (lon, lat, ts ms of every fix published in
order, for the shapely reference in the same run).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import time
from collections import deque
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))          # bench/
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))   # the repository

import fleet_scenario as scenario  # noqa: E402

import numpy as np  # noqa: E402

from cloud.ingest import mqtt_codec as codec  # noqa: E402
from hinode import contract  # noqa: E402


class Connection:
    def __init__(self, name: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, receive_maximum: int):
        self.name = name
        self.reader = reader
        self.writer = writer
        self.receive_maximum = receive_maximum
        self.inflight: set[int] = set()
        self.waiting: deque[tuple[str, bytes]] = deque()
        self.next_id = 1
        self.acked = 0
        self.refused = 0

    def _packet(self, topic: str, payload: bytes) -> bytes:
        packet_id = self.next_id
        self.next_id = packet_id % 65535 + 1
        self.inflight.add(packet_id)
        return codec.publish_packet(topic, payload, qos=1, packet_id=packet_id)

    def send(self, messages: list[tuple[str, bytes]]) -> None:
        self.waiting.extend(messages)
        self.flush()

    def flush(self) -> None:
        out = []
        while self.waiting and len(self.inflight) < self.receive_maximum:
            out.append(self._packet(*self.waiting.popleft()))
        if out:
            self.writer.write(b"".join(out))

    async def read_acks(self) -> None:
        packets = codec.PacketReader()
        while data := await self.reader.read(65536):
            packets.feed(data)
            for first, buf, start, end in packets.packets():
                if first & 0xF0 == codec.PUBACK:
                    packet_id, reason = codec.parse_puback(bytes(buf[start:end]))
                    self.inflight.discard(packet_id)
                    self.acked += 1
                    self.refused += reason >= 0x80
            self.flush()


async def connect(host: str, port: int, name: str) -> Connection:
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(codec.connect_packet(name, 60, clean_start=True, session_expiry_s=0, receive_maximum=100))
    packets = codec.PacketReader()
    while True:
        data = await reader.read(4096)
        if not data:
            raise ConnectionError(f"{name}: broker closed the connection before CONNACK")
        packets.feed(data)
        for first, buf, start, end in packets.packets():
            connack = codec.parse_connack(bytes(buf[start:end]))
            if connack.reason_code:
                raise ConnectionError(f"{name}: refused: {codec.reason_text(connack.reason_code)}")
            return Connection(name, reader, writer, connack.properties.get("receive_maximum", 65535))


async def run(args) -> dict:
    zones = scenario.make_zones(args.zones, args.seed)
    vehicles = scenario.make_vehicles(args.vehicles, zones, args.seed)
    scenario.check_payload(vehicles[0])
    topics = [contract.telemetry_topic(scenario.FLEET, v.id) for v in vehicles]
    conns = [await connect(args.host, args.port, f"bench-fleet-pub-{c:02d}") for c in range(args.connections)]
    readers = [asyncio.create_task(c.read_acks()) for c in conns]
    seq = [0] * len(vehicles)
    points: list[tuple[float, float, int]] = []
    per_second: dict[int, int] = {}
    start_at = time.time() + 0.5          # every connection is up: the first fixes are due in half a second
    ready = Path(args.out) / "publishers.ready"
    ready.with_suffix(".tmp").write_text(repr(start_at))
    ready.with_suffix(".tmp").replace(ready)
    interval, n = args.interval, len(vehicles)
    end_at = start_at + args.seconds
    slot = 0                      # the next (round * n + vehicle) to publish
    await asyncio.sleep(max(0.0, start_at - time.time()))
    while True:
        now = time.time()
        if now >= end_at:
            break
        due_slot = int((now - start_at) / interval * n) + 1
        batches: dict[int, list[tuple[str, bytes]]] = {}
        while slot < due_slot:
            v = slot % n
            vehicle = vehicles[v]
            ts_ms = int(time.time() * 1000)
            lon, lat, heading = vehicle.position(ts_ms / 1000 - start_at)
            seq[v] += 1
            batches.setdefault(v % len(conns), []).append(
                (topics[v], scenario.fix_payload(vehicle, seq[v], ts_ms, lon, lat, heading)))
            points.append((round(lon, 7), round(lat, 7), ts_ms))   # as the payload writes them
            slot += 1
        for c, messages in batches.items():
            conns[c].send(messages)
        second = int(now - start_at)
        per_second[second] = per_second.get(second, 0) + sum(len(m) for m in batches.values())
        await asyncio.sleep(0.005)
    published = slot
    deadline = time.time() + 10
    while any(c.inflight or c.waiting for c in conns) and time.time() < deadline:
        await asyncio.sleep(0.02)
    for c in conns:
        c.writer.write(codec.DISCONNECT_PACKET)
        c.writer.close()
    for task in readers:
        task.cancel()
    np.save(Path(args.out) / "points.npy", np.array(points, dtype=np.float64).reshape(-1, 3))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {"published": published, "acked": sum(c.acked for c in conns), "refused": sum(c.refused for c in conns),
            "unacked": sum(len(c.inflight) + len(c.waiting) for c in conns), "connections": len(conns),
            "per_second": [per_second.get(s, 0) for s in range(int(args.seconds))],
            "cpu_s": usage.ru_utime + usage.ru_stime}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--vehicles", type=int, default=10_000)
    parser.add_argument("--zones", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--connections", type=int, default=25)
    parser.add_argument("--interval", type=float, default=5.0)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    result = asyncio.run(run(args))
    (Path(args.out) / "publishers.json").write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
