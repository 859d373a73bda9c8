"""API authentication, roles and scopes.

Credentials, checked in this order:
- ``Authorization: Bearer <token>``: a static API token (config holds only ``sha256:<hex>`` of it)
  or a token issued by ``POST /token`` (OAuth2 password flow; HMAC-SHA256 signed, with expiry).
- the ``hinode_session`` cookie set by the board's ``/login`` page (the same signed token,
  HttpOnly, SameSite=Strict), so the board's own fetch() calls are authenticated without
  the page handling a token.

Scopes (cloud/api/scopes.py): every non-public route depends on ``require_scope(<scope>)``. A
principal holds the scopes listed for its token or user in ``api.auth``, or else its role's defaults
(``viewer``: meters:read; ``admin``: also ops:read, commands:read/write). Personal scopes (vitals:read)
are granted only explicitly and are refused while authentication is off.
Public: /healthz, /readyz, /login, /token, /docs, the board's static files, and ``/`` (which
redirects to /login without a session). Nothing here logs, returns or counts a secret.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import math
import os
import secrets
import threading
from collections import Counter
from dataclasses import dataclass
from html import escape
from urllib.parse import parse_qs

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse

from cloud.api.scopes import Scope, all_scopes, get_scope, scopes_for_role
from cloud.api.login_limits import LoginLimiter
from cloud.config import ApiAuthConfig, ApiConfig, CloudConfigError
from hinode.metrics import gauge, labelled_counter
from hinode.security import api_secrets

log = logging.getLogger(__name__)

SESSION_COOKIE = "hinode_session"
ROLE_RANK = {"viewer": 1, "admin": 2}
MAX_FORM_BYTES = 4096
# Compared against when the user is unknown, so a wrong username costs as long as a wrong password.
_DUMMY_HASH = api_secrets.hash_password(secrets.token_urlsafe(16))


@dataclass(frozen=True)
class Principal:
    name: str
    role: str
    via: str  # "token", "issued", "session"
    granted: tuple[str, ...] | None = None  # scopes listed explicitly; None = the role's defaults

    @property
    def scopes(self) -> frozenset[str]:
        """Resolved at each check, so a domain's scopes registered after start-up join the role defaults."""
        return frozenset(self.granted) if self.granted is not None else scopes_for_role(self.role)


def _explicit(scopes: list[str] | None) -> tuple[str, ...] | None:
    return None if scopes is None else tuple(sorted(set(scopes)))


def auth_enabled(config: ApiConfig) -> bool:
    auth = config.auth
    if auth.enabled is not None:
        return auth.enabled
    return bool(auth.tokens or auth.users)


def check_configured_scopes(auth: ApiAuthConfig) -> None:
    """CloudConfigError naming the key of every scope in ``api.auth`` that no module registered.

    Run when the Authenticator is built (in create_app), not when the config is loaded: domains
    register their scopes when their modules are imported, which the config loader does not do.
    """
    known = all_scopes()
    problems = []
    for key, entries in (("tokens", auth.tokens), ("users", auth.users)):
        for index, entry in enumerate(entries):
            unknown = [name for name in entry.scopes or () if name not in known]
            if unknown:
                problems.append(f"api.auth.{key}.{index}.scopes: unknown scope(s) {', '.join(unknown)}")
    if problems:
        raise CloudConfigError("\n".join(problems) + f"\n(known scopes: {', '.join(sorted(known))})")


def _missing_scope_detail(principal: Principal, scope: Scope) -> str:
    if principal.granted is not None:
        why = "it is not among the scopes listed for this token or user"
    elif scope.personal:
        why = "a personal scope is never a role default: list it in the token's or user's scopes"
    else:
        why = (f"role {principal.role!r} does not grant it (roles that do: {', '.join(sorted(scope.roles)) or 'none'}); "
               f"or list it in the token's or user's scopes")
    return f"missing scope {scope.name!r} ({scope.description}): {why}"


