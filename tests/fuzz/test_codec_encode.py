"""Property tests of ``encode_write``, the strict inverse of ``decode_register`` a write command
uses: for every numeric type, scale/offset and byte/word order, encoding a value the register
can hold and decoding the words gives the value back, and the words are what the decoder's
own byte handling expects; anything the register cannot hold exactly is refused, never
rounded or saturated."""

from __future__ import annotations

import math

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from device_profiles.codec import EncodeError, decode_register, encode_raw, encode_write
from device_profiles.schema import REGISTER_COUNT, DataType, Order, Register, RegisterFunction

pytestmark = pytest.mark.timeout(120)

SETTINGS = settings(max_examples=200, deadline=None)
ORDERS = st.sampled_from([(b, w) for b in Order for w in Order])
INT_RANGE = {DataType.INT16: (-2**15, 2**15 - 1), DataType.UINT16: (0, 2**16 - 1),
             DataType.INT32: (-2**31, 2**31 - 1), DataType.UINT32: (0, 2**32 - 1),
             DataType.INT64: (-2**63, 2**63 - 1), DataType.UINT64: (0, 2**64 - 1)}
FLOAT_WIDTH = {DataType.FLOAT32: 32, DataType.FLOAT64: 64}
SCALES = st.sampled_from([1.0, 0.1, 0.01, 0.001, 0.5, 10.0, 1000.0, -1.0, -0.1])
OFFSETS = st.sampled_from([0.0, -40.0, 273.15, 1000.5, -0.001])
SCALED_RAW_LIMIT = 2**48       # beyond ~2**52 a scaled value no longer names one raw step


def writable(dtype: DataType, orders=(Order.BIG, Order.BIG), scale: float = 1.0, offset: float = 0.0,
             **limits) -> Register:
    return Register(metric="setpoint", address=0, type=dtype, byte_order=orders[0], word_order=orders[1],
                    scale=scale, offset=offset, writable=True, **limits)


def ints_with_bounds(dtype: DataType, limit: int | None = None):
    lo, hi = INT_RANGE[dtype]
    if limit is not None:
        lo, hi = max(lo, -limit), min(hi, limit)
    return st.one_of(st.sampled_from([lo, lo + 1, -1 if lo < 0 else 0, 0, 1, hi - 1, hi]), st.integers(lo, hi))


def integer_types(limit: int | None = None):
    return st.sampled_from(list(INT_RANGE)).flatmap(lambda t: st.tuples(st.just(t), ints_with_bounds(t, limit)))


def words_ok(words: list[int], dtype: DataType) -> None:
    assert len(words) == REGISTER_COUNT[dtype]
    assert all(isinstance(w, int) and 0 <= w <= 0xFFFF for w in words), words


@SETTINGS
@given(integer_types(), ORDERS)
def test_unscaled_integers_round_trip_exactly_up_to_their_bounds(typed, orders):
    dtype, value = typed
    register = writable(dtype, orders)
    words = encode_write(register, value)
    words_ok(words, dtype)
    assert words == encode_raw(value, dtype, *orders)
    assert decode_register(register, words) == value
    if abs(value) < 2**53:                          # the same number arriving as a JSON float
        assert encode_write(register, float(value)) == words


@SETTINGS
@given(integer_types(SCALED_RAW_LIMIT), ORDERS, SCALES, OFFSETS)
@example((DataType.UINT32, 1234), (Order.BIG, Order.LITTLE), 0.01, 0.0)       # 12.34 / 0.01 = 1233.999...
@example((DataType.INT16, -400), (Order.LITTLE, Order.BIG), 0.1, -40.0)
def test_scaled_integers_come_back_as_the_same_value_from_the_same_raw_step(typed, orders, scale, offset):
    dtype, raw = typed
    register = writable(dtype, orders, scale, offset)
    value = raw * scale + offset                    # exactly what decode_register computes for raw
    words = encode_write(register, value)
    words_ok(words, dtype)
    assert words == encode_raw(raw, dtype, *orders)
    assert decode_register(register, words) == value


@SETTINGS
@given(integer_types(2**40), ORDERS, SCALES, OFFSETS)
def test_a_value_between_two_steps_is_refused_not_rounded(typed, orders, scale, offset):
    dtype, raw = typed
    register = writable(dtype, orders, scale, offset)
    with pytest.raises(EncodeError, match="is not a whole number"):
        encode_write(register, (raw + 0.5) * scale + offset)


@SETTINGS
@given(st.sampled_from(list(INT_RANGE)), ORDERS, st.sampled_from([-1, 1]), st.integers(1, 2**70))
def test_an_integer_outside_its_type_is_refused_not_saturated(dtype, orders, side, beyond):
    lo, hi = INT_RANGE[dtype]
    value = hi + beyond if side > 0 else lo - beyond
    with pytest.raises(EncodeError, match=f"out of range for {dtype}"):
        encode_write(writable(dtype, orders), value)


