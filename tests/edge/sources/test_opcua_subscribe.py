"""OPC UA source in subscribe mode against a real asyncua server (tests/edge/sources/opcua_peer.py)."""

from __future__ import annotations

import asyncio
import time

import pytest
from asyncua import ua
from asyncua.server.monitored_item_service import MonitoredItemService

from hinode.contract import Quality

from tests.edge.sources.opcua_peer import METRICS, MeterPeer, Run, section

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(30)]


async def test_two_devices_deliver_changing_values_batched_per_cycle(peer):
    async with Run(section(peer.endpoint)) as run:
        await run.wait_for(lambda: len(run.values("M1", "voltage_l1")) >= 10 and len(run.values("M2", "voltage_l1")) >= 10,
                           5, "10 voltage readings from each meter")
        for device in ("M1", "M2"):
            assert run.online(device)
            batches = run.of(device)
            assert all(b.kind == "meter" and b.profile == "hinode-sim-meter-opcua" for b in batches)
            # every metric of the node map arrives, the browse-path one (energy_import) included
            assert {r.metric for b in batches for r in b.readings} == METRICS
            for batch in batches:
                metrics = [r.metric for r in batch.readings]
                assert len(metrics) == len(set(metrics)), "one batch never holds two updates of a metric"
            voltages = run.values(device, "voltage_l1")
            assert len({r.value for r in voltages}) >= 3, "values change"
            # source timestamps: recent, and each update keeps its own (increasing per metric)
            stamps = [r.ts for r in voltages]
            assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
            assert abs(stamps[-1] - time.time() * 1000) < 5000
            assert all(r.quality is Quality.GOOD and r.unit == "V" for r in voltages)
        # the server writes every 50 ms and publishes every 100 ms, so cycles carry two updates
        # of a metric: those become separate batches of the same cycle, not a mixed one
        assert len(run.of("M1")) > len({r.ts for r in run.values("M1", "voltage_l1")}) / 2
        assert run.values("M2", "voltage_l1")[-1].value != run.values("M1", "voltage_l1")[-1].value
        assert not run.context.errors


async def test_absolute_deadband_suppresses_small_changes(peer):
    peer.updating = False
    plain = Run(section(peer.endpoint, devices=("M1",), name="plain"))
    banded = Run(section(peer.endpoint, devices=("M1",), name="banded", deadband={"type": "absolute", "value": 0.5}))
    async with plain, banded:
        await plain.wait_for(lambda: plain.values("M1", "voltage_l1"), 5, "initial value")
        await banded.wait_for(lambda: banded.values("M1", "voltage_l1"), 5, "initial value")
        await peer.write("M1", "VoltageL1", 230.0)
        await banded.wait_for(lambda: banded.values("M1", "voltage_l1")[-1].value == 230.0, 3, "the base value")
        start = len(banded.values("M1", "voltage_l1"))
        for value in (230.1, 230.2, 230.3, 230.4, 236.0):
            await peer.write("M1", "VoltageL1", value)
            # one write per publishing cycle: the plain subscription reports each before the next
            await plain.wait_for(lambda v=value: plain.values("M1", "voltage_l1")[-1].value == v, 3, f"{value} (plain)")
        await banded.wait_for(lambda: banded.values("M1", "voltage_l1")[-1].value == 236.0, 3, "the big step (deadband)")
        assert [r.value for r in plain.values("M1", "voltage_l1")][-5:] == [230.1, 230.2, 230.3, 230.4, 236.0]
        banded_values = [r.value for r in banded.values("M1", "voltage_l1")][start:]
        assert banded_values == [236.0], "changes under 0.5 V are not reported, the 5.6 V step is"
        assert banded.errors("M1", "deadband_unsupported") == 0


