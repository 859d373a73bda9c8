"""The SunSpec source against a real pymodbus server holding hand-built SunSpec maps.

The maps are written here from the specification's offsets (not from the model definitions the source reads),
so a wrong table would show up as wrong values.
"""

from __future__ import annotations

import asyncio

import pytest

import edge_agent.sources.sunspec as sunspec
from hinode.contract import Quality

pytestmark = pytest.mark.timeout(60)

NI16 = 0x8000          # int16 / sunssf "not implemented"


def text(value: str, registers: int) -> list[int]:
    data = value.encode().ljust(2 * registers, b"\0")
    return [data[i] << 8 | data[i + 1] for i in range(0, len(data), 2)]


def s16(value: int) -> int:
    return value & 0xFFFF


def common_model(manufacturer: str, model: str, version: str, serial: str, length: int = 66) -> list[int]:
    body = text(manufacturer, 16) + text(model, 16) + text("", 8) + text(version, 8) + text(serial, 16) + [1]
    if length == 66:
        body.append(NI16)            # Pad, added in later revisions of model 1
    return [1, length] + body


def meter_model(model_id: int, points: dict[int, int | list[int]]) -> list[int]:
    """Model 201-204 body from {offset: word(s)}; everything else "not implemented"."""
    body = [NI16] * 36 + [0] * 67 + [0xFFFF, 0xFFFF]     # int16/sunssf, acc32 (and their sfs), Evt
    for sf_offset in (52, 69, 102):
        body[sf_offset] = NI16
    for offset, words in points.items():
        words = words if isinstance(words, list) else [words]
        body[offset:offset + len(words)] = words
    assert len(body) == 105
    return [model_id, 105] + body


def sunspec_memory(UnitMemory, base: int, *models: list[int]):
    memory = UnitMemory()
    words = [0x5375, 0x6E53]
    for model in models:
        words += model
    memory.put("holding", base, words + [0xFFFF, 0])
    return memory


WYE = meter_model(203, {
    0: [1234, 500, 400, 334, s16(-2)],           # A, AphA-C, A_SF=-2
    5: [2301, 2300, 2302, NI16, 3985],           # PhV, PhVphA-C (C missing), PPV ...
    13: s16(-1),                                 # V_SF
    14: [5001, s16(-2)],                         # Hz, Hz_SF
    16: [s16(-1500), s16(-500), s16(-480), s16(-520), 1],   # W, WphA-C, W_SF=1
    26: 250, 30: NI16,                           # VAR present but VAR_SF not implemented
    31: s16(-95), 35: 0,                         # PF (percent), PF_SF=0
    44: [0x075B, 0xCD15], 52: 0,                 # TotWhImp = 123456789 Wh, TotWh_SF=0 (TotWhExp = 0: absent)
    103: [0, 0],                                 # Evt: no events
})

SINGLE = meter_model(201, {0: [100, 100, NI16, NI16, s16(-1)], 6: 2305, 13: s16(-1), 14: [500, s16(-1)],
                           16: [2300, 2300, NI16, NI16, 0], 44: [0, 5000], 52: 0, 103: [0, 0]})


def nameplate(length: int = 26) -> list[int]:
    return [120, length] + [7] * length          # a model we do not read: must be skipped by its L


def make_config(port: int, devices: list[dict], **section) -> sunspec.Config:
    return sunspec.Config.model_validate({
        "type": "sunspec", "name": "pv", "host": "127.0.0.1", "port": port, "poll_interval_s": 0.1,
        "timeout_s": 0.3, "retries": 0, "backoff": {"initial_s": 0.2, "max_s": 0.5}, "devices": devices, **section})


def metrics(batch) -> dict:
    return {r.metric: r.value for r in batch.readings}


