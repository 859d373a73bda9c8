"""The cloud HTTP API: health, readiness, metrics, /api/* and the live board at /."""

from __future__ import annotations

import asyncio
import inspect
import logging
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

from fastapi import Depends, FastAPI, Request
from fastapi_offline import FastAPIOffline
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

from cloud.api.auth import Authenticator, board_allowed, install as install_auth
from cloud.api.metrics import ApiMetrics, MetricsMiddleware, api_registry
from cloud.api.params import InvalidParameter
from cloud.api import commands, operations
from cloud.api.routes import router
from cloud.completeness import CompletenessService
from cloud.config import CloudConfig
from cloud.domains import (DEFAULT_PACKAGES, discover, install_domains, register_domain_scopes,
                           start_domain_lifespans)
from cloud.influx import (AsyncInfluxClient, InfluxAuthError, InfluxError, InfluxQueryError, InfluxRejected,
                          InfluxUnavailable)
from cloud.scheduler import Scheduler
from hinode.sdnotify import SystemdNotifier
from hinode.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE, render as render_metrics

log = logging.getLogger(__name__)
BOARD_DIR = Path(__file__).resolve().parent.parent / "board"


async def _call(method) -> None:
    """Run a start/stop method that may be a coroutine or may block (then in a worker thread)."""
    if inspect.iscoroutinefunction(method):
        await method()
    else:
        result = await asyncio.to_thread(method)
        if inspect.isawaitable(result):
            await result


