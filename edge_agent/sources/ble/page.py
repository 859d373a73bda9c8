"""The nurse's page: an aiohttp app on the source's event loop, on the home's local network.

Every asset is served from ``page/`` (no CDN, no external font): the page works in a house
without internet. A nurse signs in with a PIN (scrypt hash in the config, attempts limited,
session cookie HttpOnly + SameSite=Strict), then sees today's visits, starts one, confirms or
discards each reading as it arrives (long poll on the book's change feed: a reading shows within
a few hundred ms of ``offer``), assigns or discards readings taken outside a visit, and ends the
visit. JSON API (all but ``/api/config`` and ``/api/login`` need the session cookie; every POST
needs ``Content-Type: application/json`` and, when the browser sends ``Origin``, this page's own
origin, so another site cannot post to it)::

    GET  /api/config                       language, nurses (id, name) for the login screen
    POST /api/login  {nurse, pin}          sets the session cookie; 401 wrong PIN, 429 locked out
    POST /api/logout
    GET  /api/state?since=V&wait=S         everything the page shows; waits up to S s for a change after V
    POST /api/visits {pseudonym, unscheduled?}
    POST /api/visits/{id}/end {discard_pending?}       409 + the pending readings when some wait
    POST /api/readings/{id}/confirm | discard | assign {visit_id}

``status_provider()`` returns the kit's devices: a list of dicts (``device`` or ``id``,
``category``, ``online`` or ``connected``, ``since_ms`` or ``last_seen_ms``, ``error``) or a dict
with such a list under ``devices``. Logs carry nurse ids, visit ids and pseudonyms, never names.
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Callable

from aiohttp import web

from edge_agent.sources.ble.page_auth import PinLimiter, Sessions
from edge_agent.sources.ble.page_config import PageConfig
from edge_agent.sources.ble.visits import HeldReading, VisitBook, VisitError
from hinode.security.api_secrets import verify_password
from hinode.vitals import VITAL_METRICS

ASSETS = Path(__file__).with_name("page")
ASSET_TYPES = {"nurse.js": "text/javascript", "i18n.js": "text/javascript", "nurse.css": "text/css"}
COOKIE = "hinode_nurse"
NURSE = web.RequestKey("nurse", str)
MAX_WAIT_S = 10.0
ERROR_STATUS = {"not_found": 404, "state": 409, "active_visit": 409, "pending_readings": 409,
                "not_scheduled": 400, "bad_pseudonym": 400}
HEADERS = {"Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
           "X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer",
           "Cache-Control": "no-store"}


class NursePage:
    def __init__(self, config: PageConfig, book: VisitBook, status_provider: Callable[[], object],
                 log: logging.Logger | None = None):
        self.config = config
        self.book = book
        self.status_provider = status_provider
        self.log = log or logging.getLogger(__name__)
        self.limiter = PinLimiter(config.login)
        self.sessions = Sessions(config.session_ttl_s)
        self.port: int | None = None
        self._runner: web.AppRunner | None = None
        self._closing = False
        self._schedule_error_logged = ""

    # ------------------------------------------------------------------ life cycle

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._guard], client_max_size=64 * 1024)
        app.router.add_get("/", self._index)
        app.router.add_get("/assets/{name}", self._asset)
        app.router.add_get("/api/config", self._config)
        app.router.add_post("/api/login", self._login)
        app.router.add_post("/api/logout", self._logout)
        app.router.add_get("/api/state", self._state)
        app.router.add_post("/api/visits", self._start_visit)
        app.router.add_post("/api/visits/{visit_id}/end", self._end_visit)
        app.router.add_post("/api/readings/{reading_id}/{action}", self._reading_action)
        return app

    async def start(self) -> None:
        self._closing = False
        self._runner = web.AppRunner(self.app(), access_log=None, shutdown_timeout=2.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.host, self.config.port)
        await site.start()
        self.port = self._runner.addresses[0][1]
        self.log.info("nurse page listening on %s:%d", self.config.host, self.port)

    async def stop(self) -> None:
        self._closing = True
        self.book.changes.wake()
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    # ------------------------------------------------------------------ guard

    @web.middleware
    async def _guard(self, request: web.Request, handler):
        response = await self._checked(request, handler)
        response.headers.update(HEADERS)
        return response

    async def _checked(self, request: web.Request, handler) -> web.StreamResponse:
        path = request.path
        if request.method == "POST":
            problem = _cross_site_problem(request)
            if problem:
                return _error(403, "cross_site", problem)
        if path.startswith("/api/") and path not in ("/api/config", "/api/login"):
            nurse = self.sessions.nurse_of(request.cookies.get(COOKIE))
            if nurse is None or self.config.nurse(nurse) is None:
                return _error(401, "login", "sign in with your PIN first")
            request[NURSE] = nurse
        try:
            return await handler(request)
        except VisitError as exc:
            return _error(ERROR_STATUS.get(exc.code, 400), exc.code, exc.message,
                          pending=[self._reading_json(r) for r in exc.pending])
        except web.HTTPException as exc:
            if not path.startswith("/api/"):
                raise
            return _error(exc.status, "request", exc.reason)

    # ------------------------------------------------------------------ assets and sign-in

    async def _index(self, request: web.Request) -> web.Response:
        return web.Response(body=(ASSETS / "nurse.html").read_bytes(), content_type="text/html", charset="utf-8")

    async def _asset(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in ASSET_TYPES:
            raise web.HTTPNotFound()
        return web.Response(body=(ASSETS / name).read_bytes(), content_type=ASSET_TYPES[name], charset="utf-8")

    async def _config(self, request: web.Request) -> web.Response:
        return web.json_response({"language": self.config.language,
                                  "nurses": [{"id": n.id, "name": n.name} for n in self.config.nurses]})

    async def _login(self, request: web.Request) -> web.Response:
        body = await _json_body(request)
        nurse_id, pin = str(body.get("nurse", ""))[:64], str(body.get("pin", ""))[:64]
        address = request.remote or ""
        wait = self.limiter.retry_after(nurse_id, address)
        if wait is not None:
            self.log.warning("nurse page: sign-in for %s refused, locked out for %.0f s", nurse_id, wait)
            response = _error(429, "locked", "too many wrong PINs; try again later", retry_after_s=int(wait) + 1)
            response.headers["Retry-After"] = str(int(wait) + 1)
            return response
        nurse = self.config.nurse(nurse_id)
        ok = nurse is not None and await asyncio.get_running_loop().run_in_executor(
            None, verify_password, pin, nurse.pin_hash)      # scrypt takes ~50-100 ms: not on the loop
        if not ok:
            self.limiter.failed(nurse_id, address)
            self.log.warning("nurse page: wrong PIN for %s", nurse_id if nurse else "an unknown nurse id")
            return _error(401, "wrong_pin", "wrong nurse or PIN")
        self.limiter.succeeded(nurse_id)
        self.log.info("nurse page: %s signed in", nurse_id)
        response = web.json_response({"nurse": {"id": nurse.id, "name": nurse.name}})
        response.set_cookie(COOKIE, self.sessions.create(nurse.id), httponly=True, samesite="Strict", path="/",
                            max_age=int(self.config.session_ttl_s))
        return response

    async def _logout(self, request: web.Request) -> web.Response:
        self.sessions.end(request.cookies.get(COOKIE))
        response = web.json_response({"ok": True})
        response.del_cookie(COOKIE, path="/")
        return response

    # ------------------------------------------------------------------ state and actions

    async def _state(self, request: web.Request) -> web.Response:
        try:
            since = int(request.query.get("since", "-1"))
            wait = min(max(float(request.query.get("wait", "0")), 0.0), MAX_WAIT_S)
        except ValueError:
            return _error(400, "request", "since and wait must be numbers")
        if wait and not self._closing:
            await self.book.changes.wait(since, wait)
        return web.json_response(self.state(request[NURSE]))

    def state(self, nurse_id: str) -> dict:
        version = self.book.changes.version
        nurse = self.config.nurse(nurse_id)
        active = self.book.active()
        held = self.book.held()
        visits = self.book.visits_of_today()
        if self.book.schedule_error != self._schedule_error_logged:
            self._schedule_error_logged = self.book.schedule_error
            if self.book.schedule_error:
                self.log.warning("nurse page: %s", self.book.schedule_error)
        if active is not None and active not in visits:
            visits.append(active)       # a visit started before midnight stays assignable
        return {
            "version": version,
            "nurse": {"id": nurse.id, "name": nurse.name},
            "language": self.config.language,
            "today": self.book.today(),
            "schedule_error": bool(self.book.schedule_error),
            "active": None if active is None else {
                "id": active.id, "pseudonym": active.pseudonym, "display_name": active.display_name,
                "started": self.book.local_time(active.started_ms).strftime("%H:%M"), "nurse": active.nurse},
            "readings": [self._reading_json(r) for r in held if r.state == "pending"],
            "unassigned": [self._reading_json(r) for r in held if r.state == "unassigned"],
            "visits": [{"id": v.id, "pseudonym": v.pseudonym, "display_name": v.display_name,
                        "active": v.active} for v in visits],
            "devices": self._devices(),
        }

    async def _start_visit(self, request: web.Request) -> web.Response:
        body = await _json_body(request)
        visit = self.book.start_visit(str(body.get("pseudonym", "")), request[NURSE],
                                      unscheduled=bool(body.get("unscheduled", False)))
        self.log.info("nurse page: %s started visit %s (%s)", request[NURSE], visit.id, visit.pseudonym)
        return web.json_response({"id": visit.id, "pseudonym": visit.pseudonym}, status=201)

    async def _end_visit(self, request: web.Request) -> web.Response:
        body = await _json_body(request)
        visit_id = request.match_info["visit_id"]
        self.book.end_visit(visit_id, request[NURSE], discard_pending=bool(body.get("discard_pending", False)))
        self.log.info("nurse page: %s ended visit %s", request[NURSE], visit_id)
        return web.json_response({"ok": True})

    async def _reading_action(self, request: web.Request) -> web.Response:
        body = await _json_body(request)
        reading_id, action, nurse = request.match_info["reading_id"], request.match_info["action"], request[NURSE]
        if action == "confirm":
            self.book.confirm(reading_id, nurse)
        elif action == "discard":
            self.book.discard(reading_id, nurse)
        elif action == "assign":
            self.book.assign(reading_id, str(body.get("visit_id", "")), nurse)
        else:
            return _error(404, "not_found", f"no action {action!r} (confirm, discard or assign)")
        return web.json_response({"ok": True})

    # ------------------------------------------------------------------ views of the book

    def _reading_json(self, r: HeldReading) -> dict:
        m = r.measurement
        values = [{"metric": v.metric, "value": v.formatted(), "unit": v.unit, "absent": v.absent,
                   "label_en": VITAL_METRICS[v.metric].display, "label_ja": VITAL_METRICS[v.metric].display_ja}
                  for v in m.values]
        return {"id": r.id, "device": r.device, "category": m.category.value, "state": r.state,
                "visit_id": r.visit_id, "pseudonym": r.pseudonym, "time_source": r.time_source,
                "time": self._when(r.ts_ms), "ts_ms": r.ts_ms,
                "summary_en": m.summary(), "summary_ja": _summary_ja(m), "values": values,
                "status": list(m.status)}

    def _when(self, ts_ms: int) -> str:
        """HH:MM, with the date when not today (a stored glucose record from days ago)."""
        local = self.book.local_time(ts_ms)
        return local.strftime("%H:%M" if local.date() == self.book.local_date() else "%Y-%m-%d %H:%M")

    def _devices(self) -> list[dict]:
        try:
            raw = self.status_provider()
        except Exception:      # a status problem must not take the page down
            self.log.exception("nurse page: device status failed")
            return []
        items = raw.get("devices", []) if isinstance(raw, dict) else list(raw or [])
        devices = []
        for item in items:
            since = item.get("last_seen_ms", item.get("since_ms")) or None
            devices.append({"id": str(item.get("id", item.get("device", ""))), "category": item.get("category", ""),
                            "connected": bool(item.get("connected", item.get("online", False))),
                            "since": self.book.local_time(since).strftime("%H:%M") if since else "",
                            "error": str(item.get("error", ""))})
        return devices


def _summary_ja(m) -> str:
    summary_ja = getattr(m, "summary_ja", None)
    return summary_ja() if callable(summary_ja) else m.summary()


def _cross_site_problem(request: web.Request) -> str:
    if request.content_type != "application/json":
        return "a JSON request is needed (Content-Type: application/json)"
    origin = request.headers.get("Origin")
    if origin is not None and origin != f"{request.scheme}://{request.host}":
        return "requests from another site are refused"
    return ""


async def _json_body(request: web.Request) -> dict:
    try:
        body = await request.json() if request.can_read_body else {}
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise web.HTTPBadRequest(reason="the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(reason="the body must be a JSON object")
    return body


def _error(status: int, code: str, message: str, **extra) -> web.Response:
    return web.json_response({"error": code, "message": message, **extra}, status=status)
