"""The OPC UA source: subscribe (or poll) meters, watch the subscription, reconnect.

One task runs sessions one after another: connect, resolve every device's nodes,
then subscribe or poll until the connection drops or the watchdog gives up; then
mark devices offline, back off and start over with fresh nodes (a restarted server
may renumber its namespaces). Counters of the whole source are kept under the
device key ``_source`` (as the agent does); device problems under the device id.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from typing import AsyncIterator

from asyncua import Client, ua

from edge_agent.sources.feed import BatchFeed
from edge_agent.sources.base import DeviceBatch, SourceContext, now_ms
from edge_agent.sources.opcua.config import Config
from edge_agent.sources.opcua.nodes import DeviceNodes, convert, resolve_device
from edge_agent.sources.opcua.session import ConnectFailed, close_session, open_session
from edge_agent.sources.opcua.subscription import Feed
from hinode.backoff import Backoff
from hinode.contract import Reading

SOURCE_KEY = "_source"
ERROR_TEXT_LIMIT = 400        # DeviceState.error allows 512 characters

_SESSION_GONE = (ua.uaerrors.BadSessionClosed, ua.uaerrors.BadSessionIdInvalid, ua.uaerrors.BadSecureChannelClosed,
                 ua.uaerrors.BadSecureChannelIdInvalid, ua.uaerrors.BadConnectionClosed, ua.uaerrors.BadServerHalted,
                 ua.uaerrors.BadShutdown, ua.uaerrors.BadCommunicationError, ua.uaerrors.BadNotConnected,
                 ua.uaerrors.BadTimeout, ua.uaerrors.BadSessionNotActivated)


class Reconnect(Exception):
    """The session has to be rebuilt: the connection dropped or the subscription stays silent."""


def is_connection_problem(exc: BaseException) -> bool:
    return isinstance(exc, (ConnectionError, OSError, asyncio.TimeoutError, *_SESSION_GONE))


def _cut(text: str) -> str:
    return text if len(text) <= ERROR_TEXT_LIMIT else text[:ERROR_TEXT_LIMIT - 3] + "..."


class Source:
    type_name = "opcua"

    def __init__(self, config: Config, context: SourceContext):
        self.config = config
        self.context = context
        self.log = context.log
        self.devices = [DeviceNodes(d, d.loaded_profile(context.profile_dirs)) for d in config.devices]
        for device in self.devices:
            context.register(device.id, device.profile.kind)
            context.describe(device.id, device.profile.id, device.profile.metric_infos())
        self._feed = BatchFeed(context)
        self._client: Client | None = None
        self._had_session = False
        self._flowing = False                  # data arrived in the current session
        self._closed = False
        self._last_failure = ""

    # ------------------------------------------------------------ life cycle

    async def connect(self) -> None:
        """Start the session task; wait (bounded) for the first attempt so devices have a state."""
        await self._feed.start(self._run, f"opcua:{self.config.name}", self.config.timeout_s * 5)

    def readings(self) -> AsyncIterator[DeviceBatch]:
        return self._feed.batches()

    async def close(self) -> None:
        self._closed = True
        await self._feed.stop_task()
        await self._drop_client()
        self._feed.push(None)

    # ------------------------------------------------------------ sessions

    async def _run(self) -> None:
        backoff = Backoff(self.config.reconnect.initial_s, self.config.reconnect.max_s)
        while not self._closed:
            try:
                await self._session()
                failure = "session ended"
            except ConnectFailed as exc:
                self.context.count_error(SOURCE_KEY, exc.code)
                failure = f"{exc.code}: {exc}"
            except Reconnect as exc:
                failure = str(exc)
            except Exception as exc:
                failure = f"connection lost: {type(exc).__name__}: {exc}"
                if not is_connection_problem(exc):
                    self.log.warning("%s: unexpected error, reconnecting", self.config.name, exc_info=True)
            finally:
                await self._drop_client()
            self._feed.attempted.set()
            for device in self.devices:
                self.context.device_down(device.id, _cut(failure))
            if self._flowing:
                backoff.reset()
                self._flowing = False
            delay = backoff.next()
            level = logging.WARNING if failure != self._last_failure else logging.DEBUG
            self.log.log(level, "%s: %s; retrying in %.1f s", self.config.name, failure, delay)
            self._last_failure = failure
            await asyncio.sleep(delay)

    async def _session(self) -> None:
        lost = asyncio.Event()
        reason: list[str] = []

        async def on_lost(exc: Exception) -> None:
            reason.append(str(exc) or type(exc).__name__)
            lost.set()

        self._client = await open_session(self.config, on_lost)
        if self._had_session:
            self.context.count_error(SOURCE_KEY, "reconnect")
            self.log.info("%s: reconnected to %s", self.config.name, self.config.endpoint)
        self._had_session = True
        self._last_failure = ""
        await self._resolve(self.devices)
        self._feed.attempted.set()
        watch = self._subscribe_loop if self.config.mode == "subscribe" else self._poll_loop
        await watch(lost, reason)

    async def _drop_client(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await close_session(client, self.config.timeout_s)

    @staticmethod
    async def _lost_within(lost: asyncio.Event, reason: list[str], seconds: float) -> None:
        """Sleep ``seconds``; raise Reconnect as soon as the connection is reported lost."""
        try:
            await asyncio.wait_for(lost.wait(), max(seconds, 0.0))
        except asyncio.TimeoutError:
            return
        raise Reconnect(f"connection lost: {reason[0] if reason else 'transport closed'}")

    # ------------------------------------------------------------ nodes

    async def _resolve(self, devices: list[DeviceNodes]) -> list[DeviceNodes]:
        """Resolve ``devices`` against the server; returns those that resolved."""
        namespaces = await self._client.get_namespace_array()
        resolved = []
        for device in devices:
            await resolve_device(self._client, device, namespaces)
            if device.resolved:
                resolved.append(device)
            else:
                self._bad_nodes(device)
        return resolved

    def _bad_nodes(self, device: DeviceNodes) -> None:
        """Offline until a later attempt resolves it; counted once per failed attempt."""
        problems = device.problems or ["no nodes"]
        total = len(device.profile.nodes)
        summary = "; ".join(problems[:2]) + (f" (and {len(problems) - 2} more)" if len(problems) > 2 else "")
        self.context.count_error(device.id, "bad_node")
        self.context.device_down(device.id, _cut(f"bad_node: {len(problems)} of {total} nodes unusable: {summary}"))

    def _emit(self, device: DeviceNodes, readings: list[Reading], problems: Counter) -> None:
        for code, count in problems.items():
            self.context.count_error(device.id, code, count)
        if not readings:
            return
        self._flowing = True
        self.context.device_up(device.id)
        self._feed.push(DeviceBatch(device.id, device.profile.kind, device.profile.id, readings))

    # ------------------------------------------------------------ subscribe mode

    async def _new_feed(self) -> Feed | None:
        targets = [d for d in self.devices if d.resolved]
        if not targets:
            return None
        feed = Feed(self.config, self._client, self._emit)
        for device in await feed.start(targets):
            self._bad_nodes(device)
        return feed

    async def _subscribe_loop(self, lost: asyncio.Event, reason: list[str]) -> None:
        watchdog = self.config.effective_watchdog_s
        tick = min(1.0, watchdog / 4)
        retry_at = time.monotonic() + self.config.reconnect.max_s
        feed = await self._new_feed()
        recreated = False
        try:
            while True:
                await self._lost_within(lost, reason, tick)
                now = time.monotonic()
                if feed is not None and (feed.server_status is not None or feed.silent_for(now) >= watchdog):
                    if recreated and feed.last_data_at is None:
                        # not even the initial values a new subscription always gets: the session is suspect
                        raise Reconnect(f"re-created subscription delivered nothing in {feed.silent_for(now):.1f} s")
                    feed, recreated = await self._resubscribe(feed, now), True
                if now >= retry_at:
                    retry_at = now + self.config.reconnect.max_s
                    newly = await self._resolve([d for d in self.devices if not d.resolved])
                    if newly and feed is None:
                        feed = await self._new_feed()
                    elif newly:
                        for device in await feed.add(newly):
                            self._bad_nodes(device)
        finally:
            if feed is not None:
                feed.active = False

    async def _resubscribe(self, feed: Feed, now: float) -> Feed | None:
        """The watchdog's remedy: fresh nodes, a new subscription, then drop the old one."""
        if feed.server_status is not None:
            why = f"server ended the subscription ({feed.server_status.name})"
        elif feed.last_good_at is None and feed.last_data_at is not None:
            why = f"only Bad values for {feed.silent_for(now):.1f} s"
        else:
            why = f"no data for {feed.silent_for(now):.1f} s"
        self.context.count_error(SOURCE_KEY, "resubscribe")
        self.log.warning("%s: %s; re-creating the subscription", self.config.name, why)
        feed.active = False
        await self._resolve(self.devices)
        fresh = await self._new_feed()
        await feed.stop()
        return fresh

    # ------------------------------------------------------------ poll mode

    async def _poll_device(self, device: DeviceNodes) -> None:
        ts = now_ms()
        client = self._client
        values = await client.read_attributes([client.get_node(b.node_id) for b in device.nodes])
        problems: Counter = Counter()
        readings = []
        for bound, data in zip(device.nodes, values):
            converted = convert(bound, data, ts)
            readings.append(converted.reading)
            if converted.problem:
                problems[converted.problem] += 1
        self._emit(device, readings, problems)

    async def _poll_loop(self, lost: asyncio.Event, reason: list[str]) -> None:
        interval = self.config.poll_interval_s
        next_at = time.monotonic()
        retry_at = next_at + self.config.reconnect.max_s
        while True:
            targets = [d for d in self.devices if d.resolved]
            results = await asyncio.gather(*(self._poll_device(d) for d in targets), return_exceptions=True)
            for device, result in zip(targets, results):
                if isinstance(result, asyncio.CancelledError):
                    raise result
                if isinstance(result, BaseException):
                    if is_connection_problem(result):
                        raise Reconnect(f"connection lost: read failed ({type(result).__name__})") from result
                    self.context.count_error(device.id, "read_error")
                    self.context.device_down(device.id, _cut(f"read_error: {type(result).__name__}: {result}"))
            now = time.monotonic()
            if now >= retry_at:
                retry_at = now + self.config.reconnect.max_s
                await self._resolve([d for d in self.devices if not d.resolved])
            next_at = max(next_at + interval, time.monotonic())
            await self._lost_within(lost, reason, next_at - time.monotonic())
