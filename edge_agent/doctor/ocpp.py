"""``doctor ocpp``: listen where the agent will listen and report every charger that tries to connect.

No charger is ever accepted: each WebSocket upgrade is answered with HTTP 401 before the
handshake completes (the same place the agent's central system checks Basic auth), so a
charger only learns that it must try again later. A charger's password is never read
beyond noting that Basic credentials were sent, and never printed.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import ssl
import time
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from urllib.parse import unquote, urlsplit

from websockets.asyncio.server import ServerConnection, serve
from websockets.http11 import Request, Response

from edge_agent.sources.ocpp.config import CHARGER_ID_PATTERN
from edge_agent.sources.ocpp.server import SUBPROTOCOLS, basic_credentials

CHECK = "ocpp"
PLACEHOLDER_PASSWORD = "CHANGE-ME"
_CHARGER_ID = re.compile(CHARGER_ID_PATTERN)
# Refused upgrades and half-open probes are what this check expects; the report says what happened.
_QUIET = logging.getLogger("edge_agent.doctor.ocpp.websockets")
_QUIET.setLevel(logging.CRITICAL)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="0.0.0.0", help="address to listen on (default all)")
    parser.add_argument("--port", type=int, default=9000, help="the port the chargers are set to (default 9000)")
    parser.add_argument("--seconds", type=float, default=120.0, help="how long to listen (default 120)")
    parser.add_argument("--until-chargers", type=int, default=0, metavar="N",
                        help="stop early once N different chargers were seen")
    parser.add_argument("--tls-cert", type=Path, help="listen with TLS (wss://, security profile 2): certificate")
    parser.add_argument("--tls-key", type=Path, help="its private key")


@dataclass
class ChargerSeen:
    charger_id: str
    path: str
    peer: str
    subprotocols: list[str]
    basic_user: str | None          # user name sent with Basic auth, None when no credentials came
    attempts: int = 1
    first_seen: float = field(default_factory=time.monotonic)

    @property
    def versions(self) -> list[str]:
        return [p for p in self.subprotocols if p in SUBPROTOCOLS]


@dataclass
class Listener:
    chargers: dict[str, ChargerSeen] = field(default_factory=dict)
    strangers: list[str] = field(default_factory=list)      # requests without a usable charger id
    enough: asyncio.Event = field(default_factory=asyncio.Event)
    wanted: int = 0

    def on_request(self, connection: ServerConnection, request: Request) -> Response:
        peer = connection.remote_address[0] if connection.remote_address else "?"
        path = unquote(urlsplit(request.path).path).rstrip("/")
        charger_id = path.rpartition("/")[2]
        offered = [p.strip() for value in request.headers.get_all("Sec-WebSocket-Protocol")
                   for p in value.split(",") if p.strip()]
        if not _CHARGER_ID.match(charger_id or ""):
            if len(self.strangers) < 20:
                self.strangers.append(f"{peer} asked for {request.path!r}")
            return connection.respond(HTTPStatus.NOT_FOUND, "expected /<charger id>\n")
        credentials = basic_credentials(request.headers)
        seen = self.chargers.get(charger_id)
        if seen is None:
            self.chargers[charger_id] = ChargerSeen(charger_id, path, peer, offered,
                                                    credentials[0] if credentials else None)
        else:
            seen.attempts += 1
        if self.wanted and len(self.chargers) >= self.wanted:
            self.enough.set()
        response = connection.respond(HTTPStatus.UNAUTHORIZED, "commissioning check: not accepting chargers yet\n")
        response.headers["WWW-Authenticate"] = 'Basic realm="ocpp", charset="UTF-8"'
        return response


async def _never_accepted(connection: ServerConnection) -> None:
    await connection.close(1008, "not accepting chargers")      # unreachable: every upgrade is refused


def _ssl_context(args: argparse.Namespace) -> ssl.SSLContext | None:
    if args.tls_cert is None and args.tls_key is None:
        return None
    if args.tls_cert is None or args.tls_key is None:
        raise ValueError("give both --tls-cert and --tls-key")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(args.tls_cert, args.tls_key)
    return context


def _path_prefix(chargers: list[ChargerSeen]) -> str:
    heads = {c.path.rpartition("/")[0] for c in chargers}
    return heads.pop() if len(heads) == 1 else ""


def draft_section(chargers: list[ChargerSeen], args: argparse.Namespace) -> dict:
    with_auth = any(c.basic_user is not None for c in chargers)
    tls = args.tls_cert is not None
    section: dict = {"type": "ocpp", "name": "ocpp", "host": args.host, "port": args.port}
    prefix = _path_prefix(chargers)
    if prefix:
        section["path_prefix"] = prefix
    section["security_profile"] = (2 if tls else 1) if with_auth else 0
    if tls:
        section["tls"] = {"cert": str(args.tls_cert.resolve()), "key": str(args.tls_key.resolve())}
    section["chargers"] = [{"id": c.charger_id, **({"password": PLACEHOLDER_PASSWORD} if with_auth else {})}
                           for c in sorted(chargers, key=lambda c: c.charger_id)]
    return section


async def run(args: argparse.Namespace, report) -> None:
    listener = Listener(wanted=args.until_chargers)
    try:
        context = _ssl_context(args)
        server = await serve(_never_accepted, args.host, args.port, subprotocols=SUBPROTOCOLS,
                             process_request=listener.on_request, ssl=context, logger=_QUIET)
    except (OSError, ValueError, ssl.SSLError) as exc:
        reason = os.strerror(exc.errno) if isinstance(exc, OSError) and exc.errno else str(exc)
        report.fail(CHECK, f"cannot listen on {args.host}:{args.port}: {reason} (is the agent already running there?)")
        return
    scheme = "wss" if context else "ws"
    report.ok(CHECK, f"listened on {scheme}://{args.host}:{args.port} for chargers (none accepted)")
    try:
        try:
            await asyncio.wait_for(listener.enough.wait(), args.seconds)
        except asyncio.TimeoutError:
            pass
    finally:
        server.close()
        await server.wait_closed()
    _report(listener, args, report)


def _report(listener: Listener, args: argparse.Namespace, report) -> None:
    for stranger in listener.strangers:
        report.warn(CHECK, f"request without a charger id in the URL: {stranger}")
    chargers = sorted(listener.chargers.values(), key=lambda c: c.charger_id)
    if not chargers:
        report.fail(CHECK, f"no charger tried to connect in {args.seconds:g} s: check each charger's central system "
                           f"URL (ws://<this box>:{args.port}/<charger id>), its network and that it is powered")
        return
    details = []
    for charger in chargers:
        versions = ", ".join(charger.versions) or "none"
        auth = f"Basic auth as {charger.basic_user!r}" if charger.basic_user is not None else "no credentials"
        level = "ok" if charger.versions else "warn"
        note = "" if charger.versions else f" (offered {charger.subprotocols or 'no subprotocol'}; the agent speaks " \
                                           f"{', '.join(SUBPROTOCOLS)})"
        report.add(level, CHECK, f"charger {charger.charger_id} from {charger.peer}: OCPP {versions}, {auth}, "
                                 f"{charger.attempts} attempt(s){note}")
        if charger.basic_user is not None and charger.basic_user != charger.charger_id:
            report.warn(CHECK, f"charger {charger.charger_id}: Basic user {charger.basic_user!r} is not its id; "
                               "the agent expects the charger id as user name")
        details.append({"id": charger.charger_id, "path": charger.path, "peer": charger.peer,
                        "subprotocols": charger.subprotocols, "basic_auth": charger.basic_user is not None,
                        "attempts": charger.attempts})
    report.details[CHECK] = {"port": args.port, "chargers": details}
    section = draft_section(chargers, args)
    if section["security_profile"] == 0:
        report.warn(CHECK, "no charger sent credentials: the draft uses security_profile 0 (anyone on the network "
                           "can connect); set a password on each charger and use profile 1 or 2")
    else:
        for charger in chargers:
            if charger.basic_user is None:
                report.warn(CHECK, f"charger {charger.charger_id} sent no credentials while others did: set its "
                                   "password, or the agent (security profile 1/2) will refuse it")
        report.warn(CHECK, f"the draft gives each charger the password {PLACEHOLDER_PASSWORD!r}: put the real ones "
                           "(or a secrets_file) in before use")
    report.suggest_source(section)
