"""``doctor site``: can the agent of this site.yaml run here?

- broker: connect and disconnect with paho exactly as the agent does (TLS files, user and
  password from the config) under the client id ``<agent's>-doctor``, so a running agent is
  not thrown off; a refusal says which part was refused.
- ingest: the cloud ingest's heartbeat is heard (else the agent holds its outbox).
- clock: MQTT carries no time, but the ingest stamps its heartbeat with the cloud's clock, so
  the offset is measured against that heartbeat when it is heard (plus broker latency, ms);
  and against references the installer names: the ``Date`` header of an HTTP(S) server
  (``--time-url``, e.g. the cloud API; 1 s resolution) and/or an NTP server (``--ntp-server``,
  SNTP over UDP 123).
- disk: free space where the outbox lives against ``queue.max_bytes``.
- ports: the metrics port (and the ports of ocpp sources and the nurse's page) are free.
"""

from __future__ import annotations

import argparse
import asyncio
import email.utils
import errno
import os
import shutil
import socket
import ssl
import struct
import time
from dataclasses import dataclass
from pathlib import Path

from edge_agent.config import ConfigError, SiteConfig, load_site_config
from hinode import contract

CHECK = "site"
CLOCK_WARN_S = 2.0         # readings carry the agent's timestamps: beyond this, charts of two sites disagree
CLOCK_FAIL_S = 60.0
NTP_EPOCH_OFFSET = 2208988800


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, required=True, help="the site.yaml to check")
    parser.add_argument("--time-url", help="HTTP(S) URL whose Date header is the reference clock (e.g. the cloud API)")
    parser.add_argument("--ntp-server", help="NTP server (host or host:port) as the reference clock")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds for each network check")
    parser.add_argument("--heartbeat-s", type=float, help="how long to listen for the cloud ingest's heartbeat "
                                                           "(default mqtt.ingest_timeout_s; 0 skips)")


async def run(args: argparse.Namespace, report) -> None:
    try:
        config = load_site_config(args.config)
    except ConfigError as exc:
        report.fail(CHECK, f"config does not load:\n{exc}")
        return
    report.ok(CHECK, f"{args.config} loads (site {config.site}, agent {config.agent})")
    heard_ingest = await check_broker(config, args, report)
    await check_clock(args, report, heard_ingest)
    check_disk(config, report)
    check_ports(config, report)


# --------------------------------------------------------------------- broker

@dataclass
class BrokerProbe:
    connected: bool
    message: str
    ingest: str = ""                 # client id of the cloud ingest whose heartbeat was heard
    heartbeat_offset_s: float | None = None    # the heartbeat's ts minus our clock when it arrived


def _probe_broker(config: SiteConfig, timeout_s: float, heartbeat_s: float) -> BrokerProbe:
    """Connect, listen for the ingest heartbeat, disconnect; blocking (paho's connect is), so it runs in a thread."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from edge_agent.mqtt import set_credentials

    m = config.mqtt
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{config.client_id}-doctor", protocol=mqtt.MQTTv5)
    set_credentials(client, m)          # exactly as the agent's link does
    answer: dict = {}

    def on_connect(_client, _userdata, _flags, reason_code, _properties) -> None:
        answer["reason"] = reason_code

    def on_message(_client, _userdata, message) -> None:
        try:
            beat = contract.IngestHeartbeat.model_validate_json(message.payload)
        except ValueError:
            return
        answer["beat"] = (beat, time.time())

    client.on_connect = on_connect
    client.on_message = on_message
    try:
        client.connect(m.host, m.port, keepalive=max(10, int(timeout_s) * 2), clean_start=True)
    except ssl.SSLCertVerificationError as exc:
        return BrokerProbe(False, f"TLS: the broker's certificate is not trusted with mqtt.tls.ca ({exc.verify_message})")
    except ssl.SSLError as exc:
        return BrokerProbe(False, f"TLS handshake failed ({exc.reason or exc}): check mqtt.tls (ca, cert, key) and "
                                  "the port")
    except OSError as exc:
        return BrokerProbe(False, f"cannot reach {m.host}:{m.port}: {exc.strerror or exc}")
    try:
        failure = _loop_until(client, lambda: "reason" in answer, timeout_s)
        if failure and "reason" not in answer:
            return BrokerProbe(False, f"the broker closed the connection before answering ({failure})"
                                      + ("; with a client certificate required, check mqtt.tls.cert/key" if m.tls else ""))
        if "reason" not in answer:
            return BrokerProbe(False, f"no CONNACK within {timeout_s:g} s (is {m.host}:{m.port} an MQTT port?)")
        reason = answer["reason"]
        if reason.is_failure:
            return BrokerProbe(False, f"the broker refused the connection: {reason}{_refusal_hint(str(reason))}")
        probe = BrokerProbe(True, f"connected to {m.host}:{m.port}{' with TLS' if m.tls else ''}"
                                  f"{f' as {m.username!r}' if m.username else ' anonymously'}")
        if heartbeat_s > 0:
            client.subscribe(contract.INGEST_HEARTBEAT_TOPIC, qos=0)
            _loop_until(client, lambda: "beat" in answer, heartbeat_s)
            if "beat" in answer:
                beat, heard_at = answer["beat"]
                probe.ingest, probe.heartbeat_offset_s = beat.ingest, beat.ts / 1000 - heard_at
        client.disconnect()
        client.loop(timeout=0.2)
        return probe
    finally:
        sock = client.socket()
        if sock is not None:          # a refused or half-open connection: paho leaves the socket to us
            sock.close()


def _loop_until(client, done, seconds: float) -> str:
    """Run paho's loop until ``done()`` or ``seconds``; "" or why the connection ended."""
    import paho.mqtt.client as mqtt

    deadline = time.monotonic() + seconds
    while not done() and time.monotonic() < deadline:
        rc = client.loop(timeout=0.1)
        if rc != mqtt.MQTT_ERR_SUCCESS:
            return mqtt.error_string(rc)
    return ""


