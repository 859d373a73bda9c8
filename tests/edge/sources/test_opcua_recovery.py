"""OPC UA source recovery: server restarts, silent subscriptions, Bad-only data, late servers.

These are the failures users of other gateways report (ThingsBoard GW #1641/#2028/#2093,
Telegraf #19186, node-opcua#1059); each test injects one into a real asyncua server.
"""

from __future__ import annotations

import time

import pytest

from hinode.contract import Quality

from tests.edge.sources.opcua_peer import MeterPeer, Run, free_port, section

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(40)]


def fresh(run: Run, device: str, after: int) -> list:
    """voltage_l1 readings that arrived after the first ``after`` ones."""
    return run.values(device, "voltage_l1")[after:]


def written_after(run: Run, device: str, since_ms: float) -> list:
    """voltage_l1 readings the server wrote after ``since_ms`` (their source timestamp)."""
    return [r for r in run.values(device, "voltage_l1") if r.ts > since_ms]


@pytest.mark.parametrize("mode", ["subscribe", "poll"])
async def test_server_restart_on_same_port_reconnects_and_renumbered_nodes_flow_again(peer, mode):
    async with Run(section(peer.endpoint, mode=mode)) as run:
        await run.wait_for(lambda: run.online("M1") and run.online("M2"), 5, "both meters online")
        assert peer.ns == 2
        await peer.stop()
        await run.wait_for(lambda: not run.online("M1") and not run.online("M2"), 3, "meters offline while down")
        assert run.context.devices["M1"].error.startswith("connection lost")
        await run.wait_for(lambda: run.errors("_source", "connect") >= 1, 3,
                           "a refused attempt while the server is away")
        seen = {d: len(run.values(d, "voltage_l1")) for d in ("M1", "M2")}
        # the restarted server registers other namespaces first: ours moves from index 2 to 4,
        # so the old NodeIds (ns=2;s=M1.VoltageL1) no longer exist there
        await peer.start(shift_namespace=2)
        assert peer.ns == 4
        await run.wait_for(lambda: all(len(fresh(run, d, seen[d])) >= 5 for d in ("M1", "M2")), 10,
                           "values flowing again after the restart")
        assert run.errors("_source", "reconnect") == 1
        assert run.online("M1") and run.online("M2")
        assert len({r.value for r in fresh(run, "M1", seen["M1"])}) >= 2
        assert run.errors("M1", "bad_node") == 0
        states = [(online, error.split(":")[0]) for device, online, error in run.transitions if device == "M1"]
        lost_at = states.index((False, "connection lost"))
        assert (True, "") in states[:lost_at] and states[-1] == (True, "")


async def test_watchdog_recreates_a_subscription_the_server_dropped_silently(peer):
    async with Run(section(peer.endpoint, watchdog_s=1.0)) as run:
        await run.wait_for(lambda: len(run.values("M1", "voltage_l1")) >= 5, 5, "data flowing")
        assert await peer.drop_subscriptions() == 1
        # values written after the drop reach the client only through a new subscription (the
        # server stamps each write with this process's clock)
        dropped_ms = time.time() * 1000
        await run.wait_for(lambda: run.errors("_source", "resubscribe") >= 1, 4, "the watchdog to resubscribe")
        await run.wait_for(lambda: all(len(written_after(run, d, dropped_ms)) >= 5 for d in ("M1", "M2")), 4,
                           "data after the resubscribe")
        assert run.errors("_source", "reconnect") == 0, "the session was fine; only the subscription was gone"
        assert run.online("M1") and run.online("M2")


async def test_watchdog_resubscribes_when_values_freeze_and_data_resumes(peer):
    async with Run(section(peer.endpoint, watchdog_s=1.0)) as run:
        await run.wait_for(lambda: len(run.values("M1", "voltage_l1")) >= 5, 5, "data flowing")
        peer.updating = False
        # the frozen values are in once energy_import (unique per update) shows the last one
        last = {"voltage_l1": peer.value("M1", "VoltageL1"), "energy_import": peer.value("M1", "EnergyImport")}
        await run.wait_for(lambda: all(run.values("M1", m)[-1].value == v for m, v in last.items()), 2,
                           "the frozen values")
        frozen = len(run.values("M1", "voltage_l1"))
        await run.wait_for(lambda: run.errors("_source", "resubscribe") >= 1, 4, "the watchdog to resubscribe")
        # a re-created subscription sends every item's current value once
        await run.wait_for(lambda: len(fresh(run, "M1", frozen)) >= 1, 2, "initial values of the new subscription")
        assert len({r.value for r in fresh(run, "M1", frozen)}) == 1
        peer.updating = True
        resumed = len(run.values("M1", "voltage_l1"))
        await run.wait_for(lambda: len({r.value for r in fresh(run, "M1", resumed)}) >= 3, 3, "changing values again")
        assert run.errors("_source", "reconnect") == 0
        assert run.online("M1") and run.online("M2")


async def test_bad_only_data_for_longer_than_the_watchdog_resubscribes(peer):
    async with Run(section(peer.endpoint, watchdog_s=1.0)) as run:
        await run.wait_for(lambda: run.online("M1") and run.online("M2"), 5, "both meters online")
        await peer.set_bad("M1")
        await peer.set_bad("M2")
        await run.wait_for(lambda: run.errors("_source", "resubscribe") >= 1, 4, "a resubscribe after Bad-only data")
        assert run.values("M1", "voltage_l1")[-1].quality is Quality.BAD
        peer.set_good("M1")
        peer.set_good("M2")
        await run.wait_for(lambda: run.values("M1", "voltage_l1")[-1].quality is Quality.GOOD
                           and run.values("M2", "voltage_l1")[-1].quality is Quality.GOOD, 3, "good values again")
        assert run.errors("_source", "reconnect") == 0


async def test_server_that_appears_late_is_picked_up():
    port = free_port()
    meters = MeterPeer(("M1",), port=port)
    async with Run(section(meters.endpoint, devices=("M1",))) as run:
        assert not run.online("M1")
        assert run.context.devices["M1"].error.startswith(f"connect: cannot reach {meters.endpoint}")
        assert run.errors("_source", "connect") >= 1
        await meters.start()
        try:
            await run.wait_for(lambda: len(run.values("M1", "voltage_l1")) >= 3, 8, "data once the server is up")
            assert run.online("M1")
            assert run.errors("_source", "reconnect") == 0, "a first session is no reconnect"
        finally:
            await meters.stop()


async def test_a_recreated_subscription_that_stays_silent_escalates_to_a_reconnect(peer):
    async with Run(section(peer.endpoint, watchdog_s=1.0)) as run:
        await run.wait_for(lambda: len(run.values("M1", "voltage_l1")) >= 5, 5, "data flowing")
        peer.mute_publishing()          # keep-alives only, also for subscriptions created from now on
        await run.wait_for(lambda: run.errors("_source", "resubscribe") >= 1, 4, "a resubscribe")
        await run.wait_for(lambda: run.errors("_source", "reconnect") >= 1, 4, "the escalation to a reconnect")
        assert run.errors("_source", "resubscribe") == 1, "escalated after the first silent re-creation"
        await peer.unmute_publishing()
        resumed = len(run.values("M1", "voltage_l1"))
        await run.wait_for(lambda: len({r.value for r in fresh(run, "M1", resumed)}) >= 3, 5, "data after unmuting")
        assert run.online("M1") and run.online("M2")
