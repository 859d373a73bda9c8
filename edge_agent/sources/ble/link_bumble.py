"""GattLink on the bumble host stack: a USB dongle (`usb:0`), `hci-socket:0`, `serial:...` or
`tcp-client:HOST:PORT` (the virtual devices of simulators/ble) all run exactly this code.

The gateway uses a random static address that is kept in `<key_store>.address` so a device's bond (stored by
bumble's JsonKeyStore in `key_store`) still matches after a restart.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from pathlib import Path
from typing import Any, Awaitable, Callable, TypeVar

from bumble import hci
from bumble.core import UUID, AdvertisingData
from bumble.device import Advertisement, Connection, Device, Peer
from bumble.gatt import Characteristic
from bumble.gatt_client import CharacteristicProxy
from bumble.keys import JsonKeyStore
from bumble.pairing import PairingConfig, PairingDelegate
from bumble.transport import open_transport

from edge_agent.sources.ble.link import Advert, LinkError, passkey_number, set_aside_unreadable, \
    stable_static_address

log = logging.getLogger(__name__)

GATT_TIMEOUT_S = 10.0
BASE_UUID_PREFIX = UUID.from_16_bits(0).to_bytes(force_128=True)[:12]   # little-endian Bluetooth base UUID
PAIRING_TIMEOUT_S = 20.0
T = TypeVar("T")


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


class _PasskeyDelegate(PairingDelegate):
    """Enters the passkey the device shows (or just works when there is none)."""

    def __init__(self, passkey: int | None):
        capability = (PairingDelegate.IoCapability.KEYBOARD_INPUT_ONLY if passkey is not None
                      else PairingDelegate.IoCapability.NO_OUTPUT_NO_INPUT)
        super().__init__(io_capability=capability)
        self.passkey = passkey

    async def get_number(self) -> int | None:
        return self.passkey


class BumbleGattConnection:
    def __init__(self, link: "BumbleLink", connection: Connection, address: str):
        self.address = address
        self._link = link
        self._connection = connection
        self._peer = Peer(connection)
        self._characteristics: dict[int, CharacteristicProxy] = {}
        self._disconnected = asyncio.get_running_loop().create_future()
        connection.on("disconnection", self._on_disconnection)

    def _on_disconnection(self, reason: Any) -> None:
        if not self._disconnected.done():
            self._disconnected.set_result(reason)

    def mark_transport_lost(self) -> None:
        """The HCI transport died: no disconnection event will ever come, so this is it."""
        self._on_disconnection("transport lost")

    async def _guard(self, code: str, what: str, operation: Awaitable[T], timeout_s: float = GATT_TIMEOUT_S) -> T:
        """Run a stack call; a disconnection or timeout while waiting becomes a LinkError."""
        if self._disconnected.done():
            if asyncio.iscoroutine(operation):
                operation.close()
            raise LinkError("disconnected", f"{self.address} is not connected ({what})")
        task = asyncio.ensure_future(operation)
        try:
            done, _ = await asyncio.wait({task, self._disconnected}, timeout=timeout_s,
                                         return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            task.cancel()
            raise
        if task in done:
            if task.cancelled():     # bumble cancels what waits on a link that went down
                raise LinkError("disconnected" if self._disconnected.done() else code,
                                f"{what} on {self.address} was cancelled by the stack")
            exc = task.exception()
            if exc is None:
                return task.result()
            if isinstance(exc, LinkError):
                raise exc
            if self._disconnected.done():
                raise LinkError("disconnected", f"{self.address} disconnected during {what}")
            raise LinkError(code, f"{what} on {self.address} failed: {_describe(exc)}") from exc
        task.cancel()
        if self._disconnected.done():
            raise LinkError("disconnected", f"{self.address} disconnected during {what}")
        raise LinkError(code, f"{what} on {self.address} timed out after {timeout_s:g} s")

    async def discover(self) -> None:
        async def discover_all() -> None:
            await self._peer.discover_services()
            await self._peer.discover_characteristics()
        await self._guard("gatt", "service discovery", discover_all())
        for service in self._peer.services:
            for characteristic in service.characteristics:
                # a SIG characteristic may be announced in its 128-bit form: both give the same 16-bit id
                uuid = characteristic.uuid.to_bytes(force_128=True)
                if uuid[:12] == BASE_UUID_PREFIX and uuid[14:] == b"\0\0":
                    self._characteristics.setdefault(int.from_bytes(uuid[12:14], "little"), characteristic)

    def has(self, uuid16: int) -> bool:
        return uuid16 in self._characteristics

    def _characteristic(self, uuid16: int) -> CharacteristicProxy:
        try:
            return self._characteristics[uuid16]
        except KeyError:
            raise LinkError("gatt", f"{self.address} has no characteristic 0x{uuid16:04X}") from None

    async def read(self, uuid16: int) -> bytes:
        characteristic = self._characteristic(uuid16)
        return bytes(await self._guard("gatt", f"read 0x{uuid16:04X}", self._peer.read_value(characteristic)))

    async def write(self, uuid16: int, data: bytes, *, response: bool = True) -> None:
        characteristic = self._characteristic(uuid16)
        await self._guard("gatt", f"write 0x{uuid16:04X}",
                          self._peer.write_value(characteristic, bytes(data), with_response=response))

    async def subscribe(self, uuid16: int, callback: Callable[[bytes], None]) -> None:
        characteristic = self._characteristic(uuid16)
        properties = characteristic.properties
        if not properties & (Characteristic.Properties.INDICATE | Characteristic.Properties.NOTIFY):
            raise LinkError("gatt", f"0x{uuid16:04X} on {self.address} neither indicates nor notifies")
        prefer_notify = not properties & Characteristic.Properties.INDICATE

        def deliver(value: bytes) -> None:
            try:
                callback(bytes(value))
            except Exception:   # the callback's bug must not break the stack's event dispatch
                log.exception("BLE value callback for 0x%04X of %s failed", uuid16, self.address)

        await self._guard("gatt", f"subscribe 0x{uuid16:04X}",
                          self._peer.subscribe(characteristic, deliver, prefer_notify=prefer_notify))

    async def pair(self, passkey: str | None) -> None:
        """Encrypt with the stored bond if there is one, else pair (bonding) with the passkey."""
        number = passkey_number(passkey)
        if self._connection.is_encrypted:
            return
        if self._link.device is None:
            raise LinkError("disconnected", f"the link to {self.address} is closed")
        keystore = self._link.device.keystore
        peer_key = str(self._connection.peer_address)
        keys = await self._stored_keys(keystore, peer_key)
        if keys is not None and (keys.ltk or keys.ltk_central):
            try:
                await self._guard("pairing", "encryption with the stored bond", self._connection.encrypt(),
                                  PAIRING_TIMEOUT_S)
                return
            except LinkError as exc:
                # the device lost or refused the bond (a reset cuff, eigger/hass-omron#20): forget it so that
                # this or the next connection pairs afresh instead of failing the same way forever
                log.info("stored bond with %s was refused (%s); pairing again", self.address, exc.message)
                await self._forget(keystore, peer_key)
                if exc.code == "disconnected":
                    raise LinkError("pairing", f"{self.address} dropped the link when asked to encrypt with "
                                               "the stored bond; the bond is forgotten, the next connection "
                                               "pairs again") from exc
        self._link.passkeys[self._connection.handle] = number
        try:
            await self._guard("pairing", "pairing", self._connection.pair(), PAIRING_TIMEOUT_S)
        finally:
            self._link.passkeys.pop(self._connection.handle, None)
        if not self._connection.is_encrypted:
            raise LinkError("pairing", f"pairing with {self.address} ended without an encrypted link")
        await self._bond_saved(keystore)

    async def _stored_keys(self, keystore: Any, peer_key: str) -> Any:
        if keystore is None:
            return None
        try:
            return await keystore.get(peer_key)
        except (OSError, ValueError, KeyError, TypeError) as exc:    # an unreadable key store: pair afresh
            log.warning("key store %s unreadable (%s); pairing without it", self._link.key_store, _describe(exc))
            return None

    async def _forget(self, keystore: Any, peer_key: str) -> None:
        try:
            await keystore.delete(peer_key)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("cannot forget the bond of %s in %s: %s", self.address, self._link.key_store, _describe(exc))

    async def _bond_saved(self, keystore: Any) -> None:
        """bumble writes the new keys in a task after pairing completes; wait for them so that a restart
        right after pairing still finds the bond."""
        if keystore is None:
            return
        for _ in range(40):
            if await self._stored_keys(keystore, str(self._connection.peer_address)) is not None:
                return
            await asyncio.sleep(0.05)
        log.info("%s paired without bonding: the next connection pairs again", self.address)

    async def wait_disconnected(self) -> None:
        await asyncio.shield(self._disconnected)

    async def disconnect(self) -> None:
        if self._disconnected.done():
            return
        try:
            await asyncio.wait_for(self._connection.disconnect(), GATT_TIMEOUT_S)
            await asyncio.wait_for(asyncio.shield(self._disconnected), GATT_TIMEOUT_S)
        except Exception as exc:   # already gone, or the controller did not answer: nothing left to do
            log.debug("disconnect from %s: %s", self.address, _describe(exc))


class BumbleLink:
    def __init__(self, hci: str, key_store: Path, address: str | None = None):
        self.hci = hci
        self.key_store = Path(key_store)
        self.address = address
        self.passkeys: dict[int, int | None] = {}   # connection handle -> passkey while pairing
        self.device: Device | None = None
        self._transport: Any = None
        self._lock = asyncio.Lock()
        self._address_types: dict[str, hci.Address] = {}
        self._connections: weakref.WeakSet[BumbleGattConnection] = weakref.WeakSet()
        self.transport_lost = False

    async def open(self) -> None:
        try:
            self._transport = await open_transport(self.hci)
        except Exception as exc:
            raise LinkError("adapter", f"cannot open HCI transport {self.hci}: {_describe(exc)}") from exc
        self.transport_lost = False
        terminated = getattr(self._transport.source, "terminated", None)
        if isinstance(terminated, asyncio.Future):
            terminated.add_done_callback(self._on_transport_lost)
        try:
            self.address = self.address or stable_static_address(self.key_store)
            self.device = Device.with_hci("hinode-gateway", hci.Address(self.address),
                                          self._transport.source, self._transport.sink)
            self.key_store.parent.mkdir(parents=True, exist_ok=True)
            set_aside_unreadable(self.key_store)
            self.device.keystore = JsonKeyStore(namespace=self.address, filename=str(self.key_store))
            self.device.pairing_config_factory = self._pairing_config
            await asyncio.wait_for(self.device.power_on(), GATT_TIMEOUT_S)
        except Exception as exc:
            await self.close()
            raise LinkError("adapter", f"cannot power on the controller on {self.hci}: {_describe(exc)}") from exc

    def _on_transport_lost(self, _terminated: asyncio.Future) -> None:
        if self._transport is None:       # closed on purpose
            return
        log.warning("HCI transport %s lost", self.hci)
        self.transport_lost = True
        for connection in list(self._connections):
            connection.mark_transport_lost()

    def _pairing_config(self, connection: Connection) -> PairingConfig:
        passkey = self.passkeys.get(connection.handle)
        # bumble's Secure Connections passkey entry asserts the passkey is truthy, so 000000 (a common factory
        # passkey) goes through LE legacy pairing, where a passkey of 0 is valid
        secure_connections = passkey != 0
        return PairingConfig(sc=secure_connections, mitm=passkey is not None, bonding=True,
                             delegate=_PasskeyDelegate(passkey))

    async def close(self) -> None:
        device = self.device
        if device is not None:
            for connection in list(device.connections.values()):
                try:    # leave the devices free for the next host rather than holding a dead link
                    await asyncio.wait_for(connection.disconnect(), 2.0)
                except Exception as exc:
                    log.debug("disconnect on close: %s", _describe(exc))
        transport, self._transport, self.device = self._transport, None, None
        if transport is not None:
            try:
                await transport.close()
            except Exception as exc:
                log.debug("closing %s: %s", self.hci, _describe(exc))

    async def _unless_lost(self, what: str, operation: Awaitable[T], timeout_s: float) -> T:
        """Run a host call, but give up at once when the transport dies (its commands would go unanswered
        until bumble's 10 s command timeout)."""
        task = asyncio.ensure_future(operation)
        terminated = getattr(self._transport.source, "terminated", None) if self._transport else None
        waiting = {task} | ({terminated} if isinstance(terminated, asyncio.Future) else set())
        try:
            await asyncio.wait(waiting, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            task.cancel()
            raise
        if task.done():
            return task.result()
        task.cancel()
        if self.transport_lost or (terminated is not None and terminated.done()):
            raise LinkError("adapter", f"the HCI transport {self.hci} was lost during {what}")
        raise TimeoutError(f"{what} took more than {timeout_s:g} s")

    def _require_device(self) -> Device:
        if self.device is None:
            raise LinkError("adapter", f"the link on {self.hci} is not open")
        if self.transport_lost:
            raise LinkError("adapter", f"the HCI transport {self.hci} was lost; close and open the link again")
        return self.device

    async def scan(self, match: Callable[[Advert], bool], timeout_s: float) -> Advert | None:
        device = self._require_device()
        async with self._lock:
            found: asyncio.Future[Advert] = asyncio.get_running_loop().create_future()

            def on_advertisement(advertisement: Advertisement) -> None:
                advert = self._advert(advertisement)
                if not found.done() and match(advert):
                    found.set_result(advert)

            device.on("advertisement", on_advertisement)
            try:
                await self._unless_lost("starting a scan", device.start_scanning(active=True, filter_duplicates=False),
                                        GATT_TIMEOUT_S)
                try:
                    return await self._unless_lost("scanning", asyncio.shield(found), timeout_s)
                except TimeoutError:
                    return None
            except LinkError:
                raise
            except Exception as exc:
                raise LinkError("adapter", f"scanning on {self.hci} failed: {_describe(exc)}") from exc
            finally:
                found.cancel()
                device.remove_listener("advertisement", on_advertisement)
                try:
                    if not self.transport_lost:
                        await self._unless_lost("stopping a scan", device.stop_scanning(), GATT_TIMEOUT_S)
                except Exception as exc:
                    log.debug("stop scanning: %s", _describe(exc))

    def _advert(self, advertisement: Advertisement) -> Advert:
        address = advertisement.address.to_string(with_type_qualifier=False)
        self._address_types[address] = advertisement.address
        name = (advertisement.data.get(AdvertisingData.COMPLETE_LOCAL_NAME)
                or advertisement.data.get(AdvertisingData.SHORTENED_LOCAL_NAME) or "")
        if isinstance(name, bytes):
            name = name.decode("utf-8", "replace")
        rssi = advertisement.rssi
        return Advert(address=address, name=str(name),
                      rssi=None if rssi == Advertisement.RSSI_NOT_AVAILABLE else int(rssi))

    async def connect(self, address: str, timeout_s: float) -> BumbleGattConnection:
        device = self._require_device()
        key = address.strip().upper()
        async with self._lock:
            try:
                peer_address = self._address_types.get(key) or hci.Address(key)
            except Exception as exc:
                raise LinkError("connect", f"not a Bluetooth address: {address!r}") from exc
            try:
                # the host cancels at timeout_s; the outer limit only guards against a controller that never
                # reports the cancelled attempt
                connection = await self._unless_lost(f"connecting to {key}", device.connect(peer_address, timeout=timeout_s),
                                                     timeout_s + GATT_TIMEOUT_S)
            except (asyncio.CancelledError, LinkError):
                raise
            except Exception as exc:
                raise LinkError("connect", f"cannot connect to {key}: {_describe(exc)}") from exc
            gatt = BumbleGattConnection(self, connection, key)
            self._connections.add(gatt)
            try:
                await gatt.discover()
            except BaseException:
                await gatt.disconnect()
                raise
            return gatt
