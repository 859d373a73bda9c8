"""The wire contract between edge agents and the cloud: MQTT topics and payloads.

This is the only module that spells a topic. Edge, cloud, simulators, tests and
benchmarks import the helpers below; a topic string written anywhere else is a bug.

Topic tree (schema version 1)::

    hinode/v1/{site}/{agent}/telemetry      edge -> cloud  TelemetryEnvelope (QoS 1)
    hinode/v1/{site}/{agent}/status         edge -> cloud  AgentStatus (QoS 1, retained;
                                                           the MQTT will publishes state=offline)
    hinode/v1/{site}/{agent}/personal       edge -> cloud  TelemetryEnvelope of a personal kind (vitals), QoS 1
    hinode/v1/{site}/{agent}/catalog        edge -> cloud  AgentCatalog: units, counters, writable metrics (QoS 1)
    hinode/v1/{site}/{agent}/cmd/{command}  cloud -> edge  Command (QoS 1; the agent's persistent session
                                                           keeps it while the agent is offline)
    hinode/v1/{site}/{agent}/result         edge -> cloud  CommandResult (QoS 1)
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
# The largest MQTT packet anything of ours sends or takes (broker ``max_packet_size``, the
# ingest's CONNECT Maximum Packet Size): above MAX_PAYLOAD_BYTES, so an oversized payload still
# reaches the ingest and is dead-lettered with its reason instead of vanishing at the broker.
MAX_PACKET_BYTES = 1_049_600
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
    SITE = "site"            # a site's power balance and its charging controller's decisions
    CHARGING_SESSION = "charging_session"   # a record: one finished charging session


# Records, not devices: each envelope is one finished event (a charging session) sent through the
# same durable outbox. Their device id is the charger's plus SESSION_DEVICE_SUFFIX, so their seq
# counts sessions and never interleaves with the charger's readings; device lists leave them out.
RECORD_KINDS = frozenset({DeviceKind.CHARGING_SESSION})
SESSION_DEVICE_SUFFIX = ".sessions"


# Personal data (health): its own topic, database and scopes; never in dead-letter payloads.
PERSONAL_KINDS = frozenset({DeviceKind.VITALS})

# ``meta`` keys each kind may carry. They are stored as InfluxDB tags, so each must have few
# distinct values (a fleet, a consent reference, a pseudonym), never a reading or a session id.
META_KEYS: dict[DeviceKind, frozenset[str]] = {
    DeviceKind.METER: frozenset({"zone"}),                    # a hall or building the meter belongs to
    DeviceKind.CHARGER: frozenset({"evse", "station"}),        # OCPP EVSE / station the connector belongs to
    DeviceKind.VITALS: frozenset({"subject", "consent"}),      # patient pseudonym, consent reference
    DeviceKind.VEHICLE: frozenset({"fleet", "vehicle_type"}),  # operator's fleet, scooter / walking-speed
    DeviceKind.AGENT: frozenset(),
    DeviceKind.SITE: frozenset(),
    # id_tag: the employee's RFID tag (one per employee, so bounded), for sessions per tag per month
    DeviceKind.CHARGING_SESSION: frozenset({"station", "evse", "id_tag"}),
}

# Positions: a vehicle sends these two metrics with the same ts, so they land in one point.
LATITUDE_METRIC = "lat"
LONGITUDE_METRIC = "lon"


def is_personal(kind: str) -> bool:
    return kind in PERSONAL_KINDS


class Quality(StrEnum):
    GOOD = "good"
    UNCERTAIN = "uncertain"
    BAD = "bad"


# ---------------------------------------------------------------- topics

def is_id(value: object) -> bool:
    """Whether ``value`` is a valid site, agent, device, command or meta-value id."""
    return isinstance(value, str) and _ID_RE.fullmatch(value) is not None


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


def personal_topic(site: str, agent: str) -> str:
    """Telemetry of a personal kind: a topic of its own, so what handles it can tell before parsing."""
    return f"{TOPIC_ROOT}/{_check_id(site, 'site')}/{_check_id(agent, 'agent')}/personal"


def telemetry_topic_for(site: str, agent: str, kind: str) -> str:
    return personal_topic(site, agent) if is_personal(kind) else telemetry_topic(site, agent)


def catalog_topic(site: str, agent: str) -> str:
    return f"{TOPIC_ROOT}/{_check_id(site, 'site')}/{_check_id(agent, 'agent')}/catalog"


def result_topic(site: str, agent: str) -> str:
    return f"{TOPIC_ROOT}/{_check_id(site, 'site')}/{_check_id(agent, 'agent')}/result"


def command_filter(site: str, agent: str) -> str:
    """What one agent subscribes to for its own commands."""
    return f"{TOPIC_ROOT}/{_check_id(site, 'site')}/{_check_id(agent, 'agent')}/cmd/#"


# Edge agents publish telemetry only while they hear this: after a broker restart,
# Mosquitto 2.0 restores sessions but not shared subscriptions, so telemetry published
# before the ingest has re-subscribed would be accepted (PUBACK) and then discarded.
INGEST_HEARTBEAT_TOPIC = f"{TOPIC_ROOT}/_ingest/heartbeat"
# The MQTT 5 PUBACK reason a publisher gets for a message the broker took and handed to nobody (paho
# counts it a success): publishers keep that message and wait for the heartbeat again.
NO_MATCHING_SUBSCRIBERS = 0x10
TELEMETRY_FILTER = f"{TOPIC_ROOT}/+/+/telemetry"
PERSONAL_FILTER = f"{TOPIC_ROOT}/+/+/personal"
CATALOG_FILTER = f"{TOPIC_ROOT}/+/+/catalog"
RESULT_FILTER = f"{TOPIC_ROOT}/+/+/result"
STATUS_FILTER = f"{TOPIC_ROOT}/+/+/status"
ANY_COMMAND_FILTER = f"{TOPIC_ROOT}/+/+/cmd/#"
# What the ingest takes through its shared subscription: everything agents send for storage.
INGEST_FILTERS = (TELEMETRY_FILTER, PERSONAL_FILTER, CATALOG_FILTER, RESULT_FILTER)
DEAD_LETTER_FILTER = f"{DEAD_LETTER_ROOT}/#"


def shared(group: str, topic_filter: str) -> str:
    """An MQTT 5 shared subscription: the broker splits messages across the group."""
    return f"$share/{_check_id(group, 'group')}/{topic_filter}"


def dead_letter_topic(reason_code: str) -> str:
    return f"{DEAD_LETTER_ROOT}/{reason_code}"


def parse_topic(topic: str) -> tuple[str, str, str] | None:
    """``hinode/v1/site/agent/telemetry`` -> ("site", "agent", "telemetry"); None if not ours.

    A command topic ``.../cmd/{name}`` gives ("site", "agent", "cmd/{name}").
    """
    parts = topic.split("/")
    if f"{parts[0]}/{parts[1] if len(parts) > 1 else ''}" != TOPIC_ROOT or len(parts) < 5 or parts[2].startswith("_"):
        return None
    if len(parts) == 5:
        return parts[2], parts[3], parts[4]
    if len(parts) == 6 and parts[4] == "cmd":
        return parts[2], parts[3], f"cmd/{parts[5]}"
    return None


TELEMETRY_CHANNEL = "telemetry"
PERSONAL_CHANNEL = "personal"
CATALOG_CHANNEL = "catalog"
RESULT_CHANNEL = "result"


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
    payload: str = Field(default="", description="the refused payload, decoded as UTF-8 with replacement, cut "
                         "to 4 KiB; always empty for personal data (its topic or kind), see payload_bytes")
    payload_bytes: int = Field(default=0, ge=0, description="the refused payload's size")
    personal: bool = Field(default=False, description="the payload was personal data and is not carried")


# ---------------------------------------------------------------- what a device measures

class MetricInfo(_Strict):
    """What the cloud needs to know of a metric beyond its values (from the device profile)."""

    metric: MetricName
    unit: Annotated[str, Utf8] = Field(default="", max_length=32)
    counter: bool = Field(default=False, description="cumulative (energy): consumption = difference of readings")
    rollover: float | None = Field(default=None, gt=0, description="a counter wraps to 0 after this value")
    writable: bool = False


class DeviceCatalog(_Strict):
    device: Ident
    kind: DeviceKind
    profile: Annotated[str, Utf8] = Field(default="", max_length=128)
    metrics: list[MetricInfo] = Field(default_factory=list, max_length=2000)


class AgentCatalog(_Strict):
    """Published by the agent on every connection and when it changes: each device's metrics."""

    v: Literal[1] = SCHEMA_VERSION
    site: Ident
    agent: Ident
    ts: int = Field(ge=0, le=MAX_TS_MS)
    devices: list[DeviceCatalog] = Field(default_factory=list, max_length=5000)


