"""Property tests of the Modbus register codec: the edge decodes with it, the simulators
encode with it, so for every data type and every byte/word order a value must survive
``encode`` -> registers -> ``decode`` (exactly for raw values, within float tolerance
once a profile's scale and offset apply)."""

from __future__ import annotations

import math
import struct

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from device_profiles.codec import decode_raw, decode_register, encode_raw, encode_register
from device_profiles.schema import REGISTER_COUNT, DataType, Order, Register

pytestmark = pytest.mark.timeout(120)

SETTINGS = settings(max_examples=200, deadline=None)
ORDERS = st.sampled_from([(b, w) for b in Order for w in Order])
INT_RANGE = {DataType.INT16: (-2**15, 2**15 - 1), DataType.UINT16: (0, 2**16 - 1),
             DataType.INT32: (-2**31, 2**31 - 1), DataType.UINT32: (0, 2**32 - 1),
             DataType.INT64: (-2**63, 2**63 - 1), DataType.UINT64: (0, 2**64 - 1)}
FLOAT_WIDTH = {DataType.FLOAT32: 32, DataType.FLOAT64: 64}


def ints_with_bounds(dtype: DataType):
    lo, hi = INT_RANGE[dtype]
    return st.one_of(st.sampled_from([lo, lo + 1, -1 if lo < 0 else 0, 0, 1, hi - 1, hi]), st.integers(lo, hi))


def registers_ok(words: list[int], dtype: DataType) -> None:
    assert len(words) == REGISTER_COUNT[dtype]
    assert all(isinstance(w, int) and 0 <= w <= 0xFFFF for w in words), words


@SETTINGS
@given(st.sampled_from(list(INT_RANGE)).flatmap(lambda t: st.tuples(st.just(t), ints_with_bounds(t))), ORDERS)
def test_integers_round_trip_at_every_order_including_their_bounds(typed, orders):
    dtype, value = typed
    words = encode_raw(value, dtype, *orders)
    registers_ok(words, dtype)
    assert decode_raw(words, dtype, *orders) == value


@SETTINGS
@given(st.sampled_from(list(FLOAT_WIDTH)).flatmap(
    lambda t: st.tuples(st.just(t), st.floats(width=FLOAT_WIDTH[t], allow_nan=True, allow_infinity=True))), ORDERS)
def test_floats_round_trip_bit_exact_with_nan_and_infinity(typed, orders):
    dtype, value = typed
    words = encode_raw(value, dtype, *orders)
    registers_ok(words, dtype)
    decoded = decode_raw(words, dtype, *orders)
    if math.isnan(value):
        assert math.isnan(decoded)
    else:
        assert decoded == value and math.copysign(1, decoded) == math.copysign(1, value)


@SETTINGS
@given(st.integers(1, 20), st.text(alphabet=st.characters(min_codepoint=1, max_codepoint=127), max_size=44), ORDERS)
def test_ascii_strings_round_trip_cut_to_their_register_length_and_trimmed(length, text, orders):
    words = encode_raw(text, DataType.STRING, *orders, length=length)
    assert len(words) == length and all(0 <= w <= 0xFFFF for w in words)
    # a device pads with NUL or blanks; the reader keeps what is before the first NUL, trimmed
    assert decode_raw(words, DataType.STRING, *orders) == text[:2 * length].strip()


@SETTINGS
@given(st.booleans(), st.integers(0, 0xFFFF), st.integers(0, 15))
def test_bits_round_trip_and_a_bit_index_reads_exactly_that_bit(value, word, bit):
    assert decode_raw(encode_raw(value, DataType.BITS), DataType.BITS) is value
    assert decode_raw([word], DataType.BITS, bit=bit) is bool(word & (1 << bit))


@SETTINGS
@given(st.sampled_from(list(INT_RANGE) + list(FLOAT_WIDTH)), ORDERS,
       st.lists(st.integers(0, 0xFFFF), min_size=4, max_size=4))
def test_any_register_content_decodes_to_a_value_or_none_never_an_exception(dtype, orders, words):
    register = Register(metric="m", address=0, type=dtype, byte_order=orders[0], word_order=orders[1])
    value = decode_register(register, words[:REGISTER_COUNT[dtype]])
    assert value is None or (isinstance(value, (int, float)) and math.isfinite(value))


SCALES = st.sampled_from([1.0, 0.1, 0.01, 0.001, 0.5, 10.0, 1000.0, -1.0, -0.1])
OFFSETS = st.sampled_from([0.0, -40.0, 273.15, 1000.5, -0.001])


def scaled_register(dtype: DataType, orders, scale: float, offset: float) -> Register:
    return Register(metric="m", address=0, type=dtype, byte_order=orders[0], word_order=orders[1],
                    scale=scale, offset=offset)


@SETTINGS
@given(st.sampled_from(list(INT_RANGE)).flatmap(lambda t: st.tuples(st.just(t), ints_with_bounds(t))),
       ORDERS, SCALES, OFFSETS)
@example((DataType.INT64, 2**63 - 1), (Order.BIG, Order.BIG), 1.0, 0.0)      # what fit_to_register saturates to
@example((DataType.UINT64, 2**64 - 1), (Order.LITTLE, Order.LITTLE), 1.0, 0.0)
def test_scaled_integers_round_trip_within_float_tolerance(typed, orders, scale, offset):
    """A value a device can hold (raw in the type's range, scaled) comes back within float tolerance."""
    dtype, raw = typed
    register = scaled_register(dtype, orders, scale, offset)
    value = raw * scale + offset
    words = encode_register(register, value)
    registers_ok(words, dtype)
    decoded = decode_register(register, words)
    assert decoded == pytest.approx(value, rel=1e-9, abs=abs(scale) * 0.5 + 1e-9)


@SETTINGS
@given(st.sampled_from(list(FLOAT_WIDTH)), ORDERS, SCALES, OFFSETS, st.floats(-1e6, 1e6, allow_nan=False))
def test_scaled_floats_round_trip_within_their_precision(dtype, orders, scale, offset, value):
    register = scaled_register(dtype, orders, scale, offset)
    words = encode_register(register, value)
    registers_ok(words, dtype)
    rel = 1e-6 if dtype is DataType.FLOAT32 else 1e-12
    assert decode_register(register, words) == pytest.approx(value, rel=rel, abs=rel * (abs(offset) + 1))


@SETTINGS
@given(st.sampled_from(list(FLOAT_WIDTH)), ORDERS, st.sampled_from([math.nan, math.inf, -math.inf]))
def test_a_device_reporting_nan_or_infinity_gives_no_value(dtype, orders, bad):
    register = scaled_register(dtype, orders, 0.1, 5.0)
    assert decode_register(register, encode_raw(bad, dtype, *orders)) is None


def test_a_wrong_register_count_is_a_decode_error_not_garbage():
    from device_profiles.codec import DecodeError
    for dtype, count in REGISTER_COUNT.items():
        if dtype is DataType.BITS:
            continue
        with pytest.raises(DecodeError):
            decode_raw([0] * (count + 1), dtype)
    with pytest.raises(DecodeError):
        decode_raw([0x1_0000, 0], DataType.UINT32)
    assert struct.calcsize(">f") == 4  # the codec's float32 is IEEE single precision
