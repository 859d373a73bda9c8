"""Each simulated vehicle's LTE module: its own MQTT connection and identity, on one asyncio loop.

Every vehicle is an agent of the fleet's site (``<vehicle>@<fleet>``), announces itself online
(retained, with a will saying offline), and publishes its fixes only while it hears the ingest's
heartbeat; meanwhile fixes wait in memory and go out later as a backlog (several fixes in one
envelope). ``seq`` is numbered when an envelope is built and kept in ``--state-dir``.

Why one loop and no paho threads: ``loop_start()`` is a thread per client (44 for the demo,
10,000 for a bench). Paho's external-loop hooks (``on_socket_open`` / ``on_socket_close`` /
``on_socket_register_write``) let asyncio watch every socket instead: readable -> ``loop_read``,
writable -> ``loop_write``, once a second ``loop_misc`` (keep-alive). Only the blocking TCP+TLS
connect runs in a worker thread (``asyncio.to_thread``), so a slow broker cannot stall the clock.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import os
import socket
import ssl
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from hinode import contract
from hinode.backoff import Backoff
from hinode.contract import AgentStatus, DeviceKind, DeviceState, TelemetryEnvelope
from hinode.mobility import vehicle_readings

log = logging.getLogger(__name__)

HEARTBEAT_FRESH_S = 5.0
BACKLOG_FIXES = 2_000            # fixes kept per vehicle while nothing can be sent (oldest dropped)
FIXES_PER_ENVELOPE = 60
KEEPALIVE_S = 30
RECONNECT_INITIAL_S = 0.5        # jittered (hinode.backoff), so a fleet that lost its broker does not
RECONNECT_MAX_S = 15.0           # come back in lockstep


def read_passwords(path: str | Path) -> dict[str, str]:
    """username -> password from a YAML or JSON mapping, lines of 'USER PASSWORD' / 'USER:PASSWORD', or a
    credentials bundle's ``clients/`` directory (``<username>/password``, made by ``python -m hinode.security mqtt``)."""
    import yaml
    from simulators.ocpp import read_passwords as read_lines
    path = Path(path)
    if path.is_dir():
        return {entry.name: (entry / "password").read_text().strip()
                for entry in sorted(path.iterdir()) if (entry / "password").is_file()}
    try:
        text = path.read_text()
    except OSError as exc:
        raise ValueError(f"--passwords-file {path}: cannot read: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        data = None
    if isinstance(data, dict):
        bad = [k for k, v in data.items() if not isinstance(v, (str, int))]
        if bad:
            raise ValueError(f"--passwords-file {path}: {bad[0]}: expected a password string")
        return {str(k): str(v) for k, v in data.items()}
    return read_lines(path)


class SeqStore:
    """The last envelope number per vehicle; a JSON file in ``state_dir`` written atomically."""

    def __init__(self, state_dir: str | Path | None, fleet: str):
        self.path = Path(state_dir) / f"fleet-{fleet}-seq.json" if state_dir else None
        self.last: dict[str, int] = {}
        self.dirty = False
        if self.path and self.path.exists():
            try:
                self.last = {k: int(v) for k, v in json.loads(self.path.read_text()).items()}
            except (OSError, ValueError, AttributeError) as exc:
                raise ValueError(f"{self.path}: not a seq state file ({exc}); move it away to start again") from None

    def next(self, vehicle: str) -> int:
        self.last[vehicle] = self.last.get(vehicle, 0) + 1
        self.dirty = True
        return self.last[vehicle]

    def save(self) -> None:
        if not (self.path and self.dirty):
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.last, sort_keys=True))
        os.replace(tmp, self.path)
        self.dirty = False


