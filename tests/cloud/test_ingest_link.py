"""The ingest's own MQTT link (cloud/ingest/link.py, mqtt_codec.py): packets round-trip
however TCP splits them, garbage is refused cleanly, and against a real Mosquitto the link
keeps an idle connection alive, honours the broker's Receive Maximum for its own publishes,
and says why a refused connection was refused without echoing the password."""

from __future__ import annotations

import logging
import os
import signal
import struct
import time

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from cloud.config import CloudConfig
from cloud.ingest import mqtt_codec as codec
from hinode import contract
from tests.cloud.test_ingest_kit import (DeadLetterListener, Publisher, distinct_seqs, ingest_config, meter_envelope,
                                         running_ingest, wait_until)
from tests.security.conftest import bundle, secure_broker  # noqa: F401  (fixtures)

topics = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00+#"), min_size=1, max_size=80)


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)])]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(topics, st.binary(max_size=3000), st.sampled_from([0, 1]), st.integers(1, 65535)),
                min_size=1, max_size=8),
       st.lists(st.integers(0, 30000), max_size=12))
def test_publishes_round_trip_however_the_stream_is_split(messages, cuts):
    stream = b"".join(codec.publish_packet(t, p, q, i if q else 0) for t, p, q, i in messages)
    reader, got = codec.PacketReader(), []
    for chunk in split(stream, cuts):
        reader.feed(chunk)
        for first, buffer, start, end in reader.packets():
            assert first & 0xF0 == codec.PUBLISH
            got.append(codec.parse_publish(first, buffer, start, end))
    assert got == [(i if q else 0, q, t, p) for t, p, q, i in messages]


def test_publish_properties_are_skipped_even_with_a_multi_byte_length():
    props = b"\x26" + codec.utf8("k") + codec.utf8("v" * 200)         # user property, 206 bytes
    body = codec.utf8("a/b") + struct.pack(">H", 7) + codec.varint(len(props)) + props + b"payload"
    reader = codec.PacketReader()
    reader.feed(bytes([0x32]) + codec.varint(len(body)) + body)
    [(first, buffer, start, end)] = list(reader.packets())
    assert codec.parse_publish(first, buffer, start, end) == (7, 1, "a/b", b"payload")


def test_connack_suback_puback_and_disconnect_are_read_with_their_reasons():
    props = b"\x21" + struct.pack(">H", 100) + b"\x27" + struct.pack(">I", 1049600)
    connack = codec.parse_connack(b"\x01\x00" + codec.varint(len(props)) + props)
    assert connack.session_present and connack.reason_code == 0
    assert connack.properties == {"receive_maximum": 100, "maximum_packet_size": 1049600}
    assert codec.parse_suback(b"\x00\x05\x00\x01\x87") == (5, [1, 0x87])
    assert codec.parse_puback(b"\x00\x09") == (9, 0) and codec.parse_puback(b"\x00\x09\x87\x00") == (9, 0x87)
    reason = b"\x1f" + codec.utf8("bye")
    assert codec.parse_disconnect(b"\x8e" + codec.varint(len(reason)) + reason) == (0x8E, "bye")
    assert codec.reason_text(0x86) == "bad user name or password (0x86)"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_garbage_from_the_broker_is_refused_as_malformed_never_crashes(data):
    reader = codec.PacketReader(max_packet_size=10_000)
    reader.feed(data)
    consumed = 0
    try:
        for first, buffer, start, end in reader.packets():
            assert 0 <= start <= end <= len(data) and end > consumed
            consumed = end
            kind = first & 0xF0
            body = bytes(buffer[start:end])
            if kind == codec.PUBLISH:
                mid, qos, topic, payload = codec.parse_publish(first, buffer, start, end)
                assert qos in (0, 1, 2) and isinstance(topic, str) and len(payload) <= end - start
            elif kind == codec.CONNACK:
                assert isinstance(codec.parse_connack(body).properties, dict)
            elif kind == codec.SUBACK:
                assert all(0 <= code <= 255 for code in codec.parse_suback(body)[1])
            elif kind == codec.PUBACK:
                assert 0 <= codec.parse_puback(body)[1] <= 255
            elif kind == codec.DISCONNECT:
                assert 0 <= codec.parse_disconnect(body)[0] <= 255
    except codec.MalformedPacket as exc:
        assert str(exc)       # a reason the log line can show


