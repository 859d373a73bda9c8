"""IEEE-11073 SFLOAT/FLOAT: the reference vectors, every special value, the precision kept from the
exponent, and the exponent read as two's complement (not the bias-8 bug of the bluetooth-sig package)."""

from __future__ import annotations

import math
import random
import struct

import pytest

from edge_agent.sources.ble.ieee11073 import Number, decode_float, decode_ieee754_float32, decode_sfloat, \
    encode_float, encode_sfloat, ieee754_bytes


@pytest.mark.parametrize("raw,value,decimals", [
    (0xF014, 2.0, 1),          # reference B1: "2.0"
    (0xE0C8, 2.0, 2),          # "2.00"
    (0x04D2, 1234.0, 0),
    (0x0B2E, -1234.0, 0),
    (0x0078, 120.0, 0),        # a real cuff's 120 mmHg; bluetooth-sig 0.6.0 gives 1.2e-06
    (0xF0BD, 18.9, 1),         # bluetooth-sig gives 1.89e9
    (0x8001, 1e-8, 8),         # lowest exponent -8
    (0x7001, 1e7, 0),          # highest exponent +7
    (0x0000, 0.0, 0),
    (0x07FD, 2045.0, 0),       # largest normal mantissa
    (0x0803, -2045.0, 0),      # -2045; -2046 (0x0802) is -INF
])
def test_sfloat_values(raw, value, decimals):
    assert decode_sfloat(raw) == Number(value, None, decimals)


@pytest.mark.parametrize("raw,absent", [
    (0x07FF, "not-a-number"), (0x0800, "error"), (0x07FE, "positive-infinity"), (0x0802, "negative-infinity"),
    (0x0801, "error"),
    (0xF7FF, "not-a-number"),   # the mantissa decides, whatever the exponent
    (0x3800, "error"),
])
def test_sfloat_special_values(raw, absent):
    assert decode_sfloat(raw) == Number(None, absent)


@pytest.mark.parametrize("raw,value,decimals", [
    (0xFF000014, 2.0, 1), (0x00FFFB2E, -1234.0, 0), (0xFE000EB0, 37.6, 2), (0x02000001, 100.0, 0),
    (0x80000001, 1e-128, 128), (0x7F000001, 1e127, 0),
])
def test_float_values(raw, value, decimals):
    got = decode_float(raw)
    assert got.value == pytest.approx(value, rel=1e-12) and got.decimals == decimals and got.absent is None


@pytest.mark.parametrize("raw,absent", [
    (0x007FFFFF, "not-a-number"), (0x00800000, "error"), (0x007FFFFE, "positive-infinity"),
    (0x00800002, "negative-infinity"), (0x00800001, "error"), (0xFE7FFFFF, "not-a-number"),
])
def test_float_special_values(raw, absent):
    assert decode_float(raw) == Number(None, absent)


def test_every_sfloat_decodes_to_a_finite_number_or_a_special_and_encodes_back():
    for raw in range(0x10000):
        number = decode_sfloat(raw)
        if number.value is None:
            assert number.absent in ("not-a-number", "error", "positive-infinity", "negative-infinity")
            continue
        assert math.isfinite(number.value)
        again = decode_sfloat(encode_sfloat(number.value, number.decimals))
        assert again.value == pytest.approx(number.value, rel=1e-12, abs=1e-12), hex(raw)


def test_random_floats_round_trip():
    rng = random.Random(11073)
    for _ in range(20_000):
        raw = rng.getrandbits(32)
        number = decode_float(raw)
        if number.value is None:
            continue
        assert math.isfinite(number.value)
        again = decode_float(encode_float(number.value, number.decimals))
        assert again.value == pytest.approx(number.value, rel=1e-9), hex(raw)


def test_encoding_specials_and_limits():
    assert encode_sfloat(None, special="nres") == 0x0800
    assert encode_sfloat(None) == 0x07FF
    assert encode_float(None, special="-inf") == 0x00800002
    assert encode_sfloat(120.0) == 0x0078
    assert encode_sfloat(37.6, 1) == 0xF178
    assert decode_sfloat(encode_sfloat(1_000_000.0)).value == 1_000_000.0   # mantissa too big: exponent grows
    with pytest.raises(ValueError):
        encode_sfloat(1e12)
    with pytest.raises(ValueError):
        encode_sfloat(math.inf)


@pytest.mark.parametrize("value,expected,decimals", [
    (37.6, 37.6, 1), (36.85, 36.85, 2), (100.0, 100.0, 0), (-0.5, -0.5, 1), (3.4028235e38, 3.4028235e38, 0),
])
def test_ieee754_float32_keeps_the_shortest_decimal(value, expected, decimals):
    got = decode_ieee754_float32(struct.pack("<f", value))
    assert got.value == pytest.approx(expected, rel=1e-7) and got.decimals == decimals


@pytest.mark.parametrize("special,absent", [("nan", "not-a-number"), ("+inf", "positive-infinity"),
                                            ("-inf", "negative-infinity")])
def test_ieee754_specials(special, absent):
    assert decode_ieee754_float32(ieee754_bytes(None, special)) == Number(None, absent)
