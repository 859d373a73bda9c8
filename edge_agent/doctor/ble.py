"""``doctor ble``: scan for health devices by the service UUIDs they advertise.

The scan goes through the BLE source's link seam (``open_link`` + ``scan`` with a matcher
that records every advertisement and never matches, so the scan lasts the whole window).
The seam's ``Advert`` carries address, name and RSSI; the advertised service UUIDs are read
beside it from the stack's own advertisement (bumble: the device's ``advertisement`` event,
bleak: a detection callback). Nothing is ever connected. When nothing advertises a health
service, devices whose name matches a known health-device name are reported as candidates.
"""

from __future__ import annotations

import argparse
import re
import struct
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_agent.sources.ble.link import Advert, LinkError, open_link

CHECK = "ble"
HEALTH_SERVICES: dict[int, str] = {
    0x1810: "blood_pressure",
    0x1809: "temperature",
    0x1822: "spo2",
    0x181D: "weight",
    0x1808: "glucose",
    0x180D: "heart_rate",
}
# Fallback when a device advertises no service list: the usual words in health devices' names.
NAME_HINTS: tuple[tuple[re.Pattern, str], ...] = (
    (re.compile(r"\b(bp|blood|cuff|bpm)", re.I), "blood_pressure"),
    (re.compile(r"(thermo|temp)", re.I), "temperature"),
    (re.compile(r"(oxi|spo2|pulse ?ox)", re.I), "spo2"),
    (re.compile(r"(scale|weight)", re.I), "weight"),
    (re.compile(r"(gluco|glucose)", re.I), "glucose"),
    (re.compile(r"(\bhr\b|hr-|heart|strap)", re.I), "heart_rate"),
)
_BASE_UUID_SUFFIX = "-0000-1000-8000-00805f9b34fb"
_UUID16_TYPES = (0x02, 0x03)       # incomplete / complete list of 16-bit service UUIDs
_UUID128_TYPES = (0x06, 0x07)
_BASE_UUID128_LE = bytes.fromhex("fb349b5f80000080001000000000")     # the base UUID's last 14 bytes, reversed


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stack", choices=("bumble", "bleak"), default="bleak",
                        help="bleak (BlueZ, the default) or bumble (needs --hci)")
    parser.add_argument("--hci", help="bumble transport: usb:0, hci-socket:0, tcp-client:HOST:PORT")
    parser.add_argument("--adapter", help="bleak: BlueZ adapter such as hci0 (default: BlueZ's)")
    parser.add_argument("--seconds", type=float, default=10.0, help="how long to scan (default 10)")
    parser.add_argument("--kit", default="kit-01", help="kit id for the drafted ble source (default kit-01)")


@dataclass
class Seen:
    address: str
    name: str = ""
    rssi: int | None = None
    services: set[int] = field(default_factory=set)
    rotating: bool = False          # a resolvable private address: it changes, so match by name

    @property
    def categories(self) -> list[str]:
        return [HEALTH_SERVICES[s] for s in sorted(self.services) if s in HEALTH_SERVICES]

    def name_hint(self) -> str | None:
        return next((category for pattern, category in NAME_HINTS if pattern.search(self.name)), None)


def uuid16_from_text(text: str) -> int | None:
    """``0000180d-0000-1000-8000-00805f9b34fb`` or ``180d`` -> 0x180D; None for other UUIDs."""
    text = text.strip().lower()
    if len(text) == 4:
        return int(text, 16)
    if len(text) == 36 and text.startswith("0000") and text.endswith(_BASE_UUID_SUFFIX):
        return int(text[4:8], 16)
    return None


