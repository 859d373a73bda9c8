"""Command line: run a simulator until Ctrl-C or SIGTERM.

    python -m simulators modbus --port 5020 --meters 20 [--profile ID] [--interval 1]
                                [--sunspec [--sunspec-base 40000] [--sunspec-models 1,103]] [--rtu]
    python -m simulators modbus --pv-site [--pv-kwp 250 --site-load-kw 400] [--ev-port 15030]
                                [--time-scale 60] [--start 2025-06-21T06:00] [--float-inverter]
                                [--timeout-unit N] [--exception-unit N:CODE]
    python -m simulators opcua --port 4840 --meters 8 [--interval 1]
                               [--security Basic256Sha256 --cert-dir DIR [--trust CERT]]
    python -m simulators greencity --mqtt-port 1883 [--sites sme-press,sme-food] [--interval 10] [--seed 0]
    python -m simulators ocpp --chargers 10 --version 1.6|2.0.1|mixed --url ws://host:port[/prefix]
                              [--password P | --passwords-file F] [--cafile F] [--time-scale 60]
                              [--start HH:MM] [--meter-interval S] [--phase-switching] ...
    python -m simulators fleet --mqtt-port 1883 [--scooters 40 --slow 4] [--fleet hitachi-scooters] [--interval 5]
                               [--passwords-file F --cafile F] [--time-scale 1] [--seed 0] [--misbehave]
                               [--gbfs-port P --gbfs-version 2.3|3.0] [--state-dir DIR]
    python -m simulators ble --hci tcp-server:127.0.0.1:PORT --control-port PORT [--kit kit-01]
                             [--auto-measure-s S] [--seed N] [--passkey 123456]

Prints one line saying what is served where, then runs; exits 0 on SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from simulators.ble.control import KitSimulator, add_cli_options as add_ble_options, \
    simulator_from_args as ble_kit_from_args
from simulators.modbus import DEFAULT_PROFILE, ModbusSimulator
from simulators.modbus.sunspec_site import add_cli_options as add_sunspec_options, simulator_from_args
from simulators.ev_feed import send_ev_power
from simulators.fleet.simulator import FleetSimulator, add_cli_options as add_fleet_options, \
    simulator_from_args as fleet_from_args
from simulators.greencity.live import GreenCityPublisher, add_cli_options as add_greencity_options, publisher_from_args
from simulators.ocpp import VERSIONS, ChargerFleet, parse_start, read_passwords
from simulators.opcua import DEFAULT_NODE_MAP, OpcuaSimulator


def _exception_unit(text: str) -> tuple[int, int]:
    unit, sep, code = text.partition(":")
    if not sep or not unit.isdigit() or not code.isdigit():
        raise argparse.ArgumentTypeError(f"expected UNIT:CODE such as 4:2, got {text!r}")
    return int(unit), int(code)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m simulators", description="hinode meter simulators")
    sub = parser.add_subparsers(dest="kind", required=True)

    mb = sub.add_parser("modbus", help="Modbus TCP (or RTU over a virtual serial line) meters")
    mb.add_argument("--host", default="127.0.0.1")
    mb.add_argument("--port", type=int, default=5020, help="TCP port (0 = any free port)")
    mb.add_argument("--meters", type=int, default=20, help="meters, served as unit ids 1..N")
    mb.add_argument("--profile", default=DEFAULT_PROFILE, help="Modbus device profile id or path")
    mb.add_argument("--interval", type=float, default=1.0, help="seconds between value updates")
    mb.add_argument("--seed", type=int, default=0, help="changes every meter's size and noise")
    mb.add_argument("--sunspec", action="store_true", help="serve SunSpec models 1 and 203 instead of the profile")
    mb.add_argument("--sunspec-base", type=int, default=40000, choices=(40000, 0, 50000))
    mb.add_argument("--rtu", action="store_true", help="serve Modbus RTU on a pseudo-terminal pair instead of TCP")
    mb.add_argument("--baudrate", type=int, default=19200)
    mb.add_argument("--timeout-unit", type=int, action="append", default=[], metavar="N",
                    help="unit N never answers (repeatable)")
    mb.add_argument("--exception-unit", type=_exception_unit, action="append", default=[], metavar="N:CODE",
                    help="unit N answers Modbus exception CODE (repeatable)")
    add_sunspec_options(mb)

    ua = sub.add_parser("opcua", help="OPC UA meters under Objects/Meters")
    ua.add_argument("--host", default="127.0.0.1")
    ua.add_argument("--port", type=int, default=4840, help="TCP port (0 = any free port)")
    ua.add_argument("--meters", type=int, default=8)
    ua.add_argument("--interval", type=float, default=1.0)
    ua.add_argument("--seed", type=int, default=0)
    ua.add_argument("--node-map", default=DEFAULT_NODE_MAP, help="OPC UA node map profile id or path")
    ua.add_argument("--security", choices=("None", "Basic256Sha256"), default="None")
    ua.add_argument("--cert-dir", help="where the server certificate lives; trusted client certs go in DIR/trusted/")
    ua.add_argument("--trust", action="append", default=[], metavar="CERT", help="trust this client certificate")

    oc = sub.add_parser("ocpp", help="OCPP 1.6J / 2.0.1 workplace charge points with commuters' cars")
    oc.add_argument("--url", required=True, help="central system, ws://host:port[/prefix]; chargers add /<id>")
    oc.add_argument("--chargers", type=int, default=10)
    oc.add_argument("--version", choices=VERSIONS, default="1.6", help="mixed: odd ids 1.6J, even ids 2.0.1")
    oc.add_argument("--id-prefix", default="CP", help="charger ids PREFIX01..PREFIXNN")
    auth = oc.add_mutually_exclusive_group()
    auth.add_argument("--password", help="HTTP Basic auth password for every charger (user = charger id)")
    auth.add_argument("--passwords-file", help="lines of 'ID PASSWORD' (or ID:PASSWORD)")
    oc.add_argument("--cafile", help="CA certificate to verify a wss:// central system with")
    oc.add_argument("--meter-interval", type=int, default=60, help="simulated seconds between meter values")
    oc.add_argument("--time-scale", type=float, default=1.0, help="simulated seconds per real second")
    oc.add_argument("--start", help="simulated clock start, HH:MM today or YYYY-MM-DDTHH:MM (Asia/Tokyo)")
    oc.add_argument("--model-time", metavar="HH:MM",
                    help="commuters behave as at this local time now (a demo at night shows the midday cars); "
                         "message timestamps stay real")
    oc.add_argument("--ev-port", type=int, metavar="PORT",
                    help="send the chargers' total power in W to a PV site simulator's EV feed (UDP, loopback)")
    oc.add_argument("--seed", type=int, default=0, help="changes every car and every day's arrivals")
    oc.add_argument("--connectors", type=int, choices=(1, 2), default=1)
    oc.add_argument("--phases", type=int, choices=(1, 3), default=3)
    oc.add_argument("--max-current", type=float, default=32.0, help="amps per phase the charger can give")
    oc.add_argument("--phase-switching", action="store_true", help="obey numberPhases (3 to 1 phase switching)")
    oc.add_argument("--rate-units", choices=("A,W", "A", "W"), default="A,W", metavar="A,W|A|W",
                    help="charging rate units accepted in profiles")
    oc.add_argument("--ramp", type=float, default=5.0, help="simulated seconds to reach a new current limit")
    oc.add_argument("--switch-delay", type=float, default=120.0,
                    help="simulated seconds of pause when the phase count changes")
    oc.add_argument("--no-commute", dest="commute", action="store_false",
                    help="no commuters: cars only come when plugged in through the Python API")

    for p in (mb, ua, oc):
        p.add_argument("-v", "--verbose", action="store_true", help="log every fault change and refresh problem")
    add_greencity_options(sub)
    add_ble_options(sub)
    add_fleet_options(sub)
    return parser


def make_fleet(args: argparse.Namespace) -> ChargerFleet:
    if args.chargers < 1:
        raise ValueError(f"--chargers: expected at least 1, got {args.chargers}")
    if args.time_scale <= 0:
        raise ValueError(f"--time-scale: expected a number > 0, got {args.time_scale:g}")
    if args.meter_interval < 1:
        raise ValueError(f"--meter-interval: expected at least 1 second, got {args.meter_interval}")
    if args.max_current < 6:
        raise ValueError(f"--max-current: expected at least 6 A, got {args.max_current:g}")
    if args.ramp < 0 or args.switch_delay < 0:
        raise ValueError("--ramp and --switch-delay: expected seconds >= 0")
    if args.cafile and not args.url.startswith("wss://"):
        raise ValueError("--cafile needs a wss:// --url")
    passwords = read_passwords(args.passwords_file) if args.passwords_file else None
    return ChargerFleet(args.url, args.chargers, args.version, id_prefix=args.id_prefix,
                        time_scale=args.time_scale, start=parse_start(args.start) if args.start else None,
                        model_time=parse_start(args.model_time) if args.model_time else None,
                        password=args.password, passwords=passwords, cafile=args.cafile,
                        meter_interval_s=args.meter_interval, seed=args.seed, connectors=args.connectors,
                        phases=args.phases, max_current_a=args.max_current, phase_switching=args.phase_switching,
                        rate_units=tuple(args.rate_units.split(",")), commute=args.commute,
                        ramp_s=args.ramp, switch_delay_s=args.switch_delay)


def make_simulator(args: argparse.Namespace) -> ModbusSimulator | OpcuaSimulator | ChargerFleet | GreenCityPublisher \
        | KitSimulator | FleetSimulator:
    if args.kind == "fleet":
        return fleet_from_args(args)
    if args.kind == "ble":
        return ble_kit_from_args(args)
    if args.kind == "ocpp":
        return make_fleet(args)
    if args.kind == "greencity":
        return publisher_from_args(args)
    if args.kind == "modbus":
        sim = simulator_from_args(args) or ModbusSimulator(meters=args.meters, port=args.port, host=args.host, profile=args.profile,
                              interval=args.interval, seed=args.seed, sunspec=args.sunspec,
                              sunspec_base=args.sunspec_base, rtu=args.rtu, baudrate=args.baudrate)
        for unit in args.timeout_unit:
            sim.set_fault(unit, "timeout")
        for unit, code in args.exception_unit:
            sim.set_fault(unit, f"exception:{code}")
        return sim
    security = None if args.security == "None" else args.security
    if args.trust and not security:
        raise ValueError("--trust needs --security Basic256Sha256")
    return OpcuaSimulator(meters=args.meters, port=args.port, host=args.host, interval=args.interval,
                          security=security, cert_dir=args.cert_dir, client_certs=args.trust,
                          node_map=args.node_map, seed=args.seed)


async def feed_ev_power(fleet: ChargerFleet, port: int, every_s: float = 1.0) -> None:
    """The PV site simulator's grid meter adds what the chargers draw (simulators/ev_feed.py)."""
    while True:
        total = sum(charger.measurements(conn.number)["power_w"]
                    for charger in fleet.chargers for conn in charger.connectors)
        send_ev_power(total, port)
        await asyncio.sleep(every_s)


async def serve(sim: ModbusSimulator | OpcuaSimulator | ChargerFleet, ev_port: int | None = None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await sim.start()
    print(sim.describe(), flush=True)
    feeder = asyncio.create_task(feed_ev_power(sim, ev_port)) if ev_port else None
    try:
        await stop.wait()
    finally:
        if feeder:
            feeder.cancel()
        await sim.stop()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not args.verbose:    # both libraries log client mistakes and their own tracebacks at length
        for noisy in ("asyncua", "pymodbus", "ocpp", "websockets"):
            logging.getLogger(noisy).setLevel(logging.CRITICAL)
    try:
        sim = make_simulator(args)
    except (ValueError, KeyError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        asyncio.run(serve(sim, getattr(args, "ev_port", None) if args.kind == "ocpp" else None))
    except (OSError, RuntimeError) as exc:
        where = args.url if args.kind == "ocpp" else (
            f"MQTT {args.mqtt_host}:{args.mqtt_port}, GBFS port {args.gbfs_port}" if args.kind == "fleet"
            else f"{args.host}:{args.port}")
        print(f"error: cannot serve {args.kind} on {where}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