def create_app(config: CloudConfig, ingest=None, status=None, *, dead_letters=None, manage_services: bool = False,
               completeness_cache_s: float = 3.0, domain_packages: tuple[str, ...] = DEFAULT_PACKAGES) -> FastAPI:
    """Build the app.

    ``ingest``: an IngestService running in this process (its counters join /metrics).
    ``status``: a StatusTracker (agent online states; broker readiness).
    ``manage_services``: start both on startup and stop them on shutdown (``python -m cloud serve``);
    otherwise the caller owns their lifecycle. With it, the domains' scheduler runs too (``scheduler.enabled``).
    ``domain_packages``: where the domains are discovered (cloud/domains/__init__.py).
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if manage_services:
            if status is not None:
                await _call(status.start)
            if dead_letters is not None:
                await _call(dead_letters.start)
            if ingest is not None:
                await _call(ingest.start)
            if config.scheduler.enabled:
                await app.state.scheduler.start()
        notifier = SystemdNotifier()        # `cloud serve` under a Type=notify unit
        watchdog = asyncio.create_task(notifier.watchdog()) if manage_services else None
        try:
            async with AsyncExitStack() as domain_services:
                if manage_services:
                    await start_domain_lifespans(app, domain_services)
                    notifier.ready(f"API on {config.api.host}:{config.api.port}")
                yield
                if manage_services:
                    notifier.stopping()
        finally:
            if watchdog is not None:
                watchdog.cancel()
            if manage_services:
                await app.state.scheduler.stop()
                if ingest is not None:
                    await _call(ingest.stop)
                if status is not None:
                    await _call(status.stop)
                if dead_letters is not None:
                    await _call(dead_letters.stop)
            await app.state.reader.aclose()

    # Swagger UI and ReDoc from assets served by the API itself: a site network without internet
    # showed a blank /docs when they came from a CDN.
    app = FastAPIOffline(title="hinode cloud API", version="1", lifespan=lifespan,
                  description="Live device data from InfluxDB and agent status from MQTT.")
    app.state.config = config
    app.state.reader = AsyncInfluxClient(config.influx)
    app.state.completeness = CompletenessService(app.state.reader, cache_s=completeness_cache_s)
    app.state.status = status
    app.state.dead_letters = dead_letters       # a DeadLetterCollector, or None
    app.state.ingest = ingest
    app.state.metrics = ApiMetrics()
    domains = discover(domain_packages)
    register_domain_scopes(domains)  # before the Authenticator checks the scope names configured in api.auth
    app.state.auth = auth = Authenticator(config.api)
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    app.include_router(router, dependencies=[Depends(auth.require_scope("meters:read"))])
    app.include_router(operations.router, dependencies=[Depends(auth.require_scope("ops:read"))])
    app.include_router(commands.write_router, dependencies=[Depends(auth.require_scope("commands:write"))])
    app.include_router(commands.read_router, dependencies=[Depends(auth.require_scope("commands:read"))])
    app.state.scheduler = Scheduler(app.state.reader, config.scheduler, create_database=config.influx.create_database,
                                    command_state=app.state)
    install_domains(app, config, domains=domains)
    _add_error_handlers(app)
    _add_operational_routes(app)
    install_auth(app, auth)
    from cloud.api import enroll  # routes only when $HINODE_ENROLL_CONFIG names an enrollment config
    enroll.install(app, auth)
    app.mount("/board", StaticFiles(directory=BOARD_DIR), name="board")

    @app.get("/", include_in_schema=False)
    async def board(request: Request):
        if not board_allowed(auth, request):
            return RedirectResponse("/login", status_code=303)
        return FileResponse(BOARD_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    return app


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(InvalidParameter)
    async def invalid_parameter(request: Request, exc: InvalidParameter) -> JSONResponse:
        request.app.state.metrics.invalid(exc.name)
        return JSONResponse({"detail": str(exc), "parameter": exc.name}, status_code=422)

    @app.exception_handler(InfluxQueryError)
    async def influx_refused(request: Request, exc: InfluxQueryError) -> JSONResponse:
        return JSONResponse({"detail": f"InfluxDB refused the query: {exc}"}, status_code=422)

    @app.exception_handler(InfluxUnavailable)
    async def influx_unavailable(request: Request, exc: InfluxUnavailable) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=503)

    @app.exception_handler(InfluxAuthError)
    async def influx_credentials(request: Request, exc: InfluxAuthError) -> JSONResponse:
        # The API's own InfluxDB credentials are wrong: the service is unavailable, not the client's fault.
        return JSONResponse({"detail": str(exc)}, status_code=503)

    @app.exception_handler(InfluxRejected)
    async def influx_rejected_write(request: Request, exc: InfluxRejected) -> JSONResponse:
        log.error("InfluxDB refused a derived write: %s", exc)
        return JSONResponse({"detail": f"InfluxDB refused the write: {exc}"}, status_code=500)


def _add_operational_routes(app: FastAPI) -> None:
    @app.get("/healthz", tags=["operations"], summary="Liveness: 200 while the process runs")
    async def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/readyz", tags=["operations"], summary="Readiness: InfluxDB reachable, broker connected, in-process subscriptions granted")
    async def readyz(request: Request) -> JSONResponse:
        state = request.app.state
        try:
            version = await state.reader.ping()
            influx_ok, influx_detail = True, f"ok (InfluxDB {version})" if version else "ok"
        except InfluxError as exc:
            influx_ok, influx_detail = False, str(exc)
        checks = {"influxdb": {"ok": influx_ok, "detail": influx_detail}}
        if state.status is not None:
            connected = state.status.broker_connected
            checks["broker"] = {"ok": connected, "detail": "connected" if connected else "not connected to the MQTT broker"}
        if state.ingest is not None:       # the in-process ingest: ready once the broker granted every filter
            subscribed = state.ingest.wait_ready(0)
            checks["ingest"] = {"ok": subscribed, "detail": "subscribed" if subscribed
                                else "not yet subscribed to every telemetry filter"}
        if state.dead_letters is not None:
            subscribed = state.dead_letters.connected.is_set()
            checks["dead_letters"] = {"ok": subscribed, "detail": "subscribed" if subscribed
                                      else "the dead-letter collector is not subscribed yet"}
        not_ready = sorted(name for name, check in checks.items() if not check["ok"])
        body = {"status": "not ready" if not_ready else "ready", "not_ready": not_ready, "checks": checks}
        return JSONResponse(body, status_code=503 if not_ready else 200)

    registry = api_registry(app.state)   # this app's own prometheus_client registry (cloud/api/metrics.py)

    @app.get("/metrics", tags=["operations"], summary="Prometheus text: API, status and in-process ingest counters",
             response_class=PlainTextResponse, dependencies=[Depends(app.state.auth.require_scope("ops:read"))])
    async def metrics() -> PlainTextResponse:
        return PlainTextResponse(render_metrics(registry), media_type=METRICS_CONTENT_TYPE)
