"""Simulated mobility fleet for Hitachi City: e-scooters and walking-speed mobility (see README.md)."""

from simulators.fleet.simulator import FleetSimulator

__all__ = ["FleetSimulator"]
