"""One virtual BLE health device: a bumble Controller on the kit's LocalLink, a GATT server, advertising,
a device clock set through the Current Time Service (0x1805/0x2A2B), stored records, pairing and sleep."""

from __future__ import annotations

import asyncio
import logging
import random
import struct
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Callable

from bumble import att, smp
from bumble.controller import Controller
from bumble.core import UUID
from bumble.device import Connection, Device
from bumble.gatt import (GATT_CLIENT_CHARACTERISTIC_CONFIGURATION_DESCRIPTOR, Characteristic,
                         CharacteristicValue, Descriptor, Service)
from bumble.hci import Address
from bumble.host import Host
from bumble.link import LocalLink
from bumble.pairing import PairingConfig, PairingDelegate
from bumble.transport.common import AsyncPipeSink

log = logging.getLogger(__name__)

CURRENT_TIME_SERVICE = 0x1805
CURRENT_TIME = 0x2A2B
UNSET_CLOCK_START = datetime(2020, 1, 1, 0, 0, 0)   # a device whose clock nobody set lives in 2020
SPECIAL_VALUES = ("nan", "nres", "+inf", "-inf")
ADVERTISING_INTERVAL_MS = 100     # an awake health device advertises fast so a gateway finds it at once


def uuid16(value: int) -> UUID:
    return UUID.from_16_bits(value)


class DeviceClock:
    """The device's wall clock: wrong (2020) until a gateway writes the Current Time characteristic."""

    def __init__(self, monotonic: Callable[[], float] = time.monotonic):
        self._monotonic = monotonic
        self._base = UNSET_CLOCK_START
        self._base_at = monotonic()
        self.is_set = False

    def now(self) -> datetime:
        elapsed = timedelta(seconds=self._monotonic() - self._base_at)
        return (self._base + elapsed).replace(microsecond=0)

    def set(self, when: datetime) -> None:
        self._base, self._base_at, self.is_set = when.replace(tzinfo=None), self._monotonic(), True


def parse_current_time(data: bytes) -> datetime:
    """0x2A2B: year u16, month, day, hours, minutes, seconds, day of week, fractions256, adjust reason."""
    if len(data) < 7:
        raise ValueError(f"Current Time needs at least 7 bytes, got {len(data)}")
    year, month, day, hour, minute, second = struct.unpack_from("<HBBBBB", data)
    return datetime(year, month, day, hour, minute, second)


def pack_current_time(when: datetime) -> bytes:
    return struct.pack("<HBBBBBBBB", when.year, when.month, when.day, when.hour, when.minute, when.second,
                       when.isoweekday(), 0, 0)


@dataclass
class Reading:
    """One measurement as the device took it: the bytes it sends and a JSON-safe description."""
    payload: bytes
    description: dict[str, Any]
    characteristic: int


class _ShowPasskey(PairingDelegate):
    """The cuff shows a fixed passkey on its display; the gateway must type it in."""

    def __init__(self, passkey: int):
        super().__init__(io_capability=PairingDelegate.IoCapability.DISPLAY_OUTPUT_ONLY)
        self.passkey = passkey

    async def generate_passkey(self) -> int:
        return self.passkey


class _PasskeyOnlySession(smp.Session):
    """A cuff that shows a passkey refuses "just works" pairing: no MITM protection, no bond."""

    async def on_smp_pairing_request_command_async(self, command: smp.SMP_Pairing_Request_Command) -> None:
        can_enter_passkey = command.io_capability in (smp.SMP_KEYBOARD_ONLY_IO_CAPABILITY,
                                                      smp.SMP_KEYBOARD_DISPLAY_IO_CAPABILITY)
        if not command.auth_req & smp.AuthReq.MITM or not can_enter_passkey:
            self.send_pairing_failed(smp.ErrorCode.AUTHENTICATION_REQUIREMENTS)
            return
        await super().on_smp_pairing_request_command_async(command)


