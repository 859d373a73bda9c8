"""Cars for the controller tests that need one already drawing current (the closed-loop site is controller_sim.py)."""

from __future__ import annotations

from tests.edge.sources.ocpp.controller_sim import VOLTAGE, Car


def charging_car(key: tuple[str, int], current_a: float, **fields) -> Car:
    """A car drawing ``current_a`` on each of its phases."""
    car = Car(key, **fields)
    car.power_w = current_a * car.phases * VOLTAGE
    return car
