"""``type: sunspec`` source: SunSpec meters, inverters and storage found by discovery, over Modbus.

See README.md in this folder for the config keys and the behaviour on faults.
"""

from edge_agent.sources.sunspec.config import Config
from edge_agent.sources.sunspec.source import SunSpecSource as Source

__all__ = ["Config", "Source"]
