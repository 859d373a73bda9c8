"""The Modbus source against real pymodbus servers: decoding, coalescing, scheduling, faults."""

from __future__ import annotations

import asyncio
import statistics
import time

import pytest
from pymodbus import FramerType

from device_profiles.codec import encode_register
from device_profiles.schema import load_profile
import edge_agent.sources.modbus as modbus
from hinode.contract import Quality

from tests.support.waiting import wait_until_async

pytestmark = pytest.mark.timeout(60)

SIM = load_profile("hinode-sim-meter")
SIM_VALUES = {r.metric: 100.0 + i for i, r in enumerate(SIM.registers)}      # all exact in float32


def sim_memory(UnitMemory, values=SIM_VALUES):
    memory = UnitMemory()
    for register in SIM.registers:
        memory.put("holding", register.address, encode_register(register, values[register.metric]))
    return memory


def make_config(port: int, devices: list[dict], **section) -> modbus.Config:
    profile_dirs = section.pop("profile_dirs", [])
    data = {"type": "modbus", "name": "hall", "host": "127.0.0.1", "port": port, "poll_interval_s": 0.1,
            "timeout_s": 0.3, "retries": 0, "devices": devices, **section}
    return modbus.Config.model_validate(data, context={"profile_dirs": profile_dirs})


def most_attempts(elapsed_s: float, initial_s: float, max_s: float) -> int:
    """The most attempts a ``Backoff(initial_s, max_s)`` allows in ``elapsed_s``: the first at once, then
    after each delay at its shortest (half its ceiling, with the default equal jitter)."""
    attempts, at, ceiling = 1, 0.0, initial_s
    while (at := at + ceiling / 2) <= elapsed_s:
        attempts += 1
        ceiling = min(ceiling * 2, max_s)
    return attempts


def values_of(batch) -> dict:
    return {r.metric: r.value for r in batch.readings}


TYPED_PROFILE = """\
id: typed
protocol: modbus
vendor: test
model: every type and order
source: test
registers:
  - {metric: i16, address: 0, type: int16}
  - {metric: u16, address: 1, type: uint16}
  - {metric: i32_bb, address: 2, type: int32}
  - {metric: i32_bl, address: 4, type: int32, word_order: little}
  - {metric: i32_lb, address: 6, type: int32, byte_order: little}
  - {metric: i32_ll, address: 8, type: int32, byte_order: little, word_order: little}
  - {metric: u32_wl, address: 10, type: uint32, word_order: little}
  - {metric: i64, address: 12, type: int64}
  - {metric: u64_wl, address: 16, type: uint64, word_order: little}
  - {metric: f32_bb, address: 20, type: float32}
  - {metric: f32_bl, address: 22, type: float32, word_order: little}
  - {metric: f32_lb, address: 24, type: float32, byte_order: little}
  - {metric: f32_ll, address: 26, type: float32, byte_order: little, word_order: little}
  - {metric: f64_bb, address: 28, type: float64}
  - {metric: f64_ll, address: 32, type: float64, byte_order: little, word_order: little}
  - {metric: label, address: 36, type: string, length: 8}
  - {metric: label_swapped, address: 44, type: string, length: 4, byte_order: little}
  - {metric: flag_0, address: 48, type: bits, bit: 0}
  - {metric: flag_1, address: 48, type: bits, bit: 1}
  - {metric: flag_15, address: 48, type: bits, bit: 15}
  - {metric: energy, address: 50, type: uint32, scale: 0.01, unit: kWh}
  - {metric: temperature, address: 52, type: int16, scale: 0.1, offset: -40, unit: C}
  - {metric: broken, address: 54, type: float32}
  - {metric: frequency, address: 0, type: float32, function: input, unit: Hz}
  - {metric: relay, address: 3, type: bits, function: coil}
  - {metric: relay_off, address: 0, type: bits, function: coil}
  - {metric: door, address: 7, type: bits, function: discrete}
"""

