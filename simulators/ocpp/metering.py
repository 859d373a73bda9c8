"""Sampled values of one connector, version-neutral: {measurand, value, unit, phase, context, location}."""

from __future__ import annotations

from simulators.ocpp.connector import Connector
from simulators.ocpp.ev import MIN_CHARGING_CURRENT

PHASES = ("L1", "L2", "L3")
NOMINAL_FREQUENCY = 50.0


def samples(conn: Connector, measurands: list[str], context: str) -> list[dict]:
    out: list[dict] = []

    def add(measurand: str, value: float, unit: str | None, phase: str | None = None, location: str = "Outlet"):
        out.append({"measurand": measurand, "value": round(value, 2), "unit": unit, "phase": phase,
                    "context": context, "location": location})

    offered = conn.offered_a if conn.offered_a >= MIN_CHARGING_CURRENT and conn.tx is not None else 0.0
    for measurand in measurands:
        if measurand == "Energy.Active.Import.Register":
            add(measurand, conn.energy_wh, "Wh")
        elif measurand == "Power.Active.Import":
            add(measurand, conn.power_w, "W")
        elif measurand == "Power.Offered":
            add(measurand, offered * sum(conn.voltages[:max(conn.phases_in_use, 1)]), "W")
        elif measurand == "Current.Import":
            for phase, amps in zip(PHASES, conn.phase_currents()):
                add(measurand, amps, "A", phase)
        elif measurand == "Current.Offered":
            add(measurand, offered, "A")
        elif measurand == "Voltage":
            for phase, volts in zip(PHASES, conn.voltages):
                add(measurand, volts, "V", f"{phase}-N")
        elif measurand == "Frequency":
            add(measurand, NOMINAL_FREQUENCY, None)
        elif measurand == "SoC" and conn.soc is not None:
            add(measurand, conn.soc, "Percent", location="EV")
    return out