# ---------------------------------------------------------------- commands

class CommandStatus(StrEnum):
    ACCEPTED = "accepted"     # the agent took it and is executing it
    REJECTED = "rejected"     # unknown command or target, invalid params: nothing was done
    DONE = "done"
    FAILED = "failed"         # tried, and the device did not do it
    EXPIRED = "expired"       # arrived after expires_ts: not executed

    @property
    def final(self) -> bool:
        return self is not CommandStatus.ACCEPTED


ParamValue = Annotated[float | int | bool | str | None, Utf8]
CommandName = Annotated[str, Field(pattern=ID_PATTERN)]


class Command(_Strict):
    """cloud -> edge on ``.../cmd/{name}``. ``id`` is executed at most once per agent."""

    v: Literal[1] = SCHEMA_VERSION
    id: Ident
    site: Ident
    agent: Ident
    target: Ident = Field(description="a source name or a device id of that agent")
    name: CommandName
    params: dict[Annotated[str, Field(pattern=METRIC_PATTERN)], ParamValue] = Field(default_factory=dict, max_length=32)
    issued_ts: int = Field(ge=0, le=MAX_TS_MS)
    expires_ts: int = Field(ge=0, le=MAX_TS_MS)
    issued_by: Annotated[str, Utf8] = Field(default="", max_length=64)


