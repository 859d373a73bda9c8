"""``doctor opcua``: browse a server and draft a node map for the variables under one folder.

The folder's child objects that hold variables are devices (``Objects/Meters/Meter01``); when
the folder holds variables itself, it is the one device. The node map is built from the first
device and written as an OPC UA profile (``{device}`` and ``{ns}`` templated), the source
section lists every device with the same variables, by ``node_name``.
"""

from __future__ import annotations

import argparse
import asyncio
import re
from dataclasses import dataclass
from pathlib import Path

import yaml
from asyncua import Client, Node, ua
from pydantic import SecretStr, ValidationError

from device_profiles.schema import OpcuaProfile, ProfileError, parse_profile
from edge_agent.sources.opcua.config import Config as OpcuaConfig, Security
from edge_agent.sources.opcua.session import ConnectFailed, close_session, open_session
from hinode.contract import METRIC_PATTERN

CHECK = "opcua"
ENERGY_UNITS = {"wh", "kwh", "mwh", "varh", "kvarh", "j", "kj", "mj", "m3", "l"}
_SCALARS = {"Boolean", "SByte", "Byte", "Int16", "UInt16", "Int32", "UInt32", "Int64", "UInt64",
            "Float", "Double", "String", "Number", "Integer", "UInteger"}
_UNIT_IN_DESCRIPTION = re.compile(r"\[([^\[\]]{1,16})\]\s*$")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--endpoint", required=True, help="opc.tcp://host:port/path")
    parser.add_argument("--folder", help="browse path below Objects (e.g. 2:Meters or Meters/Meter01) or a NodeId "
                                         "(ns=2;s=Meters); default: Objects")
    parser.add_argument("--security-policy", choices=("None", "Basic256Sha256"), default="None")
    parser.add_argument("--security-mode", choices=("Sign", "SignAndEncrypt"), default="SignAndEncrypt")
    parser.add_argument("--certificate", type=Path, help="client certificate (DER or PEM)")
    parser.add_argument("--private-key", type=Path, help="its private key")
    parser.add_argument("--username")
    parser.add_argument("--password-file", type=Path, help="file holding the user's password")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds per request")
    parser.add_argument("--max-variables", type=int, default=500, help="stop browsing after this many variables")
    parser.add_argument("--profile-id", default="site-opcua-nodemap", help="id of the drafted node map")
    parser.add_argument("--profile-out", type=Path, default=Path("profiles"),
                        help="folder the drafted node map is written to (default ./profiles)")


@dataclass
class Variable:
    browse_name: ua.QualifiedName
    node_id: ua.NodeId
    data_type: str
    value: object
    unit: str


@dataclass
class DeviceFound:
    name: str                    # browse name of the device object (the node_name)
    path: list[str] | None       # browse path from Objects, "idx:Name" elements; None when unknown
    variables: list[Variable]


def metric_name(browse_name: str) -> str:
    """``VoltageL1`` -> ``voltage_l1``; a name that cannot be made a metric gives ""."""
    text = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", browse_name)
    text = re.sub(r"[^a-z0-9_]+", "_", text.lower()).strip("_")
    if text and not text[0].isalpha():
        text = f"m_{text}"
    return text[:64] if re.match(METRIC_PATTERN, text[:64] or "-") else ""


def _session_config(args: argparse.Namespace) -> OpcuaConfig:
    """The source's own config model, so the connection is made exactly as the source makes it."""
    security = Security.model_validate({"policy": args.security_policy, "mode": args.security_mode,
                                        "certificate": args.certificate, "private_key": args.private_key})
    OpcuaConfig._opc_tcp(args.endpoint)
    password = None
    if args.username:
        if args.password_file is None:
            raise ValueError("--username needs --password-file")
        password = SecretStr(args.password_file.read_text().strip())
    return OpcuaConfig.model_construct(type="opcua", name="doctor", endpoint=args.endpoint, timeout_s=args.timeout,
                                       security=security, username=args.username, password=password, devices=[])


async def _child_by_name(node: Node, element: str) -> Node | None:
    index, sep, name = element.partition(":")
    wanted_ns = int(index) if sep and index.isdigit() else None
    name = name if sep and index.isdigit() else element
    for child in await node.get_children():
        qualified = await child.read_browse_name()
        if qualified.Name == name and wanted_ns in (None, qualified.NamespaceIndex):
            return child
    return None


