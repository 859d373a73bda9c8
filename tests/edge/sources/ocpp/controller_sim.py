"""A closed-loop site for the controller tests: cars draw what the last targets allow.

The grid meter reads house + cars - PV, as a real one would, so each step sees the effect
of the previous one (as the OCPP source's control loop does, one interval later).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from edge_agent.sources.ocpp.controller import Controller, LoadpointInput, SiteDecision, SiteInput

VOLTAGE = 230.0


@dataclass
class Car:
    key: tuple[str, int]
    mode: str = "pv"
    phases: int = 3                     # what the charger uses now
    min_current_a: float = 6.0
    max_current_a: float = 16.0
    phases_config: str = "auto"
    switchable: bool = False
    circuit: str | None = None
    priority: int = 0
    user_limit_a: float | None = None
    connected: bool = True
    car_max_a: float = 1000.0           # what the car's onboard charger accepts
    power_w: float = 0.0

    def loadpoint(self) -> LoadpointInput:
        return LoadpointInput(
            key=self.key, mode=self.mode, connected=self.connected, charging=self.power_w > 0,
            power_w=self.power_w, phases_active=self.phases, min_current_a=self.min_current_a,
            max_current_a=self.max_current_a, phases_config=self.phases_config,
            phase_switch_supported=self.switchable, circuit=self.circuit, priority=self.priority,
            user_limit_a=self.user_limit_a)


@dataclass
class SimSite:
    controller: Controller
    cars: list[Car]
    house_w: float = 0.0
    pv_w: float = 0.0
    grid_meter: bool = True
    pv_meter: bool = True
    site_target_w: float | None = None
    decisions: list[SiteDecision] = field(default_factory=list)

    @property
    def grid_w(self) -> float:
        return self.house_w + sum(car.power_w for car in self.cars) - self.pv_w

    def step(self, now_s: float) -> SiteDecision:
        site = SiteInput(grid_w=self.grid_w if self.grid_meter else None,
                         pv_w=self.pv_w if self.pv_meter else None, site_target_w=self.site_target_w)
        decision = self.controller.step(now_s, site, [car.loadpoint() for car in self.cars])
        for car in self.cars:
            target = decision.targets[car.key]
            car.phases = target.phases
            drawn_a = min(target.current_a, car.car_max_a) if car.connected else 0.0
            car.power_w = drawn_a * car.phases * VOLTAGE
        self.decisions.append(decision)
        return decision

    def run(self, start_s: float, stop_s: float, interval_s: float = 10.0) -> list[SiteDecision]:
        """Steps at start_s, start_s + interval_s, ... up to and including stop_s."""
        out = []
        now = start_s
        while now <= stop_s + 1e-9:
            out.append(self.step(now))
            now += interval_s
        return out

    def target(self, key: tuple[str, int]):
        return self.decisions[-1].targets[key]
