"""Node maps meet a live server: resolve a device's nodes, turn DataValues into readings.

Resolution happens on every (re)connect, because a restarted server may hand out
another namespace index for the same URI.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field

from asyncua import Client, ua

from device_profiles.schema import OpcuaNode, OpcuaProfile
from edge_agent.sources.base import now_ms, reading
from edge_agent.sources.opcua.config import Device
from hinode.contract import Quality, Reading

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
# What a server answers for a browse path that does not lead anywhere; other errors
# (timeouts, closed sessions) are connection problems and propagate.
_MISSING = (ua.uaerrors.BadNoMatch, ua.uaerrors.BadNodeIdUnknown, ua.uaerrors.BadNodeIdInvalid,
            ua.uaerrors.BadBrowseNameInvalid)


@dataclass(slots=True)
class BoundNode:
    """One profile node of one device, with the NodeId it has on the server right now."""

    metric: str
    spec: OpcuaNode
    node_id: ua.NodeId


@dataclass
class DeviceNodes:
    """A device and its resolved nodes; ``problems`` lists what could not be resolved."""

    config: Device
    profile: OpcuaProfile
    nodes: list[BoundNode] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def id(self) -> str:
        return self.config.id

    @property
    def resolved(self) -> bool:
        return bool(self.nodes) and not self.problems


def _fill(template: str, ns: int, device: str) -> str:
    return template.replace("{ns}", str(ns)).replace("{device}", device)


async def resolve_device(client: Client, device: DeviceNodes, namespaces: list[str]) -> None:
    """Fill ``device.nodes`` or ``device.problems``; never raises for a missing node."""
    device.nodes, device.problems = [], []
    uri = device.profile.namespace
    if uri not in namespaces:
        device.problems.append(f"namespace {uri!r} is not on the server")
        return
    ns = namespaces.index(uri)
    name = device.config.name_on_server
    candidates: list[BoundNode] = []
    for spec in device.profile.nodes:
        if spec.node_id is not None:
            text = _fill(spec.node_id, ns, name)
            try:
                candidates.append(BoundNode(spec.metric, spec, ua.NodeId.from_string(text)))
            except ua.uaerrors.UaStringParsingError:
                device.problems.append(f"{spec.metric}: {text!r} is not a NodeId")
        else:
            path = [_fill(part, ns, name) for part in spec.browse_path or []]
            try:
                node = await client.nodes.objects.get_child(path)
            except _MISSING as exc:
                device.problems.append(f"{spec.metric}: browse path {'/'.join(path)}: {type(exc).__name__}")
                continue
            candidates.append(BoundNode(spec.metric, spec, node.nodeid))
    if not candidates:
        return
    # One read checks that every NodeId exists and is a variable.
    classes = await client.read_attributes([client.get_node(b.node_id) for b in candidates], ua.AttributeIds.NodeClass)
    for bound, result in zip(candidates, classes):
        if not result.StatusCode.is_good():
            device.problems.append(f"{bound.metric}: {bound.node_id.to_string()}: {result.StatusCode.name}")
        elif result.Value.Value != ua.NodeClass.Variable:
            device.problems.append(f"{bound.metric}: {bound.node_id.to_string()} is not a variable")
        else:
            device.nodes.append(bound)
    order = {spec.metric: index for index, spec in enumerate(device.profile.nodes)}
    device.problems.sort(key=lambda problem: order.get(problem.split(":", 1)[0], -1))


def _ms(stamp: dt.datetime | None) -> int | None:
    if stamp is None:
        return None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=dt.timezone.utc)
    if stamp <= _EPOCH:                      # OPC UA's "no timestamp" is 1601-01-01
        return None
    return int((stamp - _EPOCH).total_seconds() * 1000)


def value_timestamp(data: ua.DataValue) -> int:
    """Source timestamp if the server sent one, else server timestamp, else now."""
    return _ms(data.SourceTimestamp) or _ms(data.ServerTimestamp) or now_ms()


@dataclass(slots=True)
class Converted:
    reading: Reading
    problem: str = ""        # "" | "bad_status" | "bad_value"


def convert(bound: BoundNode, data: ua.DataValue, ts: int) -> Converted:
    """A reading for one DataValue: Bad status or an unusable value gives quality bad, value None."""
    spec = bound.spec
    status = data.StatusCode or ua.StatusCode(ua.StatusCodes.Good)
    if status.is_bad():
        return Converted(reading(ts, bound.metric, None, spec.unit, Quality.BAD), "bad_status")
    quality = Quality.UNCERTAIN if status.is_uncertain() else Quality.GOOD
    raw = data.Value.Value if data.Value is not None else None
    if isinstance(raw, (bool, str)):
        return Converted(reading(ts, bound.metric, raw, spec.unit, quality))
    if isinstance(raw, (int, float)):
        if isinstance(raw, float) and not math.isfinite(raw):
            return Converted(reading(ts, bound.metric, None, spec.unit, Quality.BAD), "bad_value")
        value = raw if spec.scale == 1.0 and spec.offset == 0.0 else raw * spec.scale + spec.offset
        return Converted(reading(ts, bound.metric, value, spec.unit, quality))
    # Arrays, structures, empty variants: nothing a Reading can carry.
    return Converted(reading(ts, bound.metric, None, spec.unit, Quality.BAD), "bad_value")