async def _find_folder(client: Client, folder: str | None) -> tuple[Node, list[str] | None]:
    """The folder node and its browse path from Objects ("idx:Name" elements)."""
    objects = client.nodes.objects
    if not folder:
        return objects, []
    if re.match(r"^(ns=\d+;)?[isgb]=", folder):
        node = client.get_node(folder)
        await node.read_browse_name()          # raises BadNodeIdUnknown when it is not there
        path = await node.get_path()
        ids = [p.nodeid for p in path]
        if objects.nodeid in ids:
            below = path[ids.index(objects.nodeid) + 1:]
            names = [await n.read_browse_name() for n in below]
            return node, [f"{q.NamespaceIndex}:{q.Name}" for q in names]
        return node, None
    node, path = objects, []
    for element in [e for e in folder.split("/") if e]:
        child = await _child_by_name(node, element)
        if child is None:
            raise LookupError(f"no child {element!r} below {'/'.join(['Objects', *path])}")
        qualified = await child.read_browse_name()
        node, path = child, [*path, f"{qualified.NamespaceIndex}:{qualified.Name}"]
    return node, path


async def _unit(node: Node) -> str:
    for prop in await node.get_properties():
        if (await prop.read_browse_name()).Name == "EngineeringUnits":
            info = await prop.read_value()
            text = getattr(getattr(info, "DisplayName", None), "Text", None)
            if text:
                return str(text)
    description = (await node.read_description()).Text or ""
    match = _UNIT_IN_DESCRIPTION.search(description)
    return match.group(1) if match else ""


async def _variables(node: Node, budget: list[int]) -> list[Variable]:
    found = []
    for child in await node.get_children(nodeclassmask=ua.NodeClass.Variable):
        if budget[0] <= 0:
            break
        budget[0] -= 1
        data_type_id = await child.read_data_type()
        data_type = ua.ObjectIdNames.get(data_type_id.Identifier, str(data_type_id)) \
            if data_type_id.NamespaceIndex == 0 else data_type_id.to_string()
        try:
            value = await child.read_value()
        except ua.UaStatusCodeError as exc:
            value = f"<{type(exc).__name__}>"
        found.append(Variable(await child.read_browse_name(), child.nodeid, data_type, value, await _unit(child)))
    return found


async def _devices(folder: Node, folder_path: list[str] | None, budget: list[int]) -> list[DeviceFound]:
    own = await _variables(folder, budget)
    folder_name = (await folder.read_browse_name()).Name
    if own:
        return [DeviceFound(folder_name, folder_path or None, own)]
    devices = []
    for child in await folder.get_children(nodeclassmask=ua.NodeClass.Object):
        qualified = await child.read_browse_name()
        if qualified.NamespaceIndex == 0:         # the server's own objects (Server, Aliases ...)
            continue
        variables = await _variables(child, budget)
        if variables:
            path = None if folder_path is None else [*folder_path, f"{qualified.NamespaceIndex}:{qualified.Name}"]
            devices.append(DeviceFound(qualified.Name, path, variables))
    return devices


def _node_entry(device: DeviceFound, variable: Variable, ns: int) -> dict | None:
    """An OpcuaNode dict with ``{device}``/``{ns}`` templates; None when it cannot be templated."""
    node_id = variable.node_id
    if (node_id.NodeIdType in (ua.NodeIdType.String,) and node_id.NamespaceIndex == ns
            and str(node_id.Identifier).count(device.name) == 1):
        return {"node_id": f"ns={{ns}};s={str(node_id.Identifier).replace(device.name, '{device}')}"}
    if device.path:
        elements = [*device.path, f"{variable.browse_name.NamespaceIndex}:{variable.browse_name.Name}"]
        templated = []
        for position, element in enumerate(elements):
            index, _, name = element.partition(":")
            name = "{device}" if position == len(device.path) - 1 else name
            templated.append(f"{{ns}}:{name}" if int(index) == ns else f"{index}:{name}")
        return {"browse_path": templated}
    return None


def draft_node_map(devices: list[DeviceFound], namespace: str, ns: int, profile_id: str
                   ) -> tuple[dict, list[str]]:
    """The node map (a profile dict) from the first device, and the problems met on the way."""
    problems, nodes, metrics = [], [], set()
    for variable in devices[0].variables:
        label = variable.browse_name.Name
        if variable.data_type not in _SCALARS:
            problems.append(f"{label}: data type {variable.data_type} is not a number, boolean or string; left out")
            continue
        if isinstance(variable.value, (list, tuple)):
            problems.append(f"{label}: holds an array ({variable.data_type}[]); a reading carries one value; left out")
            continue
        metric = metric_name(label)
        if not metric or metric in metrics:
            problems.append(f"{label}: no usable metric name (got {metric!r}); left out")
            continue
        entry = _node_entry(devices[0], variable, ns)
        if entry is None:
            problems.append(f"{label}: its NodeId {variable.node_id.to_string()} cannot be templated and its browse "
                            "path is unknown; left out")
            continue
        metrics.add(metric)
        entry = {"metric": metric, **entry, "unit": variable.unit}
        if variable.unit.lower() in ENERGY_UNITS:
            entry["counter"] = True
        nodes.append(entry)
    profile = {"id": profile_id, "protocol": "opcua", "kind": "meter", "vendor": "unknown (drafted by hinode doctor)",
               "model": f"node map of {devices[0].name}", "source": "hinode doctor opcua (browsed)",
               "namespace": namespace, "nodes": nodes}
    return profile, problems


