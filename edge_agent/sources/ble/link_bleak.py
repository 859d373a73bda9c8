"""GattLink on bleak (BlueZ over D-Bus), the production stack on a Linux gateway with a built-in radio.

Not exercised by the tests here (no BlueZ, no radio in CI): only its selection and UUID mapping are. bleak is
imported in `open()`, so this module loads without D-Bus. Bonds live in BlueZ, not in the link's key store;
a device that asks for a passkey needs a BlueZ agent that answers it (`bluetoothctl` with `agent
KeyboardOnly` + `pair <address>` once, or pre-pairing at kit set-up): `pair()` here only asks BlueZ to pair.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Awaitable, Callable, TypeVar

from edge_agent.sources.ble.link import Advert, LinkError, passkey_number, uuid16_to_uuid128

log = logging.getLogger(__name__)

GATT_TIMEOUT_S = 10.0
T = TypeVar("T")


async def _call(code: str, what: str, operation: Awaitable[T], timeout_s: float = GATT_TIMEOUT_S) -> T:
    try:
        return await asyncio.wait_for(operation, timeout_s)
    except LinkError:
        raise
    except TimeoutError as exc:
        raise LinkError(code, f"{what} timed out after {timeout_s:g} s") from exc
    except Exception as exc:      # BleakError, BleakDBusError, EOFError from a dropped D-Bus connection, ...
        raise LinkError(code, f"{what} failed: {type(exc).__name__}: {exc}") from exc


class BleakGattConnection:
    def __init__(self, client: Any, address: str, disconnected: asyncio.Event, use_start_notify: bool):
        self.address = address
        self._client = client
        self._disconnected = disconnected
        self._use_start_notify = use_start_notify

    def _check(self, what: str) -> None:
        if self._disconnected.is_set() or not self._client.is_connected:
            raise LinkError("disconnected", f"{self.address} is not connected ({what})")

    def has(self, uuid16: int) -> bool:
        return self._client.services.get_characteristic(uuid16_to_uuid128(uuid16)) is not None

    async def read(self, uuid16: int) -> bytes:
        self._check(f"read 0x{uuid16:04X}")
        return bytes(await _call("gatt", f"read 0x{uuid16:04X} on {self.address}",
                                 self._client.read_gatt_char(uuid16_to_uuid128(uuid16))))

    async def write(self, uuid16: int, data: bytes, *, response: bool = True) -> None:
        self._check(f"write 0x{uuid16:04X}")
        await _call("gatt", f"write 0x{uuid16:04X} on {self.address}",
                    self._client.write_gatt_char(uuid16_to_uuid128(uuid16), bytes(data), response=response))

    async def subscribe(self, uuid16: int, callback: Callable[[bytes], None]) -> None:
        self._check(f"subscribe 0x{uuid16:04X}")

        def deliver(_characteristic: Any, data: bytearray) -> None:
            try:
                callback(bytes(data))
            except Exception:
                log.exception("BLE value callback for 0x%04X of %s failed", uuid16, self.address)

        # start_notify enables indications too, whichever the characteristic offers
        await _call("gatt", f"subscribe 0x{uuid16:04X} on {self.address}",
                    self._client.start_notify(uuid16_to_uuid128(uuid16), deliver,
                                              bluez={"use_start_notify": self._use_start_notify}))

    async def pair(self, passkey: str | None) -> None:
        passkey_number(passkey)     # reject a malformed passkey here, like the bumble link
        if passkey is not None:
            log.info("pairing %s: BlueZ's agent must supply the passkey (see link_bleak.py)", self.address)
        self._check("pairing")
        await _call("pairing", f"pairing with {self.address}", self._client.pair(), 30.0)

    async def wait_disconnected(self) -> None:
        await self._disconnected.wait()

    async def disconnect(self) -> None:
        try:
            await asyncio.wait_for(self._client.disconnect(), GATT_TIMEOUT_S)
        except Exception as exc:
            log.debug("disconnect from %s: %s", self.address, exc)


class BleakLink:
    def __init__(self, adapter: str | None, use_start_notify: bool = False):
        self.adapter = adapter
        self.use_start_notify = use_start_notify
        self._bleak: Any = None
        self._seen: dict[str, Any] = {}         # address -> BLEDevice from the last scans
        self._lock = asyncio.Lock()

    def _bluez(self) -> dict[str, str]:
        return {"adapter": self.adapter} if self.adapter else {}

    async def open(self) -> None:
        try:
            import bleak
        except ImportError as exc:
            raise LinkError("adapter", f"bleak is not installed: {exc}") from exc
        self._bleak = bleak

    async def close(self) -> None:
        self._seen.clear()

    async def scan(self, match: Callable[[Advert], bool], timeout_s: float) -> Advert | None:
        if self._bleak is None:
            raise LinkError("adapter", "the bleak link is not open")
        found: list[Advert] = []

        def matches(device: Any, advertisement: Any) -> bool:
            advert = Advert(device.address.upper(), advertisement.local_name or device.name or "",
                            advertisement.rssi)
            if match(advert):
                found.append(advert)
                return True
            return False

        async with self._lock:
            device = await _call("adapter", f"scanning on {self.adapter or 'the default adapter'}",
                                 self._bleak.BleakScanner.find_device_by_filter(matches, timeout=timeout_s,
                                                                                bluez=self._bluez()),
                                 timeout_s + GATT_TIMEOUT_S)
        if device is None or not found:
            return None
        self._seen[found[-1].address] = device
        return found[-1]

    async def connect(self, address: str, timeout_s: float) -> BleakGattConnection:
        if self._bleak is None:
            raise LinkError("adapter", "the bleak link is not open")
        key = address.strip().upper()
        loop = asyncio.get_running_loop()
        disconnected = asyncio.Event()
        client = self._bleak.BleakClient(self._seen.get(key, key), timeout=timeout_s, bluez=self._bluez(),
                                         disconnected_callback=lambda _c: loop.call_soon_threadsafe(disconnected.set))
        async with self._lock:
            await _call("connect", f"connecting to {key}", client.connect(), timeout_s + GATT_TIMEOUT_S)
        return BleakGattConnection(client, key, disconnected, self.use_start_notify)