class VehicleLink:
    """One vehicle's MQTT connection, driven by the running asyncio loop."""

    def __init__(self, fleet: str, vehicle: str, vehicle_type: str, host: str, port: int, seqs: SeqStore,
                 password: str | None = None, cafile: str | None = None,
                 client_cert: tuple[str, str] | None = None):
        self.fleet, self.vehicle, self.vehicle_type = fleet, vehicle, vehicle_type
        self.host, self.port, self.seqs = host, port, seqs
        self.username = f"{vehicle}@{fleet}"
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.username, protocol=mqtt.MQTTv5)
        if password is not None:
            self.client.username_pw_set(self.username, password)
        if cafile:
            certfile, keyfile = client_cert or (None, None)
            self.client.tls_set(ca_certs=cafile, certfile=certfile, keyfile=keyfile, cert_reqs=ssl.CERT_REQUIRED)
        self.client.will_set(contract.status_topic(fleet, vehicle), self._status("offline"), qos=1, retain=True)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_publish = self._on_publish
        self.client.on_socket_open = self._on_socket_open
        self.client.on_socket_close = self._on_socket_close
        self.client.on_socket_register_write = self._on_register_write
        self.client.on_socket_unregister_write = self._on_unregister_write
        self.loop: asyncio.AbstractEventLoop | None = None
        self.fixes: collections.deque[tuple[int, dict]] = collections.deque(maxlen=BACKLOG_FIXES)
        self.outbox: collections.OrderedDict[int, bytes] = collections.OrderedDict()   # seq -> payload
        self.inflight: dict[int, int] = {}                                             # mid -> seq
        self.connected = False
        self.connecting = False
        self.silenced = False
        self.connected_at = 0.0
        self.last_heartbeat = 0.0
        self.next_attempt = 0.0
        self.backoff = Backoff(RECONNECT_INITIAL_S, RECONNECT_MAX_S)
        self.counts = collections.Counter()       # published, refused, unrouted, dropped_fixes, connects, drops

    # ------------------------------------------------------------------ paho socket hooks
    def _soon(self, fn, *args) -> None:
        """Run ``fn`` on the loop: the hooks fire on the loop, in the connect thread, or after the loop ended."""
        loop = self.loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            fn(*args)
        else:
            loop.call_soon_threadsafe(fn, *args)

    def _on_socket_open(self, client, userdata, sock) -> None:
        self._soon(self._watch, self.loop.add_reader, sock, self._readable, sock)

    def _on_socket_close(self, client, userdata, sock) -> None:
        self._soon(self._forget_socket, sock)

    def _forget_socket(self, sock) -> None:
        for remove in (self.loop.remove_reader, self.loop.remove_writer):
            try:
                remove(sock)
            except (ValueError, OSError):     # already closed: the loop has nothing left to watch
                pass

    def _on_register_write(self, client, userdata, sock) -> None:
        self._soon(self._watch, self.loop.add_writer, sock, self.client.loop_write)

    def _watch(self, add, sock, *args) -> None:
        """``add`` (add_reader/add_writer) unless the socket closed before the loop got to it: paho
        runs its hooks on the connecting thread, and a refused TLS connection closes at once."""
        if sock.fileno() < 0 or self.client.socket() is not sock:
            return
        try:
            add(sock, *args)
        except (ValueError, OSError):
            pass

    def _on_unregister_write(self, client, userdata, sock) -> None:
        self._soon(self._remove_writer, sock)

    def _remove_writer(self, sock) -> None:
        try:
            self.loop.remove_writer(sock)
        except (ValueError, OSError):
            pass

    def _readable(self, sock) -> None:
        self.client.loop_read()
        # TLS may hold decrypted bytes the socket no longer signals
        while isinstance(sock, ssl.SSLSocket) and self.client.socket() is sock and sock.pending():
            self.client.loop_read()

    # ------------------------------------------------------------------ MQTT callbacks
    def _status(self, state: str) -> bytes:
        devices = [DeviceState(device=self.vehicle, kind=DeviceKind.VEHICLE, online=True)] if state == "online" else []
        return contract.encode(AgentStatus(site=self.fleet, agent=self.vehicle, state=state,
                                           ts=int(time.time() * 1000), version="fleet-sim", devices=devices))

    def _on_connect(self, client, userdata, flags, reason_code, properties=None) -> None:
        self.connecting = False
        if reason_code.is_failure:
            log.warning("%s: broker refused the connection: %s", self.username, reason_code)
            self._retry_later()
            return
        self.connected, self.connected_at = True, time.monotonic()
        self.backoff.reset()
        self.counts["connects"] += 1
        # what was in flight stays there: paho sends its unacknowledged QoS 1 messages again (same mid)
        client.subscribe(contract.INGEST_HEARTBEAT_TOPIC, qos=0)
        client.publish(contract.status_topic(self.fleet, self.vehicle), self._status("online"), qos=1, retain=True)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties=None) -> None:
        self.connected = self.connecting = False
        self._retry_later()

    def _on_message(self, client, userdata, message) -> None:
        if message.topic == contract.INGEST_HEARTBEAT_TOPIC:
            self.last_heartbeat = time.monotonic()

    def _on_publish(self, client, userdata, mid, reason_code, properties=None) -> None:
        seq = self.inflight.pop(mid, None)
        if seq is None:
            return
        if reason_code.value == contract.NO_MATCHING_SUBSCRIBERS:
            # taken and handed to nobody (paho calls it a success), as the edge agent treats it: the envelope
            # stays in the outbox and waits, with everything after it, until an ingest is heard again
            self.counts["unrouted"] += 1
            self.last_heartbeat = 0.0
            return
        if reason_code.is_failure:                 # the ACL refused it: sending it again cannot help
            self.counts["refused"] += 1
            log.warning("%s: broker refused envelope seq %d: %s", self.username, seq, reason_code)
        else:
            self.counts["published"] += 1
        self.outbox.pop(seq, None)

    def _retry_later(self) -> None:
        self.next_attempt = time.monotonic() + self.backoff.next()

    # ------------------------------------------------------------------ driving it
    def ingest_listening(self) -> bool:
        return self.last_heartbeat > self.connected_at and time.monotonic() - self.last_heartbeat < HEARTBEAT_FRESH_S

    def wants_connection(self) -> bool:
        return not (self.silenced or self.connecting or self.connected or time.monotonic() < self.next_attempt)

    async def connect(self) -> None:
        """Connect (or reconnect) once; failures wait for the back-off."""
        if not self.wants_connection():
            return
        self.loop = asyncio.get_running_loop()
        self.connecting = True
        first = not self.counts["attempts"]
        self.counts["attempts"] += 1
        try:
            if first:
                await asyncio.to_thread(self.client.connect, self.host, self.port, KEEPALIVE_S)
            else:
                await asyncio.to_thread(self.client.reconnect)
        except (OSError, ssl.SSLError) as exc:
            self.connecting = False
            log.info("%s: cannot connect to %s:%d: %s", self.username, self.host, self.port, exc)
            self._retry_later()

    def drop_abruptly(self) -> None:
        """"LTE lost": the TCP connection ends without DISCONNECT, so the broker publishes the will."""
        self.silenced = True                       # stays off until told to come back
        sock = self.client.socket()
        if sock is None:
            return
        self.counts["drops"] += 1
        try:
            sock.shutdown(socket.SHUT_RDWR)        # paho reads EOF and closes its side as a lost connection
        except OSError:
            pass

    def come_back(self) -> None:
        if self.silenced:
            self.silenced, self.next_attempt = False, 0.0
            self.backoff.reset()

    def add_fix(self, ts_ms: int, values: dict) -> None:
        if len(self.fixes) == self.fixes.maxlen:
            self.counts["dropped_fixes"] += 1
        self.fixes.append((ts_ms, values))

    def flush(self) -> None:
        """Pack waiting fixes into envelopes and send what is not in flight, if the ingest listens."""
        if not (self.connected and self.ingest_listening()):
            return
        while self.fixes:
            batch = [self.fixes.popleft() for _ in range(min(FIXES_PER_ENVELOPE, len(self.fixes)))]
            readings = [r for ts_ms, values in batch for r in vehicle_readings(ts_ms, **values)]
            seq = self.seqs.next(self.vehicle)
            envelope = TelemetryEnvelope(site=self.fleet, agent=self.vehicle, device=self.vehicle,
                                         kind=DeviceKind.VEHICLE, profile="", seq=seq, readings=readings,
                                         meta={"fleet": self.fleet, "vehicle_type": str(self.vehicle_type)})
            self.outbox[seq] = contract.encode(envelope)
        sending = set(self.inflight.values())
        topic = contract.telemetry_topic(self.fleet, self.vehicle)
        for seq, payload in list(self.outbox.items()):
            if seq in sending:
                continue
            info = self.client.publish(topic, payload, qos=1)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                break
            self.inflight[info.mid] = seq

    async def close(self) -> None:
        """A clean stop: offline (retained), then DISCONNECT, so the will is not needed."""
        if self.connected:
            info = self.client.publish(contract.status_topic(self.fleet, self.vehicle), self._status("offline"),
                                       qos=1, retain=True)
            deadline = time.monotonic() + 2
            while not info.is_published() and time.monotonic() < deadline and self.connected:
                await asyncio.sleep(0.02)
            self.client.disconnect()
            await asyncio.sleep(0)
        sock = self.client.socket()
        if sock is not None and self.loop is not None:
            self._forget_socket(sock)
