"""OCPP 2.0.1 handler: TransactionEvent and MeterValues become transaction starts / stops and
samples, with the station's timestamps, units, multipliers and phases."""

from __future__ import annotations

import pytest
from ocpp.v201 import call

from edge_agent.sources.ocpp.model import Sample
from tests.edge.sources.ocpp.v201_peer import Csms, iso, ms

pytestmark = pytest.mark.timeout(30)

T0 = "2026-11-29T08:00:00Z"
T1 = "2026-11-29T08:05:00Z"
T2 = "2026-11-29T09:00:00Z"
TAG = {"id_token": "04A1B2C3", "type": "ISO14443"}


def event(event_type, timestamp, seq_no, meter_value=None, trigger="MeterValuePeriodic", tx="tx-42", **extra):
    info = {"transaction_id": tx, **extra.pop("info", {})}
    return call.TransactionEvent(event_type=event_type, timestamp=timestamp, trigger_reason=trigger, seq_no=seq_no,
                                 transaction_info=info, meter_value=meter_value, **extra)


def register(timestamp, value, unit="kWh", context=None):
    sampled = {"value": value, "unit_of_measure": {"unit": unit}}
    if context:
        sampled["context"] = context
    return {"timestamp": timestamp, "sampled_value": [sampled]}


async def test_started_updated_ended_become_start_samples_and_stop():
    async with Csms() as csms:
        peer, _ = await csms.booted()
        events = csms.events
        answer = await peer.call(event("Started", T0, 0, [register(T0, 12.3456, context="Transaction.Begin")],
                                       trigger="Authorized", evse={"id": 1, "connector_id": 1}, id_token=TAG,
                                       info={"charging_state": "EVConnected"}))
        assert answer.id_token_info["status"] == "Accepted"
        [start] = events.started
        assert (start.connector, start.transaction_id, start.id_tag, start.ts_ms) == (1, "tx-42", "04A1B2C3", ms(T0))
        assert start.meter_start_wh == pytest.approx(12345.6)

        await peer.call(event("Updated", T1, 1, [{"timestamp": T1, "sampled_value": [
            {"value": 72, "measurand": "Power.Active.Import", "unit_of_measure": {"unit": "W", "multiplier": 2}},
            {"value": 10.5, "measurand": "Current.Import", "phase": "L1", "unit_of_measure": {"unit": "A"}},
            {"value": 10.25, "measurand": "Current.Import", "phase": "L2", "unit_of_measure": {"unit": "A"}},
            {"value": 10.75, "measurand": "Current.Import", "phase": "L3", "unit_of_measure": {"unit": "A"}},
            {"value": 2301, "measurand": "Voltage", "phase": "L1-N",
             "unit_of_measure": {"unit": "V", "multiplier": -1}},
            {"value": 13.0456, "unit_of_measure": {"unit": "kWh"}, "context": "Sample.Periodic", "location": "Outlet"},
            {"value": 55, "measurand": "SoC", "location": "EV", "unit_of_measure": {"unit": "Percent"}},
            {"value": 3.5, "measurand": "Power.Offered"},                          # no unit: its base unit
        ]}], info={"charging_state": "Charging"}))
        await peer.call(call.MeterValues(evse_id=1, meter_value=[{"timestamp": T1, "sampled_value": [
            {"value": 230.4, "measurand": "Voltage", "phase": "L2-N", "unit_of_measure": {"unit": "V"}}]}]))
        await peer.call(event("Ended", T2, 2, [register(T2, 19345.6, unit="Wh", context="Transaction.End")],
                              trigger="EVDeparted", info={"stopped_reason": "EVDisconnected"}))

        t1 = ms(T1)
        assert [(c, tx, s) for c, tx, s in events.samples if s.ts_ms == t1] == [(1, "tx-42", s) for s in [
            Sample(t1, "Power.Active.Import", 7200.0, "W"),
            Sample(t1, "Current.Import", 10.5, "A", "L1"),
            Sample(t1, "Current.Import", 10.25, "A", "L2"),
            Sample(t1, "Current.Import", 10.75, "A", "L3"),
            Sample(t1, "Voltage", 230.1, "V", "L1-N"),
            Sample(t1, "Energy.Active.Import.Register", 13.0456, "kWh", "", "Sample.Periodic", "Outlet"),
            Sample(t1, "SoC", 55.0, "Percent", location="EV"),
            Sample(t1, "Power.Offered", 3.5, "W"),
            Sample(t1, "Voltage", 230.4, "V", "L2-N"),          # MeterValues: same EVSE, same transaction
        ]]
        [stop] = events.ended
        assert (stop.transaction_id, stop.ts_ms, stop.reason) == ("tx-42", ms(T2), "EVDisconnected")
        assert stop.meter_stop_wh == pytest.approx(19345.6)
        assert stop.meter_stop_wh - start.meter_start_wh == pytest.approx(7000.0)

        # after the end, meter values of that EVSE belong to no transaction
        await peer.call(call.MeterValues(evse_id=1, meter_value=[register(T2, 19.3456)]))
        assert events.samples[-1] == (1, None, Sample(ms(T2), "Energy.Active.Import.Register", 19.3456, "kWh"))
        assert not events.protocol_errors


