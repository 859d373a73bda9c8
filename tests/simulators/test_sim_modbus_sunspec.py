"""SunSpec mode read back raw: marker, model chain, model 203 points and "not implemented" values."""

from __future__ import annotations

import pytest
from pymodbus.client import AsyncModbusTcpClient

from simulators.modbus import ModbusSimulator

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

# Offsets inside model 203 after its ID and L registers, from sunspec/models model_203.json.
A, APH_A, A_SF = 0, 1, 4
PHV_A, PHV_B, PHV_C, PPV, V_SF = 6, 7, 8, 9, 13
HZ, HZ_SF = 14, 15
W, W_A, W_SF = 16, 17, 20
VAR, VAR_SF = 26, 30
PF, PF_SF = 31, 35
TOT_WH_EXP, TOT_WH_IMP, TOT_WH_IMP_A, TOT_WH_SF = 36, 44, 46, 52
TOT_VAH_SF, TOT_VARH_SF, EVT = 69, 102, 103


def int16(word: int) -> int:
    return word - 0x10000 if word >= 0x8000 else word


def text(words: list[int]) -> str:
    return b"".join(w.to_bytes(2, "big") for w in words).rstrip(b"\x00").decode()


async def read_block(client, address: int, count: int, unit: int) -> list[int]:
    words: list[int] = []
    while count > 0:
        n = min(count, 125)
        response = await client.read_holding_registers(address, count=n, device_id=unit)
        assert not response.isError(), response
        words += response.registers
        address, count = address + n, count - n
    return words


async def walk_models(client, base: int, unit: int) -> list[tuple[int, int, int]]:
    """(model id, length, address of first point) until the end model, like a SunSpec client."""
    assert await read_block(client, base, 2, unit) == [0x5375, 0x6E53]       # "SunS"
    models, address = [], base + 2
    while True:
        model_id, length = await read_block(client, address, 2, unit)
        models.append((model_id, length, address + 2))
        if model_id == 0xFFFF:
            return models
        address += 2 + length


@pytest.mark.parametrize("base", [40000, 0, 50000])
async def test_sunspec_chain_at_each_base_address(base):
    async with ModbusSimulator(meters=3, port=0, interval=60, sunspec=True, sunspec_base=base) as sim:
        client = AsyncModbusTcpClient("127.0.0.1", port=sim.port, timeout=0.5, retries=0)
        await client.connect()
        try:
            models = await walk_models(client, base, unit=2)
            common = await read_block(client, models[0][2], 66, unit=2)
            other_base = 40000 if base != 40000 else 0
            probe = await client.read_holding_registers(other_base, count=2, device_id=2)
        finally:
            client.close()
    assert [(m, length) for m, length, _ in models] == [(1, 66), (203, 105), (0xFFFF, 0)]
    assert models[0][2] == base + 4 and models[1][2] == base + 4 + 66 + 2
    assert text(common[0:16]) == "hinode"                 # Mn
    assert text(common[48:64]) == "HSM-00002"              # SN
    assert common[64] == 2                                 # DA = unit id
    assert common[65] == 0x8000                            # Pad
    assert probe.isError() and probe.exception_code == 2   # nothing outside the SunSpec block


async def test_model_203_points_scale_factors_and_not_implemented_values():
    async with ModbusSimulator(meters=2, port=0, interval=60, sunspec=True) as sim:
        client = AsyncModbusTcpClient("127.0.0.1", port=sim.port, timeout=0.5, retries=0)
        await client.connect()
        try:
            models = await walk_models(client, 40000, unit=1)
            meter = await read_block(client, models[1][2], 105, unit=1)
        finally:
            client.close()
        expected = sim.values(1)
        points = sim.sunspec_points(1)

    def scaled(offset: int, sf_offset: int) -> float:
        sf = int16(meter[sf_offset])
        return round(int16(meter[offset]) * 10.0 ** sf, 6)

    assert int16(meter[V_SF]) == -1 and int16(meter[A_SF]) == -1 and int16(meter[HZ_SF]) == -2
    assert scaled(PHV_A, V_SF) == pytest.approx(expected["voltage_l1"])
    assert scaled(PHV_C, V_SF) == pytest.approx(expected["voltage_l3"])
    assert 225 < scaled(PHV_B, V_SF) < 235
    assert 390 < scaled(PPV, V_SF) < 407                   # line-to-line = sqrt(3) x 230
    assert scaled(APH_A, A_SF) == pytest.approx(expected["current_l1"])
    assert scaled(A, A_SF) == pytest.approx(sum(expected[f"current_l{n}"] for n in (1, 2, 3)), abs=0.25)
    assert scaled(W, W_SF) == pytest.approx(expected["power_total"])
    assert scaled(W_A, W_SF) == pytest.approx(expected["power_l1"])
    assert scaled(HZ, HZ_SF) == pytest.approx(expected["frequency"])
    assert scaled(PF, PF_SF) / 100 == pytest.approx(expected["power_factor"])      # model 203 PF is in percent
    imported_wh = (meter[TOT_WH_IMP] << 16 | meter[TOT_WH_IMP + 1]) * 10.0 ** int16(meter[TOT_WH_SF])
    assert imported_wh / 1000 == pytest.approx(expected["energy_import"])
    assert imported_wh > 0
    # Not implemented: reactive power (int16 and sunssf 0x8000), export and per-phase energies (acc32 0).
    assert meter[VAR] == 0x8000 and meter[VAR_SF] == 0x8000
    assert meter[TOT_VAH_SF] == 0x8000 and meter[TOT_VARH_SF] == 0x8000
    assert meter[TOT_WH_EXP:TOT_WH_EXP + 2] == [0, 0] and meter[TOT_WH_IMP_A:TOT_WH_IMP_A + 2] == [0, 0]
    assert meter[EVT:EVT + 2] == [0, 0]
    assert points["VAR"] is None and points["TotWhExp"] is None and points["TotWhImpPhA"] is None
    assert points["PhVphA"] == expected["voltage_l1"]
