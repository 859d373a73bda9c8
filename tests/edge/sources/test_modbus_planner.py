"""The block-read planner on hand-checked register layouts."""

from __future__ import annotations

import pytest

from device_profiles.schema import RegisterFunction, parse_profile
from edge_agent.sources.modbus.planner import plan_reads

pytestmark = pytest.mark.timeout(10)

H, I, C, D = (RegisterFunction.HOLDING, RegisterFunction.INPUT, RegisterFunction.COIL, RegisterFunction.DISCRETE)


def registers(*specs: dict):
    """Profile registers with defaults resolved, from short specs."""
    rows = [{"metric": f"m{i}", **spec} for i, spec in enumerate(specs)]
    profile = parse_profile({"id": "t", "protocol": "modbus", "vendor": "t", "model": "t", "source": "test",
                             "registers": rows})
    return profile.registers


def shape(blocks):
    return [(b.function, b.address, b.count) for b in blocks]


def test_contiguous_values_make_one_request():
    regs = registers(*({"address": a, "type": "float32"} for a in (0, 2, 4)))
    assert shape(plan_reads(regs)) == [(H, 0, 6)]


def test_a_gap_up_to_max_gap_is_read_through_and_a_wider_one_splits():
    regs = registers({"address": 0, "type": "float32"}, {"address": 12, "type": "uint16"})
    # float32 ends at 2; the uint16 starts 10 registers later
    assert shape(plan_reads(regs, max_gap=10)) == [(H, 0, 13)]
    assert shape(plan_reads(regs, max_gap=9)) == [(H, 0, 2), (H, 12, 1)]
    assert shape(plan_reads(regs, max_gap=0)) == [(H, 0, 2), (H, 12, 1)]


def test_blocks_respect_the_register_limit_without_splitting_a_value():
    regs = registers(*({"address": 2 * i, "type": "float32"} for i in range(70)))   # 140 registers
    # 62 floats fill 124 registers; the 63rd would make 126 > 125
    assert shape(plan_reads(regs)) == [(H, 0, 124), (H, 124, 16)]
    assert shape(plan_reads(regs, max_registers=80)) == [(H, 0, 80), (H, 80, 60)]


def test_slots_point_at_each_value_inside_its_block():
    regs = registers({"address": 12, "type": "uint16"}, {"address": 0, "type": "float32"},
                     {"address": 4, "type": "string", "length": 4})
    [block] = plan_reads(regs)
    assert (block.address, block.count) == (0, 13)
    assert [(s.register.metric, s.offset, s.count) for s in block.slots] == [("m1", 0, 2), ("m2", 4, 4), ("m0", 12, 1)]


def test_strings_join_their_neighbours_and_one_too_long_for_a_request_is_refused():
    regs = registers({"address": 100, "type": "string", "length": 16}, {"address": 116, "type": "uint16"})
    assert shape(plan_reads(regs)) == [(H, 100, 17)]
    with pytest.raises(ValueError, match="'m0' spans 16 registers, more than the 10"):
        plan_reads(regs, max_registers=10)


def test_functions_are_planned_separately_in_a_fixed_order():
    regs = registers(
        {"address": 0, "type": "float32", "function": "input"},
        {"address": 0, "type": "uint16", "function": "holding"},
        {"address": 5, "type": "bits", "function": "coil"},
        {"address": 0, "type": "bits", "function": "coil"},
        {"address": 3, "type": "bits", "function": "discrete"},
        {"address": 1, "type": "uint16", "function": "input"},   # overlaps the float32: still one read
    )
    assert shape(plan_reads(regs)) == [(C, 0, 6), (D, 3, 1), (H, 0, 1), (I, 0, 2)]


def test_bit_reads_are_limited_to_2000_coils():
    regs = registers({"address": 0, "type": "bits", "function": "coil"},
                     {"address": 1999, "type": "bits", "function": "coil"},
                     {"address": 2000, "type": "bits", "function": "coil"})
    assert shape(plan_reads(regs, max_gap=5000)) == [(C, 0, 2000), (C, 2000, 1)]


def test_bits_of_one_register_share_its_read():
    regs = registers({"address": 10, "type": "uint16"}, {"address": 10, "type": "bits", "bit": 3},
                     {"address": 10, "type": "bits", "bit": 15})
    [block] = plan_reads(regs)
    assert (block.address, block.count) == (10, 1)
    assert [s.offset for s in block.slots] == [0, 0, 0]


def test_bad_limits_are_refused():
    regs = registers({"address": 0, "type": "uint16"})
    with pytest.raises(ValueError, match="max_registers_per_read"):
        plan_reads(regs, max_registers=126)
    with pytest.raises(ValueError, match="max_gap"):
        plan_reads(regs, max_gap=-1)
