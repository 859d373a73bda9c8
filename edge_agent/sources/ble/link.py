"""The GATT seam: the few GATT client calls the BLE source makes, implemented by bumble and by bleak.

The source only talks to a `GattLink` (scan, connect) and the `GattConnection` it returns (read, write,
subscribe, pair). `link_bumble.BumbleLink` runs the pure-Python bumble host over any HCI transport (a USB
dongle `usb:0`, `hci-socket:0`, `serial:...`, or `tcp-client:HOST:PORT` to the virtual devices of
`simulators/ble`); `link_bleak.BleakLink` runs bleak on BlueZ. Every stack error becomes a `LinkError`
whose `code` says what failed, so the source never sees a stack's own exception types.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

LINK_ERROR_CODES = frozenset({"not_found", "connect", "pairing", "gatt", "disconnected", "adapter"})
STACKS = ("bumble", "bleak")
log = logging.getLogger(__name__)


class LinkError(Exception):
    """A failed link operation; `code` is one of LINK_ERROR_CODES."""

    def __init__(self, code: str, message: str):
        if code not in LINK_ERROR_CODES:
            raise ValueError(f"LinkError code must be one of {sorted(LINK_ERROR_CODES)}, got {code!r}")
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Advert:
    address: str            # "AA:BB:CC:DD:EE:FF", upper case, no address-type suffix
    name: str               # complete or shortened local name, "" when the device gives none
    rssi: int | None = None


class GattConnection(Protocol):
    address: str

    def has(self, uuid16: int) -> bool: ...
    async def read(self, uuid16: int) -> bytes: ...
    async def write(self, uuid16: int, data: bytes, *, response: bool = True) -> None: ...
    async def subscribe(self, uuid16: int, callback: Callable[[bytes], None]) -> None: ...
    async def pair(self, passkey: str | None) -> None: ...
    async def wait_disconnected(self) -> None: ...
    async def disconnect(self) -> None: ...


class GattLink(Protocol):
    async def open(self) -> None: ...
    async def close(self) -> None: ...
    async def scan(self, match: Callable[[Advert], bool], timeout_s: float) -> Advert | None: ...
    async def connect(self, address: str, timeout_s: float) -> GattConnection: ...


def uuid16_to_uuid128(uuid16: int) -> str:
    """The Bluetooth base UUID form of a 16-bit UUID, as bleak and BlueZ name characteristics."""
    if not 0 <= uuid16 <= 0xFFFF:
        raise ValueError(f"expected a 16-bit UUID, got {uuid16!r}")
    return f"0000{uuid16:04x}-0000-1000-8000-00805f9b34fb"


def passkey_number(passkey: str | None) -> int | None:
    """A 6-digit passkey as the number SMP uses; LinkError("pairing") when it is not one."""
    if passkey is None:
        return None
    text = str(passkey).strip()
    if not text.isdigit() or len(text) > 6:
        raise LinkError("pairing", "a passkey is up to 6 digits (000000-999999)")
    return int(text)


def stable_static_address(key_store: Path) -> str:
    """The gateway's random static address (bumble), created once and kept next to the key store, so that
    the devices' bonds still match after a restart."""
    path = key_store.with_name(key_store.name + ".address")
    try:
        text = path.read_text().strip()
        if len(bytes.fromhex(text.replace(":", ""))) == 6 and int(text[:2], 16) >> 6 == 3:
            return text
    except (OSError, ValueError):
        pass
    raw = bytearray(secrets.token_bytes(6))
    raw[0] |= 0xC0          # most significant byte first here: the two top bits mark a static address
    text = ":".join(f"{b:02X}" for b in raw)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")
    return text


def set_aside_unreadable(key_store: Path) -> None:
    """A corrupt key store would stop the stack from starting: move it aside (kept for whoever looks) and
    start without bonds; the devices pair again."""
    try:
        text = key_store.read_text(encoding="utf-8")
    except FileNotFoundError:
        return
    try:
        if isinstance(json.loads(text), dict):
            return
    except ValueError:
        pass
    aside = key_store.with_name(f"{key_store.name}.unreadable-{int(time.time())}")
    key_store.replace(aside)
    log.warning("BLE key store %s is not a JSON object; moved to %s, devices will pair again", key_store, aside.name)


def open_link(stack: str, *, hci: str | None, adapter: str | None, key_store: Path,
              use_start_notify: bool = False) -> GattLink:
    """The link for a source's `stack`; call `await link.open()` before scanning.

    bumble needs `hci` (a bumble transport spec); bleak uses `adapter` (e.g. "hci0", None = BlueZ default)
    and keeps bonds in BlueZ, so `key_store` only matters for bumble.
    """
    if stack == "bumble":
        if not hci:
            raise LinkError("adapter", "stack bumble needs an hci transport such as usb:0 or tcp-client:HOST:PORT")
        from edge_agent.sources.ble.link_bumble import BumbleLink
        return BumbleLink(hci, Path(key_store))
    if stack == "bleak":
        from edge_agent.sources.ble.link_bleak import BleakLink
        return BleakLink(adapter, use_start_notify)
    raise LinkError("adapter", f"unknown BLE stack {stack!r}, expected one of {', '.join(STACKS)}")
