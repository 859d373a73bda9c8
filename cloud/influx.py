"""The one InfluxDB client module: ingest (sync), API and domain services (async).

Only ``POST /write`` (line protocol, ``precision=ms``), ``POST /query`` (InfluxQL,
``epoch=ms``) and ``GET /ping`` are used: they work on InfluxDB 1.x, on 2.x from 2.4
(virtual DBRP mappings: database = bucket name) and on 3.x (v1 compatibility API).

Both transports build their requests and classify the answers with the same functions
below, so an error means the same thing to the ingest and to the API:

* :class:`InfluxUnavailable` - connection failure, timeout, 5xx, 429, or a missing
  database/endpoint (404): retry the same data later, nothing is wrong with it.
* :class:`InfluxRejected` - 400/413/422 on a write: the server refused (part of) the
  data, e.g. ``partial write: field type conflict``. Retrying the same body fails again.
* :class:`InfluxAuthError` - 401/403: credentials are wrong; retry after fixing them.
* :class:`InfluxQueryError` - an InfluxQL statement failed (syntax, mean() of a bool...).

Credentials: ``token`` is sent as ``Authorization: Token <t>`` (2.x/3.x); otherwise
``username``/``password`` as HTTP Basic auth (1.x, and 2.x's v1 compatibility API).
Neither ever appears in a URL, a log line or an exception message.
"""

from __future__ import annotations

import gzip as gzip_module
import json
import time
from dataclasses import dataclass, field
from typing import Any, Iterable
from urllib.parse import urlsplit, urlunsplit

import httpx

from cloud.config import InfluxConfig
from cloud.points import Point, encode_points

_BODY_IN_MESSAGE = 1000


class InfluxError(Exception):
    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.message = message
        self.status = status


class InfluxUnavailable(InfluxError):
    """Retryable: the server is down, overloaded, or not set up yet."""

    def __init__(self, message: str, status: int | None = None, retry_after_s: float | None = None):
        super().__init__(message, status)
        self.retry_after_s = retry_after_s


class InfluxRejected(InfluxError):
    """Not retryable: the server refused the written data; ``message`` is the server's text."""


class InfluxAuthError(InfluxError):
    """401/403: the configured credentials are missing or wrong."""


class InfluxQueryError(InfluxError):
    """An InfluxQL statement was refused."""


def quote_identifier(name: str) -> str:
    """An InfluxQL double-quoted identifier (database, measurement, tag or field name)."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def quote_string(value: str) -> str:
    """An InfluxQL single-quoted string literal (e.g. a tag value in WHERE)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def redact_url(url: str) -> str:
    """The URL without any ``user:password@`` part, for messages."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, "***@" + netloc, parts.path, parts.query, parts.fragment))


@dataclass
class Series:
    """One series of one statement's result; ``tags`` is {} without GROUP BY, times are ms."""

    name: str
    tags: dict[str, str]
    columns: list[str]
    values: list[list]

    def rows(self) -> list[dict]:
        return [dict(zip(self.columns, row)) for row in self.values]


@dataclass
class QueryStats:
    queries_total: int = 0
    errors_total: int = 0          # statements InfluxDB refused
    unavailable_total: int = 0     # not answered: down, timeout, 5xx, credentials
    seconds_total: float = 0.0
    writes_total: int = 0
    write_errors_total: int = 0
    by_error: dict[str, int] = field(default_factory=dict)


# ---------------------------------------------------------------- requests and answers, for both transports

def _client_options(config: InfluxConfig, user_agent: str, connect_timeout_s: float | None = None) -> dict:
    headers = {"User-Agent": user_agent, "Accept": "application/json"}
    auth = None
    if config.token is not None:
        headers["Authorization"] = f"Token {config.token.get_secret_value()}"
    elif config.username:
        password = config.password.get_secret_value() if config.password is not None else ""
        auth = httpx.BasicAuth(config.username, password)
    return {"base_url": config.url.rstrip("/"), "headers": headers, "auth": auth,
            "timeout": httpx.Timeout(config.timeout_s, connect=connect_timeout_s or config.timeout_s)}


