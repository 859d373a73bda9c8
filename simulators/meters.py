"""A bank of simulated meters refreshed together: what every protocol simulator serves.

Meter ``n`` (1-based: Modbus unit id ``n``, OPC UA device ``MeterNN``) follows
:func:`simulators.load.meter_values` for index ``n``; its ``energy_import`` is kept by
an :class:`~simulators.load.EnergyIntegrator` that starts at the model's counter, so
the served counter never decreases even if the wall clock steps back. Each meter also
carries the metrics vendor profiles add (:mod:`simulators.derived`).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from simulators.derived import derived_values
from simulators.load import EnergyIntegrator, energy_kwh, meter_values


class MeterBank:
    def __init__(self, count: int, seed: int = 0, clock: Callable[[], float] = time.time) -> None:
        if count < 1:
            raise ValueError(f"meters must be >= 1, got {count}")
        self.count = count
        self.seed = seed
        self.clock = clock
        self._energy: dict[int, EnergyIntegrator] = {}
        self._values: dict[int, dict[str, float]] = {}
        self.updated_at = 0.0

    @property
    def indexes(self) -> range:
        return range(1, self.count + 1)

    def refresh(self, t: float | None = None) -> float:
        """Recompute every meter at ``t`` (default: now); returns the time used."""
        t = self.clock() if t is None else t
        for index in self.indexes:
            values = meter_values(index, t, self.seed)
            integrator = self._energy.get(index)
            if integrator is None:
                integrator = self._energy[index] = EnergyIntegrator(energy_kwh(index, t, self.seed), t)
            values["energy_import"] = integrator.update(values["power_total"], t)
            values.update(derived_values(values))
            self._values[index] = values
        self.updated_at = t
        return t

    def values(self, index: int) -> dict[str, float]:
        if index not in self.indexes:
            raise KeyError(f"meter {index} does not exist (meters 1..{self.count})")
        if not self._values:
            self.refresh()
        return dict(self._values[index])
