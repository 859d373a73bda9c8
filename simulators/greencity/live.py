"""Live continuation of the green-city SME sites: each site is its own agent on MQTT.

``python -m simulators greencity --mqtt-port P [--sites sme-press,sme-food] [--interval 10]``

Each site publishes, through the wire contract (hinode.contract: topics, TelemetryEnvelope,
AgentCatalog, AgentStatus), its ``main-meter`` (kind meter): ``energy_import`` (kWh, a counter
in its catalog) and ``power_total`` (W) every ``interval`` seconds, at real time, continuing the
counters of the history model (simulators/greencity/model.py), so what ``hinode up`` backfilled
and what arrives live are one series. Like an edge agent it announces itself online (retained,
with a will saying offline), sends its catalog on every connection and publishes telemetry only
while it hears the ingest's heartbeat (what it measures meanwhile waits in memory).
"""

from __future__ import annotations

import asyncio
import collections
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from hinode import contract
from hinode.backoff import PahoReconnect
from hinode.contract import (AgentCatalog, AgentStatus, DeviceCatalog, DeviceKind, DeviceState, MetricInfo, Reading,
                             TelemetryEnvelope)
from simulators.greencity import model
from simulators.greencity.sites import ORIGIN_MS, SME_SITES, SiteSpec, site as site_spec

HEARTBEAT_FRESH_S = 5.0
BACKLOG = 2_000                       # envelopes per site kept while no ingest listens
CATALOG_EVERY_S = 600.0
RECONNECT_INITIAL_S = 1.0             # paho's default range, jittered (hinode.backoff) so that the sites
RECONNECT_MAX_S = 120.0               # do not all reconnect at the same moment after a broker restart


class SiteAgent:
    """One SME site on its own MQTT connection."""

    def __init__(self, spec: SiteSpec, host: str, port: int, interval_s: float, seed: int):
        self.spec, self.host, self.port, self.interval_s, self.seed = spec, host, port, interval_s, seed
        self.device = spec.meters[0]
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"greencity-{spec.agent}",
                                  protocol=mqtt.MQTTv5)
        self.client.will_set(contract.status_topic(spec.id, spec.agent), self._status("offline"), qos=1, retain=True)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_publish = self._on_publish
        self.reconnect = PahoReconnect(self.client, RECONNECT_INITIAL_S, RECONNECT_MAX_S)
        self.client.on_connect_fail = lambda client, userdata: self.reconnect.before_wait(client)
        self.client.on_disconnect = lambda client, *_: self.reconnect.before_wait(client)
        self.lock = threading.Lock()
        # envelopes sent and not yet acknowledged by the broker: sent again after a reconnect
        self.unacked: list[tuple[mqtt.MQTTMessageInfo, TelemetryEnvelope]] = []
        self.last_heartbeat = 0.0
        self.connected_at = 0.0
        self.catalog_sent = 0.0
        self.backlog: collections.deque[TelemetryEnvelope] = collections.deque(maxlen=BACKLOG)
        self.published = 0
        self.unrouted = 0

    def _status(self, state: str) -> bytes:
        devices = ([DeviceState(device=self.device.device, kind=DeviceKind.METER, online=True)]
                   if state == "online" else [])
        return contract.encode(AgentStatus(site=self.spec.id, agent=self.spec.agent, state=state,
                                           ts=int(time.time() * 1000), version="greencity-sim", devices=devices))

    def catalog(self) -> AgentCatalog:
        metrics = [MetricInfo(metric=m, unit="kWh", counter=True) for m in self.device.metrics]
        metrics.append(MetricInfo(metric="power_total", unit="W"))
        return AgentCatalog(site=self.spec.id, agent=self.spec.agent, ts=int(time.time() * 1000), devices=[
            DeviceCatalog(device=self.device.device, kind=DeviceKind.METER, profile=self.device.profile,
                          metrics=metrics)])

    def _on_connect(self, client, userdata, flags, reason_code, properties=None) -> None:
        if reason_code.is_failure:
            return
        self.reconnect.reset()
        self.connected_at = time.monotonic()
        self.catalog_sent = 0.0
        with self.lock:               # what the broker never acknowledged goes out again (idempotent in InfluxDB)
            lost = [envelope for info, envelope in self.unacked if not info.is_published()]
            self.unacked.clear()
            self.backlog.extendleft(reversed(lost))
        client.subscribe(contract.INGEST_HEARTBEAT_TOPIC, qos=0)
        client.publish(contract.status_topic(self.spec.id, self.spec.agent), self._status("online"), qos=1, retain=True)

    def _on_message(self, client, userdata, message) -> None:
        if message.topic == contract.INGEST_HEARTBEAT_TOPIC:
            self.last_heartbeat = time.monotonic()

    def _on_publish(self, client, userdata, mid, reason_code, properties=None) -> None:
        if reason_code.value != contract.NO_MATCHING_SUBSCRIBERS:
            return
        # taken and handed to nobody (paho calls it a success): sent again once an ingest is heard
        with self.lock:
            unrouted = [envelope for info, envelope in self.unacked if info.mid == mid]
            self.unacked = [(info, envelope) for info, envelope in self.unacked if info.mid != mid]
            self.backlog.extendleft(reversed(unrouted))
            self.unrouted += len(unrouted)
        self.last_heartbeat = 0.0

    def ingest_listening(self) -> bool:
        return self.last_heartbeat > self.connected_at and time.monotonic() - self.last_heartbeat < HEARTBEAT_FRESH_S

    def measure(self, now_ms: int) -> TelemetryEnvelope:
        """The meter now: the model's counter at ``now_ms`` and the current slot's mean power."""
        counter = model.import_counter(self.spec, now_ms, self.seed)
        slot = model.slot_starts(now_ms, now_ms + 1)
        power_w = float(model.load_kw(self.spec, slot, self.seed)[0]) * 1000
        seq = (now_ms - ORIGIN_MS) // int(self.interval_s * 1000) + 1       # survives restarts; a pause is a gap
        return TelemetryEnvelope(site=self.spec.id, agent=self.spec.agent, device=self.device.device,
                                 kind=DeviceKind.METER, profile=self.device.profile, seq=max(1, seq), readings=[
                                     Reading(ts=now_ms, metric="energy_import", value=round(counter, 4), unit="kWh"),
                                     Reading(ts=now_ms, metric="power_total", value=round(power_w, 1), unit="W")])

    def tick(self, now_ms: int) -> None:
        envelope = self.measure(now_ms)
        with self.lock:
            self.backlog.append(envelope)
        if not (self.client.is_connected() and self.ingest_listening()):
            return
        if time.monotonic() - self.catalog_sent > CATALOG_EVERY_S or not self.catalog_sent:
            self.client.publish(contract.catalog_topic(self.spec.id, self.spec.agent), contract.encode(self.catalog()),
                                qos=1)
            self.catalog_sent = time.monotonic()
        topic = contract.telemetry_topic(self.spec.id, self.spec.agent)
        with self.lock:
            sending = list(self.backlog)
            self.backlog.clear()
            self.unacked = [(info, envelope) for info, envelope in self.unacked if not info.is_published()]
        for i, envelope in enumerate(sending):       # paho's own locks are taken here: never under ours
            info = self.client.publish(topic, contract.encode(envelope), qos=1)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                with self.lock:
                    self.backlog.extendleft(reversed(sending[i:]))
                break
            with self.lock:
                self.unacked.append((info, envelope))
            self.published += 1

    def start(self) -> None:
        self.client.connect_async(self.host, self.port, keepalive=30)
        self.client.loop_start()

    def stop(self) -> None:
        if self.client.is_connected():
            self.client.publish(contract.status_topic(self.spec.id, self.spec.agent), self._status("offline"),
                                qos=1, retain=True).wait_for_publish(2)
        self.client.disconnect()
        self.client.loop_stop()


