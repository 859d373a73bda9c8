"""``python -m cloud``: serve the API + board (with an in-process ingest), run only the ingest,
or check a config file.

    python -m cloud serve [--config cloud.yaml] [--host H] [--port P] [--mqtt-host H] [--mqtt-port P]
                          [--influx-url URL] [--database DB] [--no-ingest] [--no-auth]
    python -m cloud ingest [--config cloud.yaml] [--mqtt-host H] [--mqtt-port P] [--influx-url URL] [--database DB]
                           (/metrics and /healthz on ingest.metrics_listen, default 127.0.0.1:9109)
    python -m cloud check-config FILE
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import logging
import signal
import sys
from urllib.parse import urlsplit, urlunsplit

from pydantic import ValidationError

from cloud.config import CloudConfig, CloudConfigError, load_cloud_config

log = logging.getLogger("cloud")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m cloud", description="hinode cloud: ingest, API and live board")
    commands = parser.add_subparsers(dest="command", required=True)

    def common(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--config", help="cloud YAML file (defaults apply without one)")
        sub.add_argument("--mqtt-host", help="broker host (overrides mqtt.host)")
        sub.add_argument("--mqtt-port", type=int, help="broker port (overrides mqtt.port)")
        sub.add_argument("--influx-url", help="InfluxDB URL, e.g. http://127.0.0.1:8086 (overrides influx.url)")
        sub.add_argument("--database", help="InfluxDB database (overrides influx.database)")
        sub.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])

    serve = commands.add_parser("serve", help="run the HTTP API and live board (and the ingest unless --no-ingest)")
    common(serve)
    serve.add_argument("--host", help="listen address (overrides api.host)")
    serve.add_argument("--port", type=int, help="listen port (overrides api.port)")
    serve.add_argument("--no-ingest", action="store_true", help="do not run the MQTT -> InfluxDB ingest in this process")
    serve.add_argument("--no-auth", action="store_true",
                       help="serve the API without authentication (= api.auth.enabled: false; local demo only)")

    ingest = commands.add_parser("ingest", help="run only the MQTT -> InfluxDB ingest")
    common(ingest)

    check = commands.add_parser("check-config", help="validate a cloud YAML file and exit")
    check.add_argument("file")
    return parser


def build_config(args: argparse.Namespace) -> CloudConfig:
    """The YAML file (or defaults) with command-line overrides, validated as a whole."""
    config = load_cloud_config(args.config, check_domains=args.command != "ingest")
    overrides = {
        ("mqtt", "host"): args.mqtt_host, ("mqtt", "port"): args.mqtt_port,
        ("influx", "url"): args.influx_url, ("influx", "database"): args.database,
        ("api", "host"): getattr(args, "host", None), ("api", "port"): getattr(args, "port", None),
    }
    data = config.model_dump()
    for (section, key), value in overrides.items():
        if value is not None:
            data[section][key] = value
    if getattr(args, "no_auth", False):
        data["api"]["auth"]["enabled"] = False
    try:
        return CloudConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise CloudConfigError(f"command-line options: {problems}") from None


def redact_url(url: str) -> str:
    """Drop user:password from a URL before it reaches a log line."""
    parts = urlsplit(url)
    if parts.username or parts.password:
        host = parts.hostname or ""
        netloc = f"{host}:{parts.port}" if parts.port else host
        return urlunsplit((parts.scheme, "***@" + netloc, parts.path, parts.query, parts.fragment))
    return url


class StopRequested(Exception):
    """SIGTERM, after uvicorn has already shut down gracefully."""


def _raise_stop(signum, frame) -> None:
    raise StopRequested()


def _stop_cleanly_on_sigterm() -> None:
    # uvicorn shuts down gracefully on SIGTERM and then re-raises it with the previous handler;
    # this one turns it into a normal return instead of death by signal.
    signal.signal(signal.SIGTERM, _raise_stop)


def _run_maybe_async(result) -> None:
    if inspect.iscoroutine(result):
        asyncio.run(result)


def serve(config: CloudConfig, with_ingest: bool, source: str = "cloud.yaml") -> int:
    import uvicorn

    from cloud.api import create_app
    from cloud.status import DeviceStatusWriter, StatusTracker

    ingest = None
    if with_ingest and config.ingest.enabled:
        from cloud.ingest import IngestService
        ingest = IngestService(config)
    if ingest is not None and config.mqtt.username and config.api.mqtt is None:
        log.warning("%s: api.mqtt is not set, so the API sends commands as the ingest's identity %r, which the "
                    "generated ACL does not allow: set api.mqtt (username, password_file, tls) to the API's "
                    "identity, e.g. from clients/hinode-api/mqtt.yaml", source, config.mqtt.username)
    # The status tracker is also the command sender: it must carry the API's identity, not the ingest's.
    api_mqtt = config.api_mqtt()
    status = StatusTracker(api_mqtt, device_status=DeviceStatusWriter(config.influx))
    dead_letters = None
    if config.api.dead_letters.enabled:
        from cloud.dead_letters import DeadLetterCollector, DeadLetterStore
        store = DeadLetterStore(config.api.dead_letters.resolved_path(), config.api.dead_letters.keep_per_reason)
        dead_letters = DeadLetterCollector(api_mqtt, config.api.dead_letters, store)
    app = create_app(config, ingest=ingest, status=status, dead_letters=dead_letters, manage_services=True)
    log.info("serving on http://%s:%s (broker %s:%s, InfluxDB %s db %s, ingest %s)",
             config.api.host, config.api.port, config.mqtt.host, config.mqtt.port,
             redact_url(config.influx.url), config.influx.database, "in-process" if ingest else "off")
    server = uvicorn.Server(uvicorn.Config(app, host=config.api.host, port=config.api.port,
                                           log_level="warning", access_log=False, lifespan="on"))
    _stop_cleanly_on_sigterm()
    try:
        server.run()
    except (KeyboardInterrupt, StopRequested):
        pass
    log.info("stopped")
    return 0 if server.started else 1


def run_ingest_only(config: CloudConfig) -> int:
    from cloud.ingest import run_ingest
    log.info("ingest only: broker %s:%s -> InfluxDB %s db %s", config.mqtt.host, config.mqtt.port,
             redact_url(config.influx.url), config.influx.database)
    _stop_cleanly_on_sigterm()
    try:
        _run_maybe_async(run_ingest(config))
    except (KeyboardInterrupt, StopRequested):
        pass
    except CloudConfigError as exc:  # e.g. ingest.metrics_listen taken by another ingest process
        print(exc, file=sys.stderr)
        return 2
    return 0


def check_config(path: str) -> int:
    try:
        config = load_cloud_config(path)
    except CloudConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    print(f"{path}: ok (broker {config.mqtt.host}:{config.mqtt.port}, InfluxDB {redact_url(config.influx.url)} "
          f"db {config.influx.database}, API {config.api.host}:{config.api.port})")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "check-config":
        return check_config(args.file)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # httpx logs every request at INFO: one line per board refresh is noise, not news.
    logging.getLogger("httpx").setLevel(max(logging.WARNING, logging.getLevelName(args.log_level)))
    try:
        config = build_config(args)
    except CloudConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    if args.command == "serve":
        try:
            return serve(config, with_ingest=not args.no_ingest, source=args.config or "(no --config)")
        except CloudConfigError as exc:  # e.g. api.auth scopes no module registered (checked in create_app)
            print(exc, file=sys.stderr)
            return 2
    return run_ingest_only(config)


if __name__ == "__main__":
    sys.exit(main())
