"""Simulated vehicles on a real, secured Mosquitto (TLS, per-vehicle passwords, the generated ACL): each
publishes valid envelopes under its own identity, only while the ingest's heartbeat is heard, keeps its
seq across restarts, and the silent one's connection drops (its will says offline) and comes back."""

from __future__ import annotations

import asyncio
import collections
import time

import pytest
import yaml

from hinode import contract, mobility, services
from hinode.contract import IngestHeartbeat
from hinode.security.bundle import generate
from hinode.security.inventory import Inventory
from simulators.fleet.mqtt import SeqStore, VehicleLink, read_passwords
from simulators.fleet.simulator import FleetSimulator
from tests.security.mqtt_kit import TlsClient
from tests.support.waiting import wait_until, wait_until_async

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(150)]

FLEET = "hitachi-scooters"
INVENTORY = {"broker": {"require_certificate": False},       # LTE modules: password + the CA, no client cert
             "fleets": {FLEET: {"prefix": "sc-", "count": 4, "vehicles": ["sm-001"]}}}
VEHICLES = ["sc-001", "sc-002", "sc-003", "sc-004", "sm-001"]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return generate(Inventory.model_validate(INVENTORY), tmp_path_factory.mktemp("secrets") / "mqtt")


@pytest.fixture(scope="module")
def broker(bundle, tmp_path_factory):
    proc = services.secure_mosquitto(tmp_path_factory.mktemp("mosquitto"), bundle, persistence=False)
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def passwords_file(bundle, tmp_path_factory):
    path = tmp_path_factory.mktemp("pw") / "vehicles.yaml"
    path.write_text(yaml.safe_dump({f"{v}@{FLEET}": bundle.agent(FLEET, v).password() for v in VEHICLES}))
    return path


class Ingest:
    """Stands in for the ingest: the ingest identity reads telemetry and status and sends the heartbeat."""

    def __init__(self, bundle, broker, *, telemetry: bool = True):
        self.client = TlsClient(bundle, bundle.identity(bundle.inventory.cloud.ingest_username), broker.port)
        self.client.connect()
        assert self.client.connected.is_set(), self.client.connack
        if telemetry:       # without: a heartbeat nobody backs, as a broker restored without the ingest's subscription
            self.client.subscribe(contract.TELEMETRY_FILTER)
        self.client.subscribe(contract.STATUS_FILTER)
        self.beating: asyncio.Task | None = None

    def envelopes(self) -> dict[str, list[contract.TelemetryEnvelope]]:
        found = collections.defaultdict(list)
        for topic, payload in self.client.received():
            if topic.endswith("/telemetry"):
                envelope = contract.decode_telemetry(payload, topic)      # valid, and from its own topic
                found[envelope.agent].append(envelope)
        return found

    def statuses(self, vehicle: str) -> list[str]:
        return [contract.decode_status(p).state for t, p in self.client.received()
                if t == contract.status_topic(FLEET, vehicle)]

    async def _beat(self) -> None:
        while True:
            beat = contract.encode(IngestHeartbeat(ingest="test-ingest", ts=int(time.time() * 1000)))
            await asyncio.to_thread(self.client.publish, contract.INGEST_HEARTBEAT_TOPIC, beat)
            await asyncio.sleep(0.5)

    def start_heartbeat(self) -> None:
        self.beating = asyncio.create_task(self._beat())

    async def close(self) -> None:
        if self.beating:
            self.beating.cancel()
            await asyncio.gather(self.beating, return_exceptions=True)
        self.client.close()


def simulator(broker, bundle, passwords_file, **options) -> FleetSimulator:
    return FleetSimulator(fleet=FLEET, scooters=4, slow=1, seed=2, interval_s=0.5, mqtt_port=broker.port,
                          passwords=read_passwords(passwords_file), cafile=str(bundle.ca_cert), **options)


