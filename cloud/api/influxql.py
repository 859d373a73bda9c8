"""A thin async InfluxQL reader (GET /query, epoch=ms) and safe quoting helpers.

The API only reads; writes belong to the ingest. Works against InfluxDB 1.x and the
v1-compatible query API of 2.x/3.x. Credentials go in headers, never in URLs or logs.
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass, field

import httpx

from cloud.config import InfluxConfig


class InfluxUnavailable(RuntimeError):
    """InfluxDB did not answer (down, unreachable, timeout, 5xx)."""


class InfluxQueryError(ValueError):
    """InfluxDB answered but refused the statement (e.g. mean() of a bool field)."""


def quote_ident(name: str) -> str:
    """An InfluxQL identifier in double quotes ("meter", "power_total")."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def quote_literal(value: str) -> str:
    """An InfluxQL string literal in single quotes; callers validate ids first anyway."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


@dataclass
class Series:
    name: str
    tags: dict[str, str]
    columns: list[str]
    values: list[list]

    def rows(self) -> list[dict]:
        return [dict(zip(self.columns, row)) for row in self.values]


@dataclass
class QueryStats:
    queries_total: int = 0
    errors_total: int = 0
    unavailable_total: int = 0
    seconds_total: float = 0.0
    by_error: dict[str, int] = field(default_factory=dict)


class InfluxReader:
    def __init__(self, config: InfluxConfig):
        self.database = config.database
        self._rp = config.retention_policy
        headers = {"Accept": "application/json"}
        if config.token is not None:
            headers["Authorization"] = f"Token {config.token.get_secret_value()}"
        elif config.username:
            secret = config.password.get_secret_value() if config.password else ""
            raw = f"{config.username}:{secret}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(raw).decode()
        self._client = httpx.AsyncClient(base_url=config.url.rstrip("/"), headers=headers,
                                         timeout=httpx.Timeout(config.timeout_s, connect=2.0))
        self.stats = QueryStats()

    async def aclose(self) -> None:
        await self._client.aclose()

    async def ping(self, timeout: float = 2.0) -> tuple[bool, str]:
        try:
            resp = await self._client.get("/ping", timeout=timeout)
        except httpx.HTTPError as exc:
            return False, f"InfluxDB unreachable: {type(exc).__name__}"
        if resp.status_code == 204:
            return True, "ok"
        return False, f"InfluxDB /ping answered {resp.status_code}"

    async def query(self, *statements: str) -> list[list[Series]]:
        """Run statements in one request; one list of series per statement."""
        params = {"db": self.database, "q": ";".join(statements), "epoch": "ms"}
        if self._rp:
            params["rp"] = self._rp
        started = time.perf_counter()
        self.stats.queries_total += 1
        try:
            resp = await self._client.get("/query", params=params)
        except httpx.HTTPError as exc:
            self.stats.unavailable_total += 1
            raise InfluxUnavailable(f"InfluxDB unreachable: {type(exc).__name__}") from None
        finally:
            self.stats.seconds_total += time.perf_counter() - started
        if resp.status_code >= 500 or resp.status_code in (401, 403):
            self.stats.unavailable_total += 1
            raise InfluxUnavailable(f"InfluxDB answered {resp.status_code}: {_error_text(resp)}")
        if resp.status_code != 200:
            self.stats.errors_total += 1
            raise InfluxQueryError(_error_text(resp))
        results = resp.json().get("results", [])
        errors = [r["error"] for r in results if "error" in r]
        if errors and _database_missing(errors[0]):
            # No database yet (nothing was ever written) just means no data.
            return [[] for _ in statements]
        if errors:
            self.stats.errors_total += 1
            raise InfluxQueryError(errors[0])
        if len(results) != len(statements):
            self.stats.errors_total += 1
            raise InfluxQueryError(f"{len(statements)} statements sent, {len(results)} results received")
        return [[Series(s.get("name", ""), s.get("tags") or {}, s["columns"], s.get("values") or [])
                 for s in result.get("series", [])] for result in results]


def _database_missing(message: str) -> bool:
    # 1.x answers a multi-statement query on a missing database with a single "not executed".
    return message.startswith("database not found") or message == "not executed"


def _error_text(resp: httpx.Response) -> str:
    try:
        return str(resp.json().get("error", resp.text))[:300]
    except ValueError:
        return resp.text[:300]
