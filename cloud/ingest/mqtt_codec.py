"""MQTT 5 packets the ingest's link needs, encoded and parsed without a client library.

Only what the ingest speaks: CONNECT/CONNACK, SUBSCRIBE/SUBACK, PUBLISH at QoS 0/1 both ways,
PUBACK both ways, PINGREQ/PINGRESP, DISCONNECT. ``PacketReader`` splits a byte stream into
packets; ``parse_publish`` is the hot path (one call per telemetry message), so it works on
offsets into the receive buffer and skips PUBLISH properties by their length.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

CONNECT, CONNACK, PUBLISH, PUBACK = 0x10, 0x20, 0x30, 0x40
SUBSCRIBE, SUBACK, PINGREQ, PINGRESP, DISCONNECT = 0x82, 0x90, 0xC0, 0xD0, 0xE0

PINGREQ_PACKET = b"\xc0\x00"
DISCONNECT_PACKET = b"\xe0\x00"
MAX_REMAINING_LENGTH = 268_435_455

REASONS = {
    0x00: "success", 0x04: "disconnect with will message", 0x80: "unspecified error",
    0x81: "malformed packet", 0x82: "protocol error", 0x83: "implementation specific error",
    0x84: "unsupported protocol version", 0x85: "client identifier not valid",
    0x86: "bad user name or password", 0x87: "not authorized", 0x88: "server unavailable",
    0x89: "server busy", 0x8A: "banned", 0x8B: "server shutting down", 0x8C: "bad authentication method",
    0x8D: "keep alive timeout", 0x8E: "session taken over", 0x8F: "topic filter invalid",
    0x90: "topic name invalid", 0x93: "receive maximum exceeded", 0x95: "packet too large",
    0x97: "quota exceeded", 0x99: "payload format invalid", 0x9C: "use another server",
    0x9D: "server moved", 0x9E: "shared subscriptions not supported", 0x9F: "connection rate exceeded",
    0xA2: "wildcard subscriptions not supported",
}

# MQTT 5 property id -> (name, type); the types a property value can have on the wire.
_BYTE, _U16, _U32, _VARINT, _UTF8, _BINARY, _PAIR = range(7)
PROPERTIES = {
    0x01: ("payload_format_indicator", _BYTE), 0x02: ("message_expiry_interval", _U32),
    0x03: ("content_type", _UTF8), 0x08: ("response_topic", _UTF8), 0x09: ("correlation_data", _BINARY),
    0x0B: ("subscription_identifier", _VARINT), 0x11: ("session_expiry_interval", _U32),
    0x12: ("assigned_client_identifier", _UTF8), 0x13: ("server_keep_alive", _U16),
    0x15: ("authentication_method", _UTF8), 0x16: ("authentication_data", _BINARY),
    0x17: ("request_problem_information", _BYTE), 0x18: ("will_delay_interval", _U32),
    0x19: ("request_response_information", _BYTE), 0x1A: ("response_information", _UTF8),
    0x1C: ("server_reference", _UTF8), 0x1F: ("reason_string", _UTF8), 0x21: ("receive_maximum", _U16),
    0x22: ("topic_alias_maximum", _U16), 0x23: ("topic_alias", _U16), 0x24: ("maximum_qos", _BYTE),
    0x25: ("retain_available", _BYTE), 0x26: ("user_property", _PAIR), 0x27: ("maximum_packet_size", _U32),
    0x28: ("wildcard_subscription_available", _BYTE), 0x29: ("subscription_identifier_available", _BYTE),
    0x2A: ("shared_subscription_available", _BYTE),
}


class MalformedPacket(ValueError):
    """The broker sent bytes that are not a valid MQTT 5 packet: the connection must be dropped."""


def reason_text(code: int) -> str:
    return f"{REASONS.get(code, 'unknown reason')} (0x{code:02X})"


# ---------------------------------------------------------------- encoding

def varint(value: int) -> bytes:
    if not 0 <= value <= MAX_REMAINING_LENGTH:
        raise ValueError(f"variable byte integer out of range: {value}")
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | 0x80 if value else byte)
        if not value:
            return bytes(out)


def utf8(text: str) -> bytes:
    data = text.encode("utf-8")
    if len(data) > 0xFFFF:
        raise ValueError("MQTT string longer than 65535 bytes")
    return struct.pack(">H", len(data)) + data


def binary(data: bytes) -> bytes:
    if len(data) > 0xFFFF:
        raise ValueError("MQTT binary data longer than 65535 bytes")
    return struct.pack(">H", len(data)) + data


def _packet(first_byte: int, body: bytes) -> bytes:
    return bytes([first_byte]) + varint(len(body)) + body


def connect_packet(client_id: str, keepalive_s: int, *, clean_start: bool, session_expiry_s: int,
                   receive_maximum: int, username: str | None = None, password: str | None = None,
                   maximum_packet_size: int | None = None) -> bytes:
    flags = 0x02 if clean_start else 0
    if username is not None:
        flags |= 0x80
    if password is not None:
        flags |= 0x40
    props = b"\x11" + struct.pack(">I", session_expiry_s) + b"\x21" + struct.pack(">H", receive_maximum)
    if maximum_packet_size:
        props += b"\x27" + struct.pack(">I", maximum_packet_size)
    body = utf8("MQTT") + bytes([5, flags]) + struct.pack(">H", keepalive_s) + varint(len(props)) + props
    body += utf8(client_id)
    if username is not None:
        body += utf8(username)
    if password is not None:
        body += binary(password.encode("utf-8"))
    return _packet(CONNECT, body)


def subscribe_packet(packet_id: int, topic_filter: str, qos: int) -> bytes:
    return _packet(SUBSCRIBE, struct.pack(">H", packet_id) + b"\x00" + utf8(topic_filter) + bytes([qos]))


def publish_packet(topic: str, payload: bytes, qos: int = 0, packet_id: int = 0, *, retain: bool = False,
                   dup: bool = False) -> bytes:
    first = PUBLISH | (qos << 1) | (0x01 if retain else 0) | (0x08 if dup else 0)
    head = utf8(topic) + (struct.pack(">H", packet_id) if qos else b"") + b"\x00"
    return bytes([first]) + varint(len(head) + len(payload)) + head + payload


_PUBACK = struct.Struct(">BBH")


def puback_packets(packet_ids) -> bytes:
    """PUBACKs (success, no properties: 4 bytes each) for several messages in one buffer."""
    pack = _PUBACK.pack
    return b"".join([pack(PUBACK, 2, mid) for mid in packet_ids])


# ---------------------------------------------------------------- parsing

def read_varint(data, pos: int) -> tuple[int, int]:
    """(value, position after it); raises MalformedPacket past 4 bytes or past the end."""
    value = shift = 0
    for index in range(4):
        if pos >= len(data):
            raise MalformedPacket("variable byte integer runs past the packet")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
    raise MalformedPacket("variable byte integer longer than 4 bytes")


def parse_properties(data, pos: int, end: int) -> tuple[dict, int]:
    """MQTT 5 properties starting at ``pos`` (their length first); returns (name -> value, next pos)."""
    length, pos = read_varint(data, pos)
    stop = pos + length
    if stop > end:
        raise MalformedPacket("properties run past the packet")
    props: dict = {}
    try:
        while pos < stop:
            ident, pos = read_varint(data, pos)
            if ident not in PROPERTIES:
                raise MalformedPacket(f"unknown property id 0x{ident:02X}")
            name, kind = PROPERTIES[ident]
            if kind == _BYTE:
                value, pos = data[pos], pos + 1
            elif kind == _U16:
                value, pos = struct.unpack_from(">H", data, pos)[0], pos + 2
            elif kind == _U32:
                value, pos = struct.unpack_from(">I", data, pos)[0], pos + 4
            elif kind == _VARINT:
                value, pos = read_varint(data, pos)
            else:
                size = struct.unpack_from(">H", data, pos)[0]
                value, pos = bytes(data[pos + 2:pos + 2 + size]), pos + 2 + size
                if kind == _PAIR:
                    size2 = struct.unpack_from(">H", data, pos)[0]
                    value, pos = (value.decode("utf-8"), bytes(data[pos + 2:pos + 2 + size2]).decode("utf-8")), \
                        pos + 2 + size2
                elif kind == _UTF8:
                    value = value.decode("utf-8")
            if kind == _PAIR:
                props.setdefault(name, []).append(value)
            else:
                props[name] = value
    except (struct.error, IndexError, UnicodeDecodeError) as exc:
        raise MalformedPacket(f"bad properties: {exc}") from None
    if pos != stop:
        raise MalformedPacket("properties overrun their length")
    return props, stop


@dataclass(slots=True)
class Connack:
    session_present: bool
    reason_code: int
    properties: dict = field(default_factory=dict)


def parse_connack(body: bytes) -> Connack:
    if len(body) < 2:
        raise MalformedPacket("CONNACK shorter than 2 bytes")
    props = parse_properties(body, 2, len(body))[0] if len(body) > 2 else {}
    return Connack(bool(body[0] & 0x01), body[1], props)


def parse_suback(body: bytes) -> tuple[int, list[int]]:
    """(packet id, reason codes)."""
    if len(body) < 3:
        raise MalformedPacket("SUBACK shorter than 3 bytes")
    pos = parse_properties(body, 2, len(body))[1]
    return struct.unpack_from(">H", body, 0)[0], list(body[pos:])


def parse_puback(body: bytes) -> tuple[int, int]:
    """(packet id, reason code); a 2-byte PUBACK means success."""
    if len(body) < 2:
        raise MalformedPacket("PUBACK shorter than 2 bytes")
    return struct.unpack_from(">H", body, 0)[0], body[2] if len(body) > 2 else 0


def parse_disconnect(body: bytes) -> tuple[int, str | None]:
    """(reason code, reason string if the broker sent one)."""
    if not body:
        return 0, None
    props = parse_properties(body, 1, len(body))[0] if len(body) > 1 else {}
    return body[0], props.get("reason_string")


def parse_publish(first_byte: int, data, start: int, end: int) -> tuple[int, int, str, bytes]:
    """(packet id or 0, qos, topic, payload) of the PUBLISH body ``data[start:end]``."""
    qos = (first_byte >> 1) & 0x03
    try:
        topic_len = (data[start] << 8) | data[start + 1]
        pos = start + 2 + topic_len
        topic = str(data[start + 2:pos], "utf-8")
        packet_id = 0
        if qos:
            packet_id = (data[pos] << 8) | data[pos + 1]
            pos += 2
        props_len = data[pos]
        if props_len < 0x80:
            pos += 1 + props_len
        else:
            props_len, pos = read_varint(data, pos)
            pos += props_len
    except (IndexError, UnicodeDecodeError) as exc:
        raise MalformedPacket(f"bad PUBLISH: {exc}") from None
    if pos > end or qos == 3:
        raise MalformedPacket("PUBLISH header runs past the packet" if pos > end else "PUBLISH with QoS 3")
    return packet_id, qos, topic, bytes(data[pos:end])


class PacketReader:
    """Splits received bytes into packets: ``feed(data)`` then iterate ``packets()``.

    Yields (first byte, buffer, body start, body end); the buffer is only valid until the
    next ``feed``. ``max_packet_size`` refuses a packet larger than the client allowed.
    """

    def __init__(self, max_packet_size: int = MAX_REMAINING_LENGTH):
        self._buffer = bytearray()
        self._pos = 0
        self.max_packet_size = max_packet_size

    def feed(self, data: bytes) -> None:
        if self._pos:
            del self._buffer[:self._pos]
            self._pos = 0
        self._buffer += data

    def packets(self):
        buffer, pos, size = self._buffer, self._pos, len(self._buffer)
        while pos + 2 <= size:
            first = buffer[pos]
            length = buffer[pos + 1]
            head = pos + 2
            if length & 0x80:
                try:
                    length, head = read_varint(buffer, pos + 1)
                except MalformedPacket:
                    if size - pos - 1 < 4:
                        break       # the rest of the length has not arrived yet
                    raise
            if length + head - pos > self.max_packet_size:
                raise MalformedPacket(f"packet of {length} bytes exceeds the maximum packet size")
            end = head + length
            if end > size:
                break
            pos = end
            self._pos = pos
            yield first, buffer, head, end
        self._pos = pos