def _value_text(value: object) -> str:
    text = repr(value) if not isinstance(value, float) else f"{value:g}"
    return text if len(text) <= 40 else text[:37] + "..."


def _device_id(name: str) -> str:
    text = re.sub(r"[^a-z0-9_.-]+", "-", name.lower()).strip("-.") or "device"
    return text[:64]


async def run(args: argparse.Namespace, report) -> None:
    try:
        config = _session_config(args)
    except (ValidationError, ValueError, OSError) as exc:
        report.fail(CHECK, f"options: {exc}")
        return

    async def lost(_exc: Exception) -> None:
        return None

    try:
        client = await open_session(config, lost)
    except ConnectFailed as exc:
        hint = " (doctor options: --security-policy, --security-mode, --certificate, --private-key)" \
            if exc.code == "security" else ""
        report.fail(CHECK, f"{args.endpoint}: {exc}{hint}")
        return
    try:
        await _browse(client, args, report)
    except (ua.UaError, asyncio.TimeoutError, LookupError, OSError) as exc:
        report.fail(CHECK, f"browsing {args.endpoint}: {type(exc).__name__}: {exc}")
    finally:
        await close_session(client, args.timeout)


async def _browse(client: Client, args: argparse.Namespace, report) -> None:
    report.ok(CHECK, f"connected to {args.endpoint} (security {args.security_policy}"
                     f"{'' if args.security_policy == 'None' else '/' + args.security_mode})")
    namespaces = await client.get_namespace_array()
    folder, folder_path = await _find_folder(client, args.folder)
    budget = [args.max_variables]
    devices = await _devices(folder, folder_path, budget)
    where = args.folder or "Objects"
    if budget[0] <= 0:
        report.warn(CHECK, f"stopped after {args.max_variables} variables (--max-variables); choose a narrower --folder")
    if not devices:
        report.fail(CHECK, f"no variables under {where} (nor in the objects directly below it); "
                           "choose another --folder")
        return
    details = []
    for device in devices:
        report.ok(CHECK, f"{device.name}: {len(device.variables)} variable(s)")
        for v in device.variables:
            details.append({"device": device.name, "name": v.browse_name.Name, "node_id": v.node_id.to_string(),
                            "data_type": v.data_type, "value": _value_text(v.value), "unit": v.unit})
    report.details[CHECK] = {"endpoint": args.endpoint, "folder": where, "variables": details}
    for row in details[:len(devices[0].variables)]:
        report.ok(CHECK, f"  {row['name']}  {row['node_id']}  {row['data_type']}  = {row['value']}"
                         f"{' ' + row['unit'] if row['unit'] else ''}")

    ns = devices[0].variables[0].node_id.NamespaceIndex
    profile_data, problems = draft_node_map(devices, namespaces[ns], ns, args.profile_id)
    for problem in problems:
        report.warn(CHECK, problem)
    if not profile_data["nodes"]:
        report.fail(CHECK, "no variable could go into a node map")
        return
    try:
        profile = parse_profile(profile_data, f"{args.profile_id}.yaml")
    except ProfileError as exc:
        report.fail(CHECK, f"drafted node map is not valid: {exc}")
        return
    wanted = {v.browse_name.Name for v in devices[0].variables}
    same = [d for d in devices if {v.browse_name.Name for v in d.variables} >= wanted]
    for device in devices:
        if device not in same:
            report.warn(CHECK, f"{device.name}: has other variables than {devices[0].name}; not in the draft "
                               "(browse it with --folder for its own node map)")
    path = _write_profile(profile, args.profile_out)
    report.ok(CHECK, f"node map {profile.id} with {len(profile.nodes)} node(s) written to {path}")
    report.suggest_source({
        "type": "opcua", "name": "opcua", "endpoint": args.endpoint,
        **({"security": {"policy": args.security_policy, "mode": args.security_mode,
                         "certificate": str(args.certificate.resolve()),
                         "private_key": str(args.private_key.resolve())}}
           if args.security_policy != "None" else {}),
        "devices": [{"id": _device_id(d.name), "profile": str(path), "node_name": d.name} for d in same],
    })


def _write_profile(profile: OpcuaProfile, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = (folder / f"{profile.id}.yaml").resolve()
    data = profile.model_dump(mode="json", exclude_defaults=True)
    data.update({"id": profile.id, "protocol": "opcua"})
    path.write_text("# Drafted by `hinode doctor opcua`: check metric names, units and counters.\n"
                    + yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    return path
