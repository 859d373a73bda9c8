"""``hinode``: the umbrella command.

    hinode up [--data-dir DIR] ...      the whole pipeline with simulators
    hinode agent ...                    = python -m edge_agent ...
    hinode cloud ...                    = python -m cloud ...
    hinode sim ...                      = python -m simulators ...
    hinode security ...                 = python -m hinode.security ... (MQTT certs/ACL, API token hashes)
    hinode dashboards ...               = python -m dashboards ... (Grafana: export DIR, deploy DIR --url)
    hinode doctor CHECK ...             = python -m edge_agent doctor CHECK ... (commissioning a site)
"""

from __future__ import annotations

import argparse
import runpy
import sys
from pathlib import Path


def _delegate(module: str, args: list[str]) -> int:
    sys.argv = [f"python -m {module}", *args]
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    delegates = {"agent": "edge_agent", "cloud": "cloud", "sim": "simulators", "security": "hinode.security",
                 "dashboards": "dashboards"}
    if argv and argv[0] in delegates:
        return _delegate(delegates[argv[0]], argv[1:])
    if argv and argv[0] == "doctor":         # an edge-side tool: it runs where the agent is installed
        return _delegate("edge_agent", argv)
    parser = argparse.ArgumentParser(prog="hinode", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="run broker, InfluxDB, cloud, simulators and an edge agent")
    up.add_argument("--data-dir", type=Path, default=Path("data"))
    up.add_argument("--modbus-meters", type=int, default=12)
    up.add_argument("--sunspec-meters", type=int, default=2)
    up.add_argument("--opcua-meters", type=int, default=8)
    up.add_argument("--chargers", type=int, default=10,
                    help="workplace chargers (OCPP 1.6J and 2.0.1) with a PV site; 0 for none")
    up.add_argument("--poll", type=float, default=1.0, help="seconds between polls")
    up.add_argument("--api-port", type=int, default=8080)
    up.add_argument("--scooters", type=int, default=40, help="the city's e-scooters on MQTT")
    up.add_argument("--slow", type=int, default=4, help="walking-speed mobility vehicles (0 and --scooters 0: no fleet)")
    for name in delegates:
        sub.add_parser(name, help=f"same as python -m {delegates[name]}")
    sub.add_parser("doctor", help="same as python -m edge_agent doctor: find devices and check a site")
    args = parser.parse_args(argv)
    from hinode.up import Plan, run
    return run(Plan(data_dir=args.data_dir, modbus_meters=args.modbus_meters, sunspec_meters=args.sunspec_meters,
                    opcua_meters=args.opcua_meters, chargers=args.chargers, poll_s=args.poll,
                    api_port=args.api_port, scooters=args.scooters, slow=args.slow))


if __name__ == "__main__":
    sys.exit(main())