def _line_body(lines: Iterable[str] | str | bytes) -> bytes:
    if isinstance(lines, bytes):
        return lines
    if isinstance(lines, str):
        return lines.encode()
    return "\n".join(lines).encode()


def _write_request(body: bytes, database: str, retention_policy: str | None, gzip: bool) -> dict:
    params = {"db": database, "precision": "ms"}
    if retention_policy:
        params["rp"] = retention_policy
    headers = {"Content-Type": "text/plain; charset=utf-8"}
    if gzip:
        body = gzip_module.compress(body, compresslevel=1)
        headers["Content-Encoding"] = "gzip"
    return {"params": params, "content": body, "headers": headers}


def _query_request(q: str, database: str | None, retention_policy: str | None,
                   params: dict[str, Any] | None) -> dict:
    url_params = {"epoch": "ms"}
    if database:
        url_params["db"] = database
        if retention_policy:
            url_params["rp"] = retention_policy
    form = {"q": q}
    if params:
        form["params"] = json.dumps(params)
    return {"params": url_params, "data": form}


def _server_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        # 1.x: {"error": ...}; 2.x: {"code", "message"}; 3.x adds per-line details in "data".
        text = body.get("error") or body.get("message")
        if text:
            details = f" {json.dumps(body['data'])}" if body.get("data") else ""
            return f"{text}{details}"[:_BODY_IN_MESSAGE]
    return response.text.strip()[:_BODY_IN_MESSAGE] or response.reason_phrase


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return max(0.0, float(response.headers.get("Retry-After", "")))
    except ValueError:
        return None


def _transport_error(exc: httpx.HTTPError, display_url: str) -> InfluxUnavailable:
    if isinstance(exc, httpx.TimeoutException):
        return InfluxUnavailable(f"InfluxDB timed out at {display_url} ({type(exc).__name__})")
    return InfluxUnavailable(f"InfluxDB unreachable at {display_url}: {exc or type(exc).__name__}")


def _check_status(response: httpx.Response) -> None:
    """Answers that mean the same for every endpoint: credentials, overload, server failure."""
    status = response.status_code
    if status in (401, 403):
        raise InfluxAuthError(f"InfluxDB refused the credentials ({status}): {_server_message(response)}", status)
    if status >= 500 or status == 429:
        raise InfluxUnavailable(f"InfluxDB answered {status}: {_server_message(response)}", status,
                                _retry_after(response))


def _check_write(response: httpx.Response) -> None:
    _check_status(response)
    status = response.status_code
    if status in (200, 204):
        return
    message = _server_message(response)
    if status in (400, 413, 422):
        raise InfluxRejected(message, status)
    # 404 "database not found" and anything unexpected: the data is fine, the server is not ready.
    raise InfluxUnavailable(f"InfluxDB write answered {status}: {message}", status)


def _check_ping(response: httpx.Response) -> str:
    _check_status(response)
    if response.status_code not in (200, 204):
        raise InfluxUnavailable(f"InfluxDB /ping answered {response.status_code}", response.status_code)
    return response.headers.get("X-Influxdb-Version", "")


class _NotExecuted(InfluxQueryError):
    """InfluxDB 1.x answers a multi-statement request in which any statement failed - or whose
    database does not exist - with one ``"not executed"`` and no word on why."""


def _database_missing(message: str) -> bool:
    return message.startswith("database not found")


# Statement errors that say the server cannot run queries right now, not that the query is wrong.
_SERVER_BUSY = ("query engine shutdown", "max-concurrent-queries limit exceeded", "query-timeout limit exceeded",
                "query interrupted")


def _server_busy(message: str) -> bool:
    return any(text in message for text in _SERVER_BUSY)


