"""Stable device ids for vehicles whose GBFS ids rotate.

GBFS requires ``vehicle_id`` to change after every trip (and lets an operator rotate it at any
time), so a raw id would make a new InfluxDB series per trip. Each vehicle is given a *slot*
instead (``<prefix>-0001`` ...):

1. an id seen before keeps its slot;
2. a new id within ``same_spot_m`` of where a vanished id was last seen takes that slot (an id
   rotated while parked; the nearest pairs are matched first, and the vehicle type must agree);
3. any other new id takes a free slot (a vehicle back from a trip with a new id), of the same
   vehicle type if there is one, the longest-free first;
4. only then is a new slot opened, up to ``max_slots``.

So the number of devices stays at the most vehicles the feed ever listed at once.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import asdict, dataclass

from edge_agent.sources.gbfs.config import SLOT_DIGITS
from edge_agent.sources.gbfs.feed import VehicleRecord

EARTH_RADIUS_M = 6_371_008.8
METRES_PER_DEGREE = math.pi * EARTH_RADIUS_M / 180     # of latitude (and of longitude at the equator)


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


@dataclass
class Slot:
    device: str
    vehicle_id: str | None = None       # None while the slot is free
    lat: float | None = None            # where its vehicle was last listed
    lon: float | None = None
    vehicle_type_id: str = ""
    freed_at: int = 0                   # assignment round in which it became free


@dataclass(frozen=True)
class Assignment:
    devices: dict[str, str]             # vehicle id -> device id, for every placed vehicle
    vanished: list[str]                 # devices whose vehicle left the feed this round
    rotated: list[tuple[str, str, str]]   # (device, old id, new id) matched at the same spot
    overflow: list[str]                 # vehicle ids left without a slot (max_slots reached)


class SlotMap:
    def __init__(self, prefix: str, same_spot_m: float, max_slots: int):
        self.prefix = prefix
        self.same_spot_m = same_spot_m
        self.max_slots = max_slots
        self.slots: list[Slot] = []
        self._round = 0
        self._last_id: dict[str, str] = {}      # device -> the id it had before it was freed

    def device_of(self, vehicle_id: str) -> str | None:
        return next((s.device for s in self.slots if s.vehicle_id == vehicle_id), None)

    def assign(self, vehicles: list[VehicleRecord], keep_ids: frozenset[str] = frozenset()) -> Assignment:
        """Place this round's vehicles; ``keep_ids`` are listed ids whose record was unreadable (keep their slot)."""
        self._round += 1
        present = {v.vehicle_id for v in vehicles} | set(keep_ids)
        vanished = []
        for slot in self.slots:
            if slot.vehicle_id is not None and slot.vehicle_id not in present:
                self._last_id[slot.device] = slot.vehicle_id
                slot.vehicle_id, slot.freed_at = None, self._round
                vanished.append(slot.device)
        by_id = {s.vehicle_id: s for s in self.slots if s.vehicle_id is not None}
        devices: dict[str, str] = {}
        newcomers = []
        for vehicle in vehicles:
            slot = by_id.get(vehicle.vehicle_id)
            if slot is None:
                newcomers.append(vehicle)
            else:
                self._take(slot, vehicle, devices)
        rotated = self._same_spot(newcomers, devices)
        newcomers = [v for v in newcomers if v.vehicle_id not in devices]
        overflow = []
        free = self._free_slots()
        for vehicle in newcomers:
            slot = free.take(vehicle.vehicle_type_id) or self._new_slot()
            if slot is None:
                overflow.append(vehicle.vehicle_id)
            else:
                self._take(slot, vehicle, devices)
        placed = set(devices.values())
        return Assignment(devices, [d for d in vanished if d not in placed], rotated, overflow)

    def _take(self, slot: Slot, vehicle: VehicleRecord, devices: dict[str, str]) -> None:
        slot.vehicle_id, slot.vehicle_type_id = vehicle.vehicle_id, vehicle.vehicle_type_id
        if vehicle.lat is not None:
            slot.lat, slot.lon = vehicle.lat, vehicle.lon
        devices[vehicle.vehicle_id] = slot.device

    def _same_spot(self, newcomers: list[VehicleRecord], devices: dict[str, str]) -> list[tuple[str, str, str]]:
        """Pair new ids with free slots last seen within same_spot_m, nearest pairs first.

        Free slots are bucketed in a grid of same_spot_m cells, so a feed that rotates every id at
        every poll costs a few distance computations per vehicle, not one per (vehicle, free slot).
        """
        cell_deg = max(self.same_spot_m, 0.01) / METRES_PER_DEGREE
        grid: dict[tuple[int, int], list[Slot]] = {}
        for slot in self.slots:
            if slot.vehicle_id is None and slot.lat is not None:
                grid.setdefault((int(slot.lat // cell_deg), int(slot.lon // cell_deg)), []).append(slot)
        if not grid:
            return []
        pairs = []
        for vehicle in newcomers:
            if vehicle.lat is None:
                continue
            row, col = int(vehicle.lat // cell_deg), int(vehicle.lon // cell_deg)
            reach = math.ceil(1 / max(math.cos(math.radians(vehicle.lat)), 0.01))   # a degree of lon is shorter
            for r in (row - 1, row, row + 1):
                for c in range(col - reach, col + reach + 1):
                    for slot in grid.get((r, c), ()):
                        if (vehicle.vehicle_type_id and slot.vehicle_type_id
                                and vehicle.vehicle_type_id != slot.vehicle_type_id):
                            continue
                        gap = distance_m(vehicle.lat, vehicle.lon, slot.lat, slot.lon)
                        if gap <= self.same_spot_m:
                            pairs.append((gap, vehicle.vehicle_id, slot.device, vehicle, slot))
        pairs.sort(key=lambda p: p[:3])
        rotated = []
        for _gap, vehicle_id, device, vehicle, slot in pairs:
            if vehicle_id in devices or slot.vehicle_id is not None:
                continue
            rotated.append((device, self._last_id.get(device, ""), vehicle_id))
            self._take(slot, vehicle, devices)
        return rotated

    def _free_slots(self) -> "_FreeSlots":
        return _FreeSlots(sorted((s for s in self.slots if s.vehicle_id is None), key=lambda s: (s.freed_at, s.device)))

    def _new_slot(self) -> Slot | None:
        if len(self.slots) >= self.max_slots:
            return None
        slot = Slot(device=f"{self.prefix}-{len(self.slots) + 1:0{SLOT_DIGITS}d}")
        self.slots.append(slot)
        return slot

    # ------------------------------------------------------------ persistence (JSON-able)

    def snapshot(self) -> dict:
        return {"prefix": self.prefix, "round": self._round, "slots": [asdict(s) for s in self.slots]}

    def restore(self, saved: dict) -> bool:
        """Take the slots of an earlier run (same prefix only); False if ``saved`` does not fit."""
        try:
            if saved.get("prefix") != self.prefix:
                return False
            slots = [Slot(**entry) for entry in saved["slots"]]
            round_ = int(saved.get("round", 0))
        except (AttributeError, KeyError, TypeError, ValueError):
            return False
        self.slots, self._round = slots[:self.max_slots], round_
        return True


class _FreeSlots:
    """The free slots, longest-free first; ``take`` prefers one of the vehicle's type."""

    def __init__(self, ordered: list[Slot]):
        self._all = deque(ordered)
        self._by_type: dict[str, deque[Slot]] = {}
        for slot in ordered:
            self._by_type.setdefault(slot.vehicle_type_id, deque()).append(slot)
        self._taken: set[str] = set()

    def take(self, vehicle_type_id: str) -> Slot | None:
        for queue in (self._by_type.get(vehicle_type_id), self._all):
            while queue:
                slot = queue.popleft()
                if slot.device not in self._taken:
                    self._taken.add(slot.device)
                    return slot
        return None
