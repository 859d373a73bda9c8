"""Settings, inputs and outputs of the PV-surplus site controller (see ``controller.py``)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from edge_agent.sources.ocpp.model import NOMINAL_VOLTAGE_V

MODES = ("off", "now", "minpv", "pv")
ConnectorKey = tuple[str, int]          # (charger id, connector / EVSE id)


@dataclass
class EnableSettings:
    """Start charging in ``pv`` mode. Threshold 0: when the surplus allows the min current.
    Non-zero (evcc): when the site power is at or below it, so -2000 means "2 kW export"."""

    threshold_w: float = 0.0
    delay_s: float = 60.0


@dataclass
class DisableSettings:
    """Stop charging in ``pv`` mode when charging at min current would import more than
    ``threshold_w`` from the grid (negative values count as 0), held for ``delay_s``."""

    threshold_w: float = 0.0
    delay_s: float = 180.0


@dataclass
class Circuit:
    """A fuse the chargers behind it share: their targets' sum (A per phase) stays within it."""

    name: str
    limit_a: float


@dataclass
class ControllerSettings:
    enable: EnableSettings = field(default_factory=EnableSettings)
    disable: DisableSettings = field(default_factory=DisableSettings)
    site_limit_a: float | None = None      # A per phase, summed over all targets
    site_limit_w: float | None = None      # W, summed over all targets (A x phases x V)
    circuits: list[Circuit] = field(default_factory=list)
    # evcc's residualPower: added to the grid power, so a positive value keeps that much
    # feed-in (the controller aims at grid = -residual_w) and a negative one allows import.
    residual_w: float = 0.0
    voltage_v: float = NOMINAL_VOLTAGE_V


@dataclass
class SiteInput:
    grid_w: float | None                   # + import, - export; None: no grid meter
    pv_w: float | None                     # None: no PV meter
    site_target_w: float | None = None     # total W the chargers should draw; replaces the surplus


@dataclass
class LoadpointInput:
    key: ConnectorKey
    mode: str                              # "off" | "now" | "minpv" | "pv"
    connected: bool                        # a car is plugged in
    charging: bool                         # the car draws power now
    power_w: float                         # measured
    phases_active: int                     # what the charger uses now (1 or 3)
    min_current_a: float = 6.0
    max_current_a: float = 16.0
    phases_config: str = "auto"            # "auto" | "1" | "3"
    phase_switch_supported: bool = False
    circuit: str | None = None
    priority: int = 0                      # higher first
    user_limit_a: float | None = None      # a cloud command's cap


@dataclass
class Target:
    current_a: float                       # 0 = paused; otherwise >= the loadpoint's min current
    phases: int
    enabled: bool
    reason: str


@dataclass
class SiteDecision:
    targets: dict[ConnectorKey, Target]
    surplus_w: float                       # PV surplus for EVs: export + what the EVs draw now
    available_w: float                     # the budget of surplus-driven charging: site target or surplus
    reason: str                            # what limited the site
    grid_w: float | None = None            # as measured, or estimated (ev - pv) without a grid meter
    grid_estimated: bool = False
    ev_power_w: float = 0.0                # measured, all loadpoints


def floor_tenth(amps: float) -> float:
    """Chargers take 0.1 A steps (evcc truncates too); rounding down keeps limits safe."""
    return max(0.0, math.floor(amps * 10 + 1e-6) / 10)


def kw(watts: float) -> str:
    return f"{watts / 1000:.1f} kW"


def amps(value: float) -> str:
    return f"{value:g} A"


def duration(seconds: float) -> str:
    seconds = max(0, math.ceil(seconds - 1e-9))
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds // 60} min"
    return f"{seconds} s"