async def test_discovery_decoding_and_not_implemented_values(modbus_server, source_tools):
    UnitMemory = modbus_server.UnitMemory
    peer = await modbus_server({
        1: sunspec_memory(UnitMemory, 40000, common_model("Hinode Labs", "HM-203", "1.2.3", "SN000042"), WYE),
        2: sunspec_memory(UnitMemory, 50000, common_model("OldCo", "M1", "0.9", "A-7", length=65), nameplate(), SINGLE),
        3: sunspec_memory(UnitMemory, 0, common_model("ZeroBase", "Z", "2", "Z1"), meter_model(204, {0: [7, 7, 7, 7, 0]})),
        4: UnitMemory(holding={i: 0 for i in range(60000)}),        # answers, but is no SunSpec device
    })
    devices = [{"id": "pv1", "unit": 1}, {"id": "pv2", "unit": 2}, {"id": "pv3", "unit": 3, "base_address": 0},
               {"id": "plc4", "unit": 4}]
    context = source_tools.context()
    async with source_tools.run(sunspec.Source(make_config(peer.port, devices), context)) as run:
        await run.wait_for(lambda: all(len(run.of(d)) >= 3 for d in ("pv1", "pv2", "pv3")), 10, "three meters")
        await run.wait_for(lambda: context.errors[("plc4", "not_sunspec")] >= 2, 5, "the non-SunSpec unit retried")

    first, second = run.of("pv1")[:2]
    values = metrics(first)
    assert {k: values[k] for k in ("manufacturer", "model", "version", "serial_number")} == {
        "manufacturer": "Hinode Labs", "model": "HM-203", "version": "1.2.3", "serial_number": "SN000042"}
    assert not {"manufacturer", "model", "version", "serial_number"} & set(metrics(second))
    assert first.profile == "sunspec-203" and first.kind == "meter"
    assert len({r.ts for r in first.readings}) == 1
    expected = {
        "current_total": 12.34, "current_l1": 5.0, "current_l2": 4.0, "current_l3": 3.34,
        "voltage_ln_avg": 230.1, "voltage_l1": 230.0, "voltage_l2": 230.2, "voltage_ll_avg": 398.5,
        "frequency": 50.01, "power_total": -15000.0, "power_l1": -5000.0, "power_l2": -4800.0, "power_l3": -5200.0,
        "power_factor": -0.95, "energy_import": 123456.789, "meter_events": 0, "reactive_power_total": None,
    }
    assert metrics(second) == expected                  # VAh, PhVphC, TotWhExp, ... are not implemented: absent
    bad = [r for r in second.readings if r.quality is Quality.BAD]
    assert [r.metric for r in bad] == ["reactive_power_total"]
    units = {r.metric: r.unit for r in second.readings}
    assert (units["energy_import"], units["power_factor"], units["frequency"]) == ("kWh", "", "Hz")

    old = metrics(run.of("pv2")[0])
    assert old["manufacturer"] == "OldCo" and old["serial_number"] == "A-7"      # model 1 with L = 65
    assert {k: old[k] for k in ("current_total", "voltage_l1", "frequency", "power_total", "energy_import")} == {
        "current_total": 10.0, "voltage_l1": 230.5, "frequency": 50.0, "power_total": 2300.0, "energy_import": 5.0}
    assert "current_l2" not in old
    assert run.of("pv2")[0].profile == "sunspec-201"
    assert metrics(run.of("pv3")[-1])["current_total"] == 7.0 and run.of("pv3")[0].profile == "sunspec-204"

    assert not run.of("plc4") and not context.devices["plc4"].online
    assert "no SunSpec marker 'SunS' at 40000, 0, 50000" in context.devices["plc4"].error
    # after discovery a poll of pv1 is one read of the 105-register model body at 40072
    polls = [(a, c) for _, unit, _, a, c in peer.request_log if unit == 1]
    assert polls[-3:] == [(40072, 105)] * 3
    # pv3 was told its base: nothing was probed at 40000 or 50000
    assert {a for _, unit, _, a, _ in peer.request_log if unit == 3} <= set(range(0, 40000))


async def test_a_reconnect_rediscovers_the_device(modbus_server, source_tools):
    UnitMemory = modbus_server.UnitMemory
    peer = await modbus_server({1: sunspec_memory(UnitMemory, 40000, common_model("First", "F", "1", "S1"), WYE)})
    context = source_tools.context()
    async with source_tools.run(sunspec.Source(make_config(peer.port, [{"id": "pv1", "unit": 1}]), context)) as run:
        await run.wait_for(lambda: len(run.of("pv1")) >= 2, 5, "first meter")
        await peer.stop()
        await run.wait_for(lambda: not context.devices["pv1"].online, 5, "offline")
        # the meter was swapped while the link was down: another layout, another identity
        replacement = meter_model(201, {0: [42, 42, NI16, NI16, 0], 13: 0, 14: [60, 0], 103: [0, 0]})
        peer.memory[1] = sunspec_memory(UnitMemory, 40000, common_model("Second", "S", "2", "S2", length=65),
                                        nameplate(10), replacement)
        before = len(run.batches)
        await peer.start()
        await run.wait_for(lambda: len(run.batches) >= before + 2, 5, "data after reconnect")
        await asyncio.sleep(0)           # one loop turn (no time passes): a batch already queued reaches run
    after = run.batches[before:]
    assert metrics(after[0])["manufacturer"] == "Second" and after[0].profile == "sunspec-201"
    assert metrics(after[-1])["current_total"] == 42.0 and metrics(after[-1])["frequency"] == 60.0
    assert context.devices["pv1"].online and context.errors[("pv1", "connect")] >= 1
