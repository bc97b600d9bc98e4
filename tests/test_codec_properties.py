"""Properties of encode/decode for every built-in format, against the written rule."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from prodigy_sim.errors import EncodeError, FormatError
from prodigy_sim.numerics import decode, encode, get_format
from prodigy_sim.testing.numerics_oracle import ref_encode
from tests.strategies import float32_any, float32_near, narrow_format_names

NAMES = narrow_format_names()
POLICIES = ("saturate", "nonsaturating")


def _policies(spec):
    return POLICIES if (spec.inf_codes or spec.nan_codes) else ("saturate",)


@pytest.mark.parametrize("name", NAMES)
@given(data=st.data())
def test_encode_is_the_written_rounding_rule(name, data):
    """decode(encode(x)) is the nearest value, ties to the even code, overflow after rounding:
    checked against an independent Fraction-based reference, on float32 and float64 input."""
    spec = get_format(name)
    x = data.draw(st.one_of(float32_any(), float32_near(spec)))
    for policy in _policies(spec):
        want = ref_encode(x, spec, policy)
        for arr in (np.array([x], np.float32), np.array([x], np.float64)):
            if want is None:
                with pytest.raises(EncodeError):
                    encode(arr, spec, policy)
            else:
                assert int(encode(arr, spec, policy)[0]) == want, (x, policy, arr.dtype)


@pytest.mark.parametrize("name", NAMES)
@given(x=st.floats(allow_nan=False, allow_infinity=False, width=64))
def test_float64_is_rounded_once(name, x):
    spec = get_format(name)
    assert int(encode(np.array([x]), spec, "saturate")[0]) == ref_encode(x, spec, "saturate")


@pytest.mark.parametrize("name", NAMES)
@given(a=st.floats(-1e6, 1e6, width=32), b=st.floats(-1e6, 1e6, width=32))
def test_encode_is_monotonic(name, a, b):
    spec = get_format(name)
    lo, hi = min(a, b), max(a, b)
    x = np.array([lo, hi], dtype=np.float32)
    if not spec.signed and np.signbit(lo) and not spec.has_zero:
        return  # negative numbers have no code in an unsigned format without zero
    v = decode(encode(x, spec, "saturate"), spec)
    assert v[0] <= v[1]


@pytest.mark.parametrize("name", [n for n in NAMES if get_format(n).signed])
@given(x=st.floats(0, 1e6, width=32))
def test_encode_is_sign_symmetric(name, x):
    spec = get_format(name)
    pos = decode(encode(np.array([x], np.float32), spec), spec)[0]
    neg = decode(encode(np.array([-x], np.float32), spec), spec)[0]
    if spec.kind == "int" and x > spec.max_finite:
        assert neg == -spec.max_finite - (1 if spec.bits > 2 else 0) or neg == -pos
    else:
        assert neg == -pos


@pytest.mark.parametrize("name", NAMES)
def test_every_representable_value_round_trips(name):
    spec = get_format(name)
    codes = np.arange(spec.n_codes, dtype=np.uint8)
    vals = decode(codes, spec)
    finite = np.isfinite(vals)
    back = encode(vals[finite], spec, "saturate")
    again = decode(back, spec)
    np.testing.assert_array_equal(again, vals[finite])  # equal values (+0 == -0 in fnuz)
    np.testing.assert_array_equal(np.signbit(again), np.signbit(vals[finite]))
    if spec.nan_codes:
        assert int(encode(np.array([np.nan], np.float32), spec)[0]) in spec.nan_codes
    else:
        with pytest.raises(EncodeError, match="no NaN code"):
            encode(np.array([1.0, np.nan], np.float32), spec)


@pytest.mark.parametrize("name", NAMES)
def test_lut_and_exact_kernels_agree_at_every_decision_point(name):
    """The float32 table kernel equals the float64 binary-search kernel at every bucket's
    threshold and its neighbours (the only places the table could be wrong)."""
    from prodigy_sim.numerics._codec import _lut

    spec = get_format(name)
    for policy in _policies(spec):
        lut = _lut(spec, policy)
        assert lut is not None
        t = lut.threshold.astype(np.int64)
        pts = np.concatenate([t - 1, t, t + 1, np.arange(1 << 16) << 16])
        bits = np.clip(pts, 0, 2**32 - 1).astype(np.uint32)
        x32 = bits.view(np.float32)
        if not spec.nan_codes:
            x32 = x32[~np.isnan(x32)]
        if not spec.signed and not spec.has_zero and not spec.nan_codes:
            x32 = x32[~np.signbit(x32)]
        with np.errstate(invalid="ignore"):  # signalling NaN patterns
            x64 = x32.astype(np.float64)
        assert np.array_equal(encode(x32, spec, policy), encode(x64, spec, policy))


def test_nonsaturating_needs_a_special_code():
    with pytest.raises(FormatError, match="no Inf or NaN code"):
        encode(np.ones(2, np.float32), "tai4", overflow="nonsaturating")


def test_decode_refuses_codes_out_of_range():
    with pytest.raises(EncodeError, match="0..15"):
        decode(np.array([3, 16]), "tai4")


def test_tai_rounding_is_linear_nearest_ties_to_even_code():
    # tai4 codes 0x6 = 0.5 (even), 0x7 = 1 (odd): 0.75 is a tie -> 0.5; just above -> 1
    x = np.array([0.75, np.nextafter(np.float32(0.75), np.float32(1)), 1.5, 0.0078125,
                  0.0078126], np.float32)
    assert decode(encode(x, "tai4"), "tai4").tolist() == [0.5, 1.0, 1.0, 0.0, 0.015625]
    # tai2 has no zero: everything small becomes +-0.5 (zeros come from the sparsity mask)
    y = np.array([0.0, -0.0, 0.7, 0.75, 0.76, -3.0], np.float32)
    assert decode(encode(y, "tai2"), "tai2").tolist() == [0.5, -0.5, 0.5, 0.5, 1.0, -1.0]
    assert math.isnan(decode(np.array([2]), "ternary")[0])