def _parse_query(response: httpx.Response, statements: int | None, *,
                 missing_database_is_empty: bool) -> list[list[Series]]:
    """One list of series per statement. ``statements`` None: as many as InfluxDB answered."""
    _check_status(response)
    status = response.status_code
    if status == 404:
        raise InfluxUnavailable(f"InfluxDB /query answered 404: {_server_message(response)}", 404)
    if status != 200:
        raise InfluxQueryError(f"query refused ({status}): {_server_message(response)}", status)
    try:
        body = response.json()
    except ValueError:
        raise InfluxQueryError(f"query answered with non-JSON: {response.text[:200]!r}", status) from None
    results = body.get("results", [])
    errors = [str(e) for e in [body.get("error"), *(r.get("error") for r in results)] if e]
    if errors and _server_busy(errors[0]):
        raise InfluxUnavailable(f"InfluxDB could not run the query: {errors[0]}", status)
    if errors and errors[0] == "not executed" and (statements or 0) > 1:
        raise _NotExecuted(f"query failed: {errors[0]}", status)
    if errors and missing_database_is_empty and _database_missing(errors[0]):
        # No database yet (nothing was ever written) just means no data.
        return [[] for _ in range(statements if statements is not None else len(results))]
    if errors:
        raise InfluxQueryError(f"query failed: {errors[0]}", status)
    if statements is not None and len(results) != statements:
        raise InfluxQueryError(f"{statements} statements sent, {len(results)} results received", status)
    return [[Series(s.get("name", ""), s.get("tags") or {}, s.get("columns", []), s.get("values") or [])
             for s in result.get("series", []) or []] for result in results]


class _Destination:
    """Defaults shared by both clients: the configured database, and its retention policy only there."""

    database: str
    retention_policy: str | None

    def _where(self, database: str | None, retention_policy: str | None) -> tuple[str, str | None]:
        if database is None or database == self.database:
            return self.database, retention_policy or self.retention_policy
        return database, retention_policy    # another database: its default policy unless one is named


# ---------------------------------------------------------------- sync: the ingest

class InfluxClient(_Destination):
    """One keep-alive HTTP connection pool to one InfluxDB; safe to share between threads."""

    def __init__(self, config: InfluxConfig, *, gzip: bool = False, transport: httpx.BaseTransport | None = None):
        self.config = config
        self.database = config.database
        self.retention_policy = config.retention_policy
        self.gzip = gzip
        self.display_url = redact_url(config.url)
        self._http = httpx.Client(transport=transport, **_client_options(config, "hinode-ingest"))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> InfluxClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _request(self, method: str, path: str, **kwargs) -> httpx.Response:
        try:
            return self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise _transport_error(exc, self.display_url) from None

    def ping(self) -> str:
        """The server's version string; raises InfluxUnavailable when it does not answer."""
        return _check_ping(self._request("GET", "/ping"))

    def create_database(self, name: str | None = None) -> None:
        """``CREATE DATABASE`` (idempotent; default: the configured one); 1.x only."""
        self._query(f"CREATE DATABASE {quote_identifier(name or self.database)}", database=None)

    def write_lines(self, lines: Iterable[str] | str | bytes, *, database: str | None = None,
                    retention_policy: str | None = None) -> None:
        """Write line protocol (ms timestamps) in one request.

        ``database`` / ``retention_policy`` default to the configured ones.
        """
        body = _line_body(lines)
        if not body:
            return
        request = _write_request(body, *self._where(database, retention_policy), self.gzip)
        _check_write(self._request("POST", "/write", **request))

    def query(self, q: str, *, database: str | None = None, params: dict[str, Any] | None = None) -> list[dict]:
        """Run InfluxQL; every series of every statement as ``{"name", "tags", "columns", "values"}``.

        ``tags`` is always a dict (empty without GROUP BY). Times are integers in ms.
        ``database`` defaults to the configured one.
        ``params`` binds ``$name`` placeholders (InfluxDB 1.x ``params=`` JSON), avoiding quoting.
        """
        results = self._query(q, database=database or self.database, params=params)
        return [{"name": s.name, "tags": s.tags, "columns": s.columns, "values": s.values}
                for result in results for s in result]

    def query_rows(self, q: str, **kwargs) -> list[dict]:
        """Like :meth:`query`, flattened: one dict per row, tags and ``_measurement`` merged in."""
        rows = []
        for series in self.query(q, **kwargs):
            for values in series["values"]:
                row = {"_measurement": series["name"], **series["tags"]}
                row.update(zip(series["columns"], values))
                rows.append(row)
        return rows

    def _query(self, q: str, *, database: str | None, params: dict[str, Any] | None = None) -> list[list[Series]]:
        request = _query_request(q, *(self._where(database, None) if database else (None, None)), params)
        return _parse_query(self._request("POST", "/query", **request), None, missing_database_is_empty=False)