def route_scopes(route) -> frozenset[str]:
    """The scopes a route's dependencies (its own and its router's, nested) require; ``route`` is an
    APIRoute or one of FastAPI's RouteContexts (see ``routes_and_scopes``)."""
    found: set[str] = set()
    pending = list(getattr(getattr(route, "dependant", None), "dependencies", []))
    while pending:
        dependant = pending.pop()
        scope = getattr(dependant.call, "required_scope", None)
        if scope is not None:
            found.add(scope)
        pending.extend(dependant.dependencies)
    return frozenset(found)


def routes_and_scopes(app: FastAPI) -> list[tuple[str | None, object, frozenset[str]]]:
    """(path, route, required scopes) for every route the app serves, included routers flattened."""
    try:  # FastAPI >= 0.16x resolves included routers lazily: app.routes holds the router, not its routes
        from fastapi.routing import iter_route_contexts
    except ImportError:
        contexts = list(app.routes)
    else:
        contexts = list(iter_route_contexts(app.routes))
    return [(getattr(ctx, "path", None), getattr(ctx, "original_route", ctx), route_scopes(ctx)) for ctx in contexts]


def _load_secret(auth: ApiAuthConfig) -> tuple[bytes, str]:
    if auth.secret_file is not None:
        return auth.secret_file.read_bytes().strip(), "secret_file"
    if os.environ.get("HINODE_API_SECRET"):
        return os.environ["HINODE_API_SECRET"].encode(), "HINODE_API_SECRET"
    return secrets.token_bytes(32), "random per process"


