"""``python -m edge_agent doctor <check> [options]``: run one commissioning check, print its report.

Exit code 0 when nothing failed, 1 when a check failed, 2 on bad arguments or an unwritable draft.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import sys
from pathlib import Path

from edge_agent.doctor.report import Report

CHECKS = {
    "modbus": "scan Modbus unit ids (TCP gateway or RS-485), identify devices, suggest profiles",
    "opcua": "browse an OPC UA server and draft a node map",
    "ocpp": "listen for chargers trying to connect (without accepting them)",
    "ble": "scan for BLE health devices",
    "site": "broker, clock, disk and metrics port checks for a site.yaml",
}


def _check_module(name: str):
    # Imported by name only when chosen: a check's dependencies (bumble, asyncua ...) load only when used.
    return importlib.import_module(f"edge_agent.doctor.{name}")


def _common_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("report and draft")
    group.add_argument("--site", default="my-site", help="site id for the draft site.yaml (default my-site)")
    group.add_argument("--agent", default="agent-1", help="agent id for the draft site.yaml (default agent-1)")
    group.add_argument("--draft", type=Path, metavar="PATH", help="write a draft site.yaml with what was found")
    group.add_argument("--json", action="store_true", help="print the report as JSON")
    return common


def build_parser(prog: str = "python -m edge_agent doctor", only: str | None = None) -> argparse.ArgumentParser:
    """The doctor's parser; with ``only``, just that check's module is imported (the others' options are absent)."""
    parser = argparse.ArgumentParser(prog=prog, description="commissioning checks for a hinode edge site")
    sub = parser.add_subparsers(dest="check", required=True)
    common = _common_options()
    for name, help_text in CHECKS.items():
        check = sub.add_parser(name, help=help_text, parents=[common])
        if only is not None and name != only:
            continue
        try:
            module = _check_module(name)
        except ImportError as exc:
            check.set_defaults(unavailable=f"doctor {name} is not available here: {exc}")
            continue
        module.add_arguments(check)
    return parser


def write_draft(report: Report, args) -> tuple[str, bool]:
    """Write the draft and validate it as ``check-config`` would: (what to tell the installer, passed)."""
    import yaml

    from edge_agent.config import ConfigError, load_site_config

    draft = report.draft_site(args.site, args.agent)
    args.draft.write_text("# draft written by hinode doctor: review before use\n"
                          + yaml.safe_dump(draft, sort_keys=False), encoding="utf-8")
    try:
        load_site_config(args.draft)
    except ConfigError as exc:
        return f"draft written to {args.draft} but it does not pass check-config:\n{exc}", False
    return f"draft written to {args.draft} (passes check-config)", True


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    chosen = next((a for a in argv if a in CHECKS), None)
    args = build_parser(only=chosen).parse_args(argv)
    if getattr(args, "unavailable", None):
        print(args.unavailable, file=sys.stderr)
        return 2
    import logging

    for noisy in ("pymodbus", "asyncua"):       # a silent unit is an expected answer here, not an error
        logging.getLogger(noisy).setLevel(logging.CRITICAL)
    report = Report()
    asyncio.run(_check_module(args.check).run(args, report))
    draft_note, status = None, report.exit_code()
    if args.draft:
        try:
            draft_note, passed = write_draft(report, args)
            status = status if passed else 2
        except (ValueError, OSError) as exc:
            draft_note, status = f"no draft written: {exc}", 2
    if args.json:
        out = report.to_json()
        out["draft"] = draft_note
        print(json.dumps(out, indent=2, default=str))
    else:
        print(report.to_text() + (draft_note + "\n" if draft_note else ""), end="")
    return status
