"""The wire contract between edge agents and the cloud: MQTT topics and payloads.

This is the only module that spells a topic. Edge, cloud, simulators, tests and
benchmarks import the helpers below; a topic string written anywhere else is a bug.

Topic tree (schema version 1)::

    hinode/v1/{site}/{agent}/telemetry      edge -> cloud  TelemetryEnvelope (QoS 1)
    hinode/v1/{site}/{agent}/status         edge -> cloud  AgentStatus (QoS 1, retained;
                                                           the MQTT will publishes state=offline)
    hinode/v1/{site}/{agent}/cmd/{command}  cloud -> edge  reserved for commands
    hinode/v1/_deadletter/{reason}          cloud          DeadLetter: payloads the ingest refused
    hinode/v1/_ingest/heartbeat             cloud -> edge  IngestHeartbeat (QoS 0, not retained):
                                                           "an ingest is subscribed right now"

Payloads are JSON. Timestamps are integers: milliseconds since the Unix epoch, UTC.
"""

from __future__ import annotations

import json
import re
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

SCHEMA_VERSION = 1
TOPIC_ROOT = f"hinode/v{SCHEMA_VERSION}"
DEAD_LETTER_ROOT = f"{TOPIC_ROOT}/_deadletter"
# Ingest refuses payloads above this size before parsing them.
MAX_PAYLOAD_BYTES = 256 * 1024
# 9999-12-31T23:59:59.999Z: beyond it no datetime (or InfluxDB timestamp) can hold the reading.
MAX_TS_MS = 253_402_300_799_999
# Site, agent and device ids become topic levels and InfluxDB tag values.
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
_ID_RE = re.compile(ID_PATTERN)
# Metric names become InfluxDB field keys.
METRIC_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"

Ident = Annotated[str, Field(pattern=ID_PATTERN)]
MetricName = Annotated[str, Field(pattern=METRIC_PATTERN)]


def _utf8(value):
    # JSON may escape a lone surrogate ("\ud800"): valid JSON, but no UTF-8 encoder (ours,
    # InfluxDB's) can write it back, so it is refused here rather than crashing a writer.
    if isinstance(value, str) and not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("string holds a lone surrogate (not encodable as UTF-8)") from None
    return value


Utf8 = AfterValidator(_utf8)


class DeviceKind(StrEnum):
    """What a device is; each kind is one InfluxDB measurement."""

    METER = "meter"          # electricity/gas/heat meters, PV inverters via SunSpec
    CHARGER = "charger"      # EV chargers (OCPP)
    VITALS = "vitals"        # BLE health devices
    VEHICLE = "vehicle"      # e-scooters, walking-speed mobility
    AGENT = "agent"          # the edge agent's own health


class Quality(StrEnum):
    GOOD = "good"
    UNCERTAIN = "uncertain"
    BAD = "bad"


# ---------------------------------------------------------------- topics

def _check_id(value: str, what: str) -> str:
    if not _ID_RE.fullmatch(value):
        raise ValueError(f"{what} {value!r} is not a valid id (expected {ID_PATTERN})")
    return value


def telemetry_topic(site: str, agent: str) -> str:
    return f"{TOPIC_ROOT}/{_check_id(site, 'site')}/{_check_id(agent, 'agent')}/telemetry"


def status_topic(site: str, agent: str) -> str:
    return f"{TOPIC_ROOT}/{_check_id(site, 'site')}/{_check_id(agent, 'agent')}/status"


def command_topic(site: str, agent: str, command: str) -> str:
    return f"{TOPIC_ROOT}/{_check_id(site, 'site')}/{_check_id(agent, 'agent')}/cmd/{_check_id(command, 'command')}"


def command_filter(site: str, agent: str) -> str:
    """What one agent subscribes to for its own commands."""
    return f"{TOPIC_ROOT}/{_check_id(site, 'site')}/{_check_id(agent, 'agent')}/cmd/#"


# Edge agents publish telemetry only while they hear this: after a broker restart,
# Mosquitto 2.0 restores sessions but not shared subscriptions, so telemetry published
# before the ingest has re-subscribed would be accepted (PUBACK) and then discarded.
INGEST_HEARTBEAT_TOPIC = f"{TOPIC_ROOT}/_ingest/heartbeat"
TELEMETRY_FILTER = f"{TOPIC_ROOT}/+/+/telemetry"
STATUS_FILTER = f"{TOPIC_ROOT}/+/+/status"
DEAD_LETTER_FILTER = f"{DEAD_LETTER_ROOT}/#"


