"""``doctor site`` against a real Mosquitto with TLS and per-agent passwords, a real HTTP Date and a UDP SNTP peer."""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
import time
from email.utils import formatdate

import pytest
import yaml
from aiohttp import web

from edge_agent.doctor import cli
from edge_agent.doctor.site import NTP_EPOCH_OFFSET
from hinode import services
from hinode.security.bundle import generate
from hinode.security.inventory import Inventory

MODBUS_SOURCE = {"type": "modbus", "name": "line", "transport": "tcp", "host": "127.0.0.1", "port": 5020,
                 "devices": [{"id": "m1", "unit": 1, "profile": "hinode-sim-meter"}]}


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory):
    root = tmp_path_factory.mktemp("bundle")
    inventory = Inventory.model_validate({"broker": {"hostnames": ["localhost", "127.0.0.1"]},
                                          "sites": {"plant-1": ["edge-01"]}})
    bundle = generate(inventory, root / "secrets")
    proc = services.secure_mosquitto(root / "mosquitto", bundle, persistence=False)
    proc.start()
    yield bundle, proc
    proc.stop()


def write_site(tmp_path, mqtt: dict, **extra) -> str:
    path = tmp_path / "site.yaml"
    data = {"site": "plant-1", "agent": "edge-01", "mqtt": mqtt, "queue": {"path": str(tmp_path / "data" / "q.db")},
            "metrics": {"listen": f"127.0.0.1:{services.free_port()}"}, "sources": [MODBUS_SOURCE], **extra}
    path.write_text(yaml.safe_dump(data))
    return str(path)


def doctor(capsys, *argv: str) -> tuple[int, str]:
    status = cli.main(["site", "--heartbeat-s", "0.3", *argv])
    return status, capsys.readouterr().out


def agent_mqtt(bundle, proc, password_file=None) -> dict:
    identity = bundle.agent("plant-1", "edge-01")
    return {"host": "localhost", "port": proc.port, "username": identity.username,
            "password_file": str(password_file or identity.password_path),
            "tls": {"ca": str(bundle.ca_cert), "cert": str(identity.cert), "key": str(identity.key)}}


def test_tls_broker_with_the_agents_credentials_passes(tls_broker, tmp_path, capsys):
    bundle, proc = tls_broker
    status, out = doctor(capsys, "--config", write_site(tmp_path, agent_mqtt(bundle, proc)))
    assert f"OK   broker: connected to localhost:{proc.port} with TLS as 'edge-01@plant-1'" in out
    assert "ports: metrics.listen" in out and "is free" in out
    assert "disk:" in out and "FAIL" not in out
    assert "WARN broker: no cloud ingest heartbeat heard in 0.3 s: the agent holds its outbox" in out
    assert status == 0


def test_wrong_password_is_a_clear_failure(tls_broker, tmp_path, capsys):
    bundle, proc = tls_broker
    wrong = tmp_path / "wrong-password"
    wrong.write_text("not-the-password\n")
    status, out = doctor(capsys, "--config", write_site(tmp_path, agent_mqtt(bundle, proc, wrong)))
    assert status == 1
    line = next(line for line in out.splitlines() if "broker:" in line)
    assert line.strip().startswith("FAIL")
    assert "refused" in line and "password" in line
    assert "not-the-password" not in out


def test_untrusted_broker_certificate_and_unreachable_broker(tls_broker, tmp_path, capsys):
    bundle, proc = tls_broker
    mqtt = agent_mqtt(bundle, proc)
    mqtt["tls"]["ca"] = str(bundle.agent("plant-1", "edge-01").cert)        # not the CA that signed the broker
    status, out = doctor(capsys, "--config", write_site(tmp_path, mqtt))
    assert status == 1 and "FAIL broker: TLS" in out
    closed = services.free_port()
    status, out = doctor(capsys, "--config", write_site(tmp_path, {"host": "127.0.0.1", "port": closed}))
    assert status == 1 and f"FAIL broker: cannot reach 127.0.0.1:{closed}" in out