class Authenticator:
    def __init__(self, config: ApiConfig):
        self.config = config.auth
        self.enabled = auth_enabled(config)
        check_configured_scopes(self.config)
        self._secret, secret_source = _load_secret(self.config)
        self._lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        if not self.enabled:
            log.warning("API authentication is OFF (api.auth): every client may use every endpoint "
                        "except personal-data ones (refused without authentication)")
        else:
            log.info("API authentication on: %d token(s), %d user(s), issued tokens signed with %s key",
                     len(self.config.tokens), len(self.config.users), secret_source)
            if secret_source == "random per process" and self.config.users:
                log.warning("no api.auth.secret_file or HINODE_API_SECRET: issued tokens and board sessions "
                            "end when this process restarts and are not valid on another API process")

    def _count(self, result: str) -> None:
        with self._lock:
            self.counts[result] += 1

    # ------------------------------------------------------------ checking credentials

    def _static_token(self, token: str) -> Principal | None:
        found = None
        for entry in self.config.tokens:  # no early exit: the time does not tell which entry matched
            if api_secrets.token_matches(token, entry.hash):
                found = Principal(entry.name, entry.role, "token", _explicit(entry.scopes))
        return found

    def _issued(self, token: str, via: str) -> Principal:
        try:
            claims = api_secrets.verify_signed_token(self._secret, token)
        except api_secrets.BadToken as exc:
            self._count("expired" if str(exc) == "expired" else "invalid")
            raise HTTPException(401, "invalid or expired token", {"WWW-Authenticate": 'Bearer error="invalid_token"'})
        if claims["role"] not in ROLE_RANK:
            self._count("invalid")
            raise HTTPException(401, "invalid or expired token", {"WWW-Authenticate": 'Bearer error="invalid_token"'})
        return Principal(claims["sub"], claims["role"], via, _explicit(claims["scopes"]))

    def authenticate(self, request: Request) -> Principal:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if header and (scheme.lower() != "bearer" or not token):
            self._count("invalid")
            raise HTTPException(401, "expected 'Authorization: Bearer <token>'", {"WWW-Authenticate": "Bearer"})
        if token:
            if token.startswith(api_secrets.TOKEN_PREFIX + "."):
                return self._issued(token, "issued")
            principal = self._static_token(token)
            if principal is None:
                self._count("invalid")
                raise HTTPException(401, "invalid or expired token", {"WWW-Authenticate": 'Bearer error="invalid_token"'})
            return principal
        cookie = request.cookies.get(SESSION_COOKIE)
        if cookie:
            return self._issued(cookie, "session")
        self._count("missing")
        raise HTTPException(401, "authentication required: a bearer token or a board login", {"WWW-Authenticate": "Bearer"})

    def check_password(self, username: str, password: str) -> Principal | None:
        user = next((u for u in self.config.users if hmac.compare_digest(u.username.encode(), username.encode())), None)
        ok = api_secrets.verify_password(password, user.password_hash if user else _DUMMY_HASH)
        return Principal(user.username, user.role, "issued", _explicit(user.scopes)) if (user and ok) else None

    def issue(self, principal: Principal) -> str:
        """A signed token carrying the principal's explicit scopes (none listed: the role's defaults)."""
        return api_secrets.sign_token(self._secret, principal.name, principal.role, self.config.token_ttl_s,
                                      scopes=principal.granted)

    # ------------------------------------------------------------ FastAPI dependencies

    def require_scope(self, scope: str):
        """Dependency: 401 without valid credentials, 403 naming ``scope`` when the principal lacks it.

        With authentication off every non-personal scope is allowed (``request.state.principal`` is
        None) and a personal one is refused with 403.
        """
        known = get_scope(scope)
        if known is None:
            raise ValueError(f"unknown scope {scope!r}: register_scope() it (cloud/api/scopes.py) before using it")

        async def dependency(request: Request) -> Principal | None:
            if not self.enabled:
                if known.personal:
                    self._count("forbidden")
                    raise HTTPException(403, f"scope {scope!r} covers personal data, which needs API authentication "
                                             f"on (api.auth): it is never served without it")
                request.state.principal = None
                return None
            principal = self.authenticate(request)
            if scope not in principal.scopes:
                self._count("forbidden")
                raise HTTPException(403, _missing_scope_detail(principal, known),
                                    {"WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{scope}"'})
            self._count("ok")
            request.state.principal = principal
            return principal

        dependency.required_scope = scope
        return dependency

    def require(self, role: str):
        """Role check kept for compatibility; routes use require_scope (the route walk in
        tests/security/test_api_scopes.py refuses a route protected only by a role)."""
        needed = ROLE_RANK[role]

        async def dependency(request: Request) -> Principal | None:
            if not self.enabled:
                return None
            principal = self.authenticate(request)
            if ROLE_RANK.get(principal.role, 0) < needed:
                self._count("forbidden")
                raise HTTPException(403, f"role {principal.role!r} may not use this endpoint; it needs {role!r}")
            self._count("ok")
            request.state.principal = principal
            return principal

        return dependency

    def metric_families(self):
        """Prometheus families for the API's /metrics registry (cloud/api/metrics.py)."""
        with self._lock:
            counts = dict(self.counts)
        results = ("ok", "missing", "invalid", "expired", "forbidden", "login_ok", "login_failed", "login_limited")
        yield labelled_counter("hinode_api_auth_total", "Authentication decisions, by result", ("result",),
                               (((result,), counts.get(result, 0)) for result in results))
        yield gauge("hinode_api_auth_enabled", "1 while API authentication is on (api.auth)", int(self.enabled))


async def _form(request: Request) -> dict[str, str]:
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise HTTPException(413, "form too large")
    try:
        fields = parse_qs(body.decode(), keep_blank_values=True, max_num_fields=10)
    except (UnicodeDecodeError, ValueError):
        raise HTTPException(400, "expected an application/x-www-form-urlencoded form") from None
    return {key: values[0] for key, values in fields.items()}


_LOGIN_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>hinode: sign in</title>
<style>body{{font-family:system-ui,sans-serif;max-width:24rem;margin:4rem auto}}label{{display:block;margin:.6rem 0}}
input{{width:100%;padding:.3rem}}.err{{color:#b00}}</style></head><body><h1>hinode board</h1>{error}
<form method="post" action="/login"><label>User <input name="username" autocomplete="username"></label>
<label>Password <input name="password" type="password" autocomplete="current-password"></label>
<p>or</p><label>API token <input name="token" type="password" autocomplete="off"></label>
<button type="submit">Sign in</button></form></body></html>"""


def install(app: FastAPI, auth: Authenticator) -> None:
    """/token (OAuth2 password flow), /login and /logout for the board."""

    limiter = LoginLimiter(auth.config.login)

    async def sign_in(username: str, password: str, address: str) -> tuple[Principal | None, float | None]:
        """(principal, None), (None, None) for wrong credentials, or (None, retry-after s) when limited.
        scrypt takes ~50 ms of CPU: it runs in a worker thread, never on the event loop."""
        wait = limiter.retry_after(username, address)
        if wait is not None:
            auth._count("login_limited")
            log.warning("sign-in from %s refused: too many failed attempts for this user name or address", address)
            return None, wait
        principal = await asyncio.to_thread(auth.check_password, username, password)
        if principal is None:
            limiter.failed(username, address)
        else:
            limiter.succeeded(username)
        return principal, None

    def too_many(wait: float) -> dict:
        return {"Retry-After": str(max(1, math.ceil(wait))), "Cache-Control": "no-store"}

    @app.post("/token", tags=["auth"], summary="OAuth2 password flow: form username+password -> bearer token")
    async def token(request: Request) -> JSONResponse:
        form = await _form(request)
        if form.get("grant_type", "password") != "password":
            return JSONResponse({"error": "unsupported_grant_type"}, status_code=400)
        address = request.client.host if request.client else "?"
        principal, wait = await sign_in(form.get("username", ""), form.get("password", ""), address)
        if wait is not None:
            return JSONResponse({"error": "too_many_attempts", "detail": f"too many failed sign-ins for this user "
                                 f"name or address; try again in {math.ceil(wait)} s"}, status_code=429,
                                headers=too_many(wait))
        if principal is None:
            auth._count("login_failed")
            log.warning("token request refused from %s: wrong username or password", address)
            return JSONResponse({"error": "invalid_grant", "detail": "wrong username or password"}, status_code=401,
                                headers={"WWW-Authenticate": "Bearer"})
        auth._count("login_ok")
        return JSONResponse({"access_token": auth.issue(principal), "token_type": "bearer",
                             "expires_in": auth.config.token_ttl_s, "role": principal.role,
                             "scope": " ".join(sorted(principal.scopes))},
                            headers={"Cache-Control": "no-store"})

    @app.get("/login", include_in_schema=False)
    async def login_page() -> HTMLResponse:
        return HTMLResponse(_LOGIN_PAGE.format(error=""), headers={"Cache-Control": "no-store"})

    @app.post("/login", include_in_schema=False)
    async def login(request: Request):
        form = await _form(request)
        principal, wait = None, None
        address = request.client.host if request.client else "?"
        if form.get("token"):
            wait = limiter.retry_after("", address)
            if wait is None:
                principal = auth._static_token(form["token"].strip())
                if principal is None:
                    limiter.failed("", address)
            else:
                auth._count("login_limited")
        elif form.get("username"):
            principal, wait = await sign_in(form["username"], form.get("password", ""), address)
        if wait is not None:
            page = _LOGIN_PAGE.format(error=f'<p class="err">Too many failed sign-ins; try again in '
                                            f'{math.ceil(wait)} s.</p>')
            return HTMLResponse(page, status_code=429, headers=too_many(wait))
        if principal is None:
            auth._count("login_failed")
            log.warning("board login refused from %s", request.client.host if request.client else "?")
            page = _LOGIN_PAGE.format(error=f'<p class="err">{escape("Wrong credentials.")}</p>')
            return HTMLResponse(page, status_code=401, headers={"Cache-Control": "no-store"})
        auth._count("login_ok")
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(SESSION_COOKIE, auth.issue(principal), max_age=auth.config.token_ttl_s, httponly=True,
                            samesite="strict", secure=request.url.scheme == "https", path="/")
        return response

    @app.api_route("/logout", methods=["GET", "POST"], include_in_schema=False)
    async def logout() -> RedirectResponse:
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response


def board_allowed(auth: Authenticator, request: Request) -> bool:
    """Whether ``/`` may show the board (else it redirects to /login)."""
    if not auth.enabled:
        return True
    try:
        auth.authenticate(request)
    except HTTPException:
        return False
    return True
