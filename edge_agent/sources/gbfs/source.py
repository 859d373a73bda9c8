"""The GBFS source: poll one operator's feed, send each vehicle's changes as vehicle telemetry.

One task: discover (gbfs.json, then system_information, vehicle_types, station_information),
then poll the vehicle feed at ``last_updated + ttl`` (clamped to min/max_interval_s). Each poll
places the listed vehicles in stable slots (``slots.py``), and sends a vehicle's readings only
when they changed, or every ``keepalive_s`` when they did not. A reading's ts is the vehicle's
``last_reported`` (else the file's ``last_updated``), never the time of the poll.

A failed poll (HTTP error, not JSON, no vehicle list) takes every slot offline with the reason,
counts it under the ``_source`` key and retries with back-off; a 404 or a failed discovery
follows gbfs.json again. A feed whose ``last_updated`` is older than ``stale_after_s`` (or has
not advanced for that long by our clock) is *stale*: devices offline with that reason, nothing sent
until it advances again. One unreadable vehicle record is counted (``bad_vehicle``), its slot kept
and marked offline; the others go on.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import AsyncIterator

import aiohttp

from edge_agent.sources.feed import BatchFeed
from edge_agent.sources.base import DeviceBatch, SourceContext, now_ms
from edge_agent.sources.gbfs.client import FeedClient, FeedInfo
from edge_agent.sources.gbfs.config import Config
from edge_agent.sources.gbfs.feed import FeedError, VehicleRecord, as_ident, parse_vehicles
from edge_agent.sources.gbfs.slots import SlotMap
from edge_agent.sources.gbfs.vehicles import metric_catalog, readings_of, values_of, vehicle_type_tag
from hinode.backoff import Backoff
from hinode.contract import DeviceKind

SOURCE_KEY = "_source"
REDISCOVER_S = 3600.0           # follow gbfs.json again this often (new vehicle types, moved feeds)
PROFILE = "gbfs"


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


class _Sent:
    __slots__ = ("values", "tag", "ts", "at")

    def __init__(self, values: dict, tag: str, ts: int, at: float):
        self.values, self.tag, self.ts, self.at = values, tag, ts, at


class GbfsSource:
    type_name = "gbfs"

    def __init__(self, config: Config, context: SourceContext):
        self.config = config
        self.context = context
        self.log = context.log
        self.info: FeedInfo | None = None
        self.client: FeedClient | None = None         # while the poll task runs
        self.slots: SlotMap | None = None
        self.feed_online = False
        self.feed_error = "not polled yet"
        self.polls = 0                   # vehicle-feed fetches that returned a usable file
        self._sent: dict[str, _Sent] = {}
        self._last_updated_ms = -1
        self._advanced_at = 0.0          # monotonic time last_updated last changed
        self._discovered_at = 0.0
        self._stale_for: int | None = None     # the last_updated the feed is stuck at
        self._saved_mapping: tuple = ()
        self._feed = BatchFeed(context)
        self._closed = False
        self._last_failure = ""

    # ------------------------------------------------------------ life cycle

    async def connect(self) -> None:
        """Start the polling task; wait (bounded) for the first attempt so the devices have a state."""
        await self._feed.start(self._run, f"gbfs:{self.config.name}", self.config.timeout_s * 4)

    def readings(self) -> AsyncIterator[DeviceBatch]:
        return self._feed.batches()

    async def close(self) -> None:
        self._closed = True
        await self._feed.stop_task()
        self._feed.push(None)

    # ------------------------------------------------------------ the loop

    async def _run(self) -> None:
        retry = Backoff(self.config.backoff.initial_s, self.config.backoff.max_s)
        timeout = aiohttp.ClientTimeout(total=self.config.timeout_s)
        headers = {"Accept": "application/json", **self.config.headers}
        async with aiohttp.ClientSession(timeout=timeout, headers=headers) as session:
            self.client = FeedClient(session)
            while not self._closed:
                try:
                    if self.info is None or time.monotonic() - self._discovered_at > REDISCOVER_S:
                        await self._discover()
                    delay = await self._poll()
                    retry.reset()
                    self._last_failure = ""
                except FeedError as exc:
                    self._stale_for = None
                    if exc.code in ("not_found", "discovery"):
                        self.info = None
                    delay = max(retry.next(), self.config.min_interval_s)
                    self._failed(exc.code, str(exc), delay)
                except Exception as exc:      # a feed shaped in a way nobody foresaw must not stop the source
                    self.log.exception("%s: unexpected error while reading %s", self.config.name, self.config.url)
                    self._stale_for, self.info = None, None
                    delay = max(retry.next(), self.config.min_interval_s)
                    self._failed("internal", f"unexpected error: {type(exc).__name__}: {exc}", delay)
                self._feed.attempted.set()
                await asyncio.sleep(delay)

    async def _discover(self) -> None:
        problems: list[tuple[str, str]] = []
        fallback = as_ident(self.config.name, "gbfs")
        info = await self.client.discover(self.config.url, self.config.language, self.config.fleet, fallback, problems)
        for code, message in problems:
            self.context.count_error(SOURCE_KEY, code)
            self.log.warning("%s: optional file unusable, going on without it: %s", self.config.name, message)
        if self.slots is None:
            prefix = self.config.device_prefix or info.fleet[:59].rstrip("-._") or "gbfs"
            self.slots = SlotMap(prefix, self.config.same_spot_m, self.config.max_vehicles)
            self._restore_slots()
        self.info, self._discovered_at = info, time.monotonic()
        self.log.info("%s: GBFS %s feed of fleet %s, vehicles from %s (%d vehicle types, %d stations, "
                      "%d geofencing zones)", self.config.name, info.discovery.version, info.fleet,
                      info.discovery.vehicles_url, len(info.vehicle_types), len(info.stations), len(info.zones))

    def _failed(self, code: str, message: str, delay: float) -> None:
        self.context.count_error(SOURCE_KEY, code)
        self._feed_down(message)
        level = logging.WARNING if message != self._last_failure else logging.DEBUG
        self.log.log(level, "%s: %s; retrying in %.1f s", self.config.name, message, delay)
        self._last_failure = message

    def _feed_down(self, reason: str) -> None:
        self.feed_online, self.feed_error = False, reason
        for device in list(self.context.devices):
            self.context.device_down(device, reason[:500])

    async def _poll(self) -> float:
        """One poll of the vehicle feed; the delay until the next one."""
        info = self.info
        url = info.discovery.vehicles_url
        document = await self.client.get(url)
        vehicles, bad = parse_vehicles(document.data, info.discovery.major, url, info.stations)
        self.polls += 1
        now_wall, now_mono = now_ms(), time.monotonic()
        if document.last_updated_ms != self._last_updated_ms:
            self._last_updated_ms, self._advanced_at = document.last_updated_ms, now_mono
        age_s = (now_wall - document.last_updated_ms) / 1000
        if age_s > self.config.stale_after_s or now_mono - self._advanced_at > self.config.stale_after_s:
            self.context.count_error(SOURCE_KEY, "stale")
            if self._stale_for != document.last_updated_ms:     # one reason per frozen value, not one per poll
                self._stale_for = document.last_updated_ms
                reason = f"stale feed: last_updated {iso(document.last_updated_ms)} is {age_s:.0f} s old"
                self.log.warning("%s: %s (%s)", self.config.name, reason, url)
                self._feed_down(reason)
        else:
            self._stale_for = None
            self.feed_online, self.feed_error = True, ""
            self._place(vehicles, bad, document.last_updated_ms, now_mono)
        due_s = (document.last_updated_ms / 1000 + document.ttl_s) - now_wall / 1000
        return min(max(due_s, self.config.min_interval_s), self.config.max_interval_s)

    # ------------------------------------------------------------ vehicles

    def _place(self, vehicles: list[VehicleRecord], bad: list[tuple[str, str]], last_updated_ms: int,
               now_mono: float) -> None:
        kept = {label: problem for label, problem in bad if not label.startswith("#")}
        if bad:
            self.context.count_error(SOURCE_KEY, "bad_vehicle", len(bad))
            label, problem = bad[0]
            self.log.warning("%s: %d unreadable vehicle record(s) skipped, e.g. %s: %s", self.config.name,
                             len(bad), label, problem)
        assignment = self.slots.assign(vehicles, frozenset(kept))
        if assignment.overflow:
            self.context.count_error(SOURCE_KEY, "too_many_vehicles", len(assignment.overflow))
        for device, old_id, new_id in assignment.rotated:
            self.log.debug("%s: %s rotated its id %s -> %s", self.config.name, device, old_id, new_id)
        for vehicle in vehicles:
            device = assignment.devices.get(vehicle.vehicle_id)
            if device is not None:
                self._vehicle(device, vehicle, last_updated_ms, now_mono)
        for vehicle_id, problem in kept.items():
            device = self.slots.device_of(vehicle_id)
            if device is not None and device in self.context.devices:
                self.context.device_down(device, f"unreadable record for {vehicle_id}: {problem}"[:500])
        for device in assignment.vanished:
            if device in self.context.devices:
                self.context.device_down(device, f"not listed since {iso(last_updated_ms)} (on a trip or taken out)")
        self._save_slots()

    def _vehicle(self, device: str, vehicle: VehicleRecord, last_updated_ms: int, now_mono: float) -> None:
        if device not in self.context.devices:
            self.context.register(device, DeviceKind.VEHICLE)
            self.context.describe(device, PROFILE, metric_catalog())
        self.context.device_up(device)
        values = values_of(vehicle)
        tag = vehicle_type_tag(vehicle.vehicle_type_id, self.info.vehicle_types.get(vehicle.vehicle_type_id))
        before = self._sent.get(device)
        ts = vehicle.last_reported_ms
        if ts is None or ts > last_updated_ms or (before is not None and ts <= before.ts):
            ts = last_updated_ms        # a report after the file was written is a clock error: the file's time
        if before is not None:
            changed = values != before.values or tag != before.tag
            due = ts > before.ts and now_mono - before.at >= self.config.keepalive_s
            if not (changed or due):
                return
        self._sent[device] = _Sent(values, tag, ts, now_mono)
        self._feed.push(DeviceBatch(device=device, kind=DeviceKind.VEHICLE, profile=PROFILE,
                               readings=readings_of(ts, values), meta={"fleet": self.info.fleet, "vehicle_type": tag}))

    # ------------------------------------------------------------ slots kept across restarts

    def _slots_path(self) -> Path | None:
        state_dir = self.context.state_dir
        return Path(state_dir) / f"gbfs-{as_ident(self.config.name, 'source')}-slots.json" if state_dir else None

    def _restore_slots(self) -> None:
        path = self._slots_path()
        if path is None or not path.exists():
            return
        try:
            saved = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            self.log.warning("%s: cannot read %s (%s); slots start afresh", self.config.name, path, exc)
            return
        if self.slots.restore(saved):
            self._saved_mapping = self._mapping()
            for slot in self.slots.slots:
                self.context.register(slot.device, DeviceKind.VEHICLE)
                self.context.describe(slot.device, PROFILE, metric_catalog())

    def _mapping(self) -> tuple:
        return tuple((s.device, s.vehicle_id) for s in self.slots.slots)

    def _save_slots(self) -> None:
        """Write the slots when a vehicle changed slot (not for every move): atomically, next to the outbox."""
        path = self._slots_path()
        mapping = self._mapping()
        if path is None or mapping == self._saved_mapping:
            return
        temporary = path.with_suffix(".tmp")
        try:
            temporary.write_text(json.dumps(self.slots.snapshot()))
            os.replace(temporary, path)
            self._saved_mapping = mapping
        except OSError as exc:
            self.context.count_error(SOURCE_KEY, "state_write")
            self.log.warning("%s: cannot save the slots to %s: %s", self.config.name, path, exc)
