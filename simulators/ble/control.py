"""The kit's control port: a test or a demo user "uses" a device over HTTP (aiohttp), and the CLI glue.

    GET  /devices                      every device's state (advertising, connected, subscribed, clock_set, stored)
    POST /devices/{id}/measure         body optional: {"values": {"systolic": 182}, "special": "nres"}
    POST /devices/{id}/sleep           {"seconds": 30}: disconnect, stop advertising, wake up after that
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:       # the kit (bumble, the encoders) loads only when the ble simulator runs
    from simulators.ble.kit import VirtualKit

log = logging.getLogger(__name__)

KIT_KEY: web.AppKey["VirtualKit"] = web.AppKey("kit")


async def _body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        body = json.loads(await request.text() or "{}")
    except json.JSONDecodeError as exc:
        raise web.HTTPBadRequest(text=f"body: expected JSON ({exc})") from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text="body: expected a JSON object")
    return body


def _device(request: web.Request):
    kit = request.app[KIT_KEY]
    device_id = request.match_info["device_id"]
    if device_id not in kit.devices:
        raise web.HTTPNotFound(text=f"no device {device_id!r}; devices: {', '.join(kit.devices)}")
    return kit.devices[device_id]


async def list_devices(request: web.Request) -> web.Response:
    kit = request.app[KIT_KEY]
    return web.json_response({"kit": kit.kit, "gateway_hci": kit.gateway_hci,
                              "devices": [device.state() for device in kit.devices.values()]})


async def measure(request: web.Request) -> web.Response:
    device = _device(request)
    body = await _body(request)
    unknown = sorted(set(body) - {"values", "special"})
    if unknown:
        raise web.HTTPBadRequest(text=f"body: unknown keys {unknown}, expected values and/or special")
    values = body.get("values") or {}
    special = body.get("special")
    if not isinstance(values, dict):
        raise web.HTTPBadRequest(text="values: expected an object such as {\"systolic\": 182}")
    try:
        result = await device.measure(values, special)
    except ValueError as exc:
        raise web.HTTPBadRequest(text=str(exc)) from None
    return web.json_response(result)


async def sleep(request: web.Request) -> web.Response:
    device = _device(request)
    seconds = (await _body(request)).get("seconds")
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 <= seconds <= 86400:
        raise web.HTTPBadRequest(text=f"seconds: expected a number from 0 to 86400, got {seconds!r}")
    await device.sleep(float(seconds))
    return web.json_response({"device": device.id, "sleeping_s": seconds})


def control_app(kit: "VirtualKit") -> web.Application:
    app = web.Application()
    app[KIT_KEY] = kit
    app.router.add_get("/devices", list_devices)
    app.router.add_post("/devices/{device_id}/measure", measure)
    app.router.add_post("/devices/{device_id}/sleep", sleep)
    return app


class KitSimulator:
    """A VirtualKit with its control port (and optional automatic readings), run by `python -m simulators ble`."""

    def __init__(self, kit: "VirtualKit", control_host: str = "127.0.0.1", control_port: int = 0,
                 auto_measure_s: float | None = None):
        self.kit = kit
        self.control_host = control_host
        self.control_port = control_port
        self.auto_measure_s = auto_measure_s
        self._runner: web.AppRunner | None = None
        self._auto: asyncio.Task | None = None

    async def start(self) -> None:
        await self.kit.start()
        self._runner = web.AppRunner(control_app(self.kit), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.control_host, self.control_port)
        await site.start()
        self.control_port = self._runner.addresses[0][1]     # the real port when 0 was asked
        if self.auto_measure_s:
            self._auto = asyncio.create_task(self._measure_in_turn(self.auto_measure_s))

    async def _measure_in_turn(self, every_s: float) -> None:
        """One device after the other takes a reading, like a nurse going through the kit."""
        for device in itertools.cycle(list(self.kit.devices.values())):
            await asyncio.sleep(every_s)
            try:
                await device.measure()
            except Exception as exc:
                log.warning("automatic reading on %s failed: %s", device.id, exc)

    async def stop(self) -> None:
        if self._auto is not None:
            self._auto.cancel()
        if self._runner is not None:
            await self._runner.cleanup()
        await self.kit.stop()

    def describe(self) -> str:
        return (f"{self.kit.describe()}; control http://{self.control_host}:{self.control_port}/devices"
                + (f"; a reading every {self.auto_measure_s:g} s" if self.auto_measure_s else ""))


def add_cli_options(sub) -> None:
    """The `ble` sub-command of `python -m simulators`."""
    ble = sub.add_parser("ble", help="a nurse's visit kit: six virtual BLE health devices (bumble)")
    ble.add_argument("--hci", default="tcp-server:127.0.0.1:0",
                     help="where the gateway's controller is served; agents use tcp-client:HOST:PORT")
    ble.add_argument("--control-host", default="127.0.0.1")
    ble.add_argument("--control-port", type=int, default=0, help="HTTP control port (0 = any free port)")
    ble.add_argument("--kit", default="kit-01", help="kit id: device names and addresses follow from it")
    ble.add_argument("--auto-measure-s", type=float, metavar="S", help="a device takes a reading every S seconds")
    ble.add_argument("--seed", type=int, default=0)
    ble.add_argument("--passkey", help="the blood pressure cuff requires pairing with this 6-digit passkey")
    ble.add_argument("-v", "--verbose", action="store_true")
    ble.set_defaults(host=None, port=None)     # main() names host:port in its error message


def simulator_from_args(args) -> KitSimulator:
    if args.auto_measure_s is not None and args.auto_measure_s <= 0:
        raise ValueError(f"--auto-measure-s: expected seconds > 0, got {args.auto_measure_s:g}")
    from simulators.ble.kit import VirtualKit
    args.host, args.port = args.control_host, args.control_port
    kit = VirtualKit(kit=args.kit, hci=args.hci, seed=args.seed, pairing_passkey=args.passkey)
    return KitSimulator(kit, args.control_host, args.control_port, args.auto_measure_s)