TYPED_VALUES = {
    "i16": -1234, "u16": 54321, "i32_bb": -123456789, "i32_bl": -123456789, "i32_lb": 987654321,
    "i32_ll": -42, "u32_wl": 3_000_000_000, "i64": -9_000_000_000_000, "u64_wl": 18_000_000_000_000_000_000,
    "f32_bb": 229.5, "f32_bl": -12.25, "f32_lb": 0.125, "f32_ll": 65504.0, "f64_bb": 1234.5678901234,
    "f64_ll": -0.000123456789, "label": "SDM630-V2", "label_swapped": "HINODE", "energy": 1234.56,
    "temperature": 21.5, "frequency": 49.75,
}


async def test_every_type_and_order_reaches_the_batch_decoded(tmp_path, modbus_server, source_tools):
    (tmp_path / "typed.yaml").write_text(TYPED_PROFILE)
    profile = load_profile("typed", [tmp_path])
    memory = modbus_server.UnitMemory()
    for register in profile.registers:
        if register.metric in TYPED_VALUES:
            memory.put(register.function.value, register.address, encode_register(register, TYPED_VALUES[register.metric]))
    memory.put("holding", 48, [0x8001])             # bits 0 and 15 set, bit 1 clear
    memory.put("holding", 54, [0x7FC0, 0x0000])     # float32 NaN: the meter has no value
    memory.coil.update({0: False, 3: True})
    memory.discrete[7] = True
    peer = await modbus_server({7: memory})
    config = make_config(peer.port, [{"id": "typed1", "unit": 7, "profile": "typed"}], profile_dirs=[tmp_path])
    context = source_tools.context(profile_dirs=[tmp_path])
    async with source_tools.run(modbus.Source(config, context)) as run:
        await run.wait_for(lambda: run.batches, 5, "the first batch")

    batch = run.batches[0]
    assert (batch.device, batch.kind, batch.profile) == ("typed1", "meter", "typed")
    got = values_of(batch)
    for metric, expected in TYPED_VALUES.items():
        assert got[metric] == (expected if isinstance(expected, str) else pytest.approx(expected, rel=1e-9)), metric
    assert (got["flag_0"], got["flag_1"], got["flag_15"]) == (True, False, True)
    assert (got["relay"], got["relay_off"], got["door"]) == (True, False, True)
    broken = next(r for r in batch.readings if r.metric == "broken")
    assert broken.value is None and broken.quality is Quality.BAD
    assert all(r.quality is Quality.GOOD for r in batch.readings if r.metric != "broken")
    assert {r.unit for r in batch.readings if r.metric in ("energy", "temperature", "frequency")} == {"kWh", "C", "Hz"}
    assert len({r.ts for r in batch.readings}) == 1
    assert abs(batch.readings[0].ts / 1000 - time.time()) < 10
    assert context.devices["typed1"].online and not context.errors


async def test_block_reads_coalesce_at_the_server(modbus_server, source_tools):
    peer = await modbus_server({1: sim_memory(modbus_server.UnitMemory), 2: sim_memory(modbus_server.UnitMemory)})
    whole = make_config(peer.port, [{"id": "whole", "unit": 1, "profile": "hinode-sim-meter"}])
    split = make_config(peer.port, [{"id": "split", "unit": 2, "profile": "hinode-sim-meter"}],
                        name="split", max_registers_per_read=10)
    async with source_tools.run(modbus.Source(whole, source_tools.context("whole"))) as run_whole, \
            source_tools.run(modbus.Source(split, source_tools.context("split"))) as run_split:
        await run_whole.wait_for(lambda: len(run_whole.batches) >= 8 and len(run_split.batches) >= 8, 10, "8 polls")
    # 14 values in 27 registers: one request per poll, or 10+10+7 with a 10-register limit.
    polls_whole, polls_split = len(run_whole.batches), len(run_split.batches)
    assert polls_whole <= peer.count(1, "holding") <= polls_whole + 1
    assert 3 * polls_split <= peer.count(2, "holding") <= 3 * polls_split + 2
    unit2 = [(address, count) for _, unit, fc, address, count in peer.request_log if unit == 2]
    assert unit2[:3] == [(0, 10), (10, 10), (20, 7)]
    assert {(a, c) for _, unit, _, a, c in peer.request_log if unit == 1} == {(0, 27)}
    assert values_of(run_split.batches[-1]) == values_of(run_whole.batches[-1]) == pytest.approx(SIM_VALUES)


