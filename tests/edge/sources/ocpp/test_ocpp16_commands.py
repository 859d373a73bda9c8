"""Commands reach the charger (asserted on what the charge point received), bad ones are rejected
before anything is sent, and modes, limits and tags survive a restart."""

from __future__ import annotations

import pytest

from hinode.contract import Command, CommandStatus
from tests.edge.sources.ocpp.cp16_peer import eventually, now_ms, open_charge_point, readings_of, running_source


def command(name: str, target: str = "CP1", **params) -> Command:
    return Command(id=f"c-{name}", site="s", agent="a", target=target, name=name, params=params,
                   issued_ts=now_ms(), expires_ts=now_ms() + 60_000)


async def _ready(run, cp):
    await eventually(lambda: run.source.chargers["CP1"].link is not None, "CP1 ready")


async def test_each_command_reaches_the_charger(make_ocpp_config):
    async with running_source(make_ocpp_config()) as run:
        async with open_charge_point(run.source.port, "CP1", "pw-CP1") as cp:
            await _ready(run, cp)
            handle = run.source.handle_command

            outcome = await handle(command("set_current_limit", amps=11.6, connector=2), "CP1")
            assert outcome.status == CommandStatus.DONE, outcome
            sent = cp.got("SetChargingProfile")[-1]
            assert sent["connector_id"] == 2
            period = sent["cs_charging_profiles"]["charging_schedule"]["charging_schedule_period"][0]
            assert float(period["limit"]) == 11.6
            outcome = await handle(command("set_current_limit", amps=10.55, connector=1), "CP1")
            assert outcome.status == CommandStatus.DONE, outcome
            profile = cp.got("SetChargingProfile")[-1]
            assert profile["connector_id"] == 1
            cs = profile["cs_charging_profiles"]
            assert cs["charging_profile_purpose"] == "TxDefaultProfile" and cs["charging_profile_kind"] == "Absolute"
            schedule = cs["charging_schedule"]
            assert schedule["charging_rate_unit"] == "A" and "start_schedule" in schedule
            assert schedule["charging_schedule_period"] == [{"start_period": 0, "limit": 10.5}]

            assert (await handle(command("remote_start", id_tag="TAG-ANNA", connector=2), "CP1")).status == "done"
            assert cp.got("RemoteStartTransaction")[-1] == {"id_tag": "TAG-ANNA", "connector_id": 2}

            tx = await cp.start_transaction(2, "TAG-ANNA", 0, now_ms())
            assert (await handle(command("remote_stop", connector=2), "CP1")).status == "done"
            assert cp.got("RemoteStopTransaction")[-1] == {"transaction_id": tx}
            assert (await handle(command("remote_stop", transaction_id=str(tx)), "CP1")).status == "done"
            assert len(cp.got("RemoteStopTransaction")) == 2

            assert (await handle(command("reset", hard=True), "CP1")).status == "done"
            assert cp.got("Reset")[-1] == {"type": "Hard"}
            assert (await handle(command("unlock", connector=1), "CP1")).status == "done"
            assert cp.got("UnlockConnector")[-1] == {"connector_id": 1}
            assert (await handle(command("trigger", message="MeterValues", connector=1), "CP1")).status == "done"
            assert cp.got("TriggerMessage")[-1] == {"requested_message": "MeterValues", "connector_id": 1}

            cp.answer_status["Reset"] = "Rejected"
            outcome = await handle(command("reset"), "CP1")
            assert outcome.status == CommandStatus.FAILED and "Rejected" in outcome.message
            assert cp.got("Reset")[-1] == {"type": "Soft"}


@pytest.mark.parametrize("name, params, device, why", [
    ("fly", {}, "CP1", "unknown command"),
    ("set_mode", {"mode": "turbo"}, "CP1", "expected one of off, now, minpv, pv"),
    ("set_mode", {"mode": "pv", "speed": 3}, "CP1", "unknown: speed"),
    ("set_mode", {"mode": "pv"}, None, "targets a charger"),
    ("set_current_limit", {"amps": "lots"}, "CP1", "expected a number"),
    ("set_current_limit", {"amps": 500}, "CP1", "at most 80"),
    ("unlock", {}, "CP1", "'connector' is required"),
    ("reset", {"hard": "yes"}, "CP1", "true or false"),
    ("trigger", {"message": "MakeCoffee"}, "CP1", "MakeCoffee"),
    ("remote_stop", {}, "CP1", "needs param 'connector' or 'transaction_id'"),
    ("site_target", {"power_kw": 20, "until_ts": 1}, None, "no controller section"),
    ("site_target", {"power_kw": 20, "until_ts": 1}, "CP1", "targets source"),
    ("add_tag", {"tag": "X" * 21}, None, "at most 20 characters"),
])
async def test_bad_commands_are_rejected_before_anything_is_sent(make_ocpp_config, name, params, device, why):
    async with running_source(make_ocpp_config()) as run:
        async with open_charge_point(run.source.port, "CP1", "pw-CP1") as cp:
            await _ready(run, cp)
            before = len(cp.received)
            outcome = await run.source.handle_command(command(name, **params), device)
            assert outcome.status == CommandStatus.REJECTED and why in outcome.message, outcome
            assert len(cp.received) == before


async def test_a_charger_not_connected_fails(make_ocpp_config):
    async with running_source(make_ocpp_config()) as run:
        outcome = await run.source.handle_command(command("reset", target="CP2"), "CP2")
        assert outcome.status == CommandStatus.FAILED and "not connected" in outcome.message


async def test_modes_limits_and_tags_survive_a_restart(make_ocpp_config):
    config = make_ocpp_config()
    async with running_source(config) as run:
        handle = run.source.handle_command
        assert (await handle(command("set_mode", mode="minpv"), "CP1")).status == "done"
        assert (await handle(command("set_mode", mode="off", connector=2), "CP1")).status == "done"
        assert (await handle(command("set_current_limit", amps=8), "CP1")).status == "done"    # offline: kept
        assert (await handle(command("set_tags", target="chargers", tags="T-1, T-2,T-3"), None)).status == "done"
        assert (await handle(command("remove_tag", target="chargers", tag="T-2"), None)).status == "done"
        assert (await handle(command("add_tag", tag="T-9"), "CP1")).status == "done"
    async with running_source(config) as run:
        charger = run.source.chargers.get("CP1")
        async with open_charge_point(run.source.port, "CP1", "pw-CP1") as cp:
            await _ready(run, cp)
            charger = run.source.chargers["CP1"]
            assert (charger.mode_of(1), charger.mode_of(2), charger.max_current_of(1)) == ("minpv", "off", 8.0)
            assert [await cp.authorize(t) for t in ("T-1", "T-2", "T-3", "T-9", "TAG-ANNA")] == [
                "Accepted", "Invalid", "Accepted", "Accepted", "Invalid"]       # the config's list was replaced
            await cp.status(2, "Available")
            await cp.status(1, "Available")
            await eventually(lambda: len(readings_of(run.of("CP1"), "mode")) >= 2, "status batches")
            modes = {b.meta["evse"]: {r.metric: r.value for r in b.readings}["mode"] for b in run.of("CP1")}
            assert modes == {"1": "minpv", "2": "off"}
