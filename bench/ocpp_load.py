"""Load for the OCPP benchmark: N OCPP 1.6J charge points in one process, each sending a
MeterValues with 8 sampled values every ``--interval`` seconds (staggered), for ``--duration``.

Run by ``bench/ocpp_chargers.py`` as its own process, against the edge agent's central system
and against a bare one written with the ``ocpp`` library alone. It writes raw frames (no
``ocpp`` library here) so that the load costs little and is the same for both; calls from the
central system (GetConfiguration, ChangeConfiguration, SetChargingProfile, ...) are answered
with the smallest valid payload. Prints ``booted N`` once every charge point has booted and
started a transaction; at the end writes JSON: per answered MeterValues, (send time, latency).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import sys
import time
from datetime import datetime, timezone

import websockets

ANSWERS = {   # the smallest valid CALLRESULT payload per action a central system may send
    "GetConfiguration": {"configurationKey": [], "unknownKey": []},
    "ChangeConfiguration": {"status": "Accepted"},
    "SetChargingProfile": {"status": "Accepted"},
    "ClearChargingProfile": {"status": "Accepted"},
    "TriggerMessage": {"status": "Accepted"},
    "GetCompositeSchedule": {"status": "Rejected"},
    "DataTransfer": {"status": "UnknownVendorId"},
}


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def meter_values(tx: int, ts: float, energy_wh: float) -> dict:
    stamp = iso(ts)
    values = [("Energy.Active.Import.Register", "", f"{energy_wh:.0f}", "Wh"),
              ("Power.Active.Import", "", "7360", "W"),
              ("Current.Import", "L1", "10.7", "A"), ("Current.Import", "L2", "10.6", "A"),
              ("Current.Import", "L3", "10.7", "A"), ("Current.Offered", "", "16", "A"),
              ("Voltage", "L1-N", "229.8", "V"), ("SoC", "", "54", "Percent")]
    return {"connectorId": 1, "transactionId": tx, "meterValue": [{"timestamp": stamp, "sampledValue": [
        {"value": v, "measurand": m, "unit": u, "context": "Sample.Periodic", **({"phase": p} if p else {})}
        for m, p, v, u in values]}]}


class ChargePoint:
    def __init__(self, url: str, charger_id: str):
        self.url, self.charger_id = url, charger_id
        self.ids = itertools.count(1)
        self.pending: dict[str, asyncio.Future] = {}
        self.ws = None
        self.answered: list[tuple[float, float]] = []

    async def call(self, action: str, payload: dict) -> dict:
        unique = f"{self.charger_id}-{next(self.ids)}"
        future = asyncio.get_running_loop().create_future()
        self.pending[unique] = future
        await self.ws.send(json.dumps([2, unique, action, payload]))
        return await asyncio.wait_for(future, 30)

    async def reader(self) -> None:
        async for raw in self.ws:
            frame = json.loads(raw)
            if frame[0] in (3, 4):
                future = self.pending.pop(frame[1], None)
                if future and not future.done():
                    future.set_result(frame[2] if frame[0] == 3 else {"_error": frame[2]})
            elif frame[0] == 2:
                await self.ws.send(json.dumps([3, frame[1], ANSWERS.get(frame[2], {"status": "Accepted"})]))

    async def run(self, interval: float, offset: float, window: dict, booted: asyncio.Event,
                  all_booted: asyncio.Event) -> None:
        async with websockets.connect(f"{self.url}/{self.charger_id}", subprotocols=["ocpp1.6"],
                                      open_timeout=60, ping_interval=None, max_queue=None) as ws:
            self.ws = ws
            reader = asyncio.create_task(self.reader())
            await self.call("BootNotification", {"chargePointVendor": "hinode-bench", "chargePointModel": "load"})
            await self.call("StatusNotification", {"connectorId": 1, "errorCode": "NoError", "status": "Charging"})
            start = await self.call("StartTransaction", {"connectorId": 1, "idTag": "EMP0001", "meterStart": 0,
                                                         "timestamp": iso(time.time())})
            tx = start["transactionId"]
            booted.set()
            await all_booted.wait()
            next_at, energy = window["start"] + offset, 0.0
            while next_at < window["end"]:
                await asyncio.sleep(max(0.0, next_at - time.time()))
                sent = time.time()
                energy += 7360 * interval / 3600
                answer = await self.call("MeterValues", meter_values(tx, sent, energy))
                if "_error" not in answer:
                    self.answered.append((sent, time.time() - sent))
                next_at += interval
            reader.cancel()


async def main(args) -> int:
    points = [ChargePoint(args.url, f"{args.prefix}{i:03d}") for i in range(1, args.chargers + 1)]
    booted = [asyncio.Event() for _ in points]
    all_booted = asyncio.Event()
    window: dict[str, float] = {}
    tasks = [asyncio.create_task(p.run(args.interval, args.interval * i / len(points), window, b, all_booted))
             for i, (p, b) in enumerate(zip(points, booted))]
    try:
        await asyncio.wait_for(asyncio.gather(*(b.wait() for b in booted)), args.boot_timeout)
    except TimeoutError:
        failed = [t for t in tasks if t.done() and t.exception()]
        print(f"not all booted: {sum(b.is_set() for b in booted)}/{len(points)}"
              + (f"; first error: {failed[0].exception()!r}" if failed else ""), file=sys.stderr, flush=True)
        return 1
    window["start"] = time.time() + 1.0
    window["end"] = window["start"] + args.duration
    all_booted.set()
    print(f"booted {len(points)} window {window['start']:.3f} {window['end']:.3f}", flush=True)
    await asyncio.gather(*tasks)
    answered = [pair for p in points for pair in p.answered]
    with open(args.out, "w") as f:
        json.dump({"answered": answered, "expected": len(points) * args.duration / args.interval}, f)
    return 0


def parse(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--chargers", type=int, default=200)
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--boot-timeout", type=float, default=60.0)
    parser.add_argument("--prefix", default="CP")
    parser.add_argument("--out", required=True)
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse())))
