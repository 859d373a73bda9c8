"""``type: modbus`` source: profile-described devices over Modbus TCP, RTU and RTU-over-TCP.

See README.md in this folder for the config keys and the behaviour on faults.
"""

from edge_agent.sources.modbus.config import Config
from edge_agent.sources.modbus.source import ModbusSource as Source

__all__ = ["Config", "Source"]
