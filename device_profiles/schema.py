"""Pydantic schema for device profiles: device knowledge as data.

A profile is one YAML file. ``protocol: modbus`` files hold register maps,
``protocol: opcua`` files hold node maps. Adding a meter model means adding a file;
no code changes. ``load_profile`` validates a file and names the file, the key path
and what was expected when it is wrong.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, ValidationInfo, field_validator, \
    model_validator

from hinode.contract import METRIC_PATTERN, DeviceKind, MetricInfo

PROFILE_DIR = Path(__file__).resolve().parent
PROFILE_ID = r"^[a-z0-9][a-z0-9_.-]{0,127}$"


class ProfileError(ValueError):
    """A profile that failed to load; the message names file, key and expectation."""


class RegisterFunction(StrEnum):
    HOLDING = "holding"      # FC3
    INPUT = "input"          # FC4
    COIL = "coil"            # FC1
    DISCRETE = "discrete"    # FC2

    @property
    def is_bit(self) -> bool:
        return self in (RegisterFunction.COIL, RegisterFunction.DISCRETE)


class DataType(StrEnum):
    INT16 = "int16"
    UINT16 = "uint16"
    INT32 = "int32"
    UINT32 = "uint32"
    INT64 = "int64"
    UINT64 = "uint64"
    FLOAT32 = "float32"
    FLOAT64 = "float64"
    STRING = "string"
    BITS = "bits"            # one bit of a register (``bit``) or one coil/discrete input


REGISTER_COUNT = {
    DataType.INT16: 1, DataType.UINT16: 1, DataType.INT32: 2, DataType.UINT32: 2,
    DataType.INT64: 4, DataType.UINT64: 4, DataType.FLOAT32: 2, DataType.FLOAT64: 4,
    DataType.BITS: 1,
}
UNSIGNED_BITS = {DataType.UINT16: 16, DataType.UINT32: 32, DataType.UINT64: 64}
NUMERIC_TYPES = frozenset(REGISTER_COUNT) - {DataType.BITS}


class Order(StrEnum):
    BIG = "big"
    LITTLE = "little"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _rollover_needs_counter(rollover: float | None, info: ValidationInfo) -> float | None:
    if rollover is not None and not info.data.get("counter"):
        raise ValueError("'rollover' is only for a counter: add 'counter: true' or remove it")
    return rollover


class RegisterDefaults(_Strict):
    function: RegisterFunction = RegisterFunction.HOLDING
    byte_order: Order = Order.BIG
    word_order: Order = Order.BIG


class Register(_Strict):
    metric: Annotated[str, Field(pattern=METRIC_PATTERN)]
    address: int = Field(ge=0, le=65535, description="0-based protocol address (40001 in a vendor table is 0 here)")
    type: DataType
    function: RegisterFunction | None = None
    byte_order: Order | None = None
    word_order: Order | None = None
    length: int | None = Field(default=None, ge=1, le=125, description="registers, for type string")
    bit: int | None = Field(default=None, ge=0, le=15, description="bit index, for type bits on a register")
    scale: float = 1.0
    offset: float = 0.0
    unit: str = ""
    description: str = ""
    writable: bool = Field(default=False, description="the edge may write it (command 'write'); holding or coil only")
    min: float | None = Field(default=None, description="lowest value a write may set, in engineering units")
    max: float | None = Field(default=None, description="highest value a write may set, in engineering units")
    counter: bool = Field(default=False, description="cumulative (energy): consumption is the difference of readings")
    rollover: float | None = Field(default=None, gt=0, description="engineering value after which the counter wraps to 0")

    # Field validators run in field order, so ``info.data`` holds function/type/bit (the
    # profile fills a missing function from its defaults before registers are validated)
    # and a mistake is reported under the key that is wrong, e.g. registers.3.writable.
    @field_validator("writable")
    @classmethod
    def _writable_where_possible(cls, writable: bool, info: ValidationInfo) -> bool:
        if not writable:
            return writable
        function, dtype = info.data.get("function"), info.data.get("type")
        if function in (RegisterFunction.INPUT, RegisterFunction.DISCRETE):
            raise ValueError(f"function {function} is read-only; only holding registers and coils can be writable")
        if dtype is DataType.STRING:
            raise ValueError("a string register cannot be writable (writes take a number or a boolean)")
        if info.data.get("bit") is not None:
            raise ValueError("one bit of a holding register cannot be writable: writing it means read-modify-write "
                             "of the whole register, which can undo a change the device made in between; use a coil")
        if info.data.get("scale") == 0:
            raise ValueError("a register with scale 0 cannot be writable (no raw value gives a chosen value)")
        return writable

    @field_validator("min", "max")
    @classmethod
    def _limits_of_a_writable_number(cls, limit: float | None, info: ValidationInfo) -> float | None:
        if limit is None:
            return limit
        if not info.data.get("writable"):
            raise ValueError(f"'{info.field_name}' limits what a write may set; add 'writable: true' or remove it")
        if info.data.get("type") not in NUMERIC_TYPES:
            raise ValueError(f"'{info.field_name}' applies to numeric types only (type is {info.data.get('type')})")
        low = info.data.get("min")
        if info.field_name == "max" and low is not None and low > limit:
            raise ValueError(f"min ({low:g}) must not be above max ({limit:g})")
        return limit

    @field_validator("counter")
    @classmethod
    def _counter_is_a_number(cls, counter: bool, info: ValidationInfo) -> bool:
        if counter and info.data.get("type") not in NUMERIC_TYPES:
            raise ValueError(f"a counter must be a numeric type (type is {info.data.get('type')})")
        return counter

    _rollover_of_a_counter = field_validator("rollover")(_rollover_needs_counter)

    @model_validator(mode="after")
    def _shape(self) -> "Register":
        if self.type is DataType.STRING and self.length is None:
            raise ValueError("type string needs 'length' (number of registers)")
        if self.type is not DataType.STRING and self.length is not None:
            raise ValueError("'length' is only for type string")
        if self.bit is not None and self.type is not DataType.BITS:
            raise ValueError("'bit' is only for type bits")
        return self

    @property
    def count(self) -> int:
        return self.length if self.type is DataType.STRING else REGISTER_COUNT[self.type]

    @property
    def effective_rollover(self) -> float | None:
        """Where the counter wraps: ``rollover``, else 2**bits x |scale| for an unsigned integer counter.

        The offset does not matter: it shifts both ends of the range, and a consumer adds
        the rollover to a negative difference of two readings.
        """
        if not self.counter:
            return None
        if self.rollover is not None:
            return self.rollover
        bits = UNSIGNED_BITS.get(self.type)
        return float(2 ** bits * abs(self.scale)) if bits and self.scale else None

    def metric_info(self) -> MetricInfo:
        return MetricInfo(metric=self.metric, unit=self.unit, counter=self.counter,
                          rollover=self.effective_rollover, writable=self.writable)


class ModbusProfile(_Strict):
    id: Annotated[str, Field(pattern=PROFILE_ID)]
    protocol: Literal["modbus"]
    kind: DeviceKind = DeviceKind.METER
    vendor: str
    model: str
    source: str = Field(description="the vendor document the register map was taken from")
    defaults: RegisterDefaults = Field(default_factory=RegisterDefaults)
    max_registers_per_read: int = Field(default=125, ge=1, le=125)
    max_gap: int = Field(default=10, ge=0, le=124, description="unused registers read to join two blocks")
    registers: list[Register] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _default_function_first(cls, data):
        """Give registers the default function before they are validated (their writable check needs it)."""
        if not isinstance(data, dict) or not isinstance(data.get("registers"), list):
            return data
        defaults = data.get("defaults") or {}
        if isinstance(defaults, RegisterDefaults):
            defaults = {"function": defaults.function}
        function = defaults.get("function", RegisterFunction.HOLDING) if isinstance(defaults, dict) else None
        if not isinstance(function, str) or function not in {f.value for f in RegisterFunction}:
            return data         # a bad default is reported at defaults.function
        registers = [{**r, "function": function} if isinstance(r, dict) and r.get("function") is None else r
                     for r in data["registers"]]
        return {**data, "registers": registers}

    def metric_infos(self) -> list[MetricInfo]:
        return [register.metric_info() for register in self.registers]

    @model_validator(mode="after")
    def _resolve_defaults(self) -> "ModbusProfile":
        seen: set[str] = set()
        for reg in self.registers:
            if reg.metric in seen:
                raise ValueError(f"metric {reg.metric!r} appears twice")
            seen.add(reg.metric)
            reg.function = reg.function or self.defaults.function
            reg.byte_order = reg.byte_order or self.defaults.byte_order
            reg.word_order = reg.word_order or self.defaults.word_order
            if reg.function.is_bit and reg.type is not DataType.BITS:
                raise ValueError(f"metric {reg.metric!r}: function {reg.function} reads bits, so type must be bits")
        return self


class OpcuaNode(_Strict):
    metric: Annotated[str, Field(pattern=METRIC_PATTERN)]
    # Either a NodeId template or a browse path below Objects. ``{device}`` is replaced by
    # the device's ``node_name`` from the site config; ``{ns}`` by the namespace index of
    # the profile's namespace URI.
    node_id: str | None = Field(default=None, description="e.g. 'ns={ns};s={device}.VoltageL1'")
    browse_path: list[str] | None = Field(default=None, description="e.g. ['{ns}:Meters', '{ns}:{device}', '{ns}:VoltageL1']")
    unit: str = ""
    scale: float = 1.0
    offset: float = 0.0
    description: str = ""
    counter: bool = Field(default=False, description="cumulative (energy): consumption is the difference of readings")
    rollover: float | None = Field(default=None, gt=0, description="engineering value after which the counter wraps to 0")

    _rollover_of_a_counter = field_validator("rollover")(_rollover_needs_counter)

    def metric_info(self) -> MetricInfo:
        return MetricInfo(metric=self.metric, unit=self.unit, counter=self.counter, rollover=self.rollover)

    @model_validator(mode="after")
    def _one_address(self) -> "OpcuaNode":
        if (self.node_id is None) == (self.browse_path is None):
            raise ValueError("give exactly one of 'node_id' or 'browse_path'")
        return self


class OpcuaProfile(_Strict):
    id: Annotated[str, Field(pattern=PROFILE_ID)]
    protocol: Literal["opcua"]
    kind: DeviceKind = DeviceKind.METER
    vendor: str
    model: str
    source: str
    namespace: str = Field(description="namespace URI the node ids live in")
    nodes: list[OpcuaNode] = Field(min_length=1)

    def metric_infos(self) -> list[MetricInfo]:
        return [node.metric_info() for node in self.nodes]

    @model_validator(mode="after")
    def _unique(self) -> "OpcuaProfile":
        metrics = [n.metric for n in self.nodes]
        dupes = {m for m in metrics if metrics.count(m) > 1}
        if dupes:
            raise ValueError(f"metrics appear twice: {sorted(dupes)}")
        return self


Profile = Annotated[Union[ModbusProfile, OpcuaProfile], Field(discriminator="protocol")]


_PROFILE_ADAPTER = TypeAdapter(Profile)


def format_validation_error(path: Path | str, exc: ValidationError, prefix: tuple = ()) -> str:
    """One line per problem: ``file: key.path: message (got value)``."""
    lines = []
    for err in exc.errors():
        loc = [str(p) for p in (*prefix, *err["loc"]) if p not in ("ModbusProfile", "OpcuaProfile", "modbus", "opcua")]
        key = ".".join(p if p.isprintable() else repr(p) for p in loc) or "(top level)"
        got = err.get("input")
        got_text = "" if isinstance(got, (dict, list)) else f" (got {got!r})"
        lines.append(f"{path}: {key}: {err['msg']}{got_text}")
    return "\n".join(lines)


def parse_profile(data: object, path: Path | str = "<profile>") -> ModbusProfile | OpcuaProfile:
    if not isinstance(data, dict):
        raise ProfileError(f"{path}: (top level): expected a mapping with id, protocol, ... got {type(data).__name__}")
    if data.get("protocol") not in ("modbus", "opcua"):
        raise ProfileError(f"{path}: protocol: expected 'modbus' or 'opcua' (got {data.get('protocol')!r})")
    try:
        return _PROFILE_ADAPTER.validate_python(data)
    except ValidationError as exc:
        raise ProfileError(format_validation_error(path, exc)) from None


def read_yaml_file(path: Path, error: type[Exception] = ProfileError):
    """A device-knowledge YAML file's data; ``error`` naming the file when it cannot be read or parsed."""
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise error(f"{path}: cannot read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise error(f"{path}: not valid YAML: {exc}") from None


def load_profile_file(path: Path | str) -> ModbusProfile | OpcuaProfile:
    path = Path(path)
    profile = parse_profile(read_yaml_file(path), path)
    if profile.id != path.stem:
        raise ProfileError(f"{path}: id: expected the file name without .yaml ({path.stem!r}) (got {profile.id!r})")
    return profile


def find_profile(name: str, search_dirs: list[Path] | None = None) -> Path:
    """A profile by id (searching user dirs first, then the shipped ones) or by path."""
    candidate = Path(name)
    if candidate.suffix in (".yaml", ".yml") and candidate.exists():
        return candidate
    for directory in [*(search_dirs or []), PROFILE_DIR]:
        for sub in ("", "modbus", "opcua"):
            path = Path(directory) / sub / f"{name}.yaml"
            if path.exists():
                return path
    raise ProfileError(f"profile {name!r} not found in {[str(d) for d in [*(search_dirs or []), PROFILE_DIR]]}")


def load_profile(name: str, search_dirs: list[Path] | None = None) -> ModbusProfile | OpcuaProfile:
    return load_profile_file(find_profile(name, search_dirs))


def shipped_profiles() -> list[Path]:
    """The shipped meter profiles. BLE model overrides (``ble/``) have their own schema
    (edge_agent/sources/ble/models.py) and are not profiles of this kind."""
    return sorted(p for p in PROFILE_DIR.rglob("*.yaml") if p.relative_to(PROFILE_DIR).parts[0] != "ble")
