"""OPC UA simulator read by a real asyncua client through the node map's node ids and browse paths."""

from __future__ import annotations

import asyncio

import pytest
from asyncua import Client, ua

from device_profiles.schema import load_profile
from simulators.opcua import OpcuaSimulator

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]
NODE_MAP = load_profile("hinode-sim-meter-opcua")


async def read_by_node_map(client: Client, device: str) -> dict[str, float]:
    ns = await client.get_namespace_index(NODE_MAP.namespace)
    out = {}
    for node in NODE_MAP.nodes:
        if node.node_id:
            target = client.get_node(node.node_id.format(ns=ns, device=device))
        else:
            target = await client.nodes.objects.get_child([p.format(ns=ns, device=device) for p in node.browse_path])
        out[node.metric] = await target.read_value()
    return out


async def read_until(node, accept, what: str, timeout: float = 5.0):
    """The node's first data value ``accept`` takes, read every 50 ms."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not accept(value := await node.read_data_value()):
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what} (last: {value})"
        await asyncio.sleep(0.05)
    return value


async def test_values_by_node_id_and_browse_path_match_the_simulator():
    async with OpcuaSimulator(meters=3, port=0, interval=60) as sim:
        assert sim.endpoint == f"opc.tcp://127.0.0.1:{sim.port}/hinode/"
        async with Client(sim.endpoint, timeout=5) as client:
            ns = await client.get_namespace_index("urn:hinode:simulators:meters")
            meters = await client.nodes.objects.get_child([f"{ns}:Meters"])
            names = sorted([(await child.read_browse_name()).Name for child in await meters.get_children()])
            readings = {device: await read_by_node_map(client, device) for device in names}
            # every variable is reachable both ways
            by_path = await client.nodes.objects.get_child([f"{ns}:Meters", f"{ns}:Meter02", f"{ns}:VoltageL1"])
            assert by_path.nodeid == ua.NodeId("Meter02.VoltageL1", ns)
            energy = client.get_node(f"ns={ns};s=Meter02.EnergyImport")
            assert await energy.read_value() == readings["Meter02"]["energy_import"]
        assert names == ["Meter01", "Meter02", "Meter03"]
        for device in names:
            assert readings[device] == sim.values(device)
        v = readings["Meter01"]
        assert v["power_total"] == pytest.approx(v["power_l1"] + v["power_l2"] + v["power_l3"])
        assert v["power_l2"] == pytest.approx(v["voltage_l2"] * v["current_l2"] * v["power_factor"])
        assert readings["Meter01"] != readings["Meter02"]


async def test_freeze_stops_changes_and_bad_status_marks_one_device():
    async with OpcuaSimulator(meters=2, port=0, interval=0.2) as sim:
        async with Client(sim.endpoint, timeout=5) as client:
            ns = await client.get_namespace_index(NODE_MAP.namespace)
            volts1 = client.get_node(f"ns={ns};s=Meter01.VoltageL1")
            volts2 = client.get_node(f"ns={ns};s=Meter02.VoltageL1")

            first = await volts1.read_data_value()
            await read_until(volts1, lambda v: v.SourceTimestamp > first.SourceTimestamp, "a republished value")

            sim.freeze(True)
            await asyncio.sleep(0.3)        # a refresh already under way finishes writing before the frozen read
            frozen = await volts1.read_data_value()
            await asyncio.sleep(0.6)        # a negative check: three refresh intervals pass without a change
            still = await volts1.read_data_value()
            assert still.Value.Value == frozen.Value.Value == sim.values("Meter01")["voltage_l1"]
            assert still.SourceTimestamp == frozen.SourceTimestamp
            sim.freeze(False)
            await read_until(volts1, lambda v: v.SourceTimestamp > still.SourceTimestamp, "values live again")

            await sim.set_bad_status("Meter02", True)
            bad = await volts2.read_data_value(raise_on_bad_status=False)
            assert bad.StatusCode.value == ua.StatusCodes.BadSensorFailure
            with pytest.raises(ua.UaStatusCodeError):
                await volts2.read_value()
            assert (await volts1.read_data_value()).StatusCode.is_good()
            await asyncio.sleep(0.5)        # stays Bad across refreshes
            assert not (await volts2.read_data_value(raise_on_bad_status=False)).StatusCode.is_good()
            await sim.set_bad_status("Meter02", False)
            assert (await volts2.read_data_value()).StatusCode.is_good()
        with pytest.raises(KeyError, match="Meter09"):
            sim.set_bad_status("Meter09", True)
        with pytest.raises(KeyError, match="Meter09"):
            sim.values("Meter09")
