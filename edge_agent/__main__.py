"""``python -m edge_agent run --config site.yaml`` | ``check-config site.yaml`` | ``profiles``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys


def _load(config_path: str):
    """The validated site config, or None after printing what is wrong with it."""
    from edge_agent.config import ConfigError, load_site_config

    try:
        return load_site_config(config_path)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return None


def _run(config_path: str) -> int:
    from edge_agent.agent import Agent

    config = _load(config_path)
    if config is None:
        return 2

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        loop.add_signal_handler(signal.SIGUSR1, _dump_tasks)
        await Agent(config).run(stop)

    asyncio.run(main())
    return 0


def _dump_tasks() -> None:
    """SIGUSR1: log every asyncio task's stack, to see what a stuck agent waits for."""
    import io

    out = io.StringIO()
    for task in asyncio.all_tasks():
        print(f"--- {task.get_name()}", file=out)
        task.print_stack(file=out)
    logging.getLogger("edge_agent").warning("task dump:\n%s", out.getvalue())


def _check(config_path: str) -> int:
    config = _load(config_path)
    if config is None:
        return 2
    devices = sum(len(getattr(c, "devices", [])) for c in config.source_configs)
    print(f"{config_path}: OK: site {config.site}, agent {config.agent}, "
          f"{len(config.source_configs)} sources, {devices} devices")
    return 0


def _profiles(paths: list[str]) -> int:
    from device_profiles.schema import ProfileError, load_profile_file, shipped_profiles

    failed = 0
    for path in paths or shipped_profiles():
        try:
            profile = load_profile_file(path)
            count = len(getattr(profile, "registers", None) or getattr(profile, "nodes"))
            print(f"{path}: OK: {profile.id} ({profile.protocol}, {profile.vendor} {profile.model}, {count} metrics)")
        except ProfileError as exc:
            print(exc, file=sys.stderr)
            failed += 1
    return 2 if failed else 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["doctor"]:          # the doctor parses its own options, --help included
        from edge_agent.doctor.cli import main as doctor_main

        return doctor_main(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m edge_agent", description="hinode edge agent")
    parser.add_argument("--log-level", default="INFO")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the agent")
    run.add_argument("--config", "-c", required=True)
    check = sub.add_parser("check-config", help="validate a site config and exit")
    check.add_argument("config")
    profiles = sub.add_parser("check-profile", help="validate device profiles (default: the shipped ones)")
    profiles.add_argument("paths", nargs="*")
    doctor = sub.add_parser("doctor", add_help=False, help="commissioning checks: modbus, opcua, ocpp, ble, site")
    doctor.add_argument("doctor_args", nargs=argparse.REMAINDER)
    from edge_agent.enroll import add_arguments as add_enroll_arguments

    add_enroll_arguments(sub.add_parser("enroll", help="enroll this box with a one-time token (key, CSR, certificate)"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.log_level.upper() != "DEBUG":
        # pymodbus dumps frames at ERROR on every timeout and asyncua logs a traceback on every
        # connection loss; our sources log each state change once, with the device's name.
        for noisy in ("pymodbus", "asyncua"):
            logging.getLogger(noisy).setLevel(logging.CRITICAL)
    if args.command == "run":
        return _run(args.config)
    if args.command == "doctor":
        from edge_agent.doctor.cli import main as doctor_main

        return doctor_main(args.doctor_args)
    if args.command == "enroll":
        from edge_agent.enroll import enroll

        return enroll(args)
    if args.command == "check-config":
        return _check(args.config)
    return _profiles(args.paths)


if __name__ == "__main__":
    sys.exit(main())
