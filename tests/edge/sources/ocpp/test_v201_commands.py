"""OCPP 2.0.1 handler as a :class:`ChargerLink`: what each call makes the station receive, and
what the caller gets back."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

import pytest
from ocpp.v201 import call

from edge_agent.sources.ocpp.model import Limit, RateUnit
from tests.edge.sources.ocpp.v201_peer import FAST, Csms, eventually, ms

pytestmark = pytest.mark.timeout(30)

BOTH_UNITS = {"SmartChargingCtrlr.RateUnit": "A,W"}


def schedule_of(profile: dict) -> dict:
    [schedule] = profile["charging_schedule"]
    return schedule


async def test_limits_in_amps_and_watts_reach_the_station_as_tx_default_profiles():
    async with Csms() as csms:
        peer, link = await csms.booted(device_model=BOTH_UNITS)
        sent_at = time.time() * 1000
        assert await link.set_limit(1, Limit(16.27, RateUnit.AMPS, phases=3)) == "Accepted"
        assert await link.set_limit(0, Limit(11000.6, RateUnit.WATTS)) == "Accepted"
        assert await link.set_limit(1, Limit(10, RateUnit.AMPS, phases=1)) == "Accepted"

        first, station_wide, replaced = peer.requests["SetChargingProfile"]
        assert first["evse_id"] == 1
        profile = first["charging_profile"]
        assert (profile["charging_profile_purpose"], profile["charging_profile_kind"], profile["stack_level"]) == (
            "TxDefaultProfile", "Absolute", 1)
        assert "transaction_id" not in profile
        schedule = schedule_of(profile)
        assert schedule["id"] == profile["id"]
        assert schedule["charging_rate_unit"] == "A"
        assert schedule["charging_schedule_period"] == [{"start_period": 0, "limit": 16.2, "number_phases": 3}]
        # starts a minute before it was sent (a station clock slightly behind still applies it)
        assert sent_at - 62_000 <= ms(schedule["start_schedule"]) <= sent_at - 58_000

        assert station_wide["evse_id"] == 0
        assert schedule_of(station_wide["charging_profile"])["charging_rate_unit"] == "W"
        assert schedule_of(station_wide["charging_profile"])["charging_schedule_period"] == [
            {"start_period": 0, "limit": 11000.0}]                 # no phases given: the station's default
        # a new limit for the same EVSE replaces the profile: same id
        assert replaced["charging_profile"]["id"] == profile["id"] != station_wide["charging_profile"]["id"]
        assert schedule_of(replaced["charging_profile"])["charging_schedule_period"] == [
            {"start_period": 0, "limit": 10.0, "number_phases": 1}]


async def test_watts_are_converted_for_an_amps_only_station_and_relative_kind():
    async with Csms() as csms:
        peer, link = await csms.booted(device_model={"SmartChargingCtrlr.RateUnit": "A"})
        link.schedule_kind = "Relative"
        assert await link.set_limit(1, Limit(4140, RateUnit.WATTS, phases=1)) == "Accepted"
        assert await link.set_limit(1, Limit(11000, RateUnit.WATTS, phases=3)) == "Accepted"
        one_phase, three_phase = (schedule_of(r["charging_profile"]) for r in peer.requests["SetChargingProfile"])
        assert one_phase["charging_rate_unit"] == "A"
        assert one_phase["charging_schedule_period"] == [{"start_period": 0, "limit": 18.0, "number_phases": 1}]
        # 11000 / (230 · 3) = 15.94… A, truncated to 0.1 A
        assert three_phase["charging_schedule_period"] == [{"start_period": 0, "limit": 15.9, "number_phases": 3}]
        assert "start_schedule" not in three_phase
        assert peer.requests["SetChargingProfile"][0]["charging_profile"]["charging_profile_kind"] == "Relative"


async def test_tx_profile_names_the_running_transaction():
    async with Csms() as csms:
        peer, link = await csms.booted(device_model=BOTH_UNITS)
        assert await link.set_limit(1, Limit(6, RateUnit.AMPS), tx_profile=True) == "Rejected"   # nothing runs
        assert not peer.requests["SetChargingProfile"]
        await peer.call(call.TransactionEvent(
            event_type="Started", timestamp="2026-11-29T08:00:00Z", trigger_reason="CablePluggedIn", seq_no=0,
            transaction_info={"transaction_id": "tx-7"}, evse={"id": 1}))
        assert await link.set_limit(1, Limit(6, RateUnit.AMPS), tx_profile=True) == "Accepted"
        [sent] = peer.requests["SetChargingProfile"]
        profile = sent["charging_profile"]
        assert (profile["charging_profile_purpose"], profile["transaction_id"]) == ("TxProfile", "tx-7")

        assert await link.clear_limit(1) == "Accepted"
        [cleared] = peer.requests["ClearChargingProfile"]
        assert cleared == {"charging_profile_criteria": {"evse_id": 1, "stack_level": 1}}


async def test_commands_reach_the_station_and_return_its_answer():
    async with Csms() as csms:
        peer, link = await csms.booted()
        assert await link.remote_start(1, "04A1B2C3") == "Accepted"
        assert await link.remote_start(0, "employee-17") == "Accepted"
        rfid, central = peer.requests["RequestStartTransaction"]
        assert rfid == {"id_token": {"id_token": "04A1B2C3", "type": "ISO14443"}, "remote_start_id": 1, "evse_id": 1}
        assert central == {"id_token": {"id_token": "employee-17", "type": "Central"}, "remote_start_id": 2}

        assert await link.remote_stop("tx-42") == "Accepted"
        assert peer.requests["RequestStopTransaction"] == [{"transaction_id": "tx-42"}]
        assert await link.reset(hard=True) == "Accepted"
        assert await link.reset() == "Scheduled"
        assert peer.requests["Reset"] == [{"type": "Immediate"}, {"type": "OnIdle"}]
        assert await link.unlock(2) == "Unlocked"
        assert peer.requests["UnlockConnector"] == [{"evse_id": 2, "connector_id": 1}]
        assert await link.trigger("MeterValues", 1) == "Accepted"
        assert await link.trigger("StatusNotification") == "Accepted"
        assert peer.requests["TriggerMessage"] == [{"requested_message": "MeterValues", "evse": {"id": 1}},
                                                   {"requested_message": "StatusNotification"}]
        with pytest.raises(ValueError, match="DiagnosticsStatusNotification"):
            await link.trigger("DiagnosticsStatusNotification")

        with pytest.raises(ValueError, match="RequestStartTransaction"):
            await link.remote_start(1, "a-tag-longer-than-the-36-characters-2.0.1-allows")
        assert len(peer.requests["RequestStartTransaction"]) == 2         # never sent

        assert await link.configure("OCPPCommCtrlr.HeartbeatInterval", "120") == "Accepted"
        assert peer.device_model["OCPPCommCtrlr.HeartbeatInterval"] == "120"
        with pytest.raises(ValueError, match="Component.Variable"):
            await link.configure("HeartbeatInterval", "120")

        schedule = await link.composite_schedule(1, 3600)
        assert peer.requests["GetCompositeSchedule"] == [{"duration": 3600, "evse_id": 1}]
        assert (schedule["status"], schedule["rate_unit"]) == ("Accepted", "A")
        assert schedule["start"] == "2026-11-29T08:00:00Z"
        assert schedule["periods"] == [{"start_period": 0, "limit": 16.0, "number_phases": 3}]


async def test_an_unanswered_call_raises_timeout_and_the_link_recovers():
    async with Csms(settings=replace(FAST, response_timeout_s=0.3)) as csms:
        peer, link = await csms.booted()
        peer.held.add("Reset")
        with pytest.raises(TimeoutError):
            await link.reset()
        peer.held.clear()
        peer.release.set()              # the late answer arrives and is ignored
        assert await link.unlock(1) == "Unlocked"


async def test_a_station_that_disconnects_fails_waiting_calls_at_once():
    async with Csms(settings=replace(FAST, response_timeout_s=20)) as csms:
        peer, link = await csms.booted()
        peer.held.add("Reset")
        waiting = asyncio.get_running_loop().create_task(link.reset())
        await eventually(lambda: peer.requests["Reset"], "the station to receive the Reset")
        started = time.monotonic()
        await peer.close()
        with pytest.raises(ConnectionError):
            await waiting
        assert time.monotonic() - started < 2, "not after the 20 s response timeout"
        await eventually(lambda: csms.returned == ["CP-201"], "start() to return")
        with pytest.raises(ConnectionError):
            await link.unlock(1)
