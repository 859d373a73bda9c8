"""One port, both versions: a 1.6 and a 2.0.1 charger on the same source, each routed to its handler."""

from __future__ import annotations

import asyncio
import logging

from ocpp.v201 import call as call201
from websockets.asyncio.client import connect

from tests.edge.sources.ocpp.cp16_peer import basic_auth, eventually, iso, now_ms, open_charge_point, running_source


async def test_a_16_and_a_201_charger_share_the_port(make_ocpp_config, caplog):
    from tests.edge.sources.ocpp.v201_peer import StationPeer

    caplog.set_level(logging.INFO)

    async with running_source(make_ocpp_config()) as run:
        async with open_charge_point(run.source.port, "CP1", "pw-CP1") as cp16:
            # a station offering both gets 2.0.1, the server's first choice
            ws = await connect(f"ws://127.0.0.1:{run.source.port}/CP2", subprotocols=["ocpp1.6", "ocpp2.0.1"],
                               additional_headers=basic_auth("CP2", "pw-CP2"))
            assert ws.subprotocol == "ocpp2.0.1"
            station = StationPeer("CP2", ws)
            task = asyncio.create_task(station.start())
            try:
                assert (await station.boot()).status == "Accepted"
                await eventually(lambda: run.source.chargers["CP2"].link is not None, "CP2 ready")
                await station.call(call201.StatusNotification(timestamp=iso(now_ms()), connector_status="Occupied",
                                                              evse_id=1, connector_id=1))
                batch = (await eventually(lambda: run.of("CP2"), "a CP2 batch"))[-1]
                assert batch.profile == "ocpp-2.0.1" and batch.meta == {"station": "CP2", "evse": "1"}
                assert {r.metric: r.value for r in batch.readings}["status"] == "Occupied"
                await cp16.status(1, "Available")
                batch16 = (await eventually(lambda: run.of("CP1"), "a CP1 batch"))[-1]
                assert batch16.profile == "ocpp-1.6"
                assert run.source.context.devices["CP1"].online and run.source.context.devices["CP2"].online
                # Frames are DEBUG: at INFO, 200 chargers' frames would fill the agent's log (hinode up's did).
                frames = [r for r in caplog.records if r.name == "edge_agent.sources.ocpp.wire" and r.levelno >= logging.INFO]
                assert frames == []
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                await ws.close()


async def test_a_201_session_becomes_one_record(make_ocpp_config):
    from tests.edge.sources.ocpp.v201_peer import StationPeer

    start = now_ms() - 1_800_000

    def event(kind: str, seq: int, ts: int, wh: int, context: str, **extra):
        sampled = [{"value": wh, "measurand": "Energy.Active.Import.Register", "context": context,
                    "unitOfMeasure": {"unit": "Wh"}},
                   {"value": 7200.0, "measurand": "Power.Active.Import", "context": context,
                    "unitOfMeasure": {"unit": "W"}}]
        return call201.TransactionEvent(
            event_type=kind, timestamp=iso(ts), trigger_reason="MeterValuePeriodic", seq_no=seq,
            transaction_info={"transaction_id": "tx-201-a", **extra.pop("info", {})},
            meter_value=[{"timestamp": iso(ts), "sampledValue": sampled}], evse={"id": 1, "connector_id": 1}, **extra)

    async with running_source(make_ocpp_config()) as run:
        ws = await connect(f"ws://127.0.0.1:{run.source.port}/CP2", subprotocols=["ocpp2.0.1"],
                           additional_headers=basic_auth("CP2", "pw-CP2"))
        station = StationPeer("CP2", ws)
        task = asyncio.create_task(station.start())
        try:
            await station.boot()
            await station.call(event("Started", 0, start, 3_000, "Transaction.Begin",
                                     id_token={"id_token": "TAG-BEN", "type": "ISO14443"}))
            await station.call(event("Updated", 1, start + 600_000, 4_200, "Sample.Periodic"))
            await station.call(event("Ended", 2, start + 1_200_000, 5_400, "Transaction.End",
                                     info={"stopped_reason": "EVDisconnected"}))
            records = await eventually(lambda: run.of("CP2.sessions"), "the 2.0.1 session record")
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await ws.close()
    values = {r.metric: r.value for r in records[0].readings}
    assert records[0].meta == {"station": "CP2", "evse": "1", "id_tag": "TAG-BEN"}
    assert values["session_id"] == "tx-201-a" and values["energy"] == 2.4 and values["peak_power"] == 7_200.0
    assert values["start_ts"] == start and values["stop_ts"] == start + 1_200_000
    assert values["stop_reason"] == "EVDisconnected"