@SETTINGS
@given(st.sampled_from([DataType.INT16, DataType.UINT16, DataType.INT32, DataType.UINT32]), ORDERS, SCALES, OFFSETS,
       st.booleans())
def test_a_scaled_value_whose_raw_step_is_outside_the_type_is_refused(dtype, orders, scale, offset, above):
    lo, hi = INT_RANGE[dtype]
    register = writable(dtype, orders, scale, offset)
    with pytest.raises(EncodeError, match=f"out of range for {dtype}"):
        encode_write(register, (hi + 1 if above else lo - 1) * scale + offset)


@SETTINGS
@given(st.sampled_from(list(FLOAT_WIDTH)).flatmap(
    lambda t: st.tuples(st.just(t), st.floats(width=FLOAT_WIDTH[t], allow_nan=False, allow_infinity=False))), ORDERS)
def test_floats_the_type_holds_round_trip_bit_exact(typed, orders):
    dtype, value = typed
    register = writable(dtype, orders)
    words = encode_write(register, value)
    words_ok(words, dtype)
    decoded = decode_register(register, words)
    assert decoded == value and math.copysign(1, decoded) == math.copysign(1, value)


@SETTINGS
@given(st.sampled_from(list(FLOAT_WIDTH)), ORDERS, SCALES, OFFSETS, st.floats(-1e6, 1e6, allow_nan=False))
def test_scaled_floats_round_trip_within_their_precision(dtype, orders, scale, offset, value):
    register = writable(dtype, orders, scale, offset)
    words = encode_write(register, value)
    words_ok(words, dtype)
    rel = 1e-6 if dtype is DataType.FLOAT32 else 1e-12
    assert decode_register(register, words) == pytest.approx(value, rel=rel, abs=rel * (abs(offset) + 1))


@SETTINGS
@given(ORDERS, st.floats(3.5e38, 1e308), st.booleans())
def test_a_float32_beyond_its_range_is_refused_not_sent_as_infinity(orders, magnitude, negative):
    with pytest.raises(EncodeError, match="out of range for float32"):
        encode_write(writable(DataType.FLOAT32, orders), -magnitude if negative else magnitude)


@SETTINGS
@given(st.sampled_from(list(INT_RANGE) + list(FLOAT_WIDTH)), st.sampled_from([math.nan, math.inf, -math.inf]),
       SCALES, OFFSETS)
def test_nan_and_infinity_are_refused_for_every_type(dtype, bad, scale, offset):
    with pytest.raises(EncodeError, match="is not a finite number"):
        encode_write(writable(dtype, scale=scale, offset=offset), bad)


@SETTINGS
@given(st.sampled_from(list(INT_RANGE) + list(FLOAT_WIDTH)), st.integers(-1000, 1000), st.integers(0, 500),
       st.integers(-2000, 2000))
def test_min_and_max_bound_the_engineering_value(dtype, low, width, value):
    lo, hi = INT_RANGE.get(dtype, (-2**31, 2**31))
    low = max(low, lo)
    high = min(low + width, hi)
    register = writable(dtype, min=low, max=high)
    if value < low or value > high:
        with pytest.raises(EncodeError, match=f"(below min {low}|above max {high}) of setpoint"):
            encode_write(register, value)
    else:
        assert decode_register(register, encode_write(register, value)) == value


@SETTINGS
@given(st.sampled_from([RegisterFunction.COIL, RegisterFunction.HOLDING]),
       st.sampled_from([True, False, 1, 0, 1.0, 0.0]))
def test_booleans_encode_to_one_bit_for_coils_and_whole_register_flags(function, value):
    register = Register(metric="relay", address=0, type=DataType.BITS, function=function, writable=True)
    words = encode_write(register, value)
    assert words == [1 if value else 0]
    assert decode_register(register, words) is bool(value)


@SETTINGS
@given(st.one_of(st.integers().filter(lambda v: v not in (0, 1)), st.text(max_size=5), st.none(),
                 st.floats().filter(lambda v: v not in (0, 1))))
def test_anything_else_is_not_a_boolean(value):
    register = Register(metric="relay", address=0, type=DataType.BITS, function=RegisterFunction.COIL, writable=True)
    with pytest.raises(EncodeError, match="is not a boolean"):
        encode_write(register, value)


@SETTINGS
@given(st.sampled_from(list(INT_RANGE) + list(FLOAT_WIDTH)), st.one_of(st.booleans(), st.text(max_size=5), st.none()))
def test_booleans_strings_and_none_are_not_numbers(dtype, value):
    with pytest.raises(EncodeError, match="is not a number"):
        encode_write(writable(dtype), value)
