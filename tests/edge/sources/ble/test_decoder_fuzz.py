"""100,000 random and mutated byte strings per characteristic decode to a Measurement (or the
characteristic's result) or a DecodeError, never another exception; what decodes keeps the
invariants the rest of the gateway relies on (finite numbers or an absent code, canonical units,
known metrics of the right category, readings the contract accepts)."""

from __future__ import annotations

import math
import random
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings, strategies as st

from edge_agent.sources.ble import decoders, gatt_ids
from edge_agent.sources.ble.measurement import DecodeError, Measurement, to_readings
from edge_agent.sources.ble.models import load_model
from hinode.contract import Reading
from hinode.vitals import ABSENT_CODES, TEXT_FIELDS, VITAL_METRICS

pytestmark = pytest.mark.timeout(120)

PER_CHARACTERISTIC = 100_000
CASES_DIR = Path(__file__).parent / "testcases"
CATEGORY_OF = {c: cat for cat, chars in gatt_ids.MEASUREMENTS.items() for c in chars}
IEEE754_MODEL = load_model("generic-ieee754-thermometer")
FEATURES = [decoders.decode_weight_feature(bytes.fromhex(h)) for h in ("00000000", "A5010000", "30000000",
                                                                        "08000000", "B8010000")]


def _seeds(characteristic: int) -> list[bytes]:
    """The valid and invalid vectors of the characteristic's testcases file: the mutations' starting points."""
    path = next(CASES_DIR.glob(f"{characteristic:04X}-*.yaml"))
    cases = yaml.safe_load(path.read_text(encoding="utf-8"))["cases"]
    return [bytes.fromhex(c["hex"]) for c in cases if c["hex"].strip()]


# Flag bits each layout defines: half the random flag bytes keep to them, to reach the optional fields.
DEFINED_FLAGS = {0x2A35: 0x1F, 0x2A1C: 0x07, 0x2A5E: 0x1F, 0x2A5F: 0x1F, 0x2A9D: 0x0F, 0x2A18: 0x1F, 0x2A37: 0x1F}


def _flags(rng: random.Random, mask: int) -> int:
    return rng.randrange(256) & (mask if rng.random() < 0.5 else 0xFF)


def _mutate(rng: random.Random, seed: bytes, mask: int) -> bytes:
    data = bytearray(seed)
    kind = rng.randrange(6)
    if kind == 0 and data:                        # flip 1-3 bits
        for _ in range(rng.randint(1, 3)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    elif kind == 1:                               # truncate
        del data[rng.randrange(len(data) + 1):]
    elif kind == 2:                               # extend
        data += rng.randbytes(rng.randint(1, 12))
    elif kind == 3 and data:                      # other flags
        data[0] = _flags(rng, mask)
    elif kind == 4 and data:                      # replace bytes
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] = rng.randrange(256)
    else:                                         # flags plus a random tail
        data = bytearray([_flags(rng, mask)]) + rng.randbytes(rng.randint(0, 30))
    return bytes(data)


def _inputs(rng: random.Random, characteristic: int):
    seeds = _seeds(characteristic)
    mask = DEFINED_FLAGS.get(characteristic, 0xFF)
    for i in range(PER_CHARACTERISTIC):
        if i % 5 == 0:
            yield rng.randbytes(rng.randint(0, 24))
        else:
            yield _mutate(rng, rng.choice(seeds), mask)


def _check_measurement(m: Measurement, characteristic: int, index: int) -> None:
    assert m.characteristic == characteristic and m.category is CATEGORY_OF[characteristic]
    for v in m.values:
        info = VITAL_METRICS[v.metric]
        assert info.category is m.category
        assert v.unit == info.unit
        if v.value is None:
            assert v.absent in ABSENT_CODES
        else:
            assert isinstance(v.value, float) and math.isfinite(v.value) and v.absent is None
    assert all(k in TEXT_FIELDS and TEXT_FIELDS[k] is m.category for k in m.text)
    assert m.device_time is None or isinstance(m.device_time, datetime)
    assert all(isinstance(s, str) and s for s in m.status)
    if index % 97 == 0:                            # the slow checks on a sample
        for r in to_readings(m, 1_764_397_200_000, visit_id="v-kit-01-20261129-1", time_source="gateway"):
            Reading.model_validate(r.model_dump())
        assert Measurement.from_json(m.to_json()) == m


@pytest.mark.parametrize("characteristic", decoders.MEASUREMENT_CHARACTERISTICS, ids=lambda c: f"{c:04X}")
def test_measurement_fuzz(characteristic):
    rng = random.Random(characteristic)
    outcomes: Counter = Counter()
    started = time.perf_counter()
    for index, data in enumerate(_inputs(rng, characteristic)):
        model = IEEE754_MODEL if characteristic == gatt_ids.TEMPERATURE_MEASUREMENT and index % 2 else None
        context = decoders.DecodeContext(weight_resolution=FEATURES[index % len(FEATURES)])
        try:
            m = decoders.decode(characteristic, data, model=model, context=context)
        except DecodeError as exc:
            assert exc.code != "internal", f"decoder bug on {data.hex()}: {exc.__cause__!r}"
            outcomes[exc.code] += 1
            continue
        outcomes["ok"] += 1
        _check_measurement(m, characteristic, index)
    assert sum(outcomes.values()) == PER_CHARACTERISTIC
    assert outcomes["ok"] > PER_CHARACTERISTIC // 10, outcomes       # the mutations reach the decoders' depths
    assert outcomes["too_short"] > 0, outcomes
    print(f"0x{characteristic:04X}: {dict(outcomes)} in {time.perf_counter() - started:.2f} s")


OTHER_DECODERS = {
    gatt_ids.GLUCOSE_MEASUREMENT_CONTEXT: decoders.decode_glucose_context_full,
    gatt_ids.RECORD_ACCESS_CONTROL_POINT: decoders.decode_racp,
    gatt_ids.CURRENT_TIME: decoders.decode_current_time,
    gatt_ids.WEIGHT_SCALE_FEATURE: decoders.decode_weight_feature,
}


@pytest.mark.parametrize("characteristic", list(OTHER_DECODERS), ids=lambda c: f"{c:04X}")
def test_other_characteristics_fuzz(characteristic):
    decode = OTHER_DECODERS[characteristic]
    rng = random.Random(characteristic)
    outcomes: Counter = Counter()
    for data in _inputs(rng, characteristic):
        try:
            result = decode(data)
        except DecodeError as exc:
            outcomes[exc.code] += 1
            continue
        outcomes["ok"] += 1
        for value in vars(result).values():
            assert not isinstance(value, float) or math.isfinite(value)
    assert outcomes["ok"] > 0 and outcomes["too_short"] > 0, outcomes


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(characteristic=st.sampled_from(decoders.MEASUREMENT_CHARACTERISTICS + (0x2A19,)),
       data=st.binary(max_size=40), ieee754=st.booleans())
def test_any_bytes_any_characteristic_is_a_measurement_or_a_decode_error(characteristic, data, ieee754):
    try:
        m = decoders.decode(characteristic, data, model=IEEE754_MODEL if ieee754 else None)
    except DecodeError as exc:
        assert exc.code != "internal"
        return
    _check_measurement(m, characteristic, 0)
