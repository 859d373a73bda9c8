"""Block-read planner: which requests read a profile's registers, and where each value sits.

A pure function of the register list and two limits, computed once per device when
the source starts (never per poll). Registers of one function are sorted by address
and merged into blocks; two neighbours join when the unused registers between them
number at most ``max_gap`` and the joined block stays within the per-request limit
(``max_registers`` for registers, ``MAX_BITS`` for coils and discrete inputs).
"""

from __future__ import annotations

from dataclasses import dataclass

from device_profiles.schema import Register, RegisterFunction

MAX_REGISTERS = 125     # FC3/FC4 limit of the Modbus specification
MAX_BITS = 2000         # FC1/FC2 limit

_FUNCTION_ORDER = [RegisterFunction.COIL, RegisterFunction.DISCRETE, RegisterFunction.HOLDING, RegisterFunction.INPUT]


@dataclass(frozen=True, slots=True)
class Slot:
    """One register's place in a block read: ``values[offset:offset + count]``."""

    register: Register
    offset: int
    count: int


@dataclass(frozen=True, slots=True)
class ReadBlock:
    function: RegisterFunction
    address: int
    count: int
    slots: tuple[Slot, ...]

    @property
    def end(self) -> int:
        return self.address + self.count


def plan_reads(registers: list[Register], max_registers: int = MAX_REGISTERS, max_gap: int = 10,
               max_bits: int = MAX_BITS) -> list[ReadBlock]:
    """Blocks covering every register, in function then address order.

    Raises ValueError when one register alone exceeds the request limit (a string longer
    than ``max_registers``), since no request could read it whole.
    """
    if not 1 <= max_registers <= MAX_REGISTERS:
        raise ValueError(f"max_registers_per_read must be 1..{MAX_REGISTERS} (got {max_registers})")
    if max_gap < 0:
        raise ValueError(f"max_gap must be >= 0 (got {max_gap})")
    by_function: dict[RegisterFunction, list[Register]] = {}
    for register in registers:
        function = register.function or RegisterFunction.HOLDING
        by_function.setdefault(function, []).append(register)

    blocks: list[ReadBlock] = []
    for function in _FUNCTION_ORDER:
        members = sorted(by_function.get(function, []), key=lambda r: (r.address, -r.count))
        limit = max_bits if function.is_bit else max_registers
        start = end = -1
        current: list[Register] = []
        for register in members:
            count = 1 if function.is_bit else register.count
            if count > limit:
                raise ValueError(f"register {register.metric!r} spans {count} registers, more than the "
                                 f"{limit} one request may read")
            reg_end = register.address + count
            if current and register.address - end <= max_gap and max(end, reg_end) - start <= limit:
                current.append(register)
                end = max(end, reg_end)
                continue
            if current:
                blocks.append(_block(function, start, end, current))
            current, start, end = [register], register.address, reg_end
        if current:
            blocks.append(_block(function, start, end, current))
    return blocks


def _block(function: RegisterFunction, start: int, end: int, members: list[Register]) -> ReadBlock:
    slots = tuple(Slot(r, r.address - start, 1 if function.is_bit else r.count) for r in members)
    return ReadBlock(function=function, address=start, count=end - start, slots=slots)
