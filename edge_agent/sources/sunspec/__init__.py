"""``type: sunspec`` source: SunSpec meters found by discovery, over the Modbus transports.

See README.md in this folder for the config keys and the behaviour on faults.
"""

from edge_agent.sources.sunspec.config import Config
from edge_agent.sources.sunspec.source import SunSpecSource as Source

__all__ = ["Config", "Source"]
