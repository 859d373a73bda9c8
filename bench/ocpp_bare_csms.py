"""The OCPP benchmark's reference: a bare OCPP 1.6J central system written with the ``ocpp``
library alone, as its README shows (``ocpp.v16.ChargePoint`` with ``@on`` handlers over
``websockets``). It answers what the load sends and does nothing else: its CPU per message is
the minimum any central system built on the library pays for the same stream.

    python bench/ocpp_bare_csms.py --port 9000       # prints "ready PORT", runs until SIGTERM
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import logging
import signal
from datetime import datetime, timezone

import ocpp.messages
import websockets
from ocpp.routing import on
from ocpp.v16 import ChargePoint, call_result
from ocpp.v16.enums import Action, AuthorizationStatus, RegistrationStatus

logging.getLogger("ocpp").setLevel(logging.WARNING)
TRANSACTION_IDS = itertools.count(1)


class BareCentralSystem(ChargePoint):
    @on(Action.boot_notification)
    async def on_boot(self, charge_point_vendor, charge_point_model, **kwargs):
        return call_result.BootNotification(current_time=datetime.now(timezone.utc).isoformat(), interval=300,
                                            status=RegistrationStatus.accepted)

    @on(Action.status_notification)
    async def on_status(self, connector_id, error_code, status, **kwargs):
        return call_result.StatusNotification()

    @on(Action.start_transaction)
    async def on_start(self, connector_id, id_tag, meter_start, timestamp, **kwargs):
        return call_result.StartTransaction(transaction_id=next(TRANSACTION_IDS),
                                            id_tag_info={"status": AuthorizationStatus.accepted})

    @on(Action.meter_values)
    async def on_meter_values(self, connector_id, meter_value, **kwargs):
        return call_result.MeterValues()

    @on(Action.heartbeat)
    async def on_heartbeat(self, **kwargs):
        return call_result.Heartbeat(current_time=datetime.now(timezone.utc).isoformat())


async def on_connect(websocket) -> None:
    if websocket.subprotocol is None:
        await websocket.close()
        return
    charger = BareCentralSystem(websocket.request.path.strip("/").rsplit("/", 1)[-1], websocket)
    try:
        await charger.start()
    except websockets.exceptions.ConnectionClosed:
        pass


async def main(port: int, sync_validation: bool) -> None:
    if sync_validation:           # the library's own switch: validate on the loop, not in a thread
        ocpp.messages.ASYNC_VALIDATION = False
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    async with websockets.serve(on_connect, "127.0.0.1", port, subprotocols=["ocpp1.6"], max_queue=None) as server:
        print(f"ready {server.sockets[0].getsockname()[1]}", flush=True)
        await stop.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--sync-validation", action="store_true",
                        help="ocpp.messages.ASYNC_VALIDATION = False (the library validates in a thread by default)")
    args = parser.parse_args()
    asyncio.run(main(args.port, args.sync_validation))