def uuid16s_from_ad(ad_type: int, data: bytes) -> list[int]:
    if ad_type in _UUID16_TYPES:
        return [value for (value,) in struct.iter_unpack("<H", data[: len(data) // 2 * 2])]
    if ad_type in _UUID128_TYPES:
        found = []
        for start in range(0, len(data) - 15, 16):
            chunk = data[start:start + 16]
            if chunk[:12] == _BASE_UUID128_LE[:12] and chunk[14:] == b"\x00\x00":
                found.append(int.from_bytes(chunk[12:14], "little"))
        return found
    return []


class Collector:
    """Every advertiser seen during the scan, keyed by address."""

    def __init__(self) -> None:
        self.seen: dict[str, Seen] = {}

    def entry(self, address: str) -> Seen:
        key = address.upper().split("/")[0]
        return self.seen.setdefault(key, Seen(key))

    def on_advert(self, advert: Advert) -> bool:
        entry = self.entry(advert.address)
        entry.name = advert.name or entry.name
        entry.rssi = advert.rssi if advert.rssi is not None else entry.rssi
        entry.services.update(getattr(advert, "service_uuids", ()) or ())    # when the seam carries them
        return False                       # never "found": the scan runs for the whole window

    def on_bumble_advertisement(self, advertisement: Any) -> None:
        address = advertisement.address
        entry = self.entry(address.to_string(with_type_qualifier=False))
        raw = bytes(advertisement.data)
        offset = 0
        while offset < len(raw):
            length = raw[offset]
            if length == 0 or offset + 1 + length > len(raw):
                break
            entry.services.update(uuid16s_from_ad(raw[offset + 1], raw[offset + 2: offset + 1 + length]))
            offset += 1 + length
        if address.is_random and not address.is_static:
            entry.rotating = entry.rotating or address.is_resolvable

    def on_bleak_advertisement(self, device: Any, advertisement: Any) -> None:
        entry = self.entry(device.address)
        for text in advertisement.service_uuids or ():
            value = uuid16_from_text(text)
            if value is not None:
                entry.services.add(value)


async def _scan(link: Any, stack: str, collector: Collector, seconds: float) -> None:
    if stack == "bumble":
        device = link.device
        device.on("advertisement", collector.on_bumble_advertisement)
        try:
            await link.scan(collector.on_advert, seconds)
        finally:
            device.remove_listener("advertisement", collector.on_bumble_advertisement)
        return
    import bleak     # the seam's bleak link reports names only; the service list comes from this callback

    scanner = bleak.BleakScanner(detection_callback=collector.on_bleak_advertisement,
                                 bluez={"adapter": link.adapter} if link.adapter else {})
    async with scanner:
        await link.scan(collector.on_advert, seconds)


def _device_entry(seen: Seen, category: str, index: int) -> dict:
    entry: dict = {"id": f"{category.replace('_', '-')}-{index}", "category": category}
    if seen.rotating and seen.name:
        entry["name"] = seen.name
    else:
        entry["address"] = seen.address
        if seen.name:
            entry["name"] = seen.name
    return entry


async def run(args: argparse.Namespace, report) -> None:
    if args.stack == "bumble" and not args.hci:
        report.fail(CHECK, "--stack bumble needs --hci (usb:0, hci-socket:0, tcp-client:HOST:PORT)")
        return
    collector = Collector()
    with tempfile.TemporaryDirectory(prefix="hinode-doctor-ble-") as scratch:
        # bumble keeps bonds in a key store; the doctor never pairs, so a throwaway one is enough
        try:
            link = open_link(args.stack, hci=args.hci, adapter=args.adapter, key_store=Path(scratch) / "keys.json")
            await link.open()
        except LinkError as exc:
            report.fail(CHECK, f"no usable radio: {exc.message}")
            return
        try:
            await _scan(link, args.stack, collector, args.seconds)
        except LinkError as exc:
            report.fail(CHECK, f"no usable radio: {exc.message}")
            return
        except ImportError as exc:
            report.fail(CHECK, f"no usable radio: bleak is not installed ({exc})")
            return
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            report.fail(CHECK, f"no usable radio: BlueZ is not reachable over the D-Bus system bus ({exc.strerror}); "
                               "is bluetoothd running, or use --stack bumble --hci usb:0")
            return
        except Exception as exc:         # a BlueZ without adapter raises its own types (BleakError, D-Bus errors)
            report.fail(CHECK, f"no usable radio ({args.stack}{' ' + args.adapter if args.adapter else ''}): "
                               f"{type(exc).__name__}: {exc}")
            return
        finally:
            await link.close()
    _report(collector, args, report)


def _report(collector: Collector, args: argparse.Namespace, report) -> None:
    radio = args.hci if args.stack == "bumble" else (args.adapter or "the default BlueZ adapter")
    report.ok(CHECK, f"scanned {args.seconds:g} s with {args.stack} on {radio}: {len(collector.seen)} advertiser(s)")
    health = [s for s in collector.seen.values() if s.categories]
    by_name = [s for s in collector.seen.values() if not s.categories and not s.services and s.name_hint()]
    details, devices, counts = [], [], {}
    for seen in sorted(health, key=lambda s: (s.categories[0], s.address)):
        category = seen.categories[0]
        counts[category] = counts.get(category, 0) + 1
        devices.append(_device_entry(seen, category, counts[category]))
        report.ok(CHECK, f"{seen.address} {seen.name or '(no name)'}: {', '.join(seen.categories)} "
                         f"(services {', '.join(f'0x{s:04X}' for s in sorted(seen.services))}"
                         f"{f', RSSI {seen.rssi} dBm' if seen.rssi is not None else ''})")
        if seen.rotating:
            report.warn(CHECK, f"{seen.address} {seen.name}: uses a rotating private address; the draft matches it "
                               "by name")
        details.append({"address": seen.address, "name": seen.name, "rssi": seen.rssi,
                        "services": sorted(seen.services), "categories": seen.categories})
    for seen in sorted(by_name, key=lambda s: s.address):
        category = seen.name_hint()
        report.warn(CHECK, f"{seen.address} {seen.name}: advertises no service list; by its name probably "
                           f"{category} (not in the draft: confirm its category, then add it)")
        details.append({"address": seen.address, "name": seen.name, "rssi": seen.rssi, "services": [],
                        "categories": [], "name_hint": category})
    report.details[CHECK] = {"stack": args.stack, "devices": details}
    if not health:
        report.fail(CHECK, f"no device advertised a health service ({', '.join(f'0x{u:04X}' for u in HEALTH_SERVICES)})"
                           f" in {args.seconds:g} s: wake the devices (take a measurement) and scan again")
        return
    section: dict = {"type": "ble", "name": "ble", "kit": args.kit, "stack": args.stack}
    if args.stack == "bumble":
        section["hci"] = args.hci
    elif args.adapter:
        section["adapter"] = args.adapter
    section["devices"] = devices
    section["page"] = {"enabled": True}
    report.suggest_source(section)