def shared(group: str, topic_filter: str) -> str:
    """An MQTT 5 shared subscription: the broker splits messages across the group."""
    return f"$share/{_check_id(group, 'group')}/{topic_filter}"


def dead_letter_topic(reason_code: str) -> str:
    return f"{DEAD_LETTER_ROOT}/{reason_code}"


def parse_topic(topic: str) -> tuple[str, str, str] | None:
    """``hinode/v1/site/agent/telemetry`` -> ("site", "agent", "telemetry"); None if not ours."""
    parts = topic.split("/")
    if len(parts) != 5 or f"{parts[0]}/{parts[1]}" != TOPIC_ROOT or parts[2] == "_deadletter":
        return None
    return parts[2], parts[3], parts[4]


# ---------------------------------------------------------------- payloads

class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Reading(_Strict):
    ts: int = Field(description="milliseconds since the Unix epoch, UTC", ge=0, le=MAX_TS_MS)
    metric: MetricName
    value: Annotated[float | int | bool | str | None, Utf8]
    unit: Annotated[str, Utf8] = Field(default="", max_length=32)
    quality: Quality = Quality.GOOD


class TelemetryEnvelope(_Strict):
    """One batch of readings from one device.

    ``seq`` counts envelopes per device, starting at 1, and survives agent restarts:
    the cloud reports gaps in it as missing data and repeats as duplicates.
    """

    v: Literal[1] = SCHEMA_VERSION
    site: Ident
    agent: Ident
    device: Ident
    kind: DeviceKind
    profile: Annotated[str, Utf8] = Field(default="", max_length=128)
    seq: int = Field(ge=1)
    readings: list[Reading] = Field(min_length=1, max_length=10_000)
    # Optional per-device context, e.g. a consent reference for vitals or a fleet id for vehicles.
    # Values must be short strings; they are stored as InfluxDB tags only when listed in the schema.
    meta: dict[Ident, Annotated[str, Field(max_length=128), Utf8]] = Field(default_factory=dict, max_length=16)


class DeviceState(_Strict):
    device: Ident
    kind: DeviceKind
    online: bool
    error: str = Field(default="", max_length=512)


class AgentStatus(_Strict):
    """Retained on the status topic; the agent's MQTT will carries state=offline."""

    v: Literal[1] = SCHEMA_VERSION
    site: Ident
    agent: Ident
    state: Literal["online", "offline"]
    ts: int = Field(ge=0)
    version: str = ""
    devices: list[DeviceState] = Field(default_factory=list)


class IngestHeartbeat(_Strict):
    v: Literal[1] = SCHEMA_VERSION
    ingest: str = Field(max_length=128, description="the ingest's MQTT client id")
    ts: int


class DeadLetter(_Strict):
    v: Literal[1] = SCHEMA_VERSION
    reason: str
    topic: str
    ts: int
    payload: str = Field(description="the refused payload, decoded as UTF-8 with replacement, cut to 4 KiB")


# ---------------------------------------------------------------- codec

class ContractError(ValueError):
    """A payload that does not follow the contract; ``code`` names the reason for counters."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def encode(model: BaseModel) -> bytes:
    return model.model_dump_json(exclude_defaults=False).encode()


def decode_telemetry(payload: bytes, topic: str | None = None) -> TelemetryEnvelope:
    """Parse and validate a telemetry payload, raising ContractError with a reason code."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise ContractError("oversized", f"payload is {len(payload)} bytes, limit {MAX_PAYLOAD_BYTES}")
    try:
        raw = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ContractError("malformed_json", f"not JSON: {exc}") from None
    except RecursionError:
        raise ContractError("malformed_json", "JSON nested too deeply") from None
    if not isinstance(raw, dict):
        raise ContractError("wrong_type", f"expected a JSON object, got {type(raw).__name__}")
    version = raw.get("v")
    if version != SCHEMA_VERSION:
        raise ContractError("unknown_version", f"schema version {version!r} is not supported (expected {SCHEMA_VERSION})")
    try:
        envelope = TelemetryEnvelope.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ContractError("invalid", f"{where}: {first['msg']} ({exc.error_count()} error(s))") from None
    if topic is not None:
        parsed = parse_topic(topic)
        if parsed is None or parsed[:2] != (envelope.site, envelope.agent):
            raise ContractError("topic_mismatch", f"payload site/agent {envelope.site}/{envelope.agent} does not match topic {topic}")
    return envelope


def decode_status(payload: bytes) -> AgentStatus:
    try:
        return AgentStatus.model_validate_json(payload)
    except ValidationError as exc:
        raise ContractError("invalid", str(exc.errors()[0]["msg"])) from None