async def test_each_vehicle_publishes_valid_envelopes_as_itself_once_the_ingest_listens(broker, bundle,
                                                                                       passwords_file, tmp_path):
    ingest = Ingest(bundle, broker)
    sim = simulator(broker, bundle, passwords_file, state_dir=str(tmp_path))
    await sim.start()
    try:
        await wait_until_async(lambda: all("online" in ingest.statuses(v) for v in VEHICLES), timeout=30,
                               what="every vehicle online on its own status topic")
        await wait_until_async(lambda: all(len(link.fixes) >= 2 for link in sim.links.values()), timeout=15,
                               what="fixes waiting while no ingest is heard")
        assert ingest.envelopes() == {}, "nothing is published before the ingest's heartbeat"
        ingest.start_heartbeat()
        got = await wait_until_async(lambda: (e := ingest.envelopes()) and all(len(e[v]) >= 3 for v in VEHICLES)
                                     and e, timeout=30, what="three envelopes from every vehicle")
    finally:
        await sim.stop()
    await wait_until_async(lambda: all(ingest.statuses(v)[-1] == "offline" for v in VEHICLES), timeout=10,
                           what="a clean stop says offline")
    for vehicle, envelopes in got.items():
        assert vehicle in VEHICLES
        assert [e.seq for e in envelopes] == list(range(1, len(envelopes) + 1)), "seq from 1, no gaps"
        kind = "slowmobility" if vehicle.startswith("sm-") else "escooter"
        for e in envelopes:
            assert (e.site, e.device, e.kind) == (FLEET, vehicle, contract.DeviceKind.VEHICLE)
            assert e.meta == {"fleet": FLEET, "vehicle_type": kind}
            for fix in mobility.fixes(e):
                assert {"lat", "lon", "speed", "heading", "accuracy", "battery", "range", "state",
                        "tipped_over"} <= fix.keys()
                assert mobility.VehicleState(fix["state"])
                if kind == "slowmobility":
                    assert mobility.DrivingMode(fix["driving_mode"]) and "passenger" in fix
        assert len(mobility.fixes(envelopes[0])) >= 2, "what waited for the heartbeat goes out as one backlog"
        units = {r.metric: r.unit for r in envelopes[0].readings}
        assert units["speed"] == "km/h" and units["battery"] == "%" and units["lat"] == "deg"

    # a restart goes on counting where it stopped
    last = {v: max(e.seq for e in got[v]) for v in VEHICLES}
    sent = {v: len(ingest.envelopes()[v]) for v in VEHICLES}
    sim = simulator(broker, bundle, passwords_file, state_dir=str(tmp_path))
    await sim.start()
    try:
        later = await wait_until_async(
            lambda: (e := ingest.envelopes()) and all(len(e[v]) > sent[v] for v in VEHICLES) and e, timeout=30,
            what="envelopes after the restart")
    finally:
        await sim.stop()
        await ingest.close()
    for v in VEHICLES:
        resumed = later[v][sent[v]:]
        assert resumed[0].seq == max(last[v], max(e.seq for e in later[v][:sent[v]])) + 1


async def test_the_silent_vehicle_drops_its_connection_and_sends_its_backlog_when_back(broker, bundle,
                                                                                     passwords_file):
    ingest = Ingest(bundle, broker)
    ingest.start_heartbeat()
    # 30 simulated seconds per 0.5 s tick: the silent spell (90 s to 330 s of every half hour) takes ~4 s
    sim = simulator(broker, bundle, passwords_file, misbehave=True, time_scale=60)
    silent = sim.model.misbehaving["silent"].id
    await sim.start()
    try:
        # the first spell starts 1.5 s in; should the connection not be up by then, the next is 30 s later
        await wait_until_async(lambda: ingest.statuses(silent)[-3:] == ["online", "offline", "online"], timeout=70,
                               what=f"{silent} online, dropped (its will), online again")
        envelopes = await wait_until_async(
            lambda: [e for e in ingest.envelopes()[silent] if len(mobility.fixes(e)) >= 4], timeout=20,
            what="the backlog of the silent spell in one envelope")
    finally:
        await sim.stop()
        await ingest.close()
    assert sim.links[silent].counts["drops"] >= 1
    # what was in flight when the line dropped goes again (QoS 1: at least once), unchanged, same seq
    by_seq = collections.defaultdict(list)
    for e in ingest.envelopes()[silent]:
        by_seq[e.seq].append(e)
    assert sorted(by_seq) == list(range(1, max(by_seq) + 1)), "no seq is skipped"
    assert all(all(e == copies[0] for e in copies) for copies in by_seq.values())
    fixes = mobility.fixes(envelopes[0])
    assert [f["ts"] for f in fixes] == sorted(f["ts"] for f in fixes)


