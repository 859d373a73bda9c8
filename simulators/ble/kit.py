"""A nurse's visit kit of six virtual BLE health devices, reachable by a gateway's bumble host over HCI.

All devices' controllers share one bumble LocalLink; one more controller on that link is the gateway's
radio, served as HCI over TCP (`tcp-server:HOST:PORT`, port 0 = any free port). The agent connects to it
with `hci: tcp-client:HOST:PORT`, which runs the same host code as a USB dongle. Other bumble transport
specs (e.g. `vhci` for BlueZ, needs root) are opened with bumble's own `open_transport`.
"""

from __future__ import annotations

import asyncio
import logging
import random
import zlib
from typing import Any

from bumble import hci
from bumble.controller import Controller
from bumble.link import LocalLink
from bumble.transport import open_transport
from bumble.transport.common import PacketParser, ParserSource

from simulators.ble.device_base import VirtualDevice
from simulators.ble.devices import DEVICE_TYPES

log = logging.getLogger(__name__)

# device id -> (device class key, advertised name)
KIT_DEVICES: dict[str, tuple[str, str]] = {
    "bp-cuff-1": ("blood_pressure", "BP-Cuff"),
    "thermometer-1": ("temperature", "Thermo"),
    "oximeter-1": ("spo2", "Oximeter"),
    "scale-1": ("weight", "Scale"),
    "glucometer-1": ("glucose", "Glucometer"),
    "hr-strap-1": ("heart_rate", "HR-Strap"),
}


def device_address(kit: str, index: int) -> str:
    """A random static address (top bits 11) that is the same for a kit id every run."""
    digest = zlib.crc32(kit.encode()).to_bytes(4, "big")
    return f"F0:4B:{digest[0]:02X}:{digest[1]:02X}:{digest[2]:02X}:{index + 1:02X}"


def device_name(kit: str, base: str) -> str:
    """`BP-Cuff-01` for kit-01: names stay short (a legacy advert holds 31 bytes) and differ between kits."""
    suffix = kit.rsplit("-", 1)[-1] if "-" in kit else kit
    return f"{base}-{suffix}"[:20]


def advertised_name(kit: str, device_id: str) -> str:
    """The name a kit's device advertises, e.g. `BP-Cuff-01` for bp-cuff-1 of kit-01."""
    try:
        return device_name(kit, KIT_DEVICES[device_id][1])
    except KeyError:
        raise KeyError(f"no device {device_id!r} in a visit kit; devices: {', '.join(KIT_DEVICES)}") from None


class _GatewayController(Controller):
    """The gateway's radio. bumble's Controller neither cancels a pending LE connection nor forgets it on
    reset; a real controller does both (and reports the cancelled attempt), and the bumble host relies on it."""

    def on_hci_reset_command(self, command: hci.HCI_Reset_Command) -> hci.HCI_StatusReturnParameters:
        self.pending_le_connection = None
        return super().on_hci_reset_command(command)

    def on_hci_le_create_connection_cancel_command(self, command: hci.HCI_LE_Create_Connection_Cancel_Command
                                                   ) -> hci.HCI_StatusReturnParameters:
        pending, self.pending_le_connection = self.pending_le_connection, None
        if pending is None:
            return hci.HCI_StatusReturnParameters(hci.HCI_ErrorCode.COMMAND_DISALLOWED_ERROR)
        failed = hci.HCI_LE_Connection_Complete_Event(
            status=hci.HCI_ErrorCode.UNKNOWN_CONNECTION_IDENTIFIER_ERROR, connection_handle=0,
            role=hci.Role.CENTRAL, peer_address_type=pending.peer_address.address_type,
            peer_address=pending.peer_address, connection_interval=0, peripheral_latency=0,
            supervision_timeout=0, central_clock_accuracy=0)
        asyncio.get_running_loop().call_soon(self.send_hci_packet, failed)   # after the command's completion
        return hci.HCI_StatusReturnParameters(hci.HCI_ErrorCode.SUCCESS)


