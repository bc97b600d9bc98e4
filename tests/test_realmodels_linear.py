"""Tests of the exact quantized linear layer (prodigy_sim.realmodels._linear), no checkpoints.

The oracle is a written-out Fraction computation of "quantize x to FP8, sum the exact products of
dequantized values, round once to float32 (nearest even)".
"""

from __future__ import annotations

import dataclasses
import math
from fractions import Fraction

import numpy as np
import pytest

from prodigy_sim.errors import ConfigError
from prodigy_sim.numerics import decode, quantize
from prodigy_sim.realmodels import (
    act_scale_for,
    dequantize_activations,
    linear_q,
    prepare_weight,
    quantize_activations,
)
from prodigy_sim.realmodels._linear import _round_int_to_f32, dequantize_weight

F32_MAX = Fraction(float(np.finfo(np.float32).max))


def round_fraction_to_f32(v: Fraction) -> np.float32:
    """Nearest float32 to the exact rational ``v``, ties to even (independent of the code)."""
    if v == 0:
        return np.float32(0.0)
    if abs(v) >= F32_MAX + Fraction(2) ** 103:  # at or beyond the midpoint to 2^128: overflow
        return np.float32(math.copysign(math.inf, v))
    with np.errstate(over="ignore"):
        guess = np.float32(float(v))  # within one float32 ulp of the answer
        cands = [np.nextafter(guess, np.float32(-np.inf)), guess,
                 np.nextafter(guess, np.float32(np.inf))]
    cands = [c for c in cands if np.isfinite(c)]
    best = min(cands, key=lambda c: (abs(Fraction(float(c)) - v),
                                     int(np.float32(c).view(np.uint32)) & 1))
    return np.float32(math.copysign(float(best), v)) if best == 0 else best


def reference_linear(x, w_hat, scale):
    codes = quantize_activations(x, scale)
    a = decode(codes, "float8_e4m3fn")
    out = np.empty((x.shape[0], w_hat.shape[0]), dtype=np.float32)
    for t in range(x.shape[0]):
        for i in range(w_hat.shape[0]):
            exact = sum(Fraction(float(av)) * Fraction(float(wv))
                        for av, wv in zip(a[t], w_hat[i], strict=True))
            out[t, i] = round_fraction_to_f32(exact * Fraction(scale))
    return out


@pytest.mark.parametrize("fmt", ["float8_e4m3fn", "tai4", "tai2", "float4_e2m1fn", "int4"])
@pytest.mark.parametrize("sparsity", [None, "8:4"])
def test_linear_q_matches_exact_reference(fmt, sparsity):
    rng = np.random.default_rng(7)
    w = (rng.standard_normal((6, 64)) * np.exp(rng.standard_normal((6, 64)))).astype(np.float32)
    x = (rng.standard_normal((4, 64)) * 5).astype(np.float32)
    q = quantize(w, fmt, block=32, sparsity=sparsity)
    scale = act_scale_for(float(np.abs(x).max()))
    got = linear_q(x, prepare_weight(q), scale)
    want = reference_linear(x, q.dequantize(), scale)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, want)


def test_wide_exponent_rows_take_the_exact_integer_path():
    # A row mixing 2^40 and 2^-40: the float64 bound fails, the Python-int path must be exact.
    w = np.zeros((2, 32), dtype=np.float32)
    w[0, 0], w[0, 1], w[0, 2] = 2.0**40, 2.0**-40, -(2.0**40)
    w[1, :] = 1.0
    x = np.zeros((1, 32), dtype=np.float32)
    x[0, :3] = [448.0, 448.0, 448.0]
    pw = prepare_weight(w)
    assert pw.row_absmax[0] * 448 * 2**9 * 3 >= 2.0**53
    got = linear_q(x, pw, 1.0)
    assert got[0, 0] == np.float32(448.0 * 2.0**-40)  # the huge terms cancel exactly
    assert got[0, 1] == np.float32(3 * 448.0)
    np.testing.assert_array_equal(got, reference_linear(x, w, 1.0))


def test_many_wide_outputs_take_the_split_path_and_stay_exact():
    """Rows of float32 weights spanning 2^-30..2^10 (like SpQR's float32 group scales with
    float16 outliers): every output fails the one-matmul bound, so the weights are split into
    parts; the result is still the exact sum rounded once (the Fraction oracle)."""
    from prodigy_sim.realmodels._linear import _FEW

    rng = np.random.default_rng(11)
    w = (rng.standard_normal((24, 96)) * np.exp2(rng.integers(-30, 10, (24, 96)))).astype(
        np.float32)
    w[0, :3] = [2.0**10, -(2.0**10), 2.0**-30]          # a cancellation
    x = (rng.standard_normal((12, 96)) * 50).astype(np.float32)
    x[0, :3] = 448.0
    pw = prepare_weight(w)
    scale = 1.0
    qx_l1 = np.abs(decode(quantize_activations(x, scale), "float8_e4m3fn")).sum(axis=1) * 2**9
    assert np.sum(qx_l1[:, None] * pw.row_absmax[None, :] >= 2.0**53) > _FEW
    np.testing.assert_array_equal(linear_q(x, pw, scale), reference_linear(x, w, scale))


def test_round_int_to_f32_ties_subnormals_overflow():
    cases = [(2**24 + 1, 0), (2**24 + 3, 0), (2**60 + 2**36 + 1, 0), (-(2**25 + 2), -3),
             (3, -151), (1, -150), (3, -150), (2**24 - 1, 104), (2**24 - 1, 105), (7, -160)]
    for n, e in cases:
        want = round_fraction_to_f32(Fraction(n) * Fraction(2) ** e)
        got = np.float32(_round_int_to_f32(n, e))
        assert got == want or (np.isinf(got) and np.isinf(want)), (n, e, got, want)
        assert np.signbit(got) == np.signbit(want)


