"""``doctor opcua`` against the OPC UA meter simulator: browse, draft a node map, check the draft with check-config,
and read the meters through the drafted node map with the source's own node resolution."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import pytest
import yaml
from asyncua import Client

from device_profiles.schema import load_profile_file
from edge_agent.doctor import cli
from edge_agent.sources.opcua.config import Device
from edge_agent.sources.opcua.nodes import DeviceNodes, resolve_device
from hinode import services
from simulators.opcua import OpcuaSimulator


@pytest.fixture(scope="module")
def endpoint():
    """``python -m simulators opcua``, values held still (one refresh an hour) so a read can be compared."""
    port = services.free_port()
    proc = subprocess.Popen([sys.executable, "-m", "simulators", "opcua", "--port", str(port), "--meters", "3",
                             "--interval", "3600"], stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert "OPC UA simulator" in line, line
        yield f"opc.tcp://127.0.0.1:{port}/hinode/"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def doctor(capsys, *argv: str) -> tuple[int, str]:
    status = cli.main(["opcua", *argv])
    return status, capsys.readouterr().out


def test_draft_node_map_for_the_meters_folder_passes_check_config(endpoint, tmp_path, capsys):
    draft = tmp_path / "site.yaml"
    status, out = doctor(capsys, "--endpoint", endpoint, "--folder", "Meters", "--profile-out",
                         str(tmp_path / "profiles"), "--profile-id", "hall-b-meters", "--draft", str(draft))
    assert status == 0, out
    for meter in ("Meter01", "Meter02", "Meter03"):
        assert f"OK   {meter}: 13 variable(s)" in out
    assert "VoltageL1  ns=2;s=Meter01.VoltageL1  Double" in out
    assert "(passes check-config)" in out

    profile = load_profile_file(tmp_path / "profiles" / "hall-b-meters.yaml")
    nodes = {node.metric: node for node in profile.nodes}
    assert profile.namespace == "urn:hinode:simulators:meters"
    assert nodes["voltage_l1"].node_id == "ns={ns};s={device}.VoltageL1"
    assert nodes["energy_import"].counter and nodes["power_total"].unit == "W"

    checked = subprocess.run([sys.executable, "-m", "edge_agent", "check-config", str(draft)],
                             capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    source = yaml.safe_load(draft.read_text())["sources"][0]
    assert source["endpoint"] == endpoint
    assert [(d["id"], d["node_name"]) for d in source["devices"]] == [
        ("meter01", "Meter01"), ("meter02", "Meter02"), ("meter03", "Meter03")]


def test_drafted_node_map_reads_what_the_doctor_listed(endpoint, tmp_path, capsys):
    """The node map is not just valid: the source's own resolution finds every node of another meter, and
    reading them gives the values the doctor listed for that meter."""
    status, out = doctor(capsys, "--endpoint", endpoint, "--folder", "2:Meters", "--profile-out", str(tmp_path),
                         "--json")
    assert status == 0, out
    listed = {row["name"]: row["value"] for row in json.loads(out)["details"]["opcua"]["variables"]
              if row["device"] == "Meter02"}

    async def read_meter02():
        profile = load_profile_file(tmp_path / "site-opcua-nodemap.yaml")
        device = Device.model_construct(id="meter02", profile=str(tmp_path), node_name="Meter02")
        nodes = DeviceNodes(device, profile)
        async with Client(endpoint) as client:
            await resolve_device(client, nodes, await client.get_namespace_array())
            values = {}
            for bound in nodes.nodes:
                name = (await client.get_node(bound.node_id).read_browse_name()).Name
                values[name] = await client.get_node(bound.node_id).read_value()
        return nodes, values

    nodes, values = asyncio.run(read_meter02())
    assert nodes.problems == [] and len(nodes.nodes) == 13
    assert {name: f"{value:g}" for name, value in values.items()} == listed


def test_folder_that_is_one_device_and_wrong_folder(endpoint, tmp_path, capsys):
    status, out = doctor(capsys, "--endpoint", endpoint, "--folder", "Meters/Meter02", "--profile-out", str(tmp_path))
    assert status == 0 and "OK   Meter02: 13 variable(s)" in out and "Meter01" not in out

    status, out = doctor(capsys, "--endpoint", endpoint, "--folder", "Nowhere", "--profile-out", str(tmp_path))
    assert status == 1 and "FAIL browsing" in out and "no child 'Nowhere' below Objects" in out


def test_security_mismatch_and_unreachable_server_are_findings(tmp_path, capsys):
    async def against_secured_server():
        async with OpcuaSimulator(meters=1, port=0, security="Basic256Sha256", cert_dir=tmp_path / "sim") as sim:
            return await asyncio.to_thread(cli.main, ["opcua", "--endpoint", sim.endpoint])

    status = asyncio.run(against_secured_server())
    out = capsys.readouterr().out
    assert status == 1
    assert "FAIL" in out and "offers no endpoint with security None/None" in out and "Basic256Sha256" in out

    status = cli.main(["opcua", "--endpoint", "opc.tcp://127.0.0.1:1/x", "--timeout", "1"])
    out = capsys.readouterr().out
    assert status == 1 and "FAIL opc.tcp://127.0.0.1:1/x: cannot reach" in out and "Traceback" not in out


def test_numeric_node_ids_and_engineering_units(tmp_path, capsys):
    """A PLC-like server: numeric NodeIds (the map uses browse paths), units in EngineeringUnits, a structure
    variable left out; the drafted map resolves on that server."""
    from asyncua import Server, ua

    async def scenario():
        server = Server()
        await server.init()
        server.set_endpoint(f"opc.tcp://127.0.0.1:{services.free_port()}/plc/")
        ns = await server.register_namespace("urn:example:press-line")
        line = await server.nodes.objects.add_folder(ns, "Line")
        for press in ("PressA", "PressB"):
            obj = await line.add_object(ns, press)
            for name, unit, value in (("MotorPower", "kW", 12.5), ("EnergyCounter", "kWh", 4711.0)):
                var = await obj.add_variable(ns, name, value)
                units = ua.EUInformation(NamespaceUri="http://www.opcfoundation.org/UA/units/un/cefact",
                                         DisplayName=ua.LocalizedText(unit), Description=ua.LocalizedText(unit))
                await var.add_property(ns, "EngineeringUnits", units)
            await obj.add_variable(ns, "Recipe", ua.Variant([1, 2, 3], ua.VariantType.Int32))
        async with server:
            endpoint = server.endpoint.geturl()
            status = await asyncio.to_thread(cli.main, ["opcua", "--endpoint", endpoint, "--folder", "Line",
                                                        "--profile-out", str(tmp_path)])
            profile = load_profile_file(tmp_path / "site-opcua-nodemap.yaml")
            device = Device.model_construct(id="press-b", profile=str(tmp_path), node_name="PressB")
            nodes = DeviceNodes(device, profile)
            async with Client(endpoint) as client:
                await resolve_device(client, nodes, await client.get_namespace_array())
            return status, profile, nodes

    status, profile, nodes = asyncio.run(scenario())
    out = capsys.readouterr().out
    assert status == 0, out
    assert "MotorPower" in out and "Double  = 12.5 kW" in out
    assert "WARN Recipe: holds an array (Int32[])" in out
    assert "recipe" not in {node.metric for node in profile.nodes}
    by_metric = {node.metric: node for node in profile.nodes}
    assert by_metric["motor_power"].browse_path == ["{ns}:Line", "{ns}:{device}", "{ns}:MotorPower"]
    assert by_metric["motor_power"].unit == "kW" and by_metric["energy_counter"].counter
    assert nodes.problems == [] and {b.metric for b in nodes.nodes} >= {"motor_power", "energy_counter"}