class GreenCityPublisher:
    """The SME sites' agents and the clock that makes them measure every ``interval_s``."""

    def __init__(self, host: str = "127.0.0.1", port: int = 1883, sites: tuple[str, ...] = SME_SITES,
                 interval_s: float = 10.0, seed: int = 0):
        if interval_s < 1:
            raise ValueError(f"--interval: expected at least 1 second, got {interval_s:g}")
        specs = [site_spec(s) for s in sites]
        with_pv = [s.id for s in specs if s.kwp]
        if with_pv:
            raise ValueError(f"--sites: {', '.join(with_pv)} has PV and is served by the PV site simulator; "
                             f"choose from {', '.join(SME_SITES)}")
        self.host, self.port, self.interval_s = host, port, interval_s
        self.agents = [SiteAgent(spec, host, port, interval_s, seed) for spec in specs]
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _run(self) -> None:
        step_ms = int(self.interval_s * 1000)
        while not self._stop.is_set():
            now_ms = int(time.time() * 1000) // step_ms * step_ms
            for agent in self.agents:
                agent.tick(now_ms)
            self._stop.wait(max(0.05, (now_ms + step_ms) / 1000 - time.time()))

    async def start(self) -> None:
        for agent in self.agents:
            agent.start()
        self._thread = threading.Thread(target=self._run, name="greencity-clock", daemon=True)
        self._thread.start()

    async def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 5)
        for agent in self.agents:
            await asyncio.to_thread(agent.stop)

    def describe(self) -> str:
        return (f"green-city publisher: {len(self.agents)} sites ({', '.join(a.spec.id for a in self.agents)}) "
                f"as agents on MQTT {self.host}:{self.port}, every {self.interval_s:g}s")


def add_cli_options(sub) -> None:
    """The ``greencity`` sub-command of ``python -m simulators``."""
    gc = sub.add_parser("greencity", help="the green-city SME sites, each an agent publishing its meter over MQTT")
    gc.add_argument("--mqtt-host", dest="host", default="127.0.0.1")
    gc.add_argument("--mqtt-port", dest="port", type=int, default=1883)
    gc.add_argument("--sites", default=",".join(SME_SITES), help=f"comma-separated, of {', '.join(SME_SITES)}")
    gc.add_argument("--interval", type=float, default=10.0, help="seconds between readings")
    gc.add_argument("--seed", type=int, default=0, help="the history model's seed (hinode up uses 0)")
    gc.add_argument("-v", "--verbose", action="store_true")


def publisher_from_args(args) -> GreenCityPublisher:
    sites = tuple(s.strip() for s in args.sites.split(",") if s.strip())
    return GreenCityPublisher(args.host, args.port, sites, args.interval, args.seed)
