"""A small synchronous InfluxDB client over the endpoints every version has.

Only ``POST /write`` (line protocol, ``precision=ms``) and ``POST /query`` (InfluxQL,
``epoch=ms``) are used: they work on InfluxDB 1.x, on 2.x from 2.4 (virtual DBRP
mappings: database = bucket name) and on 3.x (v1 compatibility API).

Errors are classified for the ingest:

* :class:`InfluxUnavailable` - connection failure, timeout, 5xx, 429, or a missing
  database/endpoint (404): retry the same data later, nothing is wrong with it.
* :class:`InfluxRejected` - 400/413/422 on a write: the server refused (part of) the
  data, e.g. ``partial write: field type conflict``. Retrying the same body fails again.
* :class:`InfluxAuthError` - 401/403: credentials are wrong; retry after fixing them.
* :class:`InfluxQueryError` - an InfluxQL statement failed (syntax, unknown function...).

Credentials: ``token`` is sent as ``Authorization: Token <t>`` (2.x/3.x); otherwise
``username``/``password`` as HTTP Basic auth (1.x, and 2.x's v1 compatibility API).
Neither ever appears in a URL, a log line or an exception message.
"""

from __future__ import annotations

import gzip as gzip_module
import json
from typing import Any, Iterable

from urllib.parse import urlsplit, urlunsplit

import httpx

from cloud.config import InfluxConfig

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


class InfluxClient:
    """One keep-alive HTTP connection pool to one InfluxDB; safe to share between threads."""

    def __init__(self, config: InfluxConfig, *, gzip: bool = False, transport: httpx.BaseTransport | None = None):
        self.config = config
        self.database = config.database
        self.retention_policy = config.retention_policy
        self.gzip = gzip
        self.display_url = redact_url(config.url)
        headers = {"User-Agent": "hinode-ingest"}
        auth = None
        if config.token is not None:
            headers["Authorization"] = f"Token {config.token.get_secret_value()}"
        elif config.username:
            password = config.password.get_secret_value() if config.password is not None else ""
            auth = httpx.BasicAuth(config.username, password)
        self._http = httpx.Client(base_url=config.url.rstrip("/"), headers=headers, auth=auth,
                                  timeout=config.timeout_s, transport=transport)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> InfluxClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------ transport

    def _request(self, method: str, path: str, **kwargs) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TimeoutException as exc:
            raise InfluxUnavailable(f"InfluxDB at {self.display_url} timed out ({type(exc).__name__})") from None
        except httpx.RequestError as exc:
            raise InfluxUnavailable(f"InfluxDB at {self.display_url} unreachable: {exc or type(exc).__name__}") from None
        status = response.status_code
        if status in (401, 403):
            raise InfluxAuthError(f"InfluxDB refused the credentials ({status}): {_server_message(response)}", status)
        if status >= 500 or status == 429:
            raise InfluxUnavailable(f"InfluxDB answered {status}: {_server_message(response)}", status,
                                    _retry_after(response))
        return response

    # ------------------------------------------------------------ API

    def ping(self) -> str:
        """The server's version string; raises InfluxUnavailable when it does not answer."""
        response = self._request("GET", "/ping")
        if response.status_code not in (200, 204):
            raise InfluxUnavailable(f"InfluxDB /ping answered {response.status_code}", response.status_code)
        return response.headers.get("X-Influxdb-Version", "")

    def create_database(self) -> None:
        """``CREATE DATABASE`` (idempotent); for 1.x. On 2.x/3.x create the bucket instead."""
        self._query_json(f"CREATE DATABASE {quote_identifier(self.database)}", database=None)

    def write_lines(self, lines: Iterable[str] | str | bytes) -> None:
        """Write line protocol (ms timestamps) to the configured database in one request."""
        if isinstance(lines, bytes):
            body = lines
        elif isinstance(lines, str):
            body = lines.encode()
        else:
            body = "\n".join(lines).encode()
        if not body:
            return
        params = {"db": self.database, "precision": "ms"}
        if self.retention_policy:
            params["rp"] = self.retention_policy
        headers = {"Content-Type": "text/plain; charset=utf-8"}
        if self.gzip:
            body = gzip_module.compress(body, compresslevel=1)
            headers["Content-Encoding"] = "gzip"
        response = self._request("POST", "/write", params=params, content=body, headers=headers)
        status = response.status_code
        if status in (200, 204):
            return
        message = _server_message(response)
        if status in (400, 413, 422):
            raise InfluxRejected(message, status)
        # 404 "database not found" and anything unexpected: the data is fine, the server is not ready.
        raise InfluxUnavailable(f"InfluxDB write answered {status}: {message}", status)

    def query(self, q: str, *, database: str | None = None, params: dict[str, Any] | None = None) -> list[dict]:
        """Run InfluxQL; every series of every statement as ``{"name", "tags", "columns", "values"}``.

        ``tags`` is always a dict (empty without GROUP BY). Times are integers in ms.
        ``database`` defaults to the configured one.
        ``params`` binds ``$name`` placeholders (InfluxDB 1.x ``params=`` JSON), avoiding quoting.
        """
        body = self._query_json(q, database=database or self.database, params=params)
        series: list[dict] = []
        for result in body.get("results", []):
            for one in result.get("series", []) or []:
                series.append({"name": one.get("name", ""), "tags": one.get("tags") or {},
                               "columns": one.get("columns", []), "values": one.get("values", [])})
        return series

    def query_rows(self, q: str, **kwargs) -> list[dict]:
        """Like :meth:`query`, flattened: one dict per row, tags and ``_measurement`` merged in."""
        rows = []
        for series in self.query(q, **kwargs):
            for values in series["values"]:
                row = {"_measurement": series["name"], **series["tags"]}
                row.update(zip(series["columns"], values))
                rows.append(row)
        return rows

    def _query_json(self, q: str, *, database: str | None, params: dict[str, Any] | None = None) -> dict:
        url_params = {"epoch": "ms"}
        if database:
            url_params["db"] = database
            if self.retention_policy:
                url_params["rp"] = self.retention_policy
        form = {"q": q}
        if params:
            form["params"] = json.dumps(params)
        response = self._request("POST", "/query", params=url_params, data=form)
        if response.status_code == 404:
            raise InfluxUnavailable(f"InfluxDB /query answered 404: {_server_message(response)}", 404)
        if response.status_code != 200:
            raise InfluxQueryError(f"query refused ({response.status_code}): {_server_message(response)}",
                                   response.status_code)
        try:
            body = response.json()
        except ValueError:
            raise InfluxQueryError(f"query answered with non-JSON: {response.text[:200]!r}", 200) from None
        if body.get("error"):
            raise InfluxQueryError(f"query failed: {body['error']}", response.status_code)
        for result in body.get("results", []):
            if result.get("error"):
                raise InfluxQueryError(f"query failed: {result['error']}", response.status_code)
        return body
