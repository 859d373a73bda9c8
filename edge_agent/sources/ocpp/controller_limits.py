"""Load management: what the site and circuit limits leave for one more loadpoint.

Which phase a single-phase charger is wired to is unknown, so every target counts on
every phase (exact for 3-phase chargers, safe for 1-phase ones).
"""

from __future__ import annotations

from dataclasses import dataclass

from edge_agent.sources.ocpp.controller_model import ConnectorKey, ControllerSettings, amps, kw


@dataclass
class Allocation:
    current_a: float
    phases: int
    circuit: str | None


@dataclass
class Room:
    current_a: float            # the most this loadpoint may have in total (A per phase)
    limiter: str | None         # "site limit 32 A", "circuit hall-a 32 A", None: unlimited


class LimitLedger:
    def __init__(self, settings: ControllerSettings):
        self._settings = settings
        self._circuits = {c.name: c.limit_a for c in settings.circuits}
        self._allocations: dict[ConnectorKey, Allocation] = {}

    def allocation(self, key: ConnectorKey) -> float:
        held = self._allocations.get(key)
        return held.current_a if held else 0.0

    def set(self, key: ConnectorKey, current_a: float, phases: int, circuit: str | None) -> None:
        if current_a <= 0:
            self._allocations.pop(key, None)
        else:
            self._allocations[key] = Allocation(current_a, phases, circuit)

    def release(self, key: ConnectorKey) -> None:
        self._allocations.pop(key, None)

    def room(self, key: ConnectorKey, phases: int, circuit: str | None) -> Room:
        """The most ``key`` may hold at ``phases`` given everyone else's allocation."""
        voltage = self._settings.voltage_v
        others = [a for k, a in self._allocations.items() if k != key]
        candidates: list[Room] = []
        if self._settings.site_limit_a is not None:
            used = sum(a.current_a for a in others)
            candidates.append(Room(self._settings.site_limit_a - used,
                                   f"site limit {amps(self._settings.site_limit_a)}"))
        if self._settings.site_limit_w is not None:
            used_w = sum(a.current_a * a.phases * voltage for a in others)
            candidates.append(Room((self._settings.site_limit_w - used_w) / (voltage * phases),
                                   f"site limit {kw(self._settings.site_limit_w)}"))
        if circuit is not None and circuit in self._circuits:
            limit = self._circuits[circuit]
            used = sum(a.current_a for a in others if a.circuit == circuit)
            candidates.append(Room(limit - used, f"circuit {circuit} {amps(limit)}"))
        if not candidates:
            return Room(float("inf"), None)
        tightest = min(candidates, key=lambda r: r.current_a)
        return Room(max(0.0, tightest.current_a), tightest.limiter)
