"""Opening an asyncua client session from the config, and explaining why it failed.

A new Client per attempt: after a server restart nothing of the old session
(channel, namespace indexes, server certificate) is worth keeping.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable

from asyncua import Client, ua
from asyncua.crypto import security_policies, uacrypto

from edge_agent.sources.opcua.config import Config, is_pem

SESSION_TIMEOUT_MS = 60_000      # a session we lose without closing is freed on the server after this

_CERTIFICATE_REFUSED = (ua.uaerrors.BadCertificateUntrusted, ua.uaerrors.BadCertificateInvalid,
                        ua.uaerrors.BadCertificateUriInvalid, ua.uaerrors.BadCertificateUseNotAllowed,
                        ua.uaerrors.BadCertificateTimeInvalid, ua.uaerrors.BadCertificateRevoked,
                        ua.uaerrors.BadSecurityChecksFailed)
_USER_REFUSED = (ua.uaerrors.BadIdentityTokenRejected, ua.uaerrors.BadIdentityTokenInvalid,
                 ua.uaerrors.BadUserAccessDenied)


class _HideUserToken(logging.Filter):
    """asyncua logs every request it sends at DEBUG; ActivateSession carries the password."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(isinstance(a, ua.ActivateSessionRequest) for a in record.args):
            record.msg, record.args = "Sending: ActivateSessionRequest (user identity token hidden)", ()
        return True


def _hide_passwords_in_asyncua_logs() -> None:
    sender = logging.getLogger("asyncua.client.ua_client.UASocketProtocol")
    if not any(isinstance(f, _HideUserToken) for f in sender.filters):
        sender.addFilter(_HideUserToken())


class ConnectFailed(Exception):
    """Why a connection attempt failed; ``code`` is the counter code (connect | security)."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def _cert_properties(path, password: str | None = None) -> uacrypto.CertProperties:
    extension = "pem" if is_pem(path.read_bytes()) else "der"
    return uacrypto.CertProperties(str(path), extension=extension, password=password)


async def _configure(client: Client, config: Config) -> None:
    client.session_timeout = SESSION_TIMEOUT_MS
    if config.username is not None:
        _hide_passwords_in_asyncua_logs()
        client.set_user(config.username)
        client.set_password(config.password.get_secret_value())
    security = config.security
    if security.policy == "None":
        return
    client.application_uri = security.application_uri
    password = security.private_key_password.get_secret_value() if security.private_key_password else None
    server_cert = _cert_properties(security.server_certificate) if security.server_certificate else None
    # Without a pinned server certificate asyncua fetches it from the matching endpoint.
    await client.set_security(security_policies.SecurityPolicyBasic256Sha256,
                              _cert_properties(security.certificate),
                              _cert_properties(security.private_key, password),
                              server_certificate=server_cert,
                              mode=getattr(ua.MessageSecurityMode, security.mode))


def _offered(endpoints: list[ua.EndpointDescription]) -> list[tuple[str, str]]:
    pairs = {(e.SecurityPolicyUri.rsplit("#", 1)[-1], e.SecurityMode.name.rstrip("_")) for e in endpoints}
    return sorted(pairs)


async def _explain(config: Config, exc: BaseException) -> ConnectFailed:
    """Turn a failed attempt into a message a user can act on."""
    if isinstance(exc, (OSError, ConnectionError)):
        return ConnectFailed("connect", f"cannot reach {config.endpoint}: {str(exc) or type(exc).__name__}")
    if isinstance(exc, asyncio.TimeoutError):
        return ConnectFailed("connect", f"no answer from {config.endpoint} in time (timeout_s {config.timeout_s:g})")
    security = config.security
    wanted = (security.policy, "None" if security.policy == "None" else security.mode)
    try:
        probe = Client(config.endpoint, timeout=config.timeout_s)
        endpoints = await asyncio.wait_for(probe.connect_and_get_server_endpoints(), config.timeout_s)
    except Exception:
        endpoints = []
    offered = _offered(endpoints)
    if endpoints and wanted not in offered:
        listing = ", ".join(f"{p}/{m}" for p, m in offered)
        return ConnectFailed("security", f"server offers no endpoint with security {wanted[0]}/{wanted[1]} "
                                         f"(it offers {listing}); set security.policy and security.mode to one of those")
    if isinstance(exc, _CERTIFICATE_REFUSED):
        return ConnectFailed("security", f"server refused our certificate ({type(exc).__name__}): trust "
                                         f"{security.certificate} on the server (application URI {security.application_uri})")
    if isinstance(exc, _USER_REFUSED):
        return ConnectFailed("security", f"server refused the user {config.username!r} ({type(exc).__name__})")
    return ConnectFailed("connect", f"{type(exc).__name__}: {exc}")


async def open_session(config: Config, on_lost: Callable[[Exception], Awaitable[None]]) -> Client:
    """A connected client, or ConnectFailed. ``on_lost`` fires once if the connection drops later."""
    client = Client(config.endpoint, timeout=config.timeout_s,
                    watchdog_intervall=max(0.5, min(config.timeout_s, 5.0)), auto_reconnect=False)
    try:
        await asyncio.wait_for(_configure(client, config), config.timeout_s * 2)
        await asyncio.wait_for(client.connect(), config.timeout_s * 2)
    except asyncio.CancelledError:
        await close_session(client, config.timeout_s)
        raise
    except Exception as exc:
        await close_session(client, config.timeout_s)
        raise await _explain(config, exc) from None
    client.connection_lost_callback = on_lost
    return client


async def close_session(client: Client, timeout_s: float) -> None:
    """Close session and socket, best effort: the server may already be gone."""
    try:
        await asyncio.wait_for(client.disconnect(), min(timeout_s, 2.0))
    except Exception:
        pass
    client.disconnect_socket()
