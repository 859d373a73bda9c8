"""paho-mqtt 2.x driven by the asyncio event loop (no paho network thread).

paho exposes its socket through ``on_socket_open``/``register_write`` callbacks; we
hand the socket to the loop's reader/writer callbacks and call ``loop_misc`` for
keep-alives. Only the blocking TCP/TLS connect runs in a worker thread, so an
unreachable broker never stalls meter polling.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import time
from typing import Callable

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from hinode import contract
from hinode.backoff import Backoff
from edge_agent.config import SiteConfig
from edge_agent.sources.base import wait_event

log = logging.getLogger("edge_agent.mqtt")
STABLE_CONNECTION_S = 10.0



def set_credentials(client: mqtt.Client, m) -> None:
    """Username/password and TLS of a site's ``mqtt`` section on a paho client: the agent's link and
    ``hinode doctor site`` connect with exactly these settings."""
    if m.username:
        client.username_pw_set(m.username, m.password.get_secret_value() if m.password else None)
    if m.tls:
        client.tls_set(ca_certs=str(m.tls.ca) if m.tls.ca else None,
                       certfile=str(m.tls.cert) if m.tls.cert else None,
                       keyfile=str(m.tls.key) if m.tls.key else None,
                       cert_reqs=ssl.CERT_REQUIRED, tls_version=ssl.PROTOCOL_TLS_CLIENT)
        client.tls_insecure_set(m.tls.insecure)

class MqttLink:
    def __init__(self, config: SiteConfig, will_topic: str, will_payload: bytes,
                 on_puback: Callable[[int, bool], None], on_connect: Callable[[], None] | None = None,
                 on_disconnect: Callable[[], None] | None = None,
                 on_command: Callable[[str, bytes], None] | None = None,
                 on_unrouted: Callable[[int], None] | None = None):
        self.config = config
        self.on_puback = on_puback
        self.on_command = on_command
        self.on_unrouted = on_unrouted
        self._command_filter = contract.command_filter(config.site, config.agent)
        self._command_prefix = self._command_filter.removesuffix("#")
        self.session_present = False
        self.unrouted = 0
        self.on_connect_cb = on_connect
        self.on_disconnect_cb = on_disconnect
        self.ingest_heard = asyncio.Event()
        self.last_heartbeat = 0.0
        self.connected_at = 0.0
        self.connected = asyncio.Event()
        self.connects = 0
        self.disconnects = 0
        self.last_error = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = False
        self._tasks: list[asyncio.Task] = []
        self._lost = asyncio.Event()

        m = config.mqtt
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=config.client_id,
                             protocol=mqtt.MQTTv5)
        client.max_inflight_messages_set(m.max_inflight)
        client.max_queued_messages_set(0)
        set_credentials(client, m)
        client.will_set(will_topic, will_payload, qos=1, retain=True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        client.on_socket_open = self._on_socket_open
        client.on_socket_close = self._on_socket_close
        client.on_socket_register_write = self._on_register_write
        client.on_socket_unregister_write = self._on_unregister_write
        self.client = client

    # ---------------------------------------------------------------- public

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._tasks = [asyncio.create_task(self._connect_loop(), name="mqtt-connect"),
                       asyncio.create_task(self._misc_loop(), name="mqtt-misc")]

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> int:
        """Queue a message; returns its mid (paho resends unacked QoS 1 messages after a reconnect)."""
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
            raise ConnectionError(f"publish failed: {mqtt.error_string(info.rc)}")
        return info.mid

    async def stop(self, last_topic: str | None = None, last_payload: bytes | None = None) -> None:
        """Publish a last (retained) message if connected, then disconnect cleanly."""
        self._stopping = True
        if last_topic and self.connected.is_set():
            info = self.client.publish(last_topic, last_payload, qos=1, retain=True)
            for _ in range(40):
                if info.is_published():
                    break
                await asyncio.sleep(0.05)
        if self.client.is_connected():
            self.client.disconnect()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # ---------------------------------------------------------------- connection management

    async def _connect_loop(self) -> None:
        m = self.config.mqtt
        backoff = Backoff(initial_s=m.reconnect_min_s, max_s=m.reconnect_max_s)
        while not self._stopping:
            self._lost.clear()
            failure = None
            try:
                if self.connects == 0 and self.disconnects == 0:
                    await self._loop.run_in_executor(None, self._connect_blocking)
                else:
                    await self._loop.run_in_executor(None, self.client.reconnect)
                if not await wait_event(self.connected, max(10, m.keepalive_s)):
                    raise TimeoutError("no CONNACK from the broker")
                up_since = time.monotonic()
                await self._lost.wait()
                # Only a connection that lasted resets the back-off: a broker that accepts us and
                # then drops us at once (Mosquitto does after an ACL refusal) must not be hammered.
                if time.monotonic() - up_since >= STABLE_CONNECTION_S:
                    backoff.reset()
            except (OSError, TimeoutError, ssl.SSLError, ConnectionError) as exc:
                failure = self.last_error = str(exc) or type(exc).__name__
                self._drop_socket()
            if self._stopping:
                break
            delay = backoff.next()
            if failure:
                log.warning("MQTT %s:%d unreachable (%s); retrying in %.1fs", m.host, m.port, failure, delay)
            await asyncio.sleep(delay)

    def _connect_blocking(self) -> None:
        m = self.config.mqtt
        # A persistent session (clean start off, with an expiry): the broker keeps our command
        # subscription and queues the QoS 1 commands sent while the site is offline. paho keeps
        # these settings for every reconnect().
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = m.session_expiry_s
        self.client.connect(m.host, m.port, keepalive=m.keepalive_s, clean_start=False, properties=properties)

    def _drop_socket(self) -> None:
        sock = self.client.socket()
        if sock is not None:
            try:
                self._loop.remove_reader(sock)
                self._loop.remove_writer(sock)
            except (ValueError, OSError):
                pass

    async def _misc_loop(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            if self.client.socket() is not None:
                self.client.loop_misc()

    # ---------------------------------------------------------------- paho callbacks

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self.last_error = f"broker refused connection: {reason_code}"
            log.error("MQTT: %s", self.last_error)
            self._lost.set()
            return
        self.connects += 1
        self.connected_at = time.monotonic()
        self.session_present = bool(getattr(flags, "session_present", False))
        client.subscribe(contract.INGEST_HEARTBEAT_TOPIC, qos=0)
        if self.on_command is not None:
            client.subscribe(self._command_filter, qos=1)
        log.info("MQTT connected to %s:%d as %s", self.config.mqtt.host, self.config.mqtt.port, self.config.client_id)
        self.connected.set()
        if self.on_connect_cb:
            self.on_connect_cb()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        if self.connected.is_set():
            self.disconnects += 1
            if not self._stopping:
                log.warning("MQTT disconnected (%s); reconnecting", reason_code)
        self.connected.clear()
        self._lost.set()
        # paho would resend its unacknowledged messages right after the reconnect, before an
        # ingest may have re-subscribed; the outbox still holds them, so let the forwarder
        # send them again once the ingest is heard.
        self.client.drop_out_messages()
        if self.on_disconnect_cb:
            self.on_disconnect_cb()

    @property
    def stopping(self) -> bool:
        """A clean stop was asked for: a disconnect now is ours, not a lost broker."""
        return self._stopping

    def ingest_alive(self) -> bool:
        """An ingest heartbeat was heard on this connection, recently."""
        return (self.last_heartbeat > self.connected_at
                and time.monotonic() - self.last_heartbeat < self.config.mqtt.ingest_timeout_s)

    def _on_message(self, client, userdata, msg) -> None:
        if msg.topic == contract.INGEST_HEARTBEAT_TOPIC:
            self.last_heartbeat = time.monotonic()
            self.ingest_heard.set()
        elif self.on_command is not None and msg.topic.startswith(self._command_prefix):
            self.on_command(msg.topic, msg.payload)

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        if reason_code.value == contract.NO_MATCHING_SUBSCRIBERS and self.on_unrouted is not None:
            # The broker took it and handed it to nobody (paho counts that a success). Seen when
            # Mosquitto restored an ingest's session without its shared subscription: the
            # heartbeat gate was open, the data went nowhere. Hold everything until an ingest is
            # heard again; the message stays in the outbox.
            self.last_heartbeat = 0.0
            self.unrouted += 1
            self.on_unrouted(mid)
            return
        self.on_puback(mid, not reason_code.is_failure)

    def _on_socket_open(self, client, userdata, sock) -> None:
        # Called from the connect worker thread.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1) if sock.family != socket.AF_UNIX else None
        self._loop.call_soon_threadsafe(self._watch, self._loop.add_reader, sock, self._read)

    def _on_socket_close(self, client, userdata, sock) -> None:
        self._call_in_loop(self._remove, sock)

    def _on_register_write(self, client, userdata, sock) -> None:
        self._call_in_loop(self._watch, self._loop.add_writer, sock, self._write)

    def _on_unregister_write(self, client, userdata, sock) -> None:
        self._call_in_loop(self._loop.remove_writer, sock)

    def _watch(self, add, sock, callback) -> None:
        """``add`` (add_reader/add_writer) unless the socket closed before the loop got to it: paho runs
        its hooks on the connect thread, and a broker that refuses the client certificate (TLS 1.3
        reports it after the handshake) closes the socket there at once."""
        if sock.fileno() < 0 or self.client.socket() is not sock:
            return
        try:
            add(sock, callback)
        except (ValueError, OSError):
            pass

    def _call_in_loop(self, fn, *args) -> None:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            fn(*args)
        else:
            self._loop.call_soon_threadsafe(fn, *args)

    def _remove(self, sock) -> None:
        try:
            self._loop.remove_reader(sock)
            self._loop.remove_writer(sock)
        except (ValueError, OSError):
            pass

    def _read(self) -> None:
        self.client.loop_read()

    def _write(self) -> None:
        self.client.loop_write()
