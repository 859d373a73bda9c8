"""OPC UA device source: subscriptions (or polling) over asyncua, with a watchdog.

See README.md in this folder for the config keys, watchdog semantics and security setup.
"""

from edge_agent.sources.opcua.config import Config
from edge_agent.sources.opcua.source import Source

__all__ = ["Config", "Source"]
