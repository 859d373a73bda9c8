"""OPC UA simulator of N factory meters, built from the node map (see simulators/README.md)."""

from simulators.opcua.nodemap import DEFAULT_NODE_MAP, NodeMapError, address_space, device_name
from simulators.opcua.server import APPLICATION_URI, OpcuaSimulator

__all__ = ["APPLICATION_URI", "DEFAULT_NODE_MAP", "NodeMapError", "OpcuaSimulator", "address_space", "device_name"]