def _refusal_hint(reason: str) -> str:
    lowered = reason.lower()
    if "user name or password" in lowered or "not authorized" in lowered:
        return " (check mqtt.username and mqtt.password / password_file)"
    return ""


async def check_broker(config: SiteConfig, args: argparse.Namespace, report) -> bool:
    """True when the ingest's heartbeat was heard (and the clock compared with it)."""
    heartbeat_s = config.mqtt.ingest_timeout_s if args.heartbeat_s is None else args.heartbeat_s
    probe = await asyncio.to_thread(_probe_broker, config, args.timeout, heartbeat_s)
    report.add("ok" if probe.connected else "fail", CHECK, f"broker: {probe.message}")
    if not probe.connected or heartbeat_s <= 0:
        return False
    if probe.heartbeat_offset_s is None:
        consequence = ("the agent holds its outbox until one is heard (mqtt.wait_for_ingest)"
                       if config.mqtt.wait_for_ingest else "nothing may be storing what the agent sends")
        report.warn(CHECK, f"broker: no cloud ingest heartbeat heard in {heartbeat_s:g} s: {consequence}; is the "
                           "ingest running, and may this identity read the heartbeat topic?")
        return False
    report.ok(CHECK, f"broker: cloud ingest {probe.ingest!r} heard")
    # The ingest stamps its heartbeat with the cloud's clock: a reference the agent's data meets anyway.
    _offset_finding(report, f"the cloud ingest's heartbeat (ingest {probe.ingest})", probe.heartbeat_offset_s)
    return True


# --------------------------------------------------------------------- clock

async def http_date_offset(url: str, timeout_s: float) -> float:
    """Server Date minus local time, in seconds (the header has 1 s resolution)."""
    import aiohttp

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s)) as session:
        sent = time.time()
        async with session.head(url, allow_redirects=False) as response:
            received = time.time()
            header = response.headers.get("Date")
    if not header:
        raise ValueError(f"{url} sent no Date header")
    server = email.utils.parsedate_to_datetime(header).timestamp()
    # The server truncates to whole seconds: its clock was somewhere in [server, server + 1).
    return server + 0.5 - (sent + received) / 2


class _SntpProtocol(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.answer: asyncio.Future[tuple[bytes, float]] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr) -> None:
        if not self.answer.done():
            self.answer.set_result((data, time.time()))

    def error_received(self, exc: Exception) -> None:
        if not self.answer.done():
            self.answer.set_exception(exc)


def _ntp_time(data: bytes, offset: int) -> float:
    seconds, fraction = struct.unpack("!II", data[offset:offset + 8])
    return seconds - NTP_EPOCH_OFFSET + fraction / 2**32


async def ntp_offset(server: str, timeout_s: float) -> float:
    """Clock offset from one SNTP (RFC 4330) exchange: ((t2 - t1) + (t3 - t4)) / 2."""
    host, _, port = server.rpartition(":") if server.count(":") == 1 else (server, "", "")
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(_SntpProtocol, remote_addr=(host or server,
                                                                                          int(port or 123)))
    try:
        t1 = time.time()
        request = bytearray(48)
        request[0] = 0x23                                    # LI 0, version 4, mode 3 (client)
        seconds = int(t1) + NTP_EPOCH_OFFSET
        request[40:48] = struct.pack("!II", seconds, int((t1 % 1) * 2**32))
        transport.sendto(bytes(request))
        data, t4 = await asyncio.wait_for(protocol.answer, timeout_s)
    finally:
        transport.close()
    if len(data) < 48 or data[0] & 0x07 != 4 or data[1] == 0:
        raise ValueError("not a valid NTP server answer (wrong mode or stratum 0: kiss-of-death)")
    t2, t3 = _ntp_time(data, 32), _ntp_time(data, 40)
    return ((t2 - t1) + (t3 - t4)) / 2


