"""prodigy_sim.detmath: fixed-order products and factorizations, correctly rounded float32
functions. The subprocess test of tests/test_realmodels_determinism.py shows the bits do not
move with the BLAS kernel or the thread count; here each kernel is checked against an
independent reference."""

from __future__ import annotations

import math
from decimal import Decimal

import numpy as np
import pytest

from prodigy_sim.detmath import (
    bmm_f32,
    cholesky,
    cos_f32,
    decimal_to_f32,
    exp_f32,
    gelu_f32,
    gram,
    lower_inverse,
    matmul,
    matmul_f32,
    silu_f32,
    sin_f32,
    split_matmul,
)
from prodigy_sim.errors import ConfigError


def _sequential(a, b):
    """float64 sums of exact products in index order, by numpy's cumulative sum (sequential)."""
    terms = a.astype(np.float64)[:, :, None] * b.astype(np.float64)[None, :, :]
    return np.cumsum(terms, axis=1)[:, -1, :]


def test_matmul_is_the_sequential_float64_sum():
    rng = np.random.default_rng(1)
    a = (rng.standard_normal((7, 53)) * np.exp2(rng.integers(-20, 20, (7, 53)))).astype(np.float32)
    b = rng.standard_normal((53, 9)).astype(np.float32)
    np.testing.assert_array_equal(matmul(a, b), _sequential(a, b))
    np.testing.assert_array_equal(matmul(a.astype(np.float64), b), _sequential(a, b))
    with pytest.raises(ConfigError, match="inner dimensions"):
        matmul(a, b.T)


def test_split_matmul_does_not_depend_on_the_summation_order():
    """The slice products are exact, so permuting K (another order for any BLAS) or computing
    the float64 products by the fixed-order kernel gives the same bits."""
    rng = np.random.default_rng(5)
    a = (rng.standard_normal((3, 40, 300)) * np.exp2(rng.integers(-12, 12, (3, 40, 300)))
         ).astype(np.float32)
    b = rng.standard_normal((3, 300, 24)).astype(np.float32)
    perm = rng.permutation(300)
    ref = split_matmul(a, b)
    np.testing.assert_array_equal(split_matmul(a[..., perm], b[:, perm, :]), ref)
    np.testing.assert_array_equal(split_matmul(a[:, ::-1, :], b)[:, ::-1, :], ref)
    exact = np.array([[[math.fsum(float(x) * float(y) for x, y in zip(a[s, i], b[s, :, j],
                                                                         strict=True))
                        for j in range(24)] for i in range(4)] for s in range(3)])
    bound = 2.0**-40 * np.abs(a[:, :4]).max(-1, keepdims=True) * np.abs(b).max(-2,
                                                                             keepdims=True) * 300
    assert np.all(np.abs(ref[:, :4] - exact) <= bound)
    np.testing.assert_array_equal(bmm_f32(a, b), ref.astype(np.float32))
    np.testing.assert_array_equal(matmul_f32(a[0], b[0].T), ref[0].astype(np.float32))
    g = gram(a[0])
    np.testing.assert_array_equal(g, g.T)
    np.testing.assert_array_equal(g, split_matmul(a[0].T.copy(), a[0]))
    with pytest.raises(ConfigError, match="finite"):
        split_matmul(np.array([[np.inf]], np.float32), np.ones((1, 1), np.float32))


def _split_product_as_written(a, b):
    """The error-free split product written out (the formula of the detmath module docstring,
    one fresh array per step): an independent check of the blocked, in-place kernel."""
    k = a.shape[-1]
    beta = (53 - max(1, math.ceil(math.log2(max(k, 2))))) // 2

    def cut(x, axis):
        x64 = x.astype(np.float64)
        e = np.frexp(np.abs(x64).max(axis=axis, keepdims=True))[1]
        xn = x64 * np.ldexp(1.0, beta - e)
        x1 = np.trunc(xn)
        return x1, np.rint((xn - x1) * 2.0**beta), e

    a1, a2, ea = cut(a, -1)
    b1, b2, eb = cut(b, -2)
    low = (np.matmul(a1, b2) + np.matmul(a2, b1)) * 2.0**-beta
    return (np.matmul(a1, b1) + low) * np.ldexp(1.0, ea - beta) * np.ldexp(1.0, eb - beta)


def test_blocked_split_product_is_the_formula_bit_for_bit():
    """matmul_f32 on a weight with more columns than one block (the LM head's case: 49,152),
    with a partial last block, rows of very different magnitudes, zero rows and columns and
    results that overflow float32: the same bits as the formula computed in one piece."""
    from prodigy_sim.detmath import split_weight
    from prodigy_sim.detmath._gemm import _COLUMNS

    rng = np.random.default_rng(11)
    n = 2 * _COLUMNS + 37
    x = (rng.standard_normal((9, 70)) * np.exp2(rng.integers(-30, 30, (9, 1)))).astype(np.float32)
    x[3] = 0.0
    x[5] = np.sign(x[5]) * np.float32(2.0**125)  # sums beyond the float32 range: +-Inf
    w = (rng.standard_normal((n, 70)) * np.exp2(rng.integers(-8, 8, (n, 70)))).astype(np.float32)
    w[100] = 0.0
    ref = _split_product_as_written(x, np.ascontiguousarray(w.T))
    with np.errstate(over="ignore"):
        want = ref.astype(np.float32)
        got = matmul_f32(x, split_weight(w))
    assert np.isinf(want).any() and (want == 0).any()
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(split_matmul(x, np.ascontiguousarray(w.T)), ref)
    a = rng.standard_normal((2, 5, 33)).astype(np.float32)
    b = rng.standard_normal((2, 33, 6)).astype(np.float32)
    np.testing.assert_array_equal(split_matmul(a, b), _split_product_as_written(a, b))