async def test_polls_follow_the_clock_with_one_timestamp_per_batch(modbus_server, source_tools):
    peer = await modbus_server({1: sim_memory(modbus_server.UnitMemory)})
    config = make_config(peer.port, [{"id": "m1", "unit": 1, "profile": "hinode-sim-meter", "poll_interval_s": 0.05}])
    context = source_tools.context()
    async with source_tools.run(modbus.Source(config, context)) as run:
        assert run.source.links[0].nodelay() is None          # not connected yet
        await run.wait_for(lambda: len(run.batches) >= 2, 5, "two batches")
        assert run.source.links[0].nodelay() is True
        start = time.monotonic()
        await asyncio.sleep(1.5)         # a rate window: the polls in 1.5 s are what is counted
        polled = [b for b, t in zip(run.batches, run.arrivals) if t >= start]
    stamps = [b.readings[0].ts for b in run.batches]
    assert all(len({r.ts for r in b.readings}) == 1 for b in run.batches)
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    steps = [b - a for a, b in zip(stamps, stamps[1:])]
    assert 45 <= statistics.median(steps) <= 55
    assert 24 <= len(polled) <= 32                         # 1.5 s at 50 ms, without drift or bursts
    assert context.errors[("m1", "overrun")] == 0


async def test_a_slow_poll_skips_ticks_and_counts_overruns(modbus_server, source_tools):
    peer = await modbus_server({1: sim_memory(modbus_server.UnitMemory)})
    # three requests per poll with 80 ms between requests: a poll needs ~240 ms, the interval is 100 ms
    config = make_config(peer.port, [{"id": "m1", "unit": 1, "profile": "hinode-sim-meter"}],
                         max_registers_per_read=10, pause_between_requests_ms=80)
    context = source_tools.context()
    async with source_tools.run(modbus.Source(config, context)) as run:
        await asyncio.sleep(1.6)         # a rate window: arrivals and overruns in 1.6 s are what is counted
    arrivals = run.arrivals
    assert 4 <= len(arrivals) <= 8
    assert min(b - a for a, b in zip(arrivals, arrivals[1:])) > 0.15     # no catch-up burst
    assert context.errors[("m1", "overrun")] >= len(arrivals) - 1
    times = [t for t, *_ in peer.request_log]
    assert min(b - a for a, b in zip(times, times[1:])) >= 0.075          # the pause between requests


async def test_a_failing_unit_goes_offline_without_starving_its_neighbours(modbus_server, source_tools):
    UnitMemory = modbus_server.UnitMemory
    broken = UnitMemory(holding={0: 0})          # serves one register: reading 26 answers exception 2
    peer = await modbus_server({1: sim_memory(UnitMemory), 2: sim_memory(UnitMemory), 3: broken,
                                4: sim_memory(UnitMemory)})
    peer.silent.add(4)
    devices = [{"id": f"m{u}", "unit": u, "profile": "hinode-sim-meter"} for u in (1, 2, 3, 4)]
    config = make_config(peer.port, devices, timeout_s=0.2, backoff={"initial_s": 0.5, "max_s": 2.0})
    context = source_tools.context()
    started = time.monotonic()
    async with source_tools.run(modbus.Source(config, context)) as run:
        await wait_until_async(
            lambda: len(run.of("m1")) >= 20 and len(run.of("m2")) >= 20 and context.errors[("m3", "exception_2")] >= 2
            and context.errors[("m4", "timeout")] >= 2, "20 polls of m1 and m2 while m3 and m4 fail", timeout=15)
        elapsed = time.monotonic() - started
        assert not run.of("m3") and not run.of("m4")
        assert not context.devices["m3"].online and "exception 2 (illegal data address)" in context.devices["m3"].error
        assert not context.devices["m4"].online and "no response from unit 4" in context.devices["m4"].error
        # m4 is retried with back-off, not on every tick: at most as often as the shortest jittered delays allow
        assert context.errors[("m4", "timeout")] <= peer.count(4, "holding") <= most_attempts(elapsed, 0.5, 2.0)
        assert peer.count(4, "holding") < 20 <= peer.count(1, "holding")
        # the neighbours only lose the ticks that fell inside m4's timeouts (counted as overruns)
        assert context.devices["m1"].online
        assert {code for (dev, code), n in context.errors.items() if dev in ("m1", "m2") and n} <= {"overrun"}
        assert context.errors[("m1", "overrun")] <= 2 * peer.count(4, "holding")
        # a healthy neighbour keeps its 100 ms rhythm
        stamps = [b.readings[0].ts for b in run.of("m1")]
        assert 95 <= statistics.median(b - a for a, b in zip(stamps, stamps[1:])) <= 105

        peer.silent.discard(4)                                                # the unit answers again
        await run.wait_for(lambda: run.of("m4"), 5, "m4 back")
    assert context.devices["m4"].online and ("m4", True, "") in context.transitions
    assert values_of(run.of("m4")[0]) == pytest.approx(SIM_VALUES)


