"""The cloud HTTP API: health, readiness, metrics, /api/* and the live board at /."""

from __future__ import annotations

import asyncio
import inspect
import logging
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import Depends, FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

from cloud.api.auth import Authenticator, board_allowed, install as install_auth
from cloud.api.influxql import InfluxQueryError, InfluxReader, InfluxUnavailable
from cloud.api.metrics import ApiMetrics, MetricsMiddleware
from cloud.api.params import InvalidParameter
from cloud.api.routes import router
from cloud.completeness import CompletenessService
from cloud.config import CloudConfig

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


def create_app(config: CloudConfig, ingest=None, status=None, *, manage_services: bool = False,
               completeness_cache_s: float = 3.0) -> FastAPI:
    """Build the app.

    ``ingest``: an IngestService running in this process (its counters join /metrics).
    ``status``: a StatusTracker (agent online states; broker readiness).
    ``manage_services``: start both on startup and stop them on shutdown (``python -m cloud serve``);
    otherwise the caller owns their lifecycle.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if manage_services:
            if status is not None:
                await _call(status.start)
            if ingest is not None:
                await _call(ingest.start)
        try:
            yield
        finally:
            if manage_services:
                if ingest is not None:
                    await _call(ingest.stop)
                if status is not None:
                    await _call(status.stop)
            await app.state.reader.aclose()

    app = FastAPI(title="hinode cloud API", version="1", lifespan=lifespan,
                  description="Live device data from InfluxDB and agent status from MQTT.")
    app.state.config = config
    app.state.reader = InfluxReader(config.influx)
    app.state.completeness = CompletenessService(app.state.reader, cache_s=completeness_cache_s)
    app.state.status = status
    app.state.ingest = ingest
    app.state.metrics = ApiMetrics()
    app.state.auth = auth = Authenticator(config.api)
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    app.include_router(router, dependencies=[Depends(auth.require("viewer"))])
    _add_error_handlers(app)
    _add_operational_routes(app)
    install_auth(app, auth)
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


def _add_operational_routes(app: FastAPI) -> None:
    @app.get("/healthz", tags=["operations"], summary="Liveness: 200 while the process runs")
    async def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/readyz", tags=["operations"], summary="Readiness: broker and InfluxDB reachable")
    async def readyz(request: Request) -> JSONResponse:
        state = request.app.state
        influx_ok, influx_detail = await state.reader.ping()
        checks = {"influxdb": {"ok": influx_ok, "detail": influx_detail}}
        if state.status is not None:
            connected = state.status.broker_connected
            checks["broker"] = {"ok": connected, "detail": "connected" if connected else "not connected to the MQTT broker"}
        not_ready = sorted(name for name, check in checks.items() if not check["ok"])
        body = {"status": "not ready" if not_ready else "ready", "not_ready": not_ready, "checks": checks}
        return JSONResponse(body, status_code=503 if not_ready else 200)

    @app.get("/metrics", tags=["operations"], summary="Prometheus text: API, status and in-process ingest counters",
             response_class=PlainTextResponse, dependencies=[Depends(app.state.auth.require("admin"))])
    async def metrics(request: Request) -> PlainTextResponse:
        state = request.app.state
        parts = [state.metrics.prometheus_text(), _reader_text(state.reader, state.completeness),
                 state.auth.prometheus_text()]
        if state.status is not None:
            parts.append(state.status.prometheus_text())
        if state.ingest is not None:
            try:
                parts.append(state.ingest.prometheus_text())
            except Exception:  # the API's own metrics must still be served
                log.exception("ingest.prometheus_text() failed")
        text = "".join(p if p.endswith("\n") else p + "\n" for p in parts if p)
        return PlainTextResponse(text, media_type="text/plain; version=0.0.4; charset=utf-8")


def _reader_text(reader: InfluxReader, completeness: CompletenessService) -> str:
    stats = reader.stats
    return "".join([
        "# HELP hinode_api_influx_queries_total InfluxQL requests sent by the API\n",
        "# TYPE hinode_api_influx_queries_total counter\n",
        f"hinode_api_influx_queries_total {stats.queries_total}\n",
        "# HELP hinode_api_influx_errors_total InfluxQL requests InfluxDB refused\n",
        "# TYPE hinode_api_influx_errors_total counter\n",
        f"hinode_api_influx_errors_total {stats.errors_total}\n",
        "# HELP hinode_api_influx_unavailable_total InfluxQL requests that found InfluxDB unreachable\n",
        "# TYPE hinode_api_influx_unavailable_total counter\n",
        f"hinode_api_influx_unavailable_total {stats.unavailable_total}\n",
        "# HELP hinode_api_influx_query_seconds_total Time spent waiting for InfluxDB\n",
        "# TYPE hinode_api_influx_query_seconds_total counter\n",
        f"hinode_api_influx_query_seconds_total {stats.seconds_total:.6f}\n",
        "# HELP hinode_api_completeness_cache_total Completeness lookups, by cache result\n",
        "# TYPE hinode_api_completeness_cache_total counter\n",
        f'hinode_api_completeness_cache_total{{result="hit"}} {completeness.cache_hits}\n',
        f'hinode_api_completeness_cache_total{{result="miss"}} {completeness.cache_misses}\n',
    ])
