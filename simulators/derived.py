"""Metrics real meter profiles add on top of the core set, derived from the core values.

Vendor register maps (Eastron SDM630, Carlo Gavazzi EM24, ...) also carry apparent and
reactive power, line-to-line voltages, phase angles, averages, neutral current and
more energy counters. Deriving them from one meter's core values keeps every profile
served by the simulator physically consistent with the others.
"""

from __future__ import annotations

import math

# A factory imports active and inductive reactive energy and exports neither.
REACTIVE_ENERGY_RATIO = 0.4        # kvarh per kWh, about tan(acos(0.93))


def line_to_line(a: float, b: float) -> float:
    """Magnitude between two phase voltages 120 degrees apart."""
    return math.sqrt(a * a + b * b + a * b)


def derived_values(v: dict[str, float]) -> dict[str, float]:
    """Extra metrics (apparent/reactive power, L-L voltages, ...) from core metrics ``v``."""
    out: dict[str, float] = {}
    volts = [v[f"voltage_l{n}"] for n in (1, 2, 3)]
    amps = [v[f"current_l{n}"] for n in (1, 2, 3)]
    pf = v["power_factor"]
    angle = math.degrees(math.acos(pf))
    for n in (1, 2, 3):
        apparent = volts[n - 1] * amps[n - 1]
        out[f"apparent_power_l{n}"] = apparent
        out[f"reactive_power_l{n}"] = math.sqrt(max(0.0, apparent ** 2 - v[f"power_l{n}"] ** 2))
        out[f"power_factor_l{n}"] = pf
        out[f"phase_angle_l{n}"] = angle
    out["apparent_power_total"] = sum(out[f"apparent_power_l{n}"] for n in (1, 2, 3))
    out["reactive_power_total"] = sum(out[f"reactive_power_l{n}"] for n in (1, 2, 3))
    out["voltage_l1_l2"] = line_to_line(volts[0], volts[1])
    out["voltage_l2_l3"] = line_to_line(volts[1], volts[2])
    out["voltage_l3_l1"] = line_to_line(volts[2], volts[0])
    out["voltage_ln_avg"] = sum(volts) / 3
    out["voltage_ll_avg"] = (out["voltage_l1_l2"] + out["voltage_l2_l3"] + out["voltage_l3_l1"]) / 3
    out["current_sum"] = sum(amps)
    out["current_avg"] = sum(amps) / 3
    a, b, c = amps
    out["current_neutral"] = math.sqrt(max(0.0, a * a + b * b + c * c - a * b - b * c - c * a))
    out["power_demand"] = v["power_total"]
    out["apparent_power_demand"] = out["apparent_power_total"]
    out["phase_sequence"] = 0.0                       # L1-L2-L3
    out["energy_export"] = 0.0
    out["reactive_energy_import"] = v["energy_import"] * REACTIVE_ENERGY_RATIO
    out["reactive_energy_export"] = 0.0
    return out