async def test_a_restarted_server_is_reconnected_and_data_resumes(modbus_server, source_tools):
    peer = await modbus_server({1: sim_memory(modbus_server.UnitMemory)})
    config = make_config(peer.port, [{"id": "m1", "unit": 1, "profile": "hinode-sim-meter"}],
                         backoff={"initial_s": 0.1, "max_s": 0.4})
    context = source_tools.context()
    async with source_tools.run(modbus.Source(config, context)) as run:
        await run.wait_for(lambda: len(run.batches) >= 3, 5, "first batches")
        await peer.stop()
        stopped_at = time.time() * 1000
        await run.wait_for(lambda: not context.devices["m1"].online, 5, "device offline")
        await run.wait_for(lambda: context.errors[("m1", "connect")] >= 3, 5, "refused reconnects counted")
        before = len(run.batches)
        await asyncio.sleep(0.5)         # a negative check: no data and few reconnects while the server is down
        assert len(run.batches) <= before + 1
        # reconnects back off (0.1, 0.2, 0.4, 0.4 s ...) instead of hammering the closed port
        assert context.errors[("m1", "connect")] <= 8
        changed = dict(SIM_VALUES, power_total=4321.0)
        peer.memory[1] = sim_memory(modbus_server.UnitMemory, changed)
        await peer.start()
        await run.wait_for(lambda: run.batches[-1].readings[0].ts > stopped_at + 500, 5, "data after restart")
        await run.wait_for(lambda: values_of(run.batches[-1])["power_total"] == 4321.0, 5, "new values")
    assert context.devices["m1"].online
    states = [state for dev, state, _ in context.transitions if dev == "m1"]
    assert [s for i, s in enumerate(states) if i == 0 or s != states[i - 1]] == [True, False, True]
    errors = [error for dev, state, error in context.transitions if dev == "m1" and not state]
    assert errors[0].startswith("connection lost") and errors[1].startswith("cannot connect to 127.0.0.1")


async def test_rtu_framing_over_tcp_reaches_units_behind_a_gateway(modbus_server, source_tools):
    UnitMemory = modbus_server.UnitMemory
    low = dict(SIM_VALUES, power_total=10.0)
    peer = await modbus_server({5: sim_memory(UnitMemory), 6: sim_memory(UnitMemory, low)}, framer=FramerType.RTU)
    devices = [{"id": "g5", "unit": 5, "profile": "hinode-sim-meter"},
               {"id": "g6", "unit": 6, "profile": "hinode-sim-meter"}]
    config = make_config(peer.port, devices, transport="rtu_over_tcp", pause_between_requests_ms=5)
    context = source_tools.context()
    async with source_tools.run(modbus.Source(config, context)) as run:
        await run.wait_for(lambda: len(run.of("g5")) >= 3 and len(run.of("g6")) >= 3, 5, "both units")
    assert len(run.source.links) == 1                     # one gateway connection for both units
    assert values_of(run.of("g5")[-1]) == pytest.approx(SIM_VALUES)
    assert values_of(run.of("g6")[-1])["power_total"] == 10.0