def test_act_scale_rule():
    assert act_scale_for(448.0) == 1.0  # amax maps exactly to 448
    assert act_scale_for(448.0001) == 2.0
    assert act_scale_for(224.0) == 0.5
    assert act_scale_for(3.0) == 2.0**-7  # 3 / 2^-7 = 384 <= 448 < 768
    assert act_scale_for(0.0) == 2.0**-127
    with pytest.raises(ConfigError, match="amax"):
        act_scale_for(float("nan"))


def test_activation_codes_saturate_and_round_trip():
    x = np.float32([0.0, 1.0, -3.0, 500.0, -1e30, 2.0**-20])
    codes = quantize_activations(x, 1.0)
    back = dequantize_activations(codes, 1.0)
    np.testing.assert_array_equal(back, np.float32([0.0, 1.0, -3.0, 448.0, -448.0, 0.0]))
    np.testing.assert_array_equal(dequantize_activations(quantize_activations(x * 4, 4.0), 4.0),
                                  back * 4)


def test_bias_is_a_float32_add_after_rounding():
    rng = np.random.default_rng(3)
    w = rng.standard_normal((3, 32)).astype(np.float32)
    x = rng.standard_normal((2, 32)).astype(np.float32)
    b = rng.standard_normal(3).astype(np.float32)
    q = quantize(w, "int4")
    np.testing.assert_array_equal(linear_q(x, q, 2.0**-6, b), linear_q(x, q, 2.0**-6) + b)


def test_prepared_weight_is_exact_and_checked():
    w = np.float32([[1.5, -0.25, 0.0, 2.0**-140], [0.0, 0.0, 0.0, 0.0]])
    pw = prepare_weight(w)
    assert np.all(pw.integers == np.round(pw.integers))
    np.testing.assert_array_equal(pw.values(), w)
    assert list(pw.row_exp) == [-140, 0]
    with pytest.raises(ConfigError, match="power of two"):
        linear_q(np.zeros((1, 4), np.float32), pw, 0.3)
    with pytest.raises(ConfigError, match="finite"):
        prepare_weight(np.float32([[np.inf, 1.0]]))
    with pytest.raises(ConfigError, match="K = 4"):
        linear_q(np.zeros((1, 5), np.float32), pw, 1.0)


@pytest.mark.parametrize("fmt", ["float8_e4m3fn", "tai4", "tai2", "float4_e2m1fn", "int4"])
@pytest.mark.parametrize("sparsity", [None, "8:4"])
@pytest.mark.parametrize("scale", ["e8m0", "e4m3", "fp32"])
def test_fast_dequantize_equals_quantized_tensor_dequantize(fmt, sparsity, scale):
    rng = np.random.default_rng(11)
    w = (rng.standard_normal((5, 96)) * np.exp(3 * rng.standard_normal((5, 96)))).astype(np.float32)
    w[0, :40] = 0.0
    w[1, 3] = 1e-42  # a float32 subnormal
    q = quantize(w, fmt, block=32, scale=scale, sparsity=sparsity)
    got, want = dequantize_weight(q), q.dequantize()
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))


@pytest.mark.parametrize("fmt", ["float8_e4m3fn", "tai4", "tai2", "float4_e2m1fn", "int4"])
@pytest.mark.parametrize("sparsity", [None, "8:4"])
@pytest.mark.parametrize("scale", ["e8m0", "e4m3"])
def test_prepared_quantized_weight_equals_prepared_values(fmt, sparsity, scale):
    """prepare_weight of a QuantizedTensor (dequantized and split a row at a time) equals
    prepare_weight of its dequantized float32 values (the whole w_hat, then split): the same
    integers, row exponents and maxima; zero rows, subnormals and wide dynamic range."""
    rng = np.random.default_rng(12)
    w = (rng.standard_normal((7, 96)) * np.exp(3 * rng.standard_normal((7, 96)))).astype(np.float32)
    w[0, :40] = 0.0
    w[2] = 0.0
    w[1, 3] = 1e-42
    q = quantize(w, fmt, block=32, scale=scale, sparsity=sparsity)
    got, want = prepare_weight(q), prepare_weight(q.dequantize())
    for a, b in ((got.integers, want.integers), (got.row_exp, want.row_exp),
                 (got.row_absmax, want.row_absmax)):
        np.testing.assert_array_equal(a, b)
    assert got.qtensor is q and not got.integers.flags.writeable
    np.testing.assert_array_equal(got.values().view(np.uint32),
                                  q.dequantize().view(np.uint32))


def test_prepared_quantized_weight_must_be_finite():
    q = quantize(np.float32([[1.0, 2.0] * 16]), "float8_e4m3fn", block=32)
    bad = dataclasses.replace(q, scales=np.full_like(q.scales, 255))  # the E8M0 NaN scale
    assert np.isnan(bad.dequantize()).all()
    with pytest.raises(ConfigError, match="finite"):
        prepare_weight(bad)


def test_exact_zero_is_positive_and_nan_propagates():
    w = np.float32([[1.0, -1.0] * 16, [0.0] * 32])
    x = np.full((2, 32), -2.0, dtype=np.float32)
    x[1, 0] = np.nan
    y = linear_q(x, prepare_weight(w), 1.0)
    assert y[0, 0] == 0.0 and not np.signbit(y[0, 0])  # -2 + 2 - 2 + ... = exactly 0
    assert y[0, 1] == 0.0 and not np.signbit(y[0, 1])  # all products are -0
    assert np.isnan(y[1, 0]) and np.isnan(y[1, 1])
