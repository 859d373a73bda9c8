"""Read the simulator's address space out of an OPC UA node map profile.

The simulator serves exactly what the node map says a client will ask for:
``Objects/<Meters>/<Device>/<Variable>`` with string NodeIds ``<Device>.<Variable>``.
A node given by ``node_id`` (``ns={ns};s={device}.VoltageL1``) names its variable in
the NodeId; a node given by ``browse_path`` (``[{ns}:Meters, {ns}:{device},
{ns}:EnergyImport]``) names it in the last path element. Every variable gets both, so
either addressing reaches it. A node map this layout cannot serve is refused with a
message naming the node.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from device_profiles.schema import OpcuaProfile, load_profile

DEFAULT_NODE_MAP = "hinode-sim-meter-opcua"
_NODE_ID = re.compile(r"^ns=\{ns\};s=\{device\}\.([A-Za-z0-9_]+)$")
_PATH_ELEMENT = re.compile(r"^\{ns\}:(.+)$")
_NAME = re.compile(r"^[A-Za-z0-9_]+$")


class NodeMapError(ValueError):
    pass


@dataclass(frozen=True)
class VariableSpec:
    metric: str
    name: str            # browse name and NodeId suffix, e.g. "VoltageL1"
    unit: str
    scale: float
    offset: float


@dataclass(frozen=True)
class AddressSpace:
    namespace: str
    folder: str                       # browse name of the folder below Objects, e.g. "Meters"
    variables: tuple[VariableSpec, ...]


def address_space(profile: OpcuaProfile | str = DEFAULT_NODE_MAP) -> AddressSpace:
    if isinstance(profile, str):
        loaded = load_profile(profile)
        if not isinstance(loaded, OpcuaProfile):
            raise NodeMapError(f"profile {profile!r} is a {loaded.protocol} profile, not an OPC UA node map")
        profile = loaded
    folder = "Meters"
    variables = []
    for node in profile.nodes:
        if node.node_id is not None:
            match = _NODE_ID.match(node.node_id)
            if not match:
                raise NodeMapError(f"{profile.id}: metric {node.metric}: node_id {node.node_id!r} is not "
                                   "of the form 'ns={ns};s={device}.<Variable>' the simulator serves")
            name = match.group(1)
        else:
            path = node.browse_path or []
            parts = [_PATH_ELEMENT.match(p) for p in path]
            if len(path) != 3 or not all(parts) or parts[1].group(1) != "{device}" or not _NAME.match(parts[2].group(1)):
                raise NodeMapError(f"{profile.id}: metric {node.metric}: browse_path {path!r} is not of the form "
                                   "['{ns}:<Folder>', '{ns}:{device}', '{ns}:<Variable>'] the simulator serves")
            folder, name = parts[0].group(1), parts[2].group(1)
        variables.append(VariableSpec(node.metric, name, node.unit, node.scale, node.offset))
    names = [v.name for v in variables]
    if len(set(names)) != len(names):
        raise NodeMapError(f"{profile.id}: two metrics map to the same variable name: {sorted(names)}")
    return AddressSpace(profile.namespace, folder, tuple(variables))


def device_name(index: int) -> str:
    """Meter 1 -> ``Meter01``: the OPC UA device node of meter ``index``."""
    return f"Meter{index:02d}"
