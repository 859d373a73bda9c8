"""Finding a SunSpec device's model map: the 'SunS' marker, then [ID][L] blocks to ID 0xFFFF."""

from __future__ import annotations

from dataclasses import dataclass

from device_profiles.schema import RegisterFunction
from edge_agent.sources.modbus.link import DeviceError, DeviceException, ModbusLink
from edge_agent.sources.modbus.planner import MAX_REGISTERS
from edge_agent.sources.sunspec.config import BASE_ADDRESSES

SUNS = [0x5375, 0x6E53]        # "SunS"
END_MODEL = 0xFFFF
MAX_MODELS = 100               # a guard against a map that never ends
HOLDING = RegisterFunction.HOLDING


@dataclass(frozen=True, slots=True)
class ModelBlock:
    id: int
    address: int        # first register after the [ID][L] header
    length: int


@dataclass(frozen=True, slots=True)
class DeviceMap:
    base: int
    models: tuple[ModelBlock, ...]

    @property
    def ids(self) -> list[int]:
        return [m.id for m in self.models]


async def read_span(link: ModbusLink, unit: int, address: int, length: int) -> list[int]:
    """``length`` holding registers from ``address``, in requests of at most 125."""
    words: list[int] = []
    while len(words) < length:
        count = min(MAX_REGISTERS, length - len(words))
        words += await link.read(HOLDING, address + len(words), count, unit)
    return words


async def discover(link: ModbusLink, unit: int, base_address: int | None = None) -> DeviceMap:
    bases = BASE_ADDRESSES if base_address is None else (base_address,)
    for base in bases:
        try:
            marker = await link.read(HOLDING, base, 2, unit)
        except DeviceException:
            continue                      # nothing mapped at this base
        if marker == SUNS:
            return DeviceMap(base, await _walk(link, unit, base + 2))
    where = ", ".join(str(b) for b in bases)
    raise DeviceError(f"no SunSpec marker 'SunS' at {where} on unit {unit}", code="not_sunspec")


async def _walk(link: ModbusLink, unit: int, address: int) -> tuple[ModelBlock, ...]:
    models: list[ModelBlock] = []
    while len(models) < MAX_MODELS and address + 2 <= 0x10000:
        try:
            model_id, length = await link.read(HOLDING, address, 2, unit)
        except DeviceException as exc:
            if models and exc.exception_code == 2:
                break                     # some devices end the map without the 0xFFFF marker
            raise
        if model_id == END_MODEL:
            break
        models.append(ModelBlock(model_id, address + 2, length))
        address += 2 + length
    if not models or models[0].id != 1:
        found = [m.id for m in models]
        raise DeviceError(f"SunSpec map on unit {unit} does not start with common model 1 (models {found})",
                          code="not_sunspec")
    return tuple(models)
