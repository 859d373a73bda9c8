"""Enrollment routes: admins create one-time tokens and revoke agents; agents enroll with a token.

- ``POST /api/enroll/tokens`` (scope ``enroll:write``, admin): ``{site, agent, ttl_s?, site_config?}``
  -> ``{token, site, agent, username, expires_at}``; the token is shown once, only its hash is kept.
- ``GET /api/enroll/agents`` (``enroll:write``): enrolled agents and the counters.
- ``POST /api/enroll/agents/{site}/{agent}/revoke`` (``enroll:write``): CRL + ACL, broker reload.
- ``POST /enroll`` (public, rate-limited per client address): ``{token, csr}`` -> certificate, CA,
  MQTT section (+ password when the broker uses passwords, + the site config stored with the token).
  A reused, expired or unknown token -> 403 with the reason; a bad CSR -> 400 (the token is kept).

The routes exist only when enrollment is configured: ``install(app, auth)`` reads the file named
by ``HINODE_ENROLL_CONFIG`` (hinode/security/ENROLL.md) or takes an ``EnrollConfig``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import threading
import time
from collections import deque

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from cloud.api.scopes import register_scope
from hinode.security.enroll import EnrollConfig, EnrollError, EnrollmentService, TokenRefused, load_enroll_config

log = logging.getLogger(__name__)

ENROLL_WRITE = register_scope("enroll:write", "create enrollment tokens, list and revoke enrolled agents",
                              roles=("admin",))
CONFIG_ENV = "HINODE_ENROLL_CONFIG"
REFUSAL_DETAIL = {"unknown": "enrollment token unknown",
                  "used": "enrollment token already used (a token works once: ask for a new one)",
                  "expired": "enrollment token expired (ask for a new one)"}


class TokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    site: str
    agent: str
    ttl_s: int | None = Field(default=None, gt=0)
    site_config: dict | None = Field(default=None, description="a site.yaml template handed to the agent")


class EnrollRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    token: str = Field(min_length=1, max_length=200)
    csr: str = Field(min_length=1, max_length=16 * 1024, description="PEM certificate signing request")


class AddressLimiter:
    """At most ``limit`` requests per client address within ``window_s`` (sliding window)."""

    def __init__(self, limit: int, window_s: float, max_keys: int = 10_000):
        self.limit, self.window_s, self.max_keys = limit, window_s, max_keys
        self._seen: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def retry_after(self, address: str) -> float | None:
        now = time.monotonic()
        with self._lock:
            if len(self._seen) >= self.max_keys and address not in self._seen:
                self._seen.clear()
            times = self._seen.setdefault(address, deque())
            while times and times[0] <= now - self.window_s:
                times.popleft()
            if len(times) >= self.limit:
                return times[0] + self.window_s - now
            times.append(now)
            return None


def build_routers(service: EnrollmentService, auth) -> tuple[APIRouter, APIRouter]:
    admin = APIRouter(prefix="/api/enroll", tags=["enrollment"],
                      dependencies=[Depends(auth.require_scope(ENROLL_WRITE.name))])
    public = APIRouter(tags=["enrollment"])
    limiter = AddressLimiter(service.config.max_requests_per_address, service.config.window_s)

    @admin.post("/tokens", summary="A one-time enrollment token for (site, agent)")
    async def create_token(body: TokenRequest) -> dict:
        try:
            token, expires = await asyncio.to_thread(service.create_token, body.site, body.agent, body.ttl_s,
                                                     body.site_config)
        except EnrollError as exc:
            raise HTTPException(422, str(exc)) from None
        service.count("token_created")
        return {"token": token, "site": body.site, "agent": body.agent,
                "username": f"{body.agent}@{body.site}", "expires_at": expires}

    @admin.get("/agents", summary="Enrolled agents (revoked ones too) and enrollment counters")
    async def agents() -> dict:
        return await asyncio.to_thread(service.status)

    @admin.post("/agents/{site}/{agent}/revoke", summary="Revoke an enrolled agent: CRL, ACL, broker reload")
    async def revoke(site: str, agent: str) -> dict:
        try:
            result = await asyncio.to_thread(service.revoke, site, agent)
        except LookupError as exc:
            raise HTTPException(404, str(exc)) from None
        except EnrollError as exc:
            raise HTTPException(502, str(exc)) from None
        log.warning("agent %s revoked (serial %s)", result["username"], result["serial"])
        return result

    @public.post("/enroll", summary="Enroll with a one-time token and a CSR (public, rate-limited)")
    async def enroll(body: EnrollRequest, request: Request) -> JSONResponse:
        address = request.client.host if request.client else "?"
        wait = limiter.retry_after(address)
        if wait is not None:
            service.count("rate_limited")
            return JSONResponse({"detail": f"too many enrollment requests; try again in {math.ceil(wait)} s"},
                                status_code=429, headers={"Retry-After": str(max(1, math.ceil(wait)))})
        try:
            answer = await asyncio.to_thread(service.enroll, body.token, body.csr)
        except TokenRefused as exc:
            service.count(f"refused_{exc.reason}")
            log.warning("enrollment from %s refused: token %s", address, exc.reason)
            return JSONResponse({"detail": REFUSAL_DETAIL[exc.reason], "reason": exc.reason}, status_code=403)
        except EnrollError as exc:
            service.count("bad_request")
            return JSONResponse({"detail": str(exc)}, status_code=400)
        log.info("agent %s enrolled from %s", answer["username"], address)
        return JSONResponse(answer, headers={"Cache-Control": "no-store"})

    return admin, public


def install(app: FastAPI, auth, config: EnrollConfig | None = None) -> EnrollmentService | None:
    """Serve the enrollment routes when configured (``config`` or $HINODE_ENROLL_CONFIG); writes the
    broker's acl/passwd/crl from the inventory + enrolled agents and asks the broker to reload."""
    if config is None:
        path = os.environ.get(CONFIG_ENV)
        if not path:
            return None
        config = load_enroll_config(path)
    service = EnrollmentService(config)
    service.write_broker_files()
    try:
        done = service.reload_broker()
    except EnrollError as exc:   # the broker may start after the API; it reads the files then
        done = f"broker not reloaded: {exc}"
        log.warning("enrollment: %s", done)
    log.info("enrollment on: %d enrolled agent(s); broker files written, %s", len(service.store.agents()), done)
    admin, public = build_routers(service, auth)
    app.include_router(admin)
    app.include_router(public)
    app.state.enrollment = service
    return service
