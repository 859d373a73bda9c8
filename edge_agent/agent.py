"""The edge agent: sources -> durable outbox -> MQTT, plus status, health and /metrics."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

from hinode import contract
from hinode.backoff import Backoff
from hinode.contract import AgentCatalog, AgentStatus, DeviceCatalog, DeviceKind, DeviceState
from hinode.sdnotify import SystemdNotifier
from edge_agent.commands import CommandLedger, CommandProcessor, ResultSender, Target, ledger_path
from edge_agent.config import SiteConfig, source_plugin
from edge_agent.forwarder import Forwarder
from edge_agent.metrics import MetricsServer, agent_registry
from edge_agent.mqtt import MqttLink
from edge_agent.queue import DurableQueue
from edge_agent.sources.base import DeviceBatch, LatestValues, SourceContext, now_ms, reading, wait_event

log = logging.getLogger("edge_agent")
VERSION = "0.1.0"
# The catalog goes out on every connection and at least this often, so the cloud's copy stays fresh.
CATALOG_REFRESH_S = 6 * 3600
CATALOG_PART_BYTES = 200 * 1024        # below the ingest's MAX_PAYLOAD_BYTES, with room
CATALOG_UNROUTED_HOLD_S = 30.0         # a catalog nobody subscribed to is sent again after this
SOURCE_RESTART_INITIAL_S = 1.0     # a crashed source plugin is restarted after 0.5..1 s, then
SOURCE_RESTART_MAX_S = 60.0        # longer each time up to 30..60 s (hinode.backoff)


@dataclass
class SourceRunner:
    name: str
    type_name: str
    context: SourceContext
    source: object = None          # the live Source instance (commands are handed to it)
    restarts: int = 0
    rate_mark: tuple[float, int] = field(default_factory=lambda: (time.monotonic(), 0))
    readings_per_s: float = 0.0


class Agent:
    def __init__(self, config: SiteConfig):
        self.config = config
        self.notifier = SystemdNotifier()
        self.queue = DurableQueue(config.queue.path, config.site, config.agent,
                                  config.queue.max_bytes, config.queue.commit_interval_ms,
                                  config.queue.resend_window_s)
        self.forwarder = Forwarder(self.queue, contract.telemetry_topic(config.site, config.agent),
                                   window=config.mqtt.max_inflight,
                                   personal_topic=contract.personal_topic(config.site, config.agent))
        self.status_topic = contract.status_topic(config.site, config.agent)
        self.commands: CommandProcessor | None = None
        self.results: ResultSender | None = None
        if config.commands.enabled:
            ledger = CommandLedger(ledger_path(config), config.commands.keep_days)
            self.commands = CommandProcessor(config.site, config.agent, ledger, self._resolve_target,
                                             config.commands.timeout_s)
            self.results = ResultSender(ledger, contract.result_topic(config.site, config.agent),
                                        self.commands.results_wake)
        self.link = MqttLink(config, self.status_topic, self._status_payload("offline"),
                             on_puback=self._on_puback, on_connect=self._on_connect,
                             on_disconnect=self._on_disconnect,
                             on_command=self.commands.submit if self.commands else None,
                             on_unrouted=self._on_unrouted)
        self._catalog_dirty = asyncio.Event()
        self._catalog_unrouted_at = -CATALOG_UNROUTED_HOLD_S
        self.runners: list[SourceRunner] = []
        self.started = time.monotonic()
        self._status_dirty = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self.metrics_server: MetricsServer | None = None
        self.internal_errors = 0
        self.latest = LatestValues()      # every source's newest values, for controllers that act on them

    # ---------------------------------------------------------------- status

    def device_states(self) -> list[DeviceState]:
        return [DeviceState(device=device, kind=health.kind, online=health.online, error=health.error[:512])
                for runner in self.runners for device, health in runner.context.devices.items()]

    def _status_payload(self, state: str) -> bytes:
        status = AgentStatus(site=self.config.site, agent=self.config.agent, state=state, ts=now_ms(),
                             version=VERSION, devices=self.device_states() if state == "online" else [])
        return contract.encode(status)

    def _on_connect(self) -> None:
        self.forwarder.on_connected()
        self._status_dirty.set()
        self._catalog_dirty.set()

    def _on_disconnect(self) -> None:
        self.forwarder.on_disconnected()
        if self.results:
            self.results.on_disconnected()

    def _on_unrouted(self, mid: int) -> None:
        """A publish that reached no subscriber: telemetry and results are sent again, the catalog too."""
        if self.forwarder.on_unrouted(mid):
            return
        if self.results is not None and self.results.inflight.pop(mid, None) is not None:
            return                            # still in the ledger: the sender sends it again
        self._catalog_unrouted_at = time.monotonic()
        self._catalog_dirty.set()

    def _on_puback(self, mid: int, ok: bool) -> None:
        if self.results is None or not self.results.on_puback(mid, ok):
            self.forwarder.on_puback(mid, ok)

    # ---------------------------------------------------------------- commands and catalog

    def _resolve_target(self, target: str) -> Target | None:
        """A command's target: a source by name, or the source that polls that device."""
        for runner in self.runners:
            if runner.name == target and runner.source is not None:
                return Target(runner.source, runner.name, None)
        for runner in self.runners:
            if target in runner.context.devices and runner.source is not None:
                return Target(runner.source, runner.name, target)
        return None

    def catalog(self) -> AgentCatalog:
        devices = []
        for runner in self.runners:
            for device, (profile, metrics) in runner.context.catalog.items():
                health = runner.context.devices.get(device)
                kind = health.kind if health else DeviceKind.METER
                devices.append(DeviceCatalog(device=device, kind=kind, profile=profile, metrics=metrics))
        return AgentCatalog(site=self.config.site, agent=self.config.agent, ts=now_ms(), devices=devices)

    def catalog_payloads(self, catalog: AgentCatalog, limit: int = CATALOG_PART_BYTES) -> list[bytes]:
        """The catalog as one payload, or as several of whole devices each below ``limit`` (200 chargers'
        catalog is ~400 KB, above what the ingest takes in one message)."""
        payload = contract.encode(catalog)
        if len(payload) <= limit or len(catalog.devices) <= 1:
            return [payload]
        parts, part, size = [], [], 0
        for device in catalog.devices:
            device_size = len(device.model_dump_json()) + 1
            if part and size + device_size > limit - 256:
                parts.append(part)
                part, size = [], 0
            part.append(device)
            size += device_size
        parts.append(part)
        return [contract.encode(catalog.model_copy(update={"devices": devices})) for devices in parts]

    async def _catalog_loop(self) -> None:
        """Send the catalog once an ingest listens: on every connection, on changes, and periodically."""
        topic = contract.catalog_topic(self.config.site, self.config.agent)
        link, sent_on = self.link, -1
        while True:
            await wait_event(self._catalog_dirty, CATALOG_REFRESH_S)
            await asyncio.sleep(0.5)          # coalesce: sources describe their devices one by one
            while not (link.connected.is_set() and (link.ingest_alive() or not self.config.mqtt.wait_for_ingest)):
                await asyncio.sleep(0.5)
            hold = self._catalog_unrouted_at + CATALOG_UNROUTED_HOLD_S - time.monotonic()
            if hold > 0 and sent_on == link.connects:
                await asyncio.sleep(hold)     # nobody took the last one: no re-encode-and-resend loop
            self._catalog_dirty.clear()
            catalog = self.catalog()
            if catalog.devices or sent_on != link.connects:
                for payload in self.catalog_payloads(catalog):
                    link.publish(topic, payload, qos=1)
                sent_on = link.connects

    def _on_catalog_change(self) -> None:
        self._catalog_dirty.set()

    async def _status_loop(self) -> None:
        while True:
            await self._status_dirty.wait()
            await asyncio.sleep(0.5)          # coalesce a burst of device changes into one message
            self._status_dirty.clear()
            if self.link.connected.is_set():
                self.link.publish(self.status_topic, self._status_payload("online"), qos=1, retain=True)

    # ---------------------------------------------------------------- sources

    async def _run_source(self, runner: SourceRunner, source_config) -> None:
        plugin = source_plugin(runner.type_name)
        restart = Backoff(initial_s=SOURCE_RESTART_INITIAL_S, max_s=SOURCE_RESTART_MAX_S)
        while True:
            source = runner.source = plugin.Source(source_config, runner.context)
            delay = None
            try:
                await source.connect()
                async for batch in source.readings():
                    self.queue.put(batch)
                    self.latest.update(batch)
                    runner.context.readings += len(batch.readings)
                    restart.reset()
            except asyncio.CancelledError:
                await source.close()
                raise
            except Exception:
                # A broken plugin must not take the agent down: count, log, restart it.
                runner.restarts += 1
                runner.context.count_error("_source", "crash")
                delay = restart.next()
                log.exception("source %s crashed; restarting in %.1fs", runner.name, delay)
            try:
                await source.close()
            except Exception:
                log.exception("source %s failed to close", runner.name)
            await asyncio.sleep(delay if delay is not None else restart.next())

    def _on_device_change(self, device, health) -> None:
        self._status_dirty.set()

    # ---------------------------------------------------------------- health

    def health(self) -> dict:
        now = time.monotonic()
        per_source = {}
        for runner in self.runners:
            mark_time, mark_count = runner.rate_mark
            if now - mark_time >= 1.0:
                runner.readings_per_s = (runner.context.readings - mark_count) / (now - mark_time)
                runner.rate_mark = (now, runner.context.readings)
            per_source[runner.name] = {
                "type": runner.type_name,
                "readings_total": runner.context.readings,
                "readings_per_s": runner.readings_per_s,
                "errors": dict(runner.context.errors),
                "restarts": runner.restarts,
                "devices_online": sum(h.online for h in runner.context.devices.values()),
                "devices_total": len(runner.context.devices),
            }
        q, f = self.queue, self.forwarder
        return {
            "uptime_s": now - self.started,
            "mqtt_connected": self.link.connected.is_set(),
            "waiting_for_ingest": self.forwarder.waiting_for_ingest,
            "mqtt_reconnects": max(0, self.link.connects - 1),
            "queue_envelopes": q.depth,
            "queue_readings": q.readings,
            "queue_bytes": q.bytes,
            "queue_max_bytes": q.max_bytes,
            "dropped_readings_total": q.dropped_readings,
            "dropped_envelopes_total": q.dropped_envelopes,
            "resent_after_reconnect_total": q.resent_after_reconnect,
            "published_readings_total": f.published_readings,
            "published_envelopes_total": f.published_envelopes,
            "rejected_envelopes_total": f.rejected_envelopes,
            "unrouted_envelopes_total": f.unrouted_envelopes,
            "inflight": len(f.inflight),
            "internal_errors_total": self.internal_errors,
            "readings_total": sum(s["readings_total"] for s in per_source.values()),
            "readings_per_s": sum(s["readings_per_s"] for s in per_source.values()),
            "errors_total": sum(sum(s["errors"].values()) for s in per_source.values()),
            "devices_online": sum(s["devices_online"] for s in per_source.values()),
            "devices_total": sum(s["devices_total"] for s in per_source.values()),
            "sources": per_source,
            "commands": dict(self.commands.counts) if self.commands else {},
            "command_results_pending": len(self.results.inflight) if self.results else 0,
        }

    async def _health_loop(self) -> None:
        """The agent's own health, sent as telemetry of kind ``agent`` through the same outbox."""
        while True:
            await asyncio.sleep(self.config.health_interval_s)
            h = self.health()
            ts = now_ms()
            names = ("readings_per_s", "readings_total", "queue_envelopes", "queue_readings", "queue_bytes",
                     "dropped_readings_total", "published_readings_total", "rejected_envelopes_total",
                     "errors_total", "devices_online", "devices_total", "mqtt_reconnects", "uptime_s")
            readings = [reading(ts, name, float(h[name])) for name in names]
            self.queue.put(DeviceBatch(device=self.config.agent, kind=DeviceKind.AGENT,
                                       profile="hinode-agent", readings=readings))

    # ---------------------------------------------------------------- life cycle

    async def _supervised(self, fn, *args) -> None:
        """Run an internal loop forever; a bug in it is logged loudly and the loop restarted."""
        while True:
            try:
                await fn(*args)
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                self.internal_errors += 1
                log.exception("internal task %s failed; restarting it", getattr(fn, "__name__", fn))
                await asyncio.sleep(1)

    async def run(self, stop: asyncio.Event) -> None:
        config = self.config
        await self.queue.open()
        for source_config in config.source_configs:
            context = SourceContext(source_name=source_config.name,
                                    log=logging.getLogger(f"edge_agent.sources.{source_config.type}"),
                                    profile_dirs=config.profile_dirs, latest=self.latest,
                                    state_dir=config.queue.path.parent)
            context.on_state_change = self._on_device_change
            context.on_catalog_change = self._on_catalog_change
            self.runners.append(SourceRunner(source_config.name, source_config.type, context))
        if config.metrics.listen:
            self.metrics_server = MetricsServer(config.metrics.listen, agent_registry(self.health))
            await self.metrics_server.start()
        if self.commands:
            await self.commands.start()
        await self.link.start()
        self._tasks = [asyncio.create_task(self._supervised(self.forwarder.run, self.link), name="forwarder"),
                       asyncio.create_task(self._supervised(self._status_loop), name="status"),
                       asyncio.create_task(self._supervised(self._health_loop), name="health"),
                       asyncio.create_task(self._supervised(self._catalog_loop), name="catalog")]
        if self.results:
            self._tasks.append(asyncio.create_task(self._supervised(self.results.run, self.link), name="results"))
        self._tasks += [asyncio.create_task(self._run_source(runner, cfg), name=f"source-{runner.name}")
                        for runner, cfg in zip(self.runners, config.source_configs)]
        log.info("agent %s/%s running: %d sources, outbox %s", config.site, config.agent,
                 len(self.runners), config.queue.path)
        # Under systemd (Type=notify, WatchdogSec=): started, and fed from this loop while it turns.
        self.notifier.ready(f"{len(self.runners)} sources, outbox {config.queue.path}")
        self._tasks.append(asyncio.create_task(self.notifier.watchdog(), name="watchdog"))
        await stop.wait()
        self.notifier.stopping()
        await self.shutdown()

    async def shutdown(self, drain_timeout_s: float = 3.0) -> None:
        """Stop polling, then give the broker a moment to take what is stored; the rest replays next start."""
        producers = [t for t in self._tasks if t.get_name() not in ("forwarder", "status", "results")]
        for task in producers:
            task.cancel()
        await asyncio.gather(*producers, return_exceptions=True)
        await self.queue.flush()
        deadline = time.monotonic() + drain_timeout_s
        while self.queue.depth and self.link.connected.is_set() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            await self.queue.flush()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.commands:
            await self.commands.stop()        # after the result sender: it reads the ledger
        await self.link.stop(self.status_topic, self._status_payload("offline"))
        if self.metrics_server:
            await self.metrics_server.stop()
        await self.queue.close()
        log.info("agent stopped; %d envelopes stay in the outbox", self.queue.depth)
