"""A real aiohttp HTTP server on a free loopback port serving the recorded GBFS feeds.

Each path serves what a test put there: a recorded file (``{base}`` replaced by the server's URL,
every ``last_updated``/``last_reported`` shifted by one offset so the file's ``last_updated`` becomes
the chosen time, in the file's own format), a raw body, or an HTTP status. With ``live=True`` a file is
re-stamped at every request, like an operator's server that regenerates its feed. Requests are counted
per path.
"""

from __future__ import annotations

import copy
import json
import time
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

from aiohttp import web

from edge_agent.sources.gbfs.feed import parse_timestamp

TESTCASES = Path(__file__).parent / "testcases"


def load(version: str, name: str) -> dict:
    return json.loads((TESTCASES / version / name).read_text())


def shift_time(value, delta_ms: int):
    """``value`` (POSIX seconds or RFC 3339) moved by ``delta_ms``, in the same format."""
    if isinstance(value, str):
        moment = datetime.fromisoformat(value)
        return (moment + timedelta(milliseconds=delta_ms)).isoformat(timespec="seconds")
    return int(value + round(delta_ms / 1000))


def stamped(doc: dict, at_ms: int) -> dict:
    """A copy of ``doc`` whose last_updated is ``at_ms`` and whose other times moved alike."""
    out = copy.deepcopy(doc)
    delta = at_ms - parse_timestamp(doc["last_updated"], "last_updated")
    out["last_updated"] = shift_time(doc["last_updated"], delta)
    data = out.get("data") or {}
    for key in ("vehicles", "bikes", "stations"):
        for record in data.get(key) or []:
            if isinstance(record, dict) and "last_reported" in record:
                record["last_reported"] = shift_time(record["last_reported"], delta)
    return out


def delta_of(doc: dict, at_ms: int) -> int:
    return at_ms - parse_timestamp(doc["last_updated"], "last_updated")


class FeedServer:
    def __init__(self):
        self.routes: dict[str, tuple] = {}
        self.hits: Counter = Counter()
        self._runner: web.AppRunner | None = None
        self.base = ""

    async def start(self) -> "FeedServer":
        app = web.Application()
        app.router.add_get("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.base = f"http://127.0.0.1:{port}"
        return self

    async def __aenter__(self) -> "FeedServer":
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def url(self, path: str) -> str:
        return f"{self.base}{path}"

    def serve(self, path: str, doc: dict, at_ms: int | None = None, live: bool = False) -> dict:
        """Serve ``doc`` at ``path`` stamped at ``at_ms`` (default now); returns what is served (if not live)."""
        doc = json.loads(json.dumps(doc).replace("{base}", self.base))
        if live:
            self.routes[path] = ("live", doc)
            return doc
        served = stamped(doc, at_ms if at_ms is not None else int(time.time() * 1000))
        self.routes[path] = ("json", served)
        return served

    def serve_file(self, path: str, version: str, name: str, **kwargs) -> dict:
        return self.serve(path, load(version, name), **kwargs)

    def fail(self, path: str, status: int, body: bytes = b"") -> None:
        self.routes[path] = ("status", status, body)

    def raw(self, path: str, body: bytes, content_type: str = "text/html") -> None:
        self.routes[path] = ("raw", body, content_type)

    def serve_version(self, version: str, at_ms: int | None = None, live: bool = False,
                      languages: tuple[str, ...] = ("ja", "en")) -> None:
        """Every recorded file of a version at the paths its gbfs.json names."""
        folder = version
        self.serve(f"/{folder}/gbfs.json", load(folder, "gbfs.json"), at_ms=at_ms)
        for file in sorted((TESTCASES / folder).glob("*.json")):
            if file.name == "gbfs.json" or not file.name.split(".")[0] in _FEED_FILES:
                continue
            paths = [f"/{folder}/{lang}/{file.name}" for lang in languages] if version == "v2_3" else [
                f"/{folder}/{file.name}"]
            for path in paths:
                self.serve(path, load(folder, file.name), at_ms=at_ms, live=live)

    async def _handle(self, request: web.Request) -> web.Response:
        path = request.path
        self.hits[path] += 1
        route = self.routes.get(path)
        if route is None:
            return web.Response(status=404, text="not found")
        if route[0] == "status":
            return web.Response(status=route[1], body=route[2])
        if route[0] == "raw":
            return web.Response(body=route[1], content_type=route[2])
        doc = stamped(route[1], int(time.time() * 1000)) if route[0] == "live" else route[1]
        return web.json_response(doc)


_FEED_FILES = {"system_information", "vehicle_types", "station_information", "station_status", "vehicle_status",
               "free_bike_status", "geofencing_zones"}