# ---------------------------------------------------------------- async: the API and the domains

class AsyncInfluxClient(_Destination):
    """The API's and the domain services' client; one per process (``app.state.reader``)."""

    def __init__(self, config: InfluxConfig, *, transport: httpx.AsyncBaseTransport | None = None):
        self.config = config
        self.database = config.database
        self.retention_policy = config.retention_policy
        self.display_url = redact_url(config.url)
        self._http = httpx.AsyncClient(transport=transport, **_client_options(config, "hinode-api", connect_timeout_s=2.0))
        self.stats = QueryStats()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _request(self, method: str, path: str, **kwargs) -> httpx.Response:
        try:
            return await self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise _transport_error(exc, self.display_url) from None

    def _count_error(self, exc: InfluxError) -> None:
        if isinstance(exc, (InfluxUnavailable, InfluxAuthError)):
            self.stats.unavailable_total += 1
        else:
            self.stats.errors_total += 1
        name = type(exc).__name__
        self.stats.by_error[name] = self.stats.by_error.get(name, 0) + 1

    async def ping(self, timeout: float = 2.0) -> str:
        """The server's version string; raises InfluxUnavailable / InfluxAuthError otherwise."""
        return _check_ping(await self._request("GET", "/ping", timeout=timeout))

    async def query(self, *statements: str, database: str | None = None,
                    params: dict[str, Any] | None = None) -> list[list[Series]]:
        """Run statements in one request; one list of series per statement.

        A database that does not exist yet (nothing was ever written) gives empty results.
        """
        try:
            return await self._query(statements, database, params)
        except _NotExecuted:
            pass
        # Ask one statement at a time to learn which failed and why (or that the database is missing).
        results: list[list[Series]] = []
        for statement in statements:
            (series,) = await self._query((statement,), database, params)
            results.append(series)
        return results

    async def _query(self, statements: tuple[str, ...], database: str | None,
                     params: dict[str, Any] | None) -> list[list[Series]]:
        request = _query_request(";".join(statements), *self._where(database, None), params)
        started = time.perf_counter()
        self.stats.queries_total += 1
        try:
            response = await self._request("POST", "/query", **request)
            return _parse_query(response, len(statements), missing_database_is_empty=True)
        except _NotExecuted:
            raise
        except InfluxError as exc:
            self._count_error(exc)
            raise
        finally:
            self.stats.seconds_total += time.perf_counter() - started

    async def write_lines(self, lines: Iterable[str] | str | bytes, *, database: str | None = None,
                          retention_policy: str | None = None) -> None:
        """Write line protocol (ms timestamps) in one request; destination defaults to the config's."""
        body = _line_body(lines)
        if not body:
            return
        request = _write_request(body, *self._where(database, retention_policy), False)
        self.stats.writes_total += 1
        try:
            _check_write(await self._request("POST", "/write", **request))
        except InfluxError as exc:
            self.stats.write_errors_total += 1
            name = type(exc).__name__
            self.stats.by_error[name] = self.stats.by_error.get(name, 0) + 1
            raise

    async def write_points(self, points: Iterable[Point], *, database: str | None = None,
                           retention_policy: str | None = None) -> None:
        """Write :class:`cloud.points.Point` s (see that module for how field types are written)."""
        await self.write_lines(encode_points(points), database=database, retention_policy=retention_policy)

    async def create_database(self, name: str) -> None:
        """``CREATE DATABASE`` (idempotent); 1.x only. On 2.x/3.x create the bucket instead."""
        request = _query_request(f"CREATE DATABASE {quote_identifier(name)}", None, None, None)
        _parse_query(await self._request("POST", "/query", **request), None, missing_database_is_empty=False)
