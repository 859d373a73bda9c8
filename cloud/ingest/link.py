"""The ingest's MQTT 5 connection: one network thread, packets from ``mqtt_codec``.

Why not paho here (the edge agents use paho): paho costs ~50-69 µs of CPU per QoS 1
message received and acknowledged from another thread, about 70 % of the ingest's whole
cost per message at 10 readings per message (bench/README.md). This link parses every
packet of a receive buffer in one pass, hands the PUBLISHes over as one list, and writes
a batch's PUBACKs as one buffer.

All socket I/O happens on the network thread (an SSL socket must not be read and written
from two threads); other threads queue bytes and wake it through a socket pair. A PUBACK
is only ever sent on the connection that delivered the message (``generation``): after a
reconnect the broker redelivers with the packet ids of the new connection. Outgoing QoS 1
publishes respect the broker's Receive Maximum; ones not PUBACKed when a connection drops
are reported lost, not resent (the ingest re-derives them from the redelivered originals).
"""

from __future__ import annotations

import errno
import logging
import select
import socket
import ssl
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from cloud.ingest import mqtt_codec as codec
from cloud.ingest.writer import Inbound
from hinode import contract
from hinode.backoff import Backoff

log = logging.getLogger("cloud.ingest")

READ_CHUNK = 256 * 1024
READ_ROUND_BYTES = 2 * 1024 * 1024     # then let writes and keepalive have a turn
WRITE_CHUNK = 64 * 1024
COALESCE_BELOW_BYTES = 32 * 1024
COALESCE_S = 0.002
CONNECT_TIMEOUT_S = 10.0
RECONNECT_INITIAL_DELAY_S = 0.25   # jittered and doubled per failed attempt (hinode.backoff) ...
MAX_RECONNECT_DELAY_S = 10.0       # ... up to this


@dataclass(frozen=True)
class LinkSettings:
    host: str
    port: int
    client_id: str
    keepalive_s: int
    session_expiry_s: int
    receive_maximum: int
    username: str | None = None
    password: str | None = None
    tls_ca: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls: bool = False
    tls_insecure: bool = False
    # Announced in CONNECT: the broker sends nothing larger (MQTT 5 section 3.1.2.11.4).
    maximum_packet_size: int = contract.MAX_PACKET_BYTES


@dataclass(frozen=True)
class LinkHandlers:
    """Called on the network thread; they must not block for long (on_messages may)."""

    on_connect: Callable[[bool, int], None]         # (session present, generation)
    on_disconnect: Callable[[str], None]             # why
    on_subscribe: Callable[[list[int]], None]        # SUBACK reason codes
    on_messages: Callable[[list[Inbound]], None]
    can_receive: Callable[[], bool]                  # False: leave messages in the socket (back-pressure)


class PublishHandle:
    """An outgoing QoS 1 publish: ``is_published()`` once the broker answered with a PUBACK."""

    __slots__ = ("packet_id", "generation", "state", "reason_code")

    def __init__(self, generation: int):
        self.packet_id = 0
        self.generation = generation
        self.state = "waiting"           # waiting -> sent -> acked | refused ; or lost
        self.reason_code = 0

    def is_published(self) -> bool:
        return self.state in ("acked", "refused")


class ConnectRefused(Exception):
    pass


