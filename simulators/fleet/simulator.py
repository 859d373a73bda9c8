"""``python -m simulators fleet``: the fleet model, one MQTT link per vehicle and the GBFS server.

The clock ticks every ``interval`` real seconds; each tick moves the model ``interval * time_scale``
simulated seconds and every vehicle reports one fix stamped with the real time (so a faster
time scale means longer jumps between fixes, never timestamps in the future).
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime
from pathlib import Path

from simulators.fleet.gbfs_server import VERSIONS, GbfsFeed, GbfsServer
from simulators.fleet.model import JST, FleetModel
from simulators.fleet.mqtt import SeqStore, VehicleLink, read_passwords
from simulators.fleet.world import World
from simulators.fleet.zones import load_zones

log = logging.getLogger(__name__)
MISC_EVERY_S = 1.0


class FleetSimulator:
    def __init__(self, *, fleet: str = "hitachi-scooters", scooters: int = 40, slow: int = 4, seed: int = 0,
                 interval_s: float = 5.0, time_scale: float = 1.0, misbehave: bool = False,
                 mqtt_host: str = "127.0.0.1", mqtt_port: int | None = 1883, passwords: dict[str, str] | None = None,
                 cafile: str | None = None, state_dir: str | None = None, gbfs_port: int | None = None,
                 gbfs_host: str = "127.0.0.1", gbfs_version: str = "3.0", gbfs_ttl_s: int | None = None,
                 zones_file: str | None = None, start: datetime | None = None, gbfs_secret: bytes | None = None,
                 clients_dir: str | None = None):
        if interval_s <= 0:
            raise ValueError(f"--interval: expected seconds > 0, got {interval_s:g}")
        if time_scale <= 0:
            raise ValueError(f"--time-scale: expected a number > 0, got {time_scale:g}")
        if mqtt_port is None and gbfs_port is None:
            raise ValueError("nothing to serve: give --mqtt-port, --gbfs-port or both")
        zones, self.zones_source = load_zones(zones_file)
        self.model = FleetModel(World.hitachi(), zones, fleet, scooters, slow, seed, misbehave, start)
        self.interval_s, self.time_scale = interval_s, time_scale
        self.mqtt_host, self.mqtt_port = mqtt_host, mqtt_port
        self.seqs = SeqStore(state_dir, fleet)
        self.links: dict[str, VehicleLink] = {}
        if mqtt_port is not None:
            for v in self.model.vehicles:
                username = f"{v.id}@{fleet}"
                password = None
                if passwords is not None:
                    if username not in passwords:
                        raise ValueError(f"--passwords-file: no password for {username}")
                    password = passwords[username]
                self.links[v.id] = VehicleLink(fleet, v.id, v.vehicle_type, mqtt_host, mqtt_port, self.seqs,
                                               password, cafile, client_certificate(clients_dir, username))
        self.feed = self.gbfs = None
        if gbfs_port is not None:
            self.feed = GbfsFeed(self.model, gbfs_version, gbfs_ttl_s or max(1, round(interval_s)), gbfs_secret)
            self.gbfs = GbfsServer(self.feed, gbfs_host, gbfs_port)
        self._tasks: list[asyncio.Task] = []

    async def start(self) -> None:
        if self.gbfs is not None:
            await self.gbfs.start()
        self._tasks = [asyncio.create_task(self._clock(), name="fleet-clock"),
                       asyncio.create_task(self._keepalive(), name="fleet-mqtt-misc")]

    async def _keepalive(self) -> None:
        """Connects what is not connected (each in its own task: one slow broker answer holds up no other
        vehicle) and lets paho send its keep-alive pings."""
        connecting: set[asyncio.Task] = set()
        try:
            while True:
                for link in self.links.values():
                    if link.wants_connection():
                        task = asyncio.create_task(link.connect())
                        connecting.add(task)
                        task.add_done_callback(connecting.discard)
                    if link.client.socket() is not None:
                        link.client.loop_misc()
                await asyncio.sleep(MISC_EVERY_S)
        finally:
            for task in connecting:
                task.cancel()

    async def _clock(self) -> None:
        next_at = time.monotonic()
        while True:
            self.tick()
            next_at += self.interval_s
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))

    def tick(self) -> None:
        """One clock step: move the model, then each vehicle reports (or stays silent)."""
        self.model.step(self.interval_s * self.time_scale)
        now_ms = int(time.time() * 1000)
        if self.feed is not None:
            self.feed.updated_s = now_ms / 1000
        for vehicle in self.model.vehicles:
            fix = vehicle.report()
            link = self.links.get(vehicle.id)
            if link is None:
                continue
            if vehicle.silent and not link.silenced:
                link.drop_abruptly()
            elif not vehicle.silent and link.silenced:
                link.come_back()
            link.add_fix(now_ms, fix)          # the module keeps measuring while LTE is lost
            link.flush()
        self.seqs.save()

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.gather(*(link.close() for link in self.links.values()), return_exceptions=True)
        self.seqs.save()
        if self.gbfs is not None:
            await self.gbfs.stop()

    def describe(self) -> str:
        m = self.model
        parts = [f"fleet simulator: {m.fleet} with {len(m.vehicles)} vehicles, every {self.interval_s:g}s "
                 f"(time scale {self.time_scale:g}), zones from {self.zones_source}"]
        if self.links:
            parts.append(f"MQTT {self.mqtt_host}:{self.mqtt_port} as <vehicle>@{m.fleet}")
        if self.gbfs is not None:
            parts.append(f"GBFS {self.feed.version} at {self.gbfs.url}")
        if m.misbehaving:
            parts.append("misbehaving: " + ", ".join(f"{v.id} {role}" for role, v in m.misbehaving.items()))
        return "; ".join(parts)


def client_certificate(clients_dir: str | None, username: str) -> tuple[str, str] | None:
    """(certificate, key) from a credentials bundle's clients/<username>/, for brokers that require one."""
    if not clients_dir:
        return None
    folder = Path(clients_dir) / username
    cert, key = folder / "client.pem", folder / "client.key"
    return (str(cert), str(key)) if cert.is_file() and key.is_file() else None


