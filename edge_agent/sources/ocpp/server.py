"""The central system's one WebSocket port: OCPP 1.6J and 2.0.1, chosen by subprotocol.

HTTP-level checks happen in ``process_request`` before the upgrade (charger id from the
URL, HTTP Basic auth for security profiles 1 and 2, the client certificate's CN for
profile 3), so a wrong password costs the charger a 401 and never a WebSocket. Each
connection is its own task; an exception in one is logged and counted and touches no other.
A second connection of the same charger replaces the first (a charger that lost its
network reconnects before the old socket has timed out).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import re
import ssl
from dataclasses import dataclass
from http import HTTPStatus
from typing import Callable
from urllib.parse import unquote, urlsplit

import ocpp.messages
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from edge_agent.sources.ocpp.config import CHARGER_ID_PATTERN, Config
from edge_agent.sources.ocpp.model import BootSettings, ChargerEvents, OcppVersion

# The library validates each payload against its JSON schema in the default thread pool. For a
# charger's messages (a few hundred bytes, ~0.1 ms to validate) the hop to a thread and back
# costs more than the validation: bench/ocpp_chargers.py measured the agent's CPU per MeterValues
# with and without it (bench/README.md). Validation itself is unchanged.
ocpp.messages.ASYNC_VALIDATION = False

log = logging.getLogger("edge_agent.sources.ocpp.server")

SUBPROTOCOLS = [OcppVersion.V201.value, OcppVersion.V16.value]
SOURCE_KEY = "_source"
CLOSE_PROTOCOL_ERROR = 1002
CLOSE_REPLACED = 4000
_CHARGER_ID = re.compile(CHARGER_ID_PATTERN)


@dataclass(slots=True)
class Admission:
    """What the source decides for a charger that connects."""

    events: ChargerEvents
    settings: BootSettings


def connection_class(version: str):
    """The handler class of a version; v201 is imported only when a 2.0.1 charger connects."""
    if version == OcppVersion.V16:
        from edge_agent.sources.ocpp.v16 import Connection
        return Connection
    from edge_agent.sources.ocpp.v201 import Connection
    return Connection


def server_ssl_context(config: Config) -> ssl.SSLContext | None:
    if config.security_profile < 2 or config.tls is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(config.tls.cert, config.tls.key)
    if config.security_profile == 3:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(cafile=str(config.tls.ca))
    return context


def basic_credentials(headers: Headers) -> tuple[str, str] | None:
    value = headers.get("Authorization", "")
    scheme, _, encoded = value.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    username, sep, password = decoded.partition(":")
    return (username, password) if sep else None


def certificate_cn(connection: ServerConnection) -> str | None:
    peer = connection.transport.get_extra_info("peercert") if connection.transport else None
    for rdn in (peer or {}).get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return value
    return None


class CentralSystem:
    """Accepts chargers and runs one version handler per connection."""

    def __init__(self, config: Config, admit: Callable[[str, str], Admission], count: Callable[[str, str], None],
                 on_disconnect: Callable[[str, str], None]):
        self.config = config
        self.admit = admit                  # (charger_id, version) -> Admission
        self.count = count                  # (device or "_source", code)
        self.on_disconnect = on_disconnect  # (charger_id, reason)
        self.server: Server | None = None
        self.connections: dict[str, ServerConnection] = {}
        self.handlers: dict[str, object] = {}

    @property
    def port(self) -> int:
        return self.server.sockets[0].getsockname()[1] if self.server else 0

    async def start(self) -> None:
        try:
            self.server = await serve(self._serve_connection, self.config.host, self.config.port,
                                      subprotocols=SUBPROTOCOLS, select_subprotocol=self._select_subprotocol,
                                      process_request=self._process_request, ssl=server_ssl_context(self.config),
                                      ping_interval=60, ping_timeout=60, logger=log)
        except OSError as exc:
            raise OSError(exc.errno, f"ocpp source {self.config.name}: cannot listen on "
                                     f"{self.config.host}:{self.config.port}: {exc.strerror or exc}") from exc
        log.info("ocpp source %s listening on %s:%d (security profile %d)", self.config.name, self.config.host,
                 self.port, self.config.security_profile)

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
            self.server = None

    # ------------------------------------------------------------ handshake

    def charger_id_of(self, path: str) -> str | None:
        path = unquote(urlsplit(path).path).rstrip("/")
        prefix = self.config.path_prefix
        if prefix and not (path.startswith(prefix + "/")):
            return None
        head, _, charger_id = path.rpartition("/")
        if prefix and head != prefix:
            return None
        return charger_id if _CHARGER_ID.match(charger_id) else None

    def _refuse(self, connection: ServerConnection, status: HTTPStatus, device: str, code: str,
                text: str) -> Response:
        self.count(device, code)
        response = connection.respond(status, text + "\n")
        if status == HTTPStatus.UNAUTHORIZED:
            response.headers["WWW-Authenticate"] = 'Basic realm="ocpp", charset="UTF-8"'
        return response

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        charger_id = self.charger_id_of(request.path)
        peer = connection.remote_address[0] if connection.remote_address else "?"
        if charger_id is None:
            log.warning("ocpp: refused %s: path %r has no valid charger id under %r", peer, request.path,
                        self.config.path_prefix or "/")
            return self._refuse(connection, HTTPStatus.NOT_FOUND, SOURCE_KEY, "bad_path",
                                "expected /<charger id> under the configured path prefix")
        known = self.config.charger(charger_id) is not None
        profile = self.config.security_profile
        if profile == 3:
            cn = certificate_cn(connection)
            if cn != charger_id:
                log.warning("ocpp: refused %s: certificate CN %r is not charger id %r", peer, cn, charger_id)
                return self._refuse(connection, HTTPStatus.FORBIDDEN, charger_id if known else SOURCE_KEY,
                                    "auth_failed", "client certificate CN does not match the charger id")
        elif profile in (1, 2) and known:
            expected = self.config.password_of(charger_id) or ""
            credentials = basic_credentials(request.headers)
            username, password = credentials or ("", "")
            # Compare both, always, so the timing says nothing about which one was wrong.
            user_ok = hmac.compare_digest(username.encode(), charger_id.encode())
            password_ok = hmac.compare_digest(password.encode(), expected.encode())
            if credentials is None or not (user_ok and password_ok):
                log.warning("ocpp: refused charger %s from %s: %s", charger_id, peer,
                            "no Basic credentials" if credentials is None else "wrong username or password")
                return self._refuse(connection, HTTPStatus.UNAUTHORIZED, charger_id, "auth_failed",
                                    "HTTP Basic auth failed")
        return None

    @staticmethod
    def _select_subprotocol(connection: ServerConnection, offered) -> str | None:
        for protocol in SUBPROTOCOLS:
            if protocol in offered:
                return protocol
        return None     # refused in _serve_connection, with a reason the charger can log

    # ------------------------------------------------------------ connections

    async def _serve_connection(self, connection: ServerConnection) -> None:
        charger_id = self.charger_id_of(connection.request.path)
        version = connection.subprotocol
        if charger_id is None:
            await connection.close(CLOSE_PROTOCOL_ERROR, "no charger id in the URL")
            return
        if version not in SUBPROTOCOLS:
            self.count(charger_id if self.config.charger(charger_id) else SOURCE_KEY, "no_subprotocol")
            log.warning("ocpp: refused charger %s: no common subprotocol (offered %s)", charger_id,
                        connection.request.headers.get("Sec-WebSocket-Protocol", "none"))
            await connection.close(CLOSE_PROTOCOL_ERROR, "no OCPP subprotocol agreed: offer ocpp1.6 or ocpp2.0.1")
            return
        previous = self.connections.get(charger_id)
        self.connections[charger_id] = connection
        if previous is not None:
            log.info("ocpp: charger %s reconnected; closing its previous connection", charger_id)
            self.count(charger_id, "replaced")
            await previous.close(CLOSE_REPLACED, "replaced by a new connection of the same charger")
        reason = "disconnected"
        try:
            admission = self.admit(charger_id, version)
            handler = connection_class(version)(charger_id, connection, admission.events, admission.settings)
            self.handlers[charger_id] = handler
            log.info("ocpp: charger %s connected (%s)", charger_id, version)
            await handler.start()
        except ConnectionClosed:
            pass
        except Exception as exc:
            reason = f"handler error: {exc!r}"[:200]
            self.count(charger_id, "handler_error")
            log.exception("ocpp: charger %s: connection handler failed", charger_id)
        finally:
            if self.connections.get(charger_id) is connection:
                del self.connections[charger_id]
                self.handlers.pop(charger_id, None)
                self.on_disconnect(charger_id, reason)
            if connection.state.name != "CLOSED":
                await connection.close()