def test_an_oversized_packet_is_refused_before_it_is_buffered_whole():
    reader = codec.PacketReader(max_packet_size=1000)
    reader.feed(bytes([0x30]) + codec.varint(5000) + b"x" * 10)
    with pytest.raises(codec.MalformedPacket, match="exceeds the maximum packet size"):
        list(reader.packets())


def test_an_idle_connection_stays_up_on_pings(broker, influx):
    config = ingest_config(broker, influx, mqtt_options={"keepalive_s": 5})
    with running_ingest(config) as service:
        time.sleep(9)                    # Mosquitto drops a silent client after 1.5 x keepalive = 7.5 s
        publisher = Publisher(broker)
        publisher.envelope(meter_envelope(1)).wait_for_publish(5)
        wait_until(lambda: service.stats()["acked"] == 1, 10, "the message after the idle time acked")
        stats = service.stats()
        publisher.close()
    assert stats["mqtt_reconnects"] == 0 and stats["mqtt_connected"]
    assert distinct_seqs(influx) == {"pm-1": 1}


def test_dead_letters_never_exceed_the_brokers_receive_maximum(broker, influx):
    """The fixture broker announces Receive Maximum 100; paho ignored it (up to 1000 in flight)."""
    bad = 1500
    listener = DeadLetterListener(broker)
    publisher = Publisher(broker)
    with running_ingest(ingest_config(broker, influx)) as service:
        for _ in range(bad):
            publisher.raw(contract.telemetry_topic("plant-a", "edge-1"), b"{not json")
        wait_until(lambda: service.stats()["acked"] == bad, 30, f"{bad} messages acked")
        peak = service.link.peak_inflight
    publisher.close()
    wait_until(lambda: len(listener.snapshot()) >= bad, 10, f"{bad} dead letters")
    listener.close()
    assert 1 <= peak <= 100


def test_refused_credentials_are_named_without_the_password(bundle, secure_broker, tmp_path, caplog):  # noqa: F811
    caplog.set_level(logging.DEBUG)
    ident = bundle.identity(bundle.inventory.cloud.ingest_username)
    section = yaml.safe_load((ident.directory / "mqtt.yaml").read_text())["mqtt"]
    wrong = "wrong-" + ident.password()[::-1]
    section.update(host="localhost", port=secure_broker.port, password=wrong)
    config = CloudConfig.model_validate({"mqtt": section, "influx": {"url": "http://127.0.0.1:9"}})
    from cloud.ingest import IngestService
    service = IngestService(config)
    service.start()
    try:
        assert not service.wait_ready(3)
        assert "bad user name or password (0x86)" in caplog.text or "not authorized (0x87)" in caplog.text
        assert wrong not in caplog.text and ident.password() not in caplog.text
        section["password"] = ident.password()
        right = IngestService(CloudConfig.model_validate({"mqtt": {**section, "client_id": "ingest-right"},
                                                          "influx": {"url": "http://127.0.0.1:9"}}))
        right.start()
        try:
            assert right.wait_ready(10), "the ingest identity with its own password over TLS is accepted"
        finally:
            right.stop(2)
    finally:
        service.stop(2)


def test_a_frozen_broker_is_noticed_by_keepalive_and_the_link_comes_back(broker, influx, caplog):
    """SIGSTOP keeps the TCP connection open but answers nothing, like a dead NAT path."""
    caplog.set_level(logging.WARNING, logger="cloud.ingest")
    config = ingest_config(broker, influx, mqtt_options={"keepalive_s": 5})
    with running_ingest(config) as service:
        os.kill(broker.process.pid, signal.SIGSTOP)
        try:
            wait_until(lambda: not service.stats()["mqtt_connected"], 15, "the link to notice the silent broker")
        finally:
            os.kill(broker.process.pid, signal.SIGCONT)
        assert "no answer from the broker" in caplog.text
        assert service.wait_ready(15), "reconnected and subscribed after the broker thawed"
        publisher = Publisher(broker)
        publisher.envelope(meter_envelope(1)).wait_for_publish(5)
        wait_until(lambda: service.stats()["acked"] == 1, 10, "a message after the reconnect acked")
        publisher.close()
    assert distinct_seqs(influx) == {"pm-1": 1}