def test_busy_metrics_port_and_bad_config(broker, tmp_path, capsys):
    path = write_site(tmp_path, {"host": "127.0.0.1", "port": broker.port})
    port = int(yaml.safe_load(open(path))["metrics"]["listen"].rsplit(":", 1)[1])
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", port))
        busy.listen()
        status, out = doctor(capsys, "--config", path)
    assert status == 1
    assert f"FAIL ports: metrics.listen 127.0.0.1:{port}: in use" in out
    assert "OK   broker: connected to 127.0.0.1" in out and "anonymously" in out
    (tmp_path / "bad.yaml").write_text("site: plant-1\nagent: edge-01\nsources: []\n")
    status, out = doctor(capsys, "--config", str(tmp_path / "bad.yaml"))
    assert status == 1 and "FAIL config does not load" in out and "sources" in out


async def _date_server(skew_s: float):
    async def handler(_request):
        return web.Response(headers={"Date": formatdate(time.time() + skew_s, usegmt=True)})

    app = web.Application()
    app.router.add_route("*", "/", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    port = services.free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, f"http://127.0.0.1:{port}/"


class _SntpServer(asyncio.DatagramProtocol):
    """Answers like an NTP server whose clock runs ``skew_s`` ahead of ours."""

    def __init__(self, skew_s: float):
        self.skew_s = skew_s

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        now = time.time() + self.skew_s + NTP_EPOCH_OFFSET
        stamp = struct.pack("!II", int(now), int((now % 1) * 2**32))
        answer = bytes([0x24, 2, 6, 0xEC]) + bytes(20) + data[40:48] + stamp + stamp
        self.transport.sendto(answer, addr)


def test_clock_offset_from_http_date_and_ntp(broker, tmp_path, capsys):
    path = write_site(tmp_path, {"host": "127.0.0.1", "port": broker.port})

    async def scenario():
        good, good_url = await _date_server(0)
        skewed, skewed_url = await _date_server(-300)
        ntp_port = services.free_port()
        ntp, _ = await asyncio.get_running_loop().create_datagram_endpoint(
            lambda: _SntpServer(7.0), local_addr=("127.0.0.1", ntp_port))
        try:
            results = []
            for argv in (["--time-url", good_url], ["--time-url", skewed_url],
                         ["--ntp-server", f"127.0.0.1:{ntp_port}"]):
                status = await asyncio.to_thread(cli.main, ["site", "--config", path, "--heartbeat-s", "0", *argv])
                results.append((status, capsys.readouterr().out))
            return results
        finally:
            ntp.close()
            await good.cleanup()
            await skewed.cleanup()

    (ok_status, ok_out), (bad_status, bad_out), (_, ntp_out) = asyncio.run(scenario())
    assert ok_status == 0 and "OK   clock: this box is" in ok_out
    assert bad_status == 1 and "FAIL clock: this box is" in bad_out and "ahead of the Date" in bad_out
    offset = float(bad_out.split("this box is ")[1].split(" s")[0])
    assert 298 <= offset <= 302
    ntp_line = next(line for line in ntp_out.splitlines() if "clock:" in line)
    assert ntp_line.strip().startswith("WARN") and "behind NTP server" in ntp_line
    assert 6.5 <= float(ntp_line.split("this box is ")[1].split(" s")[0]) <= 7.5


def test_ingest_heartbeat_heard_and_clock_compared_with_it(broker, tmp_path, capsys):
    """An ingest 4 s ahead of this box publishes its heartbeat through the real broker, as the ingest does."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from hinode import contract

    ingest = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="ingest-test", protocol=mqtt.MQTTv5)
    ingest.connect("127.0.0.1", broker.port)
    ingest.loop_start()
    stop = threading.Event()

    def beat():
        while not stop.wait(0.2):
            heartbeat = contract.IngestHeartbeat(ingest="ingest-test", ts=int((time.time() + 4.0) * 1000))
            ingest.publish(contract.INGEST_HEARTBEAT_TOPIC, contract.encode(heartbeat), qos=0)

    beater = threading.Thread(target=beat)
    beater.start()
    try:
        status = cli.main(["site", "--config", write_site(tmp_path, {"host": "127.0.0.1", "port": broker.port})])
    finally:
        stop.set()
        beater.join()
        ingest.loop_stop()
        ingest.disconnect()
    out = capsys.readouterr().out
    assert status == 0, out
    assert "OK   broker: cloud ingest 'ingest-test' heard" in out
    line = next(line for line in out.splitlines() if "clock:" in line)
    assert line.strip().startswith("WARN") and "behind the cloud ingest's heartbeat" in line
    assert 3.5 <= float(line.split("this box is ")[1].split(" s")[0]) <= 4.5
    assert "not checked" not in out
