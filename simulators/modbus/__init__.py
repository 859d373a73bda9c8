"""Modbus TCP / RTU simulator of N factory meters (see simulators/README.md)."""

from simulators.modbus.datastore import parse_fault
from simulators.modbus.server import DEFAULT_PROFILE, ModbusSimulator

__all__ = ["DEFAULT_PROFILE", "ModbusSimulator", "parse_fault"]