class MqttLink:
    def __init__(self, settings: LinkSettings, handlers: LinkHandlers):
        self.settings = settings
        self.handlers = handlers
        self._lock = threading.Lock()
        self._out = bytearray()
        self._inflight: dict[int, PublishHandle] = {}
        self._waiting: deque[tuple[PublishHandle, str, bytes]] = deque()
        self._next_packet_id = 1
        self._send_quota = 65535
        self.generation = 0
        self.connected = False
        self.refused_publishes = 0
        self.peak_inflight = 0              # most QoS 1 publishes awaiting PUBACK at once
        self._stopping = threading.Event()
        self._disconnect_queued = False
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._ssl_context = self._make_ssl_context() if settings.tls else None

    # ------------------------------------------------------------ API (any thread)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="ingest-mqtt", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Send what is queued (the last PUBACKs), then DISCONNECT and close."""
        self._stopping.set()
        self._wake()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                self._close_socket()
                self._thread.join(1.0)
        self._wake_r.close()
        self._wake_w.close()

    def subscribe(self, topic_filter: str, qos: int) -> None:
        with self._lock:
            if self.connected:
                self._out += codec.subscribe_packet(self._allocate_packet_id_locked(), topic_filter, qos)
        self._wake()

    def publish(self, topic: str, payload: bytes, qos: int = 0) -> PublishHandle | None:
        """QoS 0: sent if connected, else dropped (None). QoS 1: a handle to watch."""
        with self._lock:
            if qos == 0:
                if self.connected:
                    self._out += codec.publish_packet(topic, payload)
                handle = None
            else:
                handle = PublishHandle(self.generation)
                if not self.connected:
                    handle.state = "lost"
                    return handle
                if len(self._inflight) < self._send_quota and not self._waiting:
                    self._send_publish_locked(handle, topic, payload)
                else:
                    self._waiting.append((handle, topic, payload))
        self._wake()
        return handle

    def ack(self, items: list[Inbound]) -> tuple[int, int]:
        """PUBACK the messages delivered on the current connection; (acked, skipped as older)."""
        with self._lock:
            generation = self.generation if self.connected and not self._disconnect_queued else -1
            current = [item for item in items if item.generation == generation]
            if current:
                self._out += codec.puback_packets([item.mid for item in current if item.qos > 0])
        if current:
            self._wake()
        return len(current), len(items) - len(current)

    # ------------------------------------------------------------ locked helpers

    def _allocate_packet_id_locked(self) -> int:
        while True:
            packet_id = self._next_packet_id
            self._next_packet_id = packet_id % 65535 + 1
            if packet_id not in self._inflight:
                return packet_id

    def _send_publish_locked(self, handle: PublishHandle, topic: str, payload: bytes) -> None:
        handle.packet_id = self._allocate_packet_id_locked()
        handle.state = "sent"
        self._inflight[handle.packet_id] = handle
        if len(self._inflight) > self.peak_inflight:
            self.peak_inflight = len(self._inflight)
        self._out += codec.publish_packet(topic, payload, 1, handle.packet_id)

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"\x00")
        except (BlockingIOError, OSError):
            pass     # already woken (buffer full) or closed while stopping

    # ------------------------------------------------------------ network thread

    def _make_ssl_context(self) -> ssl.SSLContext:
        s = self.settings
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        if s.tls_ca:
            context.load_verify_locations(cafile=str(s.tls_ca))
        else:
            context.load_default_certs()
        if s.tls_cert:
            context.load_cert_chain(str(s.tls_cert), str(s.tls_key) if s.tls_key else None)
        if s.tls_insecure:
            context.check_hostname = False     # like paho's tls_insecure_set: the chain is still verified
        return context

    def _run(self) -> None:
        backoff, failing_since = Backoff(RECONNECT_INITIAL_DELAY_S, MAX_RECONNECT_DELAY_S), None
        while not self._stopping.is_set():
            try:
                sock, reader, connack = self._open()
            except (OSError, ssl.SSLError, codec.MalformedPacket, ConnectRefused) as exc:
                if failing_since is None:
                    failing_since = time.monotonic()
                    log.warning("MQTT broker %s:%d: %s; retrying with back-off up to %.0f s",
                                self.settings.host, self.settings.port, exc, MAX_RECONNECT_DELAY_S)
                else:
                    log.debug("MQTT connect failed again: %s", exc)
                if self._stopping.wait(backoff.next()):
                    break
                continue
            backoff.reset()
            failing_since = None
            why = self._serve(sock, reader, connack)
            self._connection_lost(why)
        self._close_socket()

    def _open(self):
        s = self.settings
        sock = socket.create_connection((s.host, s.port), timeout=CONNECT_TIMEOUT_S)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._ssl_context is not None:
                sock = self._ssl_context.wrap_socket(sock, server_hostname=s.host)
            sock.sendall(codec.connect_packet(
                s.client_id, s.keepalive_s, clean_start=False, session_expiry_s=s.session_expiry_s,
                receive_maximum=s.receive_maximum, username=s.username, password=s.password,
                maximum_packet_size=s.maximum_packet_size))
            reader = codec.PacketReader(max_packet_size=s.maximum_packet_size)
            deadline = time.monotonic() + CONNECT_TIMEOUT_S
            while True:
                for first, buffer, start, end in reader.packets():
                    if first & 0xF0 != codec.CONNACK:
                        raise codec.MalformedPacket(f"expected CONNACK, got packet type 0x{first:02X}")
                    connack = codec.parse_connack(bytes(buffer[start:end]))
                    if connack.reason_code >= 0x80:
                        raise ConnectRefused(f"refused the connection: {codec.reason_text(connack.reason_code)}")
                    return sock, reader, connack
                sock.settimeout(max(0.1, deadline - time.monotonic()))
                data = sock.recv(READ_CHUNK)
                if not data:
                    raise ConnectionError("closed the connection before CONNACK")
                reader.feed(data)
        except BaseException:
            sock.close()
            raise

    def _serve(self, sock, reader: codec.PacketReader, connack: codec.Connack) -> str:
        keepalive = connack.properties.get("server_keep_alive", self.settings.keepalive_s)
        with self._lock:
            self._sock = sock
            self.generation += 1
            self.connected = True
            self._out = bytearray()
            self._disconnect_queued = False
            self._send_quota = connack.properties.get("receive_maximum", 65535)
            generation = self.generation
        sock.setblocking(False)
        self.handlers.on_connect(connack.session_present, generation)
        last_out = last_in = time.monotonic()
        ping_sent: float | None = None
        sending = b""
        try:
            why = self._dispatch(reader, generation)     # what arrived with the CONNACK
            while why is None:
                # Awaited PUBACKs are read even while the ingest wants no messages: it may be
                # waiting for exactly those before it takes more from its queue.
                reading = self.handlers.can_receive() or bool(self._inflight)
                with self._lock:
                    if self._stopping.is_set() and not self._disconnect_queued:
                        self._out += codec.DISCONNECT_PACKET      # after the last PUBACKs queued
                        self._disconnect_queued = True
                    if not sending and self._out:
                        sending = bytes(self._out[:WRITE_CHUNK])
                        del self._out[:WRITE_CHUNK]
                    closing = self._disconnect_queued and not sending and not self._out
                if closing:
                    return "disconnected by the ingest"
                pending_tls = reading and isinstance(sock, ssl.SSLSocket) and sock.pending()
                if not pending_tls:
                    timeout = 0.5 if reading else 0.01
                    readable, writable, _ = select.select([self._wake_r, sock] if reading else [self._wake_r],
                                                          [sock] if sending else [], [], timeout)
                    if self._wake_r in readable:
                        self._drain_wake()
                else:
                    readable, writable = [sock], []
                if sending and (sock in writable):
                    sending = self._send_some(sock, sending)
                    last_out = time.monotonic()
                now = time.monotonic()
                if sock in readable:
                    data = self._receive(sock)
                    if data is None:
                        return "the broker closed the connection"
                    if data:
                        last_in = now
                        reader.feed(data)
                        why = self._dispatch(reader, generation)
                        if len(data) < COALESCE_BELOW_BYTES and why is None:
                            # A trickle: let more arrive before the next round, so a round
                            # (select, recv, parse, hand-over) carries many messages, not one.
                            time.sleep(COALESCE_S)
                if not reading:
                    last_in = now       # not reading on purpose: silence is not a dead broker
                    ping_sent = None
                if keepalive:
                    if ping_sent is not None and last_in >= ping_sent:
                        ping_sent = None
                    if ping_sent is None and max(now - last_in, now - last_out) >= keepalive * 0.5:
                        with self._lock:
                            self._out += codec.PINGREQ_PACKET
                        ping_sent = last_out = now
                    elif ping_sent is not None and now - ping_sent > keepalive:
                        return f"no answer from the broker for {now - last_in:.0f} s (keepalive {keepalive} s)"
            return why
        except (OSError, ssl.SSLError) as exc:
            return f"{type(exc).__name__}: {exc}"
        except codec.MalformedPacket as exc:
            return f"malformed packet from the broker: {exc}"

    def _send_some(self, sock, data: bytes) -> bytes:
        try:
            sent = sock.send(data)
        except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
            return data                         # an SSL write is retried with the same bytes
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK):
                return data
            raise
        return data[sent:]

    def _receive(self, sock) -> bytes | None:
        """Whatever is readable now (b"" if nothing), None when the broker closed."""
        chunks, total = [], 0
        while total < READ_ROUND_BYTES:
            try:
                data = sock.recv(READ_CHUNK)
            except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                break
            if not data:
                if chunks:
                    break      # hand over what came before the close; the next read sees it
                return None
            chunks.append(data)
            total += len(data)
            if len(data) < READ_CHUNK and not (isinstance(sock, ssl.SSLSocket) and sock.pending()):
                break
        return b"".join(chunks)

    def _drain_wake(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except (BlockingIOError, OSError):
            pass

    def _dispatch(self, reader: codec.PacketReader, generation: int) -> str | None:
        messages: list[Inbound] = []
        why = None
        parse_publish = codec.parse_publish
        for first, buffer, start, end in reader.packets():
            kind = first & 0xF0
            if kind == codec.PUBLISH:
                mid, qos, topic, payload = parse_publish(first, buffer, start, end)
                messages.append(Inbound(mid, qos, topic, payload, generation))
            elif kind == codec.PUBACK:
                self._on_puback(*codec.parse_puback(bytes(buffer[start:end])))
            elif kind == codec.SUBACK:
                if messages:
                    self.handlers.on_messages(messages)
                    messages = []
                self.handlers.on_subscribe(codec.parse_suback(bytes(buffer[start:end]))[1])
            elif kind == codec.PINGRESP:
                pass
            elif kind == codec.DISCONNECT:
                code, text = codec.parse_disconnect(bytes(buffer[start:end]))
                why = f"the broker disconnected: {codec.reason_text(code)}" + (f", {text}" if text else "")
                break
            else:
                raise codec.MalformedPacket(f"unexpected packet type 0x{first:02X} from the broker")
        if messages:
            self.handlers.on_messages(messages)
        return why

    def _on_puback(self, packet_id: int, reason_code: int) -> None:
        with self._lock:
            handle = self._inflight.pop(packet_id, None)
            if handle is None:
                return
            handle.reason_code = reason_code
            if reason_code >= 0x80:
                handle.state = "refused"
                self.refused_publishes += 1
            else:
                handle.state = "acked"
            while self._waiting and len(self._inflight) < self._send_quota:
                waiting, topic, payload = self._waiting.popleft()
                self._send_publish_locked(waiting, topic, payload)
        if reason_code >= 0x80:
            log.error("the broker refused a publish of the ingest: %s", codec.reason_text(reason_code))

    def _connection_lost(self, why: str) -> None:
        with self._lock:
            self.connected = False
            for handle in self._inflight.values():
                handle.state = "lost"
            for handle, _, _ in self._waiting:
                handle.state = "lost"
            self._inflight.clear()
            self._waiting.clear()
            self._out = bytearray()
        self._close_socket()
        self.handlers.on_disconnect(why)

    def _close_socket(self) -> None:
        with self._lock:
            sock, self._sock = self._sock, None
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass
