"""``type: gbfs`` source: an operator's public GBFS feed (2.x or 3.0) as vehicle telemetry.

See README.md in this folder for the config keys and the behaviour on faults.
"""

from edge_agent.sources.gbfs.config import Config
from edge_agent.sources.gbfs.source import GbfsSource as Source

__all__ = ["Config", "Source"]
