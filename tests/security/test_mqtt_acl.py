"""Per-agent MQTT credentials and ACL, against a real Mosquitto started with the generated config."""

from __future__ import annotations

import ssl
import stat
import time

import pytest

from hinode import contract, services
from hinode.security.bundle import Bundle
from tests.security.mqtt_kit import TlsClient, settle
from tests.support.waiting import wait_until

pytestmark = pytest.mark.timeout(60)


def connected(bundle, broker, username, **kwargs) -> TlsClient:
    client = TlsClient(bundle, bundle.identity(username), broker.port, **kwargs).connect()
    assert client.connected.is_set(), f"{username} refused: {client.connack}"
    return client


def test_secrets_are_private_files_and_the_password_file_holds_only_hashes(bundle):
    agent = bundle.agent("plant-1", "edge-01")
    for path in (agent.password_path, agent.key, bundle.ca_key, bundle.broker_dir / "passwd"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    passwd = (bundle.broker_dir / "passwd").read_text()
    for ident in bundle.identities():
        assert ident.password() not in passwd
        assert f"{ident.username}:$7$" in passwd


def test_agent_cannot_publish_as_another_agent(bundle, secure_broker):
    ingest = connected(bundle, secure_broker, bundle.inventory.cloud.ingest_username)
    edge01 = connected(bundle, secure_broker, "edge-01@plant-1")
    try:
        ingest.subscribe(contract.shared(bundle.inventory.cloud.share_group, contract.TELEMETRY_FILTER))
        assert edge01.publish(contract.telemetry_topic("plant-1", "edge-02"), b"spoofed") == "Not authorized"
        assert edge01.publish(contract.telemetry_topic("plant-2", "edge-01"), b"other site") == "Not authorized"
        assert edge01.publish(contract.status_topic("plant-1", "edge-02"), b"spoofed status") == "Not authorized"
        assert edge01.publish(contract.INGEST_HEARTBEAT_TOPIC, b"fake heartbeat") == "Not authorized"
        assert edge01.publish(contract.telemetry_topic("plant-1", "edge-01"), b"own") == "Success"
        wait_until(lambda: len(ingest.received()) >= 1, "own telemetry at the ingest", timeout=5)
        settle()      # a refused message would arrive in this window too
        assert ingest.received() == [(contract.telemetry_topic("plant-1", "edge-01"), b"own")]
    finally:
        ingest.close()
        edge01.close()


def test_a_vehicle_publishes_only_as_itself_and_never_personal_data(bundle, secure_broker):
    """A vehicle's LTE module is an agent of its fleet (inventory ``fleets:``); the API identity (the fleet
    domain's live worker) reads its telemetry through a shared subscription."""
    api = connected(bundle, secure_broker, bundle.inventory.cloud.api_username)
    sc1 = connected(bundle, secure_broker, "sc-001@hitachi-scooters")
    try:
        api.subscribe(contract.shared("fleet", contract.TELEMETRY_FILTER))
        assert sc1.publish(contract.telemetry_topic("hitachi-scooters", "sc-002"), b"as sc-002") == "Not authorized"
        assert sc1.publish(contract.status_topic("hitachi-scooters", "sc-002"), b"offline") == "Not authorized"
        assert sc1.publish(contract.telemetry_topic("plant-1", "edge-01"), b"as a meter agent") == "Not authorized"
        assert sc1.publish(contract.personal_topic("hitachi-scooters", "sc-001"), b"vitals?") == "Not authorized"
        assert sc1.publish(contract.command_topic("hitachi-scooters", "sc-002", "lock"), b"lock") == "Not authorized"
        own = contract.telemetry_topic("hitachi-scooters", "sc-001")
        assert sc1.publish(own, b"own position") == "Success"
        wait_until(lambda: len(api.received()) >= 1, "own position at the API", timeout=5)
        settle()      # a refused message would arrive in this window too
        assert api.received() == [(own, b"own position")]
    finally:
        api.close()
        sc1.close()


def test_agent_reads_only_its_own_commands_and_the_heartbeat(bundle, secure_broker):
    api = connected(bundle, secure_broker, bundle.inventory.cloud.api_username)
    ingest = connected(bundle, secure_broker, bundle.inventory.cloud.ingest_username)
    edge01 = connected(bundle, secure_broker, "edge-01@plant-1")
    try:
        # Mosquitto grants the SUBACK; the ACL decides per delivered message.
        edge01.subscribe(f"{contract.TOPIC_ROOT}/#")
        assert api.publish(contract.command_topic("plant-1", "edge-02", "reboot"), b"for edge-02") == "Success"
        assert api.publish(contract.command_topic("plant-2", "edge-01", "reboot"), b"for the other edge-01") == "Success"
        assert api.publish(contract.command_topic("plant-1", "edge-01", "reboot"), b"for edge-01") == "Success"
        ingest.client.publish(contract.INGEST_HEARTBEAT_TOPIC, b"hb", qos=1).wait_for_publish(5)
        # Telemetry of another agent is not readable either.
        edge02 = connected(bundle, secure_broker, "edge-02@plant-1")
        assert edge02.publish(contract.telemetry_topic("plant-1", "edge-02"), b"edge-02 data") == "Success"
        edge02.close()
        wait_until(lambda: len(edge01.received()) >= 2, "edge-01's command and heartbeat", timeout=5)
        settle()      # a refused message would arrive in this window too
        assert sorted(edge01.received()) == sorted([(contract.command_topic("plant-1", "edge-01", "reboot"), b"for edge-01"),
                                                    (contract.INGEST_HEARTBEAT_TOPIC, b"hb")])
    finally:
        for client in (api, ingest, edge01):
            client.close()


def test_agents_cannot_send_commands_and_the_api_identity_cannot_publish_telemetry(bundle, secure_broker):
    edge01 = connected(bundle, secure_broker, "edge-01@plant-1")
    api = connected(bundle, secure_broker, bundle.inventory.cloud.api_username)
    try:
        assert edge01.publish(contract.command_topic("plant-1", "edge-02", "reboot"), b"x") == "Not authorized"
        assert api.publish(contract.telemetry_topic("plant-1", "edge-01"), b"x") == "Not authorized"
    finally:
        edge01.close()
        api.close()


def test_agent_publishes_only_its_own_results_catalog_and_personal_data(bundle, secure_broker):
    ingest = connected(bundle, secure_broker, bundle.inventory.cloud.ingest_username)
    edge01 = connected(bundle, secure_broker, "edge-01@plant-1")
    try:
        for topic_filter in contract.INGEST_FILTERS:
            ingest.subscribe(contract.shared(bundle.inventory.cloud.share_group, topic_filter))
        for topic_of in (contract.result_topic, contract.catalog_topic, contract.personal_topic):
            assert edge01.publish(topic_of("plant-1", "edge-02"), b"spoofed") == "Not authorized", topic_of
            assert edge01.publish(topic_of("plant-2", "edge-01"), b"other site") == "Not authorized", topic_of
        own = [topic_of("plant-1", "edge-01") for topic_of in
               (contract.result_topic, contract.catalog_topic, contract.personal_topic)]
        for topic in own:
            assert edge01.publish(topic, b"own") == "Success"
        wait_until(lambda: len(ingest.received()) >= 3, "edge-01's own result, catalog and personal at the ingest", timeout=5)
        settle()      # a refused message would arrive in this window too
        assert sorted(ingest.received()) == sorted((topic, b"own") for topic in own)
    finally:
        ingest.close()
        edge01.close()


def test_only_the_api_identity_sends_commands(bundle, secure_broker):
    """Least privilege: the ingest (run alone, e.g. by the Ansible role) never needs to drive a device."""
    api = connected(bundle, secure_broker, bundle.inventory.cloud.api_username)
    ingest = connected(bundle, secure_broker, bundle.inventory.cloud.ingest_username)
    edge01 = connected(bundle, secure_broker, "edge-01@plant-1")
    topic = contract.command_topic("plant-1", "edge-01", "write")
    try:
        edge01.subscribe(contract.command_filter("plant-1", "edge-01"))
        assert api.publish(topic, b"first") == "Success"
        assert ingest.publish(topic, b"from the ingest") == "Not authorized"
        assert api.publish(topic, b"second") == "Success"
        # The ingest's was answered before the API's second was sent: had it been routed, it would be in between.
        wait_until(lambda: len(edge01.received()) >= 2, "the API's two commands delivered", timeout=5)
        assert edge01.received() == [(topic, b"first"), (topic, b"second")]
        # Last: Mosquitto 2.0 drops a client whose publish it refuses (paho reconnects, without the subscription).
        assert edge01.publish(topic, b"to itself") == "Not authorized"
    finally:
        for client in (api, ingest, edge01):
            client.close()


def test_wrong_password_is_refused(bundle, secure_broker):
    client = TlsClient(bundle, bundle.agent("plant-1", "edge-01"), secure_broker.port, password="not-the-password")
    client.connect()
    client.close()
    assert not client.connected.is_set()
    assert client.connack in ("Bad user name or password", "Not authorized")


def test_another_agents_password_is_refused(bundle, secure_broker):
    other = bundle.agent("plant-1", "edge-02").password()
    client = TlsClient(bundle, bundle.agent("plant-1", "edge-01"), secure_broker.port, password=other)
    client.connect()
    client.close()
    assert not client.connected.is_set()


def test_plain_text_connection_is_refused(bundle, secure_broker):
    client = TlsClient(bundle, bundle.agent("plant-1", "edge-01"), secure_broker.port, tls=False)
    try:
        client.connect(timeout=3)
    except OSError:
        pass  # the broker closed the socket on the first non-TLS bytes
    client.close()
    assert not client.connected.is_set()
    assert client.connack is None  # never a CONNACK: the listener speaks only TLS


def test_client_without_certificate_is_refused_when_required(bundle, secure_broker):
    client = TlsClient(bundle, bundle.agent("plant-1", "edge-01"), secure_broker.port, client_cert=False)
    with pytest.raises((ssl.SSLError, OSError)):
        client.connect(timeout=3)
        # TLS 1.3 reports a missing client certificate only after the handshake: no CONNACK then.
        if not client.connected.is_set():
            raise OSError(f"refused (connack {client.connack})")
    client.close()
    assert not client.connected.is_set()


def test_certificate_identity_as_username(bundle, tmp_path):
    """use_identity_as_username: the certificate's CN is the username: no password, and the
    username a client claims cannot lift it out of its own ACL entry."""
    broker_options = bundle.inventory.broker.model_copy(update={"use_identity_as_username": True})
    by_cert = Bundle(bundle.root, bundle.inventory.model_copy(update={"broker": broker_options}))
    broker = services.secure_mosquitto(tmp_path / "mosquitto", by_cert, persistence=False)
    broker.start()
    ingest = bundle.identity(bundle.inventory.cloud.ingest_username)
    clients = []
    try:
        reader = TlsClient(by_cert, ingest, broker.port, password="").connect()
        clients.append(reader)
        assert reader.connected.is_set(), reader.connack
        reader.subscribe(contract.TELEMETRY_FILTER)
        # edge-01's certificate, presenting itself as the ingest with the ingest's password.
        edge01 = TlsClient(by_cert, bundle.agent("plant-1", "edge-01"), broker.port, password=ingest.password())
        edge01.client.username_pw_set(ingest.username, ingest.password())
        edge01.connect()
        clients.append(edge01)
        assert edge01.connected.is_set(), edge01.connack
        assert edge01.publish(contract.telemetry_topic("plant-1", "edge-02"), b"x") == "Not authorized"
        assert edge01.publish(contract.telemetry_topic("plant-1", "edge-01"), b"own") == "Success"
        wait_until(lambda: len(reader.received()) >= 1, "own telemetry at the reader", timeout=5)
        settle()      # a refused message would arrive in this window too
        assert reader.received() == [(contract.telemetry_topic("plant-1", "edge-01"), b"own")]
    finally:
        for client in clients:
            client.close()
        broker.stop()


def test_the_broker_refuses_packets_above_the_contracts_limit_and_passes_an_oversized_payload_to_the_ingest(
        bundle, secure_broker):
    """The generated production config sets max_packet_size; an oversized payload below it still reaches
    the ingest (which dead-letters it with a reason) instead of vanishing."""
    assert f"max_packet_size {contract.MAX_PACKET_BYTES}" in (bundle.broker_dir / "mosquitto-tls.conf").read_text()
    ingest = connected(bundle, secure_broker, bundle.inventory.cloud.ingest_username)
    edge01 = connected(bundle, secure_broker, "edge-01@plant-1")
    try:
        ingest.subscribe(contract.shared(bundle.inventory.cloud.share_group, contract.TELEMETRY_FILTER))
        oversized = b"x" * (contract.MAX_PAYLOAD_BYTES + 1)
        assert edge01.publish(contract.telemetry_topic("plant-1", "edge-01"), oversized) == "Success"
        edge01.client.publish(contract.telemetry_topic("plant-1", "edge-01"), b"y" * (contract.MAX_PACKET_BYTES + 1),
                              qos=1)
        deadline = time.monotonic() + 5
        while edge01.client.is_connected() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not edge01.client.is_connected()          # the broker dropped the client that sent too much
        # its PUBACK is no proof the subscriber has read the 256 KiB over TLS yet
        wait_until(lambda: ingest.received(), "the oversized payload at the ingest", timeout=10)
        assert [len(payload) for _, payload in ingest.received()] == [len(oversized)]
    finally:
        ingest.close()
        edge01.close()


def test_the_ingest_announces_the_packet_limit_in_connect():
    import socket
    import struct
    from cloud.ingest.link import LinkHandlers, LinkSettings, MqttLink
    server = socket.create_server(("127.0.0.1", 0))
    settings = LinkSettings(host="127.0.0.1", port=server.getsockname()[1], client_id="ingest-probe", keepalive_s=30,
                            session_expiry_s=60, receive_maximum=100)
    link = MqttLink(settings, LinkHandlers(on_connect=lambda *a: None, on_disconnect=lambda *a: None,
                                           on_subscribe=lambda *a: None, on_messages=lambda *a: None,
                                           can_receive=lambda: True))
    link.start()
    try:
        server.settimeout(10)
        conn, _ = server.accept()
        conn.settimeout(10)
        connect = b""
        while b"ingest-probe" not in connect:
            connect += conn.recv(4096)
        assert b"\x27" + struct.pack(">I", contract.MAX_PACKET_BYTES) in connect
        conn.close()
    finally:
        link.stop()
        server.close()