class _GatewayHciServer:
    """HCI over TCP for one gateway host at a time; a new client replaces the old one.

    bumble's own tcp-server transport keeps a half-parsed packet and the old host's connections when a
    client goes away; an agent restart must find the kit as fresh as a re-plugged dongle.
    """

    def __init__(self, kit: "VirtualKit"):
        self._kit = kit
        self.source = ParserSource()
        self._client: asyncio.Transport | None = None
        self._server: asyncio.Server | None = None

    def on_packet(self, packet: bytes) -> None:      # controller -> host
        if self._client is not None:
            self._client.write(packet)

    async def start(self, host: str, port: int) -> int:
        server = self

        class Protocol(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                if server._client is not None:
                    server._client.close()
                server._client = transport
                server._kit.gateway_gone()      # a new host starts from nothing, like a re-plugged dongle      # type: ignore[assignment]
                server.source.parser = PacketParser(server.source.sink)
                self.transport = transport

            def data_received(self, data: bytes) -> None:
                if server._client is self.transport:
                    try:
                        server.source.parser.feed_data(data)
                    except Exception as exc:
                        log.warning("bad HCI data from the gateway: %s", exc)

            def connection_lost(self, _exc: Exception | None) -> None:
                if server._client is self.transport:
                    server._client = None
                    server._kit.gateway_gone()

        self._server = await asyncio.get_running_loop().create_server(Protocol, host, port)
        return self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


class VirtualKit:
    def __init__(self, kit: str = "kit-01", hci: str = "tcp-server:127.0.0.1:0", seed: int = 0,
                 pairing_passkey: str | None = None, device_ids: list[str] | None = None):
        unknown = sorted(set(device_ids or ()) - set(KIT_DEVICES))
        if unknown:
            raise ValueError(f"unknown device ids {unknown}, expected some of {sorted(KIT_DEVICES)}")
        if pairing_passkey is not None and not (str(pairing_passkey).isdigit() and len(str(pairing_passkey)) <= 6):
            raise ValueError(f"pairing_passkey: expected up to 6 digits, got {pairing_passkey!r}")
        self.kit = kit
        self.hci = hci
        self.seed = seed
        self.pairing_passkey = pairing_passkey
        self.link = LocalLink()
        self.devices: dict[str, VirtualDevice] = {}
        self.hci_port: int | None = None
        self._server: _GatewayHciServer | None = None
        self._transport: Any = None
        self._tasks: set[asyncio.Task] = set()
        for index, (device_id, (kind, base_name)) in enumerate(KIT_DEVICES.items()):
            if device_ids is not None and device_id not in device_ids:
                continue
            rng = random.Random(f"{seed}:{kit}:{device_id}")
            passkey = pairing_passkey if kind == "blood_pressure" else None
            self.devices[device_id] = DEVICE_TYPES[kind](
                device_id, device_name(kit, base_name), device_address(kit, index), self.link, rng, passkey)

    @property
    def gateway_hci(self) -> str:
        """The transport spec a gateway's bumble host uses to reach this kit."""
        if self.hci_port is None:
            return self.hci
        host = self.hci.split(":")[1]
        return f"tcp-client:{'127.0.0.1' if host in ('', '_', '0.0.0.0') else host}:{self.hci_port}"

    async def start(self) -> None:
        kind, _, where = self.hci.partition(":")
        if kind == "tcp-server":
            host, _, port = where.rpartition(":")
            if not port.isdigit():
                raise ValueError(f"hci: expected tcp-server:HOST:PORT, got {self.hci!r}")
            self._server = _GatewayHciServer(self)
            _GatewayController("gateway", host_source=self._server.source, host_sink=self._server, link=self.link)
            self.hci_port = await self._server.start(None if host in ("_", "") else host, int(port))
        else:
            self._transport = await open_transport(self.hci)
            _GatewayController("gateway", host_source=self._transport.source, host_sink=self._transport.sink,
                       link=self.link)
        for device in self.devices.values():
            await device.start()

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for device in self.devices.values():
            await device.stop()
        if self._server is not None:
            await self._server.close()
        if self._transport is not None:
            await self._transport.close()

    def gateway_gone(self) -> None:
        for device in self.devices.values():
            task = asyncio.ensure_future(device.drop_gateway())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def device(self, device_id: str) -> VirtualDevice:
        try:
            return self.devices[device_id]
        except KeyError:
            raise KeyError(f"no device {device_id!r} in {self.kit}; devices: {', '.join(self.devices)}") from None

    def describe(self) -> str:
        names = ", ".join(f"{d.id} ({d.name} {d.address})" for d in self.devices.values())
        return f"BLE visit kit {self.kit}: gateway HCI at {self.gateway_hci}; devices {names}"