def _start_time(text: str | None) -> datetime | None:
    if not text:
        return None
    now = datetime.now(JST)
    try:
        if "T" in text:
            return datetime.fromisoformat(text).replace(tzinfo=JST)
        hour, minute = (int(x) for x in text.split(":"))
        return now.replace(hour=hour, minute=minute, second=0, microsecond=0)
    except ValueError:
        raise ValueError(f"--start: expected HH:MM or YYYY-MM-DDTHH:MM (Asia/Tokyo), got {text!r}") from None


def add_cli_options(sub) -> None:
    """The ``fleet`` sub-command of ``python -m simulators``."""
    fl = sub.add_parser("fleet", help="e-scooters and walking-speed mobility, each an agent on MQTT; a GBFS feed")
    fl.add_argument("--mqtt-host", default="127.0.0.1")
    fl.add_argument("--mqtt-port", type=int, help="the broker; leave out to serve only GBFS")
    fl.add_argument("--passwords-file", help="username -> password (YAML/JSON mapping, or 'USER PASSWORD' lines), "
                    "or a credentials bundle's clients/ directory (then each vehicle's certificate is used too)")
    fl.add_argument("--cafile", help="CA certificate: connect with TLS and verify the broker")
    fl.add_argument("--fleet", default="hitachi-scooters", help="the fleet id (the MQTT site)")
    fl.add_argument("--scooters", type=int, default=40)
    fl.add_argument("--slow", type=int, default=4, help="walking-speed autonomous mobility vehicles")
    fl.add_argument("--interval", type=float, default=5.0, help="real seconds between fixes")
    fl.add_argument("--time-scale", type=float, default=1.0, help="simulated seconds per real second")
    fl.add_argument("--start", help="simulated clock start, HH:MM today or YYYY-MM-DDTHH:MM (Asia/Tokyo)")
    fl.add_argument("--seed", type=int, default=0)
    fl.add_argument("--misbehave", action="store_true",
                    help="one vehicle each speeds in a slow zone, parks in a no-parking zone, tips over, goes silent")
    fl.add_argument("--zones", help="zones GeoJSON (default: the fleet domain's shipped zones)")
    fl.add_argument("--state-dir", help="keeps each vehicle's envelope seq across restarts")
    fl.add_argument("--gbfs-host", default="127.0.0.1")
    fl.add_argument("--gbfs-port", type=int, help="serve the fleet as GBFS here (0 = a free port)")
    fl.add_argument("--gbfs-version", choices=VERSIONS, default="3.0")
    fl.add_argument("--gbfs-ttl", type=int, help="GBFS ttl in seconds (default: the interval)")
    fl.add_argument("-v", "--verbose", action="store_true")


def simulator_from_args(args) -> FleetSimulator:
    passwords = read_passwords(args.passwords_file) if args.passwords_file else None
    return FleetSimulator(fleet=args.fleet, scooters=args.scooters, slow=args.slow, seed=args.seed,
                          interval_s=args.interval, time_scale=args.time_scale, misbehave=args.misbehave,
                          mqtt_host=args.mqtt_host, mqtt_port=args.mqtt_port, passwords=passwords,
                          cafile=args.cafile, state_dir=args.state_dir, gbfs_port=args.gbfs_port,
                          gbfs_host=args.gbfs_host, gbfs_version=args.gbfs_version, gbfs_ttl_s=args.gbfs_ttl,
                          zones_file=args.zones, start=_start_time(args.start),
                          clients_dir=args.passwords_file if args.passwords_file and Path(args.passwords_file).is_dir()
                          else None)