class VirtualDevice:
    """Base class; a profile subclass sets the class attributes and implements `services` and `take`."""

    category: str = ""
    service_uuid: int = 0
    has_clock: bool = False
    stores_records: bool = True     # a reading taken with nobody subscribed waits for the next connection
    value_keys: frozenset[str] = frozenset()    # what `measure(values=...)` may set

    def __init__(self, device_id: str, name: str, address: str, link: LocalLink, rng: random.Random,
                 passkey: str | None = None):
        self.id = device_id
        self.name = name
        self.address = address
        self.rng = rng
        self.passkey = passkey
        self.clock = DeviceClock()
        self.stored: list[Reading] = []
        self.measurements = 0
        self.awake = True
        self._link = link
        self._controller: Controller | None = None
        self.device: Device | None = None
        self._wake_task: asyncio.Task | None = None
        self._tasks: set[asyncio.Task] = set()
        self._characteristics: dict[int, Characteristic] = {}

    # ----- GATT building blocks for subclasses
    def characteristic(self, uuid: int, properties: Characteristic.Properties, value: Any = b"",
                       permissions: int = Characteristic.READABLE) -> Characteristic:
        characteristic = Characteristic(uuid16(uuid), properties, permissions, value)
        if self.passkey is not None and properties & (Characteristic.Properties.INDICATE
                                                     | Characteristic.Properties.NOTIFY):
            # subscribing (writing the CCCD) needs an encrypted link, as on a cuff that requires bonding
            characteristic.descriptors = [Descriptor(
                GATT_CLIENT_CHARACTERISTIC_CONFIGURATION_DESCRIPTOR,
                att.Attribute.READABLE | att.Attribute.WRITEABLE | att.Attribute.WRITE_REQUIRES_ENCRYPTION,
                att.AttributeValueV2(
                    lambda bearer, c=characteristic: self.device.gatt_server.read_cccd(bearer, c),
                    write=lambda bearer, value, c=characteristic: self.device.gatt_server.write_cccd(bearer, c, value),
                ))]
        self._characteristics[uuid] = characteristic
        characteristic.on("subscription", lambda connection, notify, indicate, u=uuid:
                          self._on_subscription(u, connection, notify or indicate))
        return characteristic

    def services(self) -> list[Service]:
        raise NotImplementedError

    def take(self, values: dict[str, Any], special: str | None) -> Reading:
        """A new reading (random realistic values, overridden by `values`), timestamped by the device clock."""
        raise NotImplementedError

    def _clock_service(self) -> Service:
        value = CharacteristicValue(read=lambda _connection: pack_current_time(self.clock.now()),
                                    write=self._write_clock)
        current_time = self.characteristic(
            CURRENT_TIME, Characteristic.Properties.READ | Characteristic.Properties.WRITE,
            value, Characteristic.READABLE | Characteristic.WRITEABLE)
        return Service(uuid16(CURRENT_TIME_SERVICE), [current_time])

    def _write_clock(self, _connection: Connection, value: bytes) -> None:
        try:
            self.clock.set(parse_current_time(bytes(value)))
        except ValueError as exc:
            raise att.ATT_Error(error_code=att.ErrorCode.VALUE_NOT_ALLOWED, message=str(exc)) from exc

    # ----- life cycle
    async def start(self) -> None:
        self._controller = Controller(self.id, link=self._link, public_address=self.address)
        self.device = Device(name=self.name, address=Address(self.address),
                             host=Host(self._controller, AsyncPipeSink(self._controller)))
        services = self.services()
        if self.has_clock:
            services.append(self._clock_service())
        for service in services:
            self.device.add_service(service)
        if self.passkey is not None:
            number = int(self.passkey)
            # identity = the random static address it advertises with, so a gateway finds the bond again
            self.device.pairing_config_factory = lambda _connection: PairingConfig(
                sc=True, mitm=True, bonding=True, delegate=_ShowPasskey(number),
                identity_address_type=PairingConfig.AddressType.RANDOM)
            self.device.smp_session_proxy = _PasskeyOnlySession
        self.device.on("connection", self._on_connection)
        await self.device.power_on()
        await self._advertise()

    async def stop(self) -> None:
        self.awake = False
        for task in (self._wake_task, *self._tasks):
            if task is not None:
                task.cancel()
        if self.device is not None:
            await self._drop_connections()
            try:
                await self.device.stop_advertising()
            except Exception as exc:
                log.debug("%s stop advertising: %s", self.id, exc)

    def advertising_data(self) -> bytes:
        name = self.name.encode()
        return (bytes([2, 0x01, 0x06])                                  # LE general discoverable, no BR/EDR
                + bytes([3, 0x03]) + struct.pack("<H", self.service_uuid)   # complete list of 16-bit services
                + bytes([len(name) + 1, 0x09]) + name)                   # complete local name

    async def _advertise(self) -> None:
        if self.awake and self.device is not None and not self.device.connections and not self.device.is_advertising:
            # own restart (not bumble's auto_restart) so that a sleeping device stays silent
            await self.device.start_advertising(advertising_data=self.advertising_data(),
                                                advertising_interval_min=ADVERTISING_INTERVAL_MS,
                                                advertising_interval_max=ADVERTISING_INTERVAL_MS)

    def _on_connection(self, connection: Connection) -> None:
        connection.on("disconnection", lambda _reason: self._spawn(self._advertise()))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _drop_connections(self) -> None:
        for connection in list(self.device.connections.values()):
            try:
                await connection.disconnect()
            except Exception as exc:
                log.debug("%s disconnect: %s", self.id, exc)

    async def drop_gateway(self) -> None:
        """The gateway's host went away: end our side of its connections so the controllers agree."""
        if self.device is not None:
            await self._drop_connections()

    async def sleep(self, seconds: float) -> None:
        """Power off like a cuff after a measurement: disconnect, stop advertising, wake after `seconds`."""
        if self._wake_task is not None:
            self._wake_task.cancel()
        self.awake = False
        await self.device.stop_advertising()
        await self._drop_connections()
        self._wake_task = asyncio.ensure_future(self._wake_after(seconds))

    async def _wake_after(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        self.awake = True
        self._wake_task = None
        await self._advertise()

    # ----- readings
    def subscribers(self, uuid: int) -> list[Connection]:
        """Connections that enabled notifications or indications of `uuid`."""
        characteristic = self._characteristics[uuid]
        found = []
        for bearer, cccds in self.device.gatt_server.subscribers.items():
            cccd = cccds.get(characteristic.handle)
            if cccd and cccd[0] & 0x03 and bearer in self.device.connections.values():
                found.append(bearer)
        return found

    async def send(self, reading: Reading) -> bool:
        """Indicate or notify `reading` to every subscriber; False when nobody is subscribed."""
        connections = self.subscribers(reading.characteristic)
        characteristic = self._characteristics[reading.characteristic]
        for connection in connections:
            if characteristic.properties & Characteristic.Properties.INDICATE:
                await self.device.indicate_subscriber(connection, characteristic, reading.payload)
            else:
                await self.device.notify_subscriber(connection, characteristic, reading.payload)
        return bool(connections)

    async def measure(self, values: dict[str, Any] | None = None, special: str | None = None) -> dict[str, Any]:
        if special is not None and special not in SPECIAL_VALUES:
            raise ValueError(f"special: expected one of {', '.join(SPECIAL_VALUES)}, got {special!r}")
        unknown = sorted(set(values or {}) - self.value_keys)
        if unknown:
            raise ValueError(f"values: {self.id} does not measure {unknown}; it takes {sorted(self.value_keys)}")
        reading = self.take(dict(values or {}), special)
        self.measurements += 1
        return await self.deliver(reading)

    async def deliver(self, reading: Reading) -> dict[str, Any]:
        if self.awake and await self.send(reading):
            outcome = "sent"
        elif self.stores_records:
            self.stored.append(reading)
            outcome = "stored"
        else:
            outcome = "dropped"
        return {"device": self.id, "delivery": outcome, **reading.description}

    def _on_subscription(self, uuid: int, _connection: Connection, enabled: bool) -> None:
        if enabled and self.stored and any(r.characteristic == uuid for r in self.stored):
            self._spawn(self._send_stored(uuid))

    async def _send_stored(self, uuid: int) -> None:
        while True:
            pending = [r for r in self.stored if r.characteristic == uuid]
            if not pending or not self.subscribers(uuid):
                return
            reading = pending[0]
            try:
                if not await self.send(reading):
                    return
            except Exception as exc:    # the link went away mid-transfer: keep the record for next time
                log.debug("%s stored record not delivered: %s", self.id, exc)
                return
            self.stored.remove(reading)

    def state(self) -> dict[str, Any]:
        connected = bool(self.device and self.device.connections)
        return {
            "id": self.id, "name": self.name, "address": self.address, "category": self.category,
            "advertising": bool(self.device and self.device.is_advertising), "connected": connected,
            "subscribed": connected and any(self.subscribers(u) for u in self._characteristics
                                            if self._characteristics[u].properties
                                            & (Characteristic.Properties.INDICATE | Characteristic.Properties.NOTIFY)),
            "awake": self.awake, "clock_set": self.clock.is_set, "clock": self.clock.now().isoformat(),
            "stored": len(self.stored), "measurements": self.measurements,
            "pairing": self.passkey is not None,
        }