async def test_bad_status_gives_bad_readings_for_that_device_only(peer):
    async with Run(section(peer.endpoint, watchdog_s=5.0)) as run:
        await run.wait_for(lambda: run.online("M1") and run.online("M2"), 5, "both meters online")
        await peer.set_bad("M2")
        await run.wait_for(lambda: (v := run.values("M2", "voltage_l1")) and v[-1].quality is Quality.BAD, 3, "M2 Bad")
        bad = [r for b in run.of("M2")[-1:] for r in b.readings]
        assert bad and all(r.quality is Quality.BAD and r.value is None for r in bad)
        assert run.errors("M2", "bad_status") >= len(METRICS)
        m1_before = len(run.values("M1", "voltage_l1"))
        await run.wait_for(lambda: len(run.values("M1", "voltage_l1")) > m1_before + 3, 3,
                           "M1 still delivering while M2 is Bad")
        assert all(r.quality is Quality.GOOD for r in run.values("M1", "voltage_l1"))
        assert run.errors("M1", "bad_status") == 0 and run.online("M1")
        # Uncertain is passed on as uncertain, with its value
        peer.set_good("M2")
        await peer.write("M2", "Frequency", 49.9, ua.StatusCode(ua.StatusCodes.UncertainLastUsableValue))
        await run.wait_for(lambda: any(r.quality is Quality.UNCERTAIN and r.value == 49.9
                                       for r in run.values("M2", "frequency")), 3, "uncertain frequency")
        await run.wait_for(lambda: (v := run.values("M2", "voltage_l1")) and v[-1].quality is Quality.GOOD, 3,
                           "M2 good again")
        assert run.errors("_source", "resubscribe") == 0


async def test_missing_nodes_take_only_their_device_offline(peer):
    devices = ("M1", {"id": "press-7", "profile": "hinode-sim-meter-opcua", "node_name": "M2"},
               {"id": "M9", "profile": "hinode-sim-meter-opcua"})
    async with Run(section(peer.endpoint, devices=devices)) as run:
        await run.wait_for(lambda: run.online("M1") and run.online("press-7"), 5, "M1 and press-7 online")
        await asyncio.sleep(0.3)     # a negative check: M9 stays offline and sends nothing while the others run
        assert not run.online("M9") and not run.of("M9")
        health = run.context.devices["M9"]
        assert health.error.startswith("bad_node: 13 of 13 nodes unusable: voltage_l1: ns=2;s=M9.VoltageL1: BadNodeIdUnknown")
        assert run.errors("M9", "bad_node") >= 1
        # node_name maps a site device id onto the server's name for it
        assert {r.metric for b in run.of("press-7") for r in b.readings} == METRICS
        assert run.errors("M1", "bad_node") == run.errors("press-7", "bad_node") == 0


async def test_one_missing_node_in_a_device_is_named(peer, tmp_path):
    profile = (tmp_path / "partial-meter.yaml")
    profile.write_text("""
id: partial-meter
protocol: opcua
vendor: test
model: meter with one node the server lacks
source: test
namespace: urn:hinode:simulators:meters
nodes:
  - {metric: voltage_l1, node_id: "ns={ns};s={device}.VoltageL1", unit: V}
  - {metric: reactive_power, node_id: "ns={ns};s={device}.ReactivePower", unit: var}
""")
    async with Run(section(peer.endpoint, devices=("M1", {"id": "M2", "profile": str(profile)}))) as run:
        await run.wait_for(lambda: run.online("M1") and run.errors("M2", "bad_node"), 5, "M1 online, M2 bad_node")
        assert run.context.devices["M2"].error == (
            "bad_node: 1 of 2 nodes unusable: reactive_power: ns=2;s=M2.ReactivePower: BadNodeIdUnknown")
        assert not run.of("M2")


async def test_deadband_the_server_refuses_falls_back_to_plain_monitoring(peer, monkeypatch):
    # Servers must refuse a percent deadband on nodes without an EURange
    # (BadMonitoredItemFilterUnsupported); asyncua's server accepts and ignores it, so
    # this test makes the real server answer the way such servers do.
    create = MonitoredItemService._create_data_change_monitored_item

    async def refuse_percent(service, params):
        mfilter = params.RequestedParameters.Filter
        if getattr(mfilter, "DeadbandType", None) == ua.DeadbandType.Percent:
            return ua.MonitoredItemCreateResult(
                StatusCode=ua.StatusCode(ua.StatusCodes.BadMonitoredItemFilterUnsupported))
        return await create(service, params)

    monkeypatch.setattr(MonitoredItemService, "_create_data_change_monitored_item", refuse_percent)
    async with Run(section(peer.endpoint, deadband={"type": "percent", "value": 2})) as run:
        await run.wait_for(lambda: len(run.values("M1", "voltage_l1")) >= 5 and len(run.values("M2", "voltage_l1")) >= 5,
                           5, "values monitored without the refused deadband")
        assert run.errors("M1", "deadband_unsupported") == len(METRICS)
        assert run.errors("M2", "deadband_unsupported") == len(METRICS)
        assert run.online("M1") and run.errors("M1", "bad_node") == 0