async def test_an_envelope_the_broker_handed_to_nobody_is_kept_and_sent_once_an_ingest_is_heard_again(
        broker, bundle, passwords_file, tmp_path):
    """PUBACK 0x10 ("no matching subscribers") is a success to paho; the envelope must stay in the outbox."""
    hollow = Ingest(bundle, broker, telemetry=False)
    hollow.start_heartbeat()
    sim = simulator(broker, bundle, passwords_file, state_dir=str(tmp_path))
    await sim.start()
    ingest = None
    try:
        await wait_until_async(lambda: all(link.counts["unrouted"] >= 1 for link in sim.links.values()),
                               timeout=30, what="every vehicle told 'no matching subscribers'")
        assert not any(link.counts["published"] for link in sim.links.values())
        await hollow.close()
        ingest = Ingest(bundle, broker)
        ingest.start_heartbeat()
        got = await wait_until_async(lambda: (e := ingest.envelopes()) and all(len(e[v]) >= 2 for v in VEHICLES)
                                     and e, timeout=30, what="envelopes from every vehicle")
    finally:
        await sim.stop()
        if ingest is not None:
            await ingest.close()
    for vehicle, envelopes in got.items():
        assert [e.seq for e in envelopes][:2] == [1, 2], f"{vehicle}: the unrouted seq 1 was sent again"


async def test_vehicles_that_lost_the_broker_retry_at_jittered_moments_not_in_lockstep():
    port = services.free_port()                          # nothing listens: every attempt is refused
    links = [VehicleLink(FLEET, f"sc-{n:03d}", "scooter", "127.0.0.1", port, SeqStore(None, FLEET))
             for n in range(1, 45)]
    failed_at: dict[str, float] = {}
    for link in links:
        def record(link=link, retry_later=link._retry_later):
            failed_at[link.vehicle] = time.monotonic()
            retry_later()
        link._retry_later = record
    for low, high in ((0.25, 0.5), (0.5, 1.0)):          # equal jitter over the 1st, then the 2nd step
        await wait_until_async(lambda: all(link.wants_connection() for link in links), timeout=5,
                               what="every vehicle due for its next attempt")
        failed_at.clear()
        await asyncio.gather(*(link.connect() for link in links))
        delays = [link.next_attempt - failed_at[link.vehicle] for link in links]
        assert all(low <= d <= high + 0.01 for d in delays), (low, high, delays)
        assert max(delays) - min(delays) > (high - low) / 3, f"{len(delays)} vehicles retry in lockstep: {delays}"


def test_a_vehicle_may_publish_only_as_itself(broker, bundle):
    vehicle = bundle.agent(FLEET, "sc-001")
    ingest = Ingest(bundle, broker)
    client = TlsClient(bundle, vehicle, broker.port, client_cert=False).connect()
    assert client.connected.is_set(), client.connack
    try:
        assert client.publish(contract.telemetry_topic(FLEET, "sc-002"), b"as sc-002") == "Not authorized"
        assert client.publish(contract.status_topic(FLEET, "sc-002"), b"offline") == "Not authorized"
        assert client.publish(contract.personal_topic(FLEET, "sc-001"), b"personal") == "Not authorized"
        assert client.publish(contract.telemetry_topic(FLEET, "sc-001"), b"own") == "Success"
        wait_until(lambda: (contract.telemetry_topic(FLEET, "sc-001"), b"own") in ingest.client.received(),
                   timeout=5, what="its own message delivered")
        assert [p for t, p in ingest.client.received() if t.endswith("/telemetry")] == [b"own"]
    finally:
        client.close()
        ingest.client.close()
    stranger = TlsClient(bundle, vehicle, broker.port, password="not-its-password", client_cert=False).connect()
    try:
        assert not stranger.connected.is_set()
    finally:
        stranger.close()


