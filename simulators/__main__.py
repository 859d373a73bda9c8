"""Command line: run a simulator until Ctrl-C or SIGTERM.

    python -m simulators modbus --port 5020 --meters 20 [--profile ID] [--interval 1]
                                [--sunspec [--sunspec-base 40000]] [--rtu]
                                [--timeout-unit N] [--exception-unit N:CODE]
    python -m simulators opcua --port 4840 --meters 8 [--interval 1]
                               [--security Basic256Sha256 --cert-dir DIR [--trust CERT]]

Prints one line saying what is served where, then runs; exits 0 on SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from simulators.modbus import DEFAULT_PROFILE, ModbusSimulator
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

    for p in (mb, ua):
        p.add_argument("-v", "--verbose", action="store_true", help="log every fault change and refresh problem")
    return parser


def make_simulator(args: argparse.Namespace) -> ModbusSimulator | OpcuaSimulator:
    if args.kind == "modbus":
        sim = ModbusSimulator(meters=args.meters, port=args.port, host=args.host, profile=args.profile,
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


async def serve(sim: ModbusSimulator | OpcuaSimulator) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await sim.start()
    print(sim.describe(), flush=True)
    try:
        await stop.wait()
    finally:
        await sim.stop()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not args.verbose:    # both libraries log client mistakes and their own tracebacks at length
        for noisy in ("asyncua", "pymodbus"):
            logging.getLogger(noisy).setLevel(logging.CRITICAL)
    try:
        sim = make_simulator(args)
    except (ValueError, KeyError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        asyncio.run(serve(sim))
    except (OSError, RuntimeError) as exc:
        print(f"error: cannot serve {args.kind} on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