class CommandResult(_Strict):
    """edge -> cloud on ``.../result``: one per status change of a command."""

    v: Literal[1] = SCHEMA_VERSION
    id: Ident = Field(description="the command's id")
    site: Ident
    agent: Ident
    status: CommandStatus
    message: Annotated[str, Utf8] = Field(default="", max_length=512)
    ts: int = Field(ge=0, le=MAX_TS_MS)
    data: dict[Annotated[str, Field(pattern=METRIC_PATTERN)], ParamValue] = Field(default_factory=dict, max_length=32)


# ---------------------------------------------------------------- codec

class ContractError(ValueError):
    """A payload that does not follow the contract; ``code`` names the reason for counters."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def encode(model: BaseModel) -> bytes:
    return model.model_dump_json(exclude_defaults=False).encode()


def _refusal(exc: ValidationError) -> ContractError:
    """The first problem, where it is, and how many there were; JSON that does not parse is malformed_json."""
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    code = "malformed_json" if first["type"] == "json_invalid" else "invalid"
    return ContractError(code, f"{where}: {first['msg']} ({exc.error_count()} error(s))")


def _check_topic(payload, topic: str | None) -> None:
    """A payload names its site and agent; they must be the ones of the topic it came on."""
    if topic is not None:
        parsed = parse_topic(topic)
        if parsed is None or parsed[:2] != (payload.site, payload.agent):
            raise ContractError("topic_mismatch", f"payload site/agent {payload.site}/{payload.agent} does not match topic {topic}")


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
        raise _refusal(exc) from None
    _check_topic(envelope, topic)
    return envelope


def _decode_model(model: type[BaseModel], payload: bytes, topic: str | None):
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise ContractError("oversized", f"payload is {len(payload)} bytes, limit {MAX_PAYLOAD_BYTES}")
    try:
        value = model.model_validate_json(payload)
    except ValidationError as exc:
        raise _refusal(exc) from None
    _check_topic(value, topic)
    return value


def decode_status(payload: bytes) -> AgentStatus:
    try:
        return AgentStatus.model_validate_json(payload)
    except ValidationError as exc:
        raise ContractError("invalid", str(exc.errors()[0]["msg"])) from None


def decode_catalog(payload: bytes, topic: str | None = None) -> AgentCatalog:
    return _decode_model(AgentCatalog, payload, topic)


def decode_command(payload: bytes, topic: str | None = None) -> Command:
    command = _decode_model(Command, payload, topic)
    if topic is not None and parse_topic(topic)[2] != f"cmd/{command.name}":
        raise ContractError("topic_mismatch", f"command name {command.name!r} does not match topic {topic}")
    return command


def decode_command_result(payload: bytes, topic: str | None = None) -> CommandResult:
    return _decode_model(CommandResult, payload, topic)
