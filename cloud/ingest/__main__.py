"""``python -m cloud.ingest [--config cloud.yaml]``: the ingest alone (``python -m cloud`` runs it too)."""

from __future__ import annotations

import argparse
import logging
import sys

from cloud.config import CloudConfigError, load_cloud_config
from cloud.ingest import run_ingest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cloud.ingest", description=__doc__)
    parser.add_argument("--config", help="cloud YAML config (defaults apply without one)")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per request otherwise
    try:
        config = load_cloud_config(args.config)
    except CloudConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    try:
        run_ingest(config)
    except CloudConfigError as exc:   # e.g. ingest.metrics_listen taken by another ingest process
        print(exc, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
