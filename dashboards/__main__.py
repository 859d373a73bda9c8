"""``python -m dashboards export DIR [...]`` writes Grafana provisioning; ``deploy`` pushes it to a Grafana."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m dashboards", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    export = commands.add_parser("export", help="write datasources/, dashboards/ and alerting/ under DIR")
    export.add_argument("dir", type=Path)
    export.add_argument("--influx-url", default="http://127.0.0.1:8086")
    export.add_argument("--database", default="hinode", help="1.x database, 2.x DBRP database, 3.x database/bucket")
    export.add_argument("--user", default=None)
    secret = export.add_mutually_exclusive_group()
    secret.add_argument("--password-env", default=None, metavar="VAR",
                        help="environment variable holding the password (Grafana expands it; never written out)")
    secret.add_argument("--token-env", default=None, metavar="VAR",
                        help="environment variable holding an InfluxDB 2.x/3.x token (sent as 'Token ...')")
    export.add_argument("--influx-version", type=int, choices=(1, 2, 3), default=1)
    export.add_argument("--grafana-dir", default=None, metavar="PATH",
                        help="where Grafana sees DIR (e.g. /etc/grafana/provisioning): the dashboard provider's path")
    export.add_argument("--power-limit", action="append", default=[], metavar="SITE=WATTS",
                        help="a site's power limit for the 'meter power above site limit' alert (repeatable)")
    export.add_argument("--vitals-api-url", default=None, metavar="URL",
                        help="the cloud API's base URL: also export the vitals board and its consent-API data source")
    export.add_argument("--vitals-token-env", default="HINODE_GRAFANA_VITALS_TOKEN", metavar="VAR",
                        help="environment variable holding the Grafana service principal's API token (vitals)")
    deploy = commands.add_parser("deploy", help="push an exported DIR to a running Grafana")
    deploy.add_argument("dir", type=Path)
    deploy.add_argument("--url", required=True, help="Grafana base URL")
    token = deploy.add_mutually_exclusive_group()
    token.add_argument("--token-env", default="GRAFANA_TOKEN", metavar="VAR",
                       help="environment variable holding a Grafana service-account token (default GRAFANA_TOKEN)")
    token.add_argument("--token", default=None, help="the token itself; other users of this machine can read it "
                       "in the process list, so prefer --token-env")
    return parser


def _limits(pairs: list[str]) -> dict[str, float]:
    limits = {}
    for pair in pairs:
        site, _, watts = pair.partition("=")
        if not site or not watts:
            raise SystemExit(f"--power-limit expects SITE=WATTS, got {pair!r}")
        limits[site] = float(watts)
    return limits


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "export":
        from dashboards.provisioning import export
        paths = export(args.dir, influx_url=args.influx_url, database=args.database, user=args.user,
                       password_env=args.password_env, token_env=args.token_env,
                       influx_version=args.influx_version, grafana_dir=args.grafana_dir,
                       alert_options={"site_power_limits_w": _limits(args.power_limit)},
                       vitals_api_url=args.vitals_api_url, vitals_token_env=args.vitals_token_env)
        for path in paths:
            print(path)
        return 0
    token = args.token or os.environ.get(args.token_env)
    if args.token:
        print("warning: --token is visible to other users in the process list; prefer --token-env", file=sys.stderr)
    if not token:
        print(f"set {args.token_env} to a Grafana service-account token", file=sys.stderr)
        return 2
    from dashboards.deploy import DeployError, deploy   # needs grafana-client: imported only when deploying
    try:
        result = deploy(args.dir, args.url, token)
    except DeployError as exc:          # names what failed and Grafana's answer; never the token
        print(f"hinode dashboards deploy: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