async def test_start_without_register_waits_for_the_first_one():
    async with Csms() as csms:
        peer, _ = await csms.booted()
        await peer.call(event("Started", T0, 0, trigger="CablePluggedIn", evse={"id": 2}))
        assert csms.events.started == []
        # authorized later, with the first register of the transaction
        await peer.call(event("Updated", T1, 1, [register(T1, 5.0)], trigger="Authorized", id_token=TAG))
        [start] = csms.events.started
        assert (start.connector, start.id_tag, start.ts_ms, start.meter_start_wh) == (2, "04A1B2C3", ms(T0), 5000.0)
        # stopped without a reason (Local) and without a register
        await peer.call(event("Ended", T2, 2, trigger="StopAuthorized"))
        [stop] = csms.events.ended
        assert (stop.reason, stop.meter_stop_wh, stop.ts_ms) == ("Local", None, ms(T2))


async def test_queued_offline_events_keep_their_timestamps_and_repeats_count_once():
    async with Csms() as csms:
        peer, _ = await csms.booted()
        hours_ago = [iso(ms("2026-11-28T22:00:00Z") + minutes * 60_000) for minutes in (0, 15, 30)]
        queued = [
            event("Started", hours_ago[0], 0, [register(hours_ago[0], 1.0, context="Transaction.Begin")],
                  trigger="Authorized", tx="tx-off", evse={"id": 1}, id_token=TAG, offline=True),
            event("Updated", hours_ago[1], 1, [register(hours_ago[1], 2.5)], tx="tx-off", offline=True),
            event("Ended", hours_ago[2], 2, [register(hours_ago[2], 4.0, context="Transaction.End")],
                  trigger="EVDeparted", tx="tx-off", offline=True, info={"stopped_reason": "Local"}),
        ]
        for message in queued:
            await peer.call(message)
        for message in queued:          # the station did not see our answers and sends them again
            await peer.call(message)

        [start], [stop] = csms.events.started, csms.events.ended
        assert (start.ts_ms, start.meter_start_wh) == (ms("2026-11-28T22:00:00Z"), 1000.0)
        assert (stop.ts_ms, stop.meter_stop_wh) == (ms("2026-11-28T22:30:00Z"), 4000.0)
        assert [(tx, s.ts_ms, s.value) for _, tx, s in csms.events.samples] == [
            ("tx-off", ms("2026-11-28T22:00:00Z"), 1.0),
            ("tx-off", ms("2026-11-28T22:15:00Z"), 2.5),
            ("tx-off", ms("2026-11-28T22:30:00Z"), 4.0)]


async def test_status_notifications_per_evse():
    async with Csms() as csms:
        peer, connection = await csms.booted()
        for evse_id, status in ((1, "Available"), (2, "Occupied"), (2, "Faulted")):
            await peer.call(call.StatusNotification(timestamp=T1, connector_status=status, evse_id=evse_id,
                                                    connector_id=1))
        assert csms.events.statuses == [(1, "Available", "", ms(T1)), (2, "Occupied", "", ms(T1)),
                                        (2, "Faulted", "", ms(T1))]
        assert connection.capabilities.connectors == 2


async def test_charging_state_refines_occupied_while_a_transaction_runs():
    async with Csms() as csms:
        peer, _ = await csms.booted()
        statuses = csms.events.statuses

        async def status(ts, value):
            await peer.call(call.StatusNotification(timestamp=ts, connector_status=value, evse_id=1, connector_id=1))

        await status("2026-11-29T08:00:00Z", "Occupied")
        await peer.call(event("Started", "2026-11-29T08:00:01Z", 0, [register(T0, 1.0)], trigger="CablePluggedIn",
                              evse={"id": 1}, info={"charging_state": "EVConnected"}))
        await peer.call(event("Updated", "2026-11-29T08:00:05Z", 1, trigger="ChargingStateChanged",
                              info={"charging_state": "Charging"}))
        # a station that repeats Occupied while charging: still Charging
        await status("2026-11-29T08:10:00Z", "Occupied")
        await peer.call(event("Updated", "2026-11-29T08:40:00Z", 2, trigger="ChargingStateChanged",
                              info={"charging_state": "SuspendedEV"}))
        # queued from an earlier outage: its charging state is history, not the status now
        await peer.call(event("Updated", "2026-11-29T08:20:00Z", 3, trigger="ChargingStateChanged",
                              info={"charging_state": "Charging"}, offline=True))
        await peer.call(event("Updated", "2026-11-29T08:41:00Z", 4, trigger="MeterValuePeriodic",
                              info={"charging_state": "SuspendedEV"}))          # unchanged: not repeated
        await status("2026-11-29T08:42:00Z", "Occupied")
        await status("2026-11-29T08:45:00Z", "Available")
        await peer.call(event("Ended", "2026-11-29T08:45:01Z", 5, [register(T2, 9.0)], trigger="EVDeparted",
                              info={"charging_state": "Idle", "stopped_reason": "EVDisconnected"}))

        assert [(c, s, ts) for c, s, _, ts in statuses] == [
            (1, "Occupied", ms("2026-11-29T08:00:00Z")),
            (1, "Occupied", ms("2026-11-29T08:00:01Z")),
            (1, "Charging", ms("2026-11-29T08:00:05Z")),
            (1, "Charging", ms("2026-11-29T08:10:00Z")),
            (1, "SuspendedEV", ms("2026-11-29T08:40:00Z")),
            (1, "SuspendedEV", ms("2026-11-29T08:42:00Z")),
            (1, "Available", ms("2026-11-29T08:45:00Z")),
        ]