def test_a_vehicle_without_a_password_is_named(bundle, tmp_path):
    path = tmp_path / "pw.yaml"
    path.write_text(yaml.safe_dump({f"sc-001@{FLEET}": "x"}))
    with pytest.raises(ValueError, match=f"no password for sc-002@{FLEET}"):
        FleetSimulator(fleet=FLEET, scooters=2, slow=0, mqtt_port=1, passwords=read_passwords(path))


@pytest.fixture(scope="module")
def cert_bundle(tmp_path_factory):
    inventory = {**INVENTORY, "broker": {"require_certificate": True}}
    return generate(Inventory.model_validate(inventory), tmp_path_factory.mktemp("cert-secrets") / "mqtt")


@pytest.fixture(scope="module")
def cert_broker(cert_bundle, tmp_path_factory):
    proc = services.secure_mosquitto(tmp_path_factory.mktemp("cert-mosquitto"), cert_bundle, persistence=False)
    proc.start()
    yield proc
    proc.stop()


async def test_with_a_bundles_clients_directory_each_vehicle_also_presents_its_certificate(cert_bundle,
                                                                                          cert_broker):
    clients = cert_bundle.root / "clients"
    ingest = Ingest(cert_bundle, cert_broker)
    ingest.start_heartbeat()
    with_certs = FleetSimulator(fleet=FLEET, scooters=4, slow=1, interval_s=0.5, mqtt_port=cert_broker.port,
                                passwords=read_passwords(clients), cafile=str(cert_bundle.ca_cert),
                                clients_dir=str(clients))
    await with_certs.start()
    try:
        await wait_until_async(lambda: all(ingest.envelopes().get(v) for v in VEHICLES), timeout=30,
                               what="envelopes from every vehicle through a broker that requires certificates")
    finally:
        await with_certs.stop()
    # the same passwords without certificates: the broker refuses the TLS handshake
    without = FleetSimulator(fleet=FLEET, scooters=1, slow=0, interval_s=0.5, mqtt_port=cert_broker.port,
                             passwords=read_passwords(clients), cafile=str(cert_bundle.ca_cert))
    await without.start()
    try:
        link = without.links["sc-001"]
        await wait_until_async(lambda: link.counts["attempts"] >= 2, timeout=20, what="two refused attempts")
        assert link.counts["connects"] == 0 and not link.connected
    finally:
        await without.stop()
        await ingest.close()


async def test_a_socket_closed_before_the_loop_watches_it_is_skipped_not_an_error():
    """Seen in CI: a refused TLS handshake closed the socket on the connecting thread before the
    loop ran the add_writer paho had asked for, and the loop raised "Invalid file descriptor: -1"."""
    import socket

    link = VehicleLink(FLEET, "sc-001", "scooter", "127.0.0.1", services.free_port(), SeqStore(None, FLEET))
    link.loop = asyncio.get_running_loop()
    closed = socket.socket()
    closed.close()
    # on the loop's own thread the hooks run at once: neither may raise
    link._on_register_write(link.client, None, closed)
    link._on_socket_open(link.client, None, closed)
    # an open socket that is not the client's (replaced by a reconnect) is not watched either
    stale = socket.socket()
    try:
        link._on_register_write(link.client, None, stale)
        link._on_socket_open(link.client, None, stale)
        assert link.loop.remove_writer(stale) is False and link.loop.remove_reader(stale) is False
    finally:
        stale.close()