def test_cholesky_and_inverse_match_lapack_closely():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((200, 60))
    h = x.T @ x + 0.1 * np.eye(60)
    lo = cholesky(h)
    np.testing.assert_allclose(lo, np.linalg.cholesky(h), rtol=1e-10, atol=1e-12)
    assert np.all(np.triu(lo, 1) == 0)
    inv = lower_inverse(lo)
    np.testing.assert_allclose(inv @ lo, np.eye(60), atol=1e-10)
    assert np.all(np.triu(inv, 1) == 0)
    with pytest.raises(ConfigError, match="not positive definite"):
        cholesky(-np.eye(3))


def _cr(d: Decimal) -> np.float32:
    return decimal_to_f32(d)


def test_decimal_to_f32_rounds_once_to_nearest_even():
    from decimal import localcontext

    with localcontext() as ctx:
        ctx.prec = 60
        _check_rounding()


def _check_rounding():
    one = Decimal(1)
    ulp = Decimal(2) ** -23
    assert _cr(one + ulp / 2) == np.float32(1.0)              # tie -> even (1.0)
    assert _cr(one + ulp / 2 + Decimal(10) ** -30) == np.nextafter(np.float32(1), np.float32(2))
    assert _cr(one + 3 * ulp / 2) == np.float32(1 + 2 * 2.0**-23)  # tie -> even
    assert np.isinf(_cr(Decimal(2) ** 128))
    assert _cr(Decimal(2) ** -150 * Decimal("1.0000001")) == np.float32(2.0**-149)


@pytest.mark.parametrize("fn, exact", [
    (exp_f32, lambda v: Decimal(v).exp()),
    (silu_f32, lambda v: Decimal(v) / (1 + Decimal(-v).exp())),
    (cos_f32, None), (sin_f32, None), (gelu_f32, None),
])
def test_functions_are_correctly_rounded(fn, exact):
    """Against an independent high-precision evaluation (decimal for exp/SiLU, math.fsum-free
    float64 + tight error checks for the rest) on random inputs and on hard cases."""
    from decimal import localcontext

    rng = np.random.default_rng(3)
    x = (rng.standard_normal(400) * 4).astype(np.float32)
    got = fn(x)
    if exact is not None:
        with localcontext() as ctx:
            ctx.prec = 50
            want = np.array([decimal_to_f32(exact(float(v))) for v in x])
        np.testing.assert_array_equal(got, want)
    else:
        ref = {cos_f32: np.cos, sin_f32: np.sin,
               gelu_f32: lambda v: 0.5 * v * np.array([math.erfc(-t / math.sqrt(2)) for t in v])
               }[fn](x.astype(np.float64))
        # within half an ulp of float32 (plus float64 noise) of the float64 value
        ulp = np.spacing(np.abs(got)).astype(np.float64)
        assert np.all(np.abs(got - ref) <= 0.5 * ulp + 1e-12 * np.abs(ref))


def test_hard_cases_go_to_the_exact_path():
    """Inputs whose float64 value lies very close to a float32 midpoint: the result is the
    decimal one, not the float64 value's rounding."""
    rng = np.random.default_rng(4)
    x = (rng.standard_normal(200000) * 3).astype(np.float32)
    v = np.exp(x.astype(np.float64))
    r = v.astype(np.float32)
    nb = np.nextafter(r, np.where(v > r, np.float32(np.inf), np.float32(-np.inf)))
    mid = (r.astype(np.float64) + nb) * 0.5
    near = np.argsort(np.abs(v - mid) / v)[:5]   # the closest to a boundary
    got = exp_f32(x[near])
    want = [decimal_to_f32(Decimal(float(t)).exp()) for t in x[near]]
    np.testing.assert_array_equal(got, np.array(want, dtype=np.float32))


@pytest.mark.parametrize("t,k", [(1, 5), (7, 3), (300, 64), (2048, 384)])
def test_gram_equals_the_split_product_of_the_transpose_bit_for_bit(t, k):
    """gram's shortcut (one cross product M + M^T, a symmetric x1^T x1) gives exactly the bits
    of split_matmul(x.T, x), symmetrized; channels of very different scales, a zero column; the
    last shape takes the threaded path."""
    from prodigy_sim.detmath._gemm import split_matmul

    r = np.random.default_rng(t * 1000 + k)
    x = (r.standard_normal((t, k)) * np.exp(3 * r.standard_normal(k))).astype(np.float32)
    x[:, 0] = 0.0
    ref = split_matmul(np.ascontiguousarray(x.T), x)
    ref = np.triu(ref) + np.triu(ref, 1).T
    g = gram(x)
    assert g.dtype == np.float64 and np.array_equal(g.view(np.int64), ref.view(np.int64))
    assert np.array_equal(gram(np.zeros((0, k), np.float32)), np.zeros((k, k)))