def _offset_finding(report, reference: str, offset: float) -> None:
    where = "behind" if offset > 0 else "ahead of"
    text = f"clock: this box is {abs(offset):.1f} s {where} {reference}"
    if abs(offset) >= CLOCK_FAIL_S:
        report.fail(CHECK, text + ": readings would carry wrong timestamps; enable NTP (systemd-timesyncd, chrony)")
    elif abs(offset) >= CLOCK_WARN_S:
        report.warn(CHECK, text + f" (more than {CLOCK_WARN_S:g} s): check the time synchronisation")
    else:
        report.ok(CHECK, text)


async def check_clock(args: argparse.Namespace, report, heard_ingest: bool = False) -> None:
    if not args.time_url and not args.ntp_server:
        if heard_ingest:
            return
        report.warn(CHECK, "clock: not checked; give --time-url (e.g. the cloud API) or --ntp-server as reference")
        return
    if args.time_url:
        try:
            _offset_finding(report, f"the Date of {args.time_url}", await http_date_offset(args.time_url, args.timeout))
        except Exception as exc:             # aiohttp's errors, timeouts, a bad Date header: all say the same
            report.warn(CHECK, f"clock: cannot read the time from {args.time_url}: {type(exc).__name__}: {exc}")
    if args.ntp_server:
        try:
            _offset_finding(report, f"NTP server {args.ntp_server}", await ntp_offset(args.ntp_server, args.timeout))
        except (OSError, ValueError, asyncio.TimeoutError) as exc:
            report.warn(CHECK, f"clock: no answer from NTP server {args.ntp_server} "
                               f"({type(exc).__name__}{': ' + str(exc) if str(exc) else ''})")


# --------------------------------------------------------------------- disk and ports

def _existing_parent(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path("/")


def check_disk(config: SiteConfig, report) -> None:
    outbox = config.queue.path
    folder = _existing_parent(outbox.parent)
    free = shutil.disk_usage(folder).free
    used = sum(p.stat().st_size for p in outbox.parent.glob(outbox.name + "*") if p.is_file()) \
        if outbox.parent.is_dir() else 0
    need = config.queue.max_bytes
    text = (f"disk: {free / 2**20:,.0f} MiB free at {folder} for the outbox {outbox} "
            f"(queue.max_bytes {need / 2**20:,.0f} MiB, {used / 2**20:,.1f} MiB used now)")
    # SQLite needs room beside the data for its WAL and for page reuse: ask for twice the cap.
    if free + used < need:
        report.fail(CHECK, text + ": the outbox cannot reach its cap; lower queue.max_bytes or free space")
    elif free + used < 2 * need:
        report.warn(CHECK, text + ": less than twice the cap (SQLite needs room for its WAL)")
    else:
        report.ok(CHECK, text)
    if outbox.parent != folder:
        report.warn(CHECK, f"disk: {outbox.parent} does not exist yet (the agent creates it)")
    elif not os.access(folder, os.W_OK):
        report.fail(CHECK, f"disk: {folder} is not writable by this user ({os.getuid()}); the agent's user must "
                           "write there")


def _port_free(host: str, port: int) -> str | None:
    """None when the port can be bound, else why not."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return "in use (another program, or the agent already running?)"
            return exc.strerror or str(exc)
    return None


def _listen_addresses(config: SiteConfig) -> list[tuple[str, str, int]]:
    wanted = []
    if config.metrics.listen:
        host, _, port = config.metrics.listen.rpartition(":")
        wanted.append(("metrics.listen", host.strip("[]"), int(port)))
    for index, source in enumerate(config.source_configs):
        if getattr(source, "type", None) == "ocpp":
            wanted.append((f"sources[{index}] ({source.name}) port", source.host, source.port))
        page = getattr(source, "page", None)
        if page is not None and page.enabled:
            host, _, port = page.listen.rpartition(":")
            wanted.append((f"sources[{index}] ({source.name}) page.listen", host.strip("[]"), int(port)))
    return wanted


def check_ports(config: SiteConfig, report) -> None:
    if not config.metrics.listen:
        report.ok(CHECK, "ports: metrics disabled (metrics.listen is null)")
    for key, host, port in _listen_addresses(config):
        if port == 0:
            report.ok(CHECK, f"ports: {key} {host}:0 picks a free port")
            continue
        problem = _port_free(host, port)
        if problem is None:
            report.ok(CHECK, f"ports: {key} {host}:{port} is free")
        else:
            report.fail(CHECK, f"ports: {key} {host}:{port}: {problem}")
