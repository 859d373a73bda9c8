"""``doctor modbus``: find the units on a Modbus TCP gateway or RS-485 line and suggest a profile for each.

TCP: ``--host H [--port 502]``. Serial: ``--serial /dev/ttyUSB0 --baud 9600,19200 --parity N,E``;
each baud/parity pair is tried in turn, abandoned after ``--give-up-after`` silent units
in a row with no answer yet, and the first pair that gets answers is scanned fully.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient

from device_profiles.schema import ModbusProfile, ProfileError, load_profile_file, shipped_profiles
from edge_agent.doctor.modbus_probe import (Bus, UnitException, UnitFinding, UnitSilent, answers, identify,
                                            match_profile, probe_sunspec)
from edge_agent.doctor.report import Report

CHECK = "modbus"
EXCEPTION_NAMES = {1: "illegal function", 2: "illegal data address", 3: "illegal data value",
                   4: "server device failure", 5: "acknowledge", 6: "server busy"}
NO_PROFILE = "no profile matches: write one, see device_profiles/README.md"


def parse_units(text: str) -> list[int]:
    """``"1-10,20,30-32"`` -> unit ids; ValueError naming the bad part (ids are 1..247)."""
    units: list[int] = []
    for part in text.split(","):
        part = part.strip()
        try:
            first, _, last = part.partition("-")
            low, high = int(first), int(last or first)
        except ValueError:
            raise ValueError(f"--units: expected ids or ranges like 1-32,40 (got {part!r})") from None
        if not 1 <= low <= high <= 247:
            raise ValueError(f"--units: ids must be 1..247 and ranges ascending (got {part!r})")
        units += [u for u in range(low, high + 1) if u not in units]
    return units


def _csv(kind):
    return lambda text: [kind(item.strip()) for item in text.split(",") if item.strip()]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    where = parser.add_argument_group("where (one of)")
    where.add_argument("--host", help="Modbus TCP gateway or device")
    where.add_argument("--port", type=int, default=502)
    where.add_argument("--serial", metavar="DEVICE", help="RS-485 adapter, e.g. /dev/ttyUSB0")
    parser.add_argument("--baud", type=_csv(int), default=[9600, 19200], help="baud rates to try (default 9600,19200)")
    parser.add_argument("--parity", type=_csv(str.upper), default=["N", "E"], help="parities to try (default N,E)")
    parser.add_argument("--units", type=parse_units, default=parse_units("1-32"), help="unit ids (default 1-32)")
    parser.add_argument("--timeout", type=float, default=0.3, help="seconds to wait for each answer (default 0.3)")
    parser.add_argument("--pause-ms", type=float, default=50.0, help="pause after every request (default 50)")
    parser.add_argument("--give-up-after", type=int, default=5,
                        help="serial: silent units in a row before trying the next baud/parity (default 5)")
    parser.add_argument("--profile-dir", action="append", default=[], type=Path,
                        help="more profile folders to match against (repeatable)")


def load_profiles(extra_dirs: list[Path]) -> list[ModbusProfile]:
    paths = [p for d in extra_dirs for p in sorted(Path(d).glob("*.yaml"))] + list(shipped_profiles())
    profiles: dict[str, ModbusProfile] = {}
    for path in paths:
        try:
            profile = load_profile_file(path)
        except ProfileError:
            continue
        if isinstance(profile, ModbusProfile):
            profiles.setdefault(profile.id, profile)
    return list(profiles.values())


async def probe_unit(bus: Bus, unit: int, profiles: list[ModbusProfile]) -> UnitFinding | None:
    """Everything we can learn about one unit; None if it is silent."""
    exception = await answers(bus, unit)
    finding = UnitFinding(unit, exception=exception)
    try:
        finding.identification = await identify(bus, unit)
        finding.sunspec = await probe_sunspec(bus, unit)
        if finding.sunspec is None:
            scores = [(p.id, await match_profile(bus, unit, p)) for p in profiles]
            finding.matches = sorted((s for s in scores if s[1] > 0), key=lambda s: -s[1])
    except UnitSilent:
        pass                              # it answered once and then stopped: report what we have
    return finding


async def scan(bus: Bus, units: list[int], profiles: list[ModbusProfile],
               give_up_after: int | None = None) -> tuple[list[UnitFinding], list[int]]:
    """(findings of answering units, silent units); stops early after ``give_up_after`` silent units if none answered."""
    found: list[UnitFinding] = []
    silent: list[int] = []
    for unit in units:
        try:
            finding = await probe_unit(bus, unit, profiles)
        except UnitSilent:
            silent.append(unit)
            if give_up_after and not found and len(silent) >= give_up_after:
                break
            continue
        found.append(finding)
    return found, silent


def _describe(finding: UnitFinding) -> tuple[str, str]:
    parts = []
    ident = finding.identification
    if ident:
        parts.append("identification: " + ", ".join(f"{k} {v}" for k, v in ident.items()))
    if finding.sunspec:
        s = finding.sunspec
        if "error" in s:
            return "warn", f"unit {finding.unit}: 'SunS' at {s['base']} but {s['error']}"
        parts.append(f"SunSpec at {s['base']}: {s['manufacturer']} {s['model']} (version {s['version'] or '?'}), "
                     f"models {', '.join(map(str, s['models']))}")
        return "ok", f"unit {finding.unit}: " + "; ".join(parts) + " -> source type sunspec"
    if finding.suggested_profile:
        best, score = finding.matches[0]
        others = ", ".join(f"{p} {s:.0%}" for p, s in finding.matches[1:])
        parts.append(f"profile {best} ({score:.0%} of its voltage/frequency registers plausible"
                     + (f"; also {others})" if others else ")"))
        return "ok", f"unit {finding.unit}: " + "; ".join(parts)
    if finding.exception is not None and not finding.matches and not ident:
        name = EXCEPTION_NAMES.get(finding.exception, "unknown")
        return "warn", (f"unit {finding.unit} answers but refuses reads with exception {finding.exception} "
                        f"({name}): it is there, check its manual/settings; {NO_PROFILE}")
    tried = ", ".join(f"{p} {s:.0%}" for p, s in finding.matches) or "none plausible"
    return "warn", f"unit {finding.unit}: " + "; ".join(parts + [f"profiles tried: {tried}", NO_PROFILE])


def _transport(args, setting: dict[str, Any] | None) -> dict[str, Any]:
    if args.serial:
        return {"transport": "rtu", "serial": {"port": args.serial, **setting},
                "timeout_s": 1.0, "pause_between_requests_ms": 20}
    return {"transport": "tcp", "host": args.host, "port": args.port, "timeout_s": 1.0}


def draft_sources(report: Report, args, findings: list[UnitFinding], setting: dict[str, Any] | None,
                  kinds: dict[str, str]) -> None:
    modbus = [{"id": f"{kinds.get(f.suggested_profile, 'meter')}-{f.unit}", "unit": f.unit,
               "profile": f.suggested_profile} for f in findings if not f.sunspec and f.suggested_profile]
    sunspec = [{"id": f"sunspec-{f.unit}", "unit": f.unit, "base_address": f.sunspec["base"]}
               for f in findings if f.sunspec and "error" not in f.sunspec]
    if modbus:
        report.suggest_source({"type": "modbus", "name": "modbus", **_transport(args, setting), "devices": modbus})
    if sunspec:
        report.suggest_source({"type": "sunspec", "name": "sunspec", **_transport(args, setting), "devices": sunspec})


def _details(bus: Bus, setting, findings, silent) -> dict[str, Any]:
    elapsed = max(time.monotonic() - bus.started, 1e-6)
    return {"setting": setting, "silent_units": silent, "requests": bus.requests, "seconds": round(elapsed, 3),
            "units": [{"unit": f.unit, "exception": f.exception, "identification": f.identification,
                       "sunspec": f.sunspec, "matches": f.matches, "suggested_profile": f.suggested_profile}
                      for f in findings]}


async def _scan_tcp(args, report: Report, profiles) -> tuple[list[UnitFinding], dict | None]:
    client = AsyncModbusTcpClient(args.host, port=args.port, timeout=args.timeout, retries=0)
    if not await client.connect():
        report.fail(CHECK, f"cannot connect to {args.host}:{args.port} (TCP): is the gateway on and the port right?")
        return [], None
    try:
        bus = Bus(client, args.pause_ms / 1000)
        findings, silent = await scan(bus, args.units, profiles)
        report.details[CHECK] = _details(bus, None, findings, silent)
        report.ok(CHECK, f"{args.host}:{args.port}: {len(findings)} of {len(args.units)} unit ids answered "
                         f"({bus.requests} requests in {report.details[CHECK]['seconds']:.1f}s)")
        return findings, None
    finally:
        client.close()


async def _scan_serial(args, report: Report, profiles) -> tuple[list[UnitFinding], dict | None]:
    report.details[CHECK] = {"tried": []}
    for baud in args.baud:
        for parity in args.parity:
            setting = {"baudrate": baud, "parity": parity}
            label = f"{args.serial} {baud} 8{parity}1"
            client = AsyncModbusSerialClient(args.serial, baudrate=baud, parity=parity, bytesize=8, stopbits=1,
                                             timeout=args.timeout, retries=0)
            try:
                connected = await client.connect()
            except Exception as exc:  # noqa: BLE001 - pyserial/termios refusing this one setting
                client.close()
                report.warn(CHECK, f"{label}: the port refuses this setting ({exc}), trying the next one")
                continue
            if not connected:
                report.fail(CHECK, f"cannot open {args.serial}: does it exist, and is the user in group dialout?")
                return [], None
            try:
                bus = Bus(client, args.pause_ms / 1000)
                findings, silent = await scan(bus, args.units, profiles, args.give_up_after)
            finally:
                client.close()
            details = _details(bus, setting, findings, silent)
            report.details[CHECK]["tried"].append(details)
            if findings:
                report.details[CHECK].update(details)
                report.ok(CHECK, f"{label}: {len(findings)} unit(s) answered ({bus.requests} requests "
                                 f"in {details['seconds']:.1f}s)")
                return findings, setting
            report.ok(CHECK, f"{label}: no answer from {len(silent)} unit ids in a row, trying the next setting")
    report.fail(CHECK, f"{args.serial}: no unit answered at any of baud {args.baud} x parity {args.parity}: "
                       "check wiring (A/B swapped?), termination and the meters' bus settings")
    return [], None


async def run(args, report: Report) -> None:
    if bool(args.host) == bool(args.serial):
        report.fail(CHECK, "give either --host (Modbus TCP) or --serial DEVICE (RTU), not both or neither")
        return
    profiles = load_profiles(args.profile_dir)
    scanner = _scan_serial if args.serial else _scan_tcp
    findings, setting = await scanner(args, report, profiles)
    for finding in findings:
        level, message = _describe(finding)
        report.add(level, CHECK, message)
    draft_sources(report, args, findings, setting, {p.id: p.kind for p in profiles})
    if args.profile_dir:
        report.profile_dirs = [str(d) for d in args.profile_dir]
