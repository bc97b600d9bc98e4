"""The bit-exact MMA core and the vector kernels against the slow reference (reference_core)."""

from __future__ import annotations

import math

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import prodigy_sim.testing.core_oracle as ref
from prodigy_sim.errors import ConfigError
from prodigy_sim.functional import (
    matmul,
    matmul_stats,
    to_bf16,
    vexp,
    vfma,
    vgelu,
    vmax,
    vmin,
    vrcp,
    vrmax,
    vrsqrt,
    vrsum,
    vsilu,
)
from prodigy_sim.numerics import QuantizedTensor, quantize

WEIGHTS = ["tai4", "tai2", "float4_e2m1fn", "float8_e4m3fn", "float8_e5m2", "int8", "int4",
           "ternary"]
ACTS = ["float8_e4m3fn", "float8_e5m2"]


def bits(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=np.float32).view(np.uint32)


def assert_same_bits(got: np.ndarray, want: np.ndarray) -> None:
    assert got.dtype == np.float32 and got.shape == want.shape
    bad = np.flatnonzero(bits(got) != bits(want))
    assert bad.size == 0, (f"{bad.size} differ, first at {np.unravel_index(bad[0], got.shape)}: "
                           f"{got.flat[bad[0]]!r} vs {want.flat[bad[0]]!r}")


def spread_values(rng: np.random.Generator, shape, spread: int, block: int = 32) -> np.ndarray:
    """Gaussian values whose blocks along the last axis are scaled by 2^U(-spread, spread)."""
    x = rng.standard_normal(shape)
    nb = -(-shape[1] // block)
    e = rng.integers(-spread, spread + 1, size=(shape[0], nb))
    return (x * np.repeat(2.0 ** e, block, axis=1)[:, : shape[1]]).astype(np.float32)


@st.composite
def mma_case(draw):
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    chunk = draw(st.sampled_from([32, 64, 128]))
    k = 32 * draw(st.integers(1, 3 * 128 // 32))
    m, n = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    wfmt = draw(st.sampled_from(WEIGHTS))
    afmt = draw(st.sampled_from(ACTS))
    sparse = draw(st.booleans()) and wfmt != "ternary"
    spread = draw(st.sampled_from([0, 4, 40]))
    wscale = "absmean" if wfmt == "ternary" else draw(st.sampled_from(["e8m0", "e4m3", "fp32"]))
    ascale = draw(st.sampled_from(["e8m0", "e8m0", "fp32"]))
    x = spread_values(rng, (m, k), spread)
    w = spread_values(rng, (n, k), spread)
    if draw(st.booleans()):
        x[0, 0] = -0.0
        x[-1, -1] = 448.0 if afmt == "float8_e4m3fn" else 57344.0
    a = quantize(x, afmt, scale=ascale)
    wq = quantize(w, wfmt, scale=wscale, sparsity="8:4" if sparse else None)
    special = draw(st.sampled_from(["none", "none", "nan_code", "inf_code", "nan_scale"]))
    codes = a.codes.copy()
    scales = a.scales.copy()
    if special == "nan_code":
        codes[rng.integers(m), rng.integers(k)] = 0x7F
    elif special == "inf_code" and afmt == "float8_e5m2":
        codes[rng.integers(m), rng.integers(k)] = rng.choice([0x7C, 0xFC])
        if m > 1 or draw(st.booleans()):
            codes[rng.integers(m), rng.integers(k)] = rng.choice([0x7C, 0xFC])
    elif special == "nan_scale" and ascale == "e8m0":
        scales[rng.integers(m), rng.integers(scales.shape[1])] = 0xFF
    a = QuantizedTensor(codes, scales, a.fmt, a.shape, a.axis, a.block, a.scale)
    acc = None
    if draw(st.booleans()):
        acc = (rng.standard_normal((m, n)) * 2.0 ** rng.integers(-30, 30)).astype(np.float32)
    return a, wq, acc, chunk


@given(mma_case())
@settings(max_examples=120)
def test_matmul_matches_reference(case):
    a, w, acc, chunk = case
    assert_same_bits(matmul(a, w, acc, chunk=chunk), ref.ref_matmul(a, w, acc, chunk))


@pytest.mark.parametrize("wfmt", WEIGHTS)
@pytest.mark.parametrize("sparse", [False, True])
def test_every_weight_format_dense_and_sparse(wfmt, sparse):
    rng = np.random.default_rng([WEIGHTS.index(wfmt), int(sparse)])
    for afmt in ACTS:
        a = quantize(spread_values(rng, (3, 256), 3), afmt)
        w = quantize(spread_values(rng, (4, 256), 3), wfmt,
                     scale="absmean" if wfmt == "ternary" else "e8m0",
                     sparsity="8:4" if sparse else None)
        assert_same_bits(matmul(a, w), ref.ref_matmul(a, w))


def test_fallback_path_is_taken_and_exact():
    rng = np.random.default_rng(7)
    x = spread_values(rng, (70, 256), 60)
    w = spread_values(rng, (5, 256), 60)
    a, wq = quantize(x, "float8_e4m3fn", scale="fp32"), quantize(w, "float8_e5m2")
    out, stats = matmul_stats(a, wq)
    assert stats.fallback_tiles > 0
    assert_same_bits(out, ref.ref_matmul(a, wq))


def test_chunk_order_is_observable():
    """Chunks sum to 1, 2^-24, 2^-24: per-chunk RNE keeps 1 (two ties to even), a single
    rounding of the exact total 1 + 2^-23 does not."""
    x = np.zeros((1, 384), dtype=np.float32)
    x[0, 0], x[0, 128], x[0, 256] = 1.0, 2.0**-24, 2.0**-24
    a = quantize(x, "float8_e4m3fn")
    w = quantize(np.ones((1, 384), dtype=np.float32), "tai4")
    chunked = matmul(a, w)
    assert chunked[0, 0] == np.float32(1.0)
    assert ref.single_rounding(a, w)[0, 0] == np.float32(1.0 + 2.0**-23)
    assert matmul(a, w, chunk=384)[0, 0] == np.float32(1.0 + 2.0**-23)
    assert_same_bits(chunked, ref.ref_matmul(a, w))


def test_accuracy_within_chunk_rounding_bound():
    rng = np.random.default_rng(3)
    k, chunk = 1024, 128
    x = spread_values(rng, (16, k), 6)
    w = spread_values(rng, (16, k), 2)
    bound = np.zeros((16, 16))
    for c in range(1, k // chunk + 1):
        part = matmul(quantize(x[:, : c * chunk], "float8_e4m3fn"),
                      quantize(w[:, : c * chunk], "tai4"))
        bound += 2.0**-24 * np.abs(part.astype(np.float64))
    a, wq = quantize(x, "float8_e4m3fn"), quantize(w, "tai4")
    exact = a.dequantize().astype(np.float64) @ wq.dequantize().astype(np.float64).T
    err = np.abs(matmul(a, wq).astype(np.float64) - exact)
    assert np.all(err <= bound * (1 + 1e-9) + 2.0**-149)


def test_matmul_rejects_bad_operands():
    rng = np.random.default_rng(0)
    a = quantize(rng.standard_normal((2, 64)).astype(np.float32), "float8_e4m3fn")
    w = quantize(rng.standard_normal((3, 96)).astype(np.float32), "tai4")
    with pytest.raises(ConfigError, match="K differs"):
        matmul(a, w)
    w_sp = quantize(rng.standard_normal((2, 64)).astype(np.float32), "tai4", sparsity="8:4")
    with pytest.raises(ConfigError, match="must be dense"):
        matmul(w_sp, a)
    with pytest.raises(ConfigError, match="float32 of shape"):
        matmul(a, a, np.zeros((2, 2)))
    with pytest.raises(ConfigError, match="QuantizedTensor"):
        matmul(np.zeros((2, 64)), a)
    odd = quantize(rng.standard_normal((2, 40)).astype(np.float32), "float8_e4m3fn")
    with pytest.raises(ConfigError, match="multiple of the block size"):
        matmul(odd, odd)


def test_matmul_does_not_modify_acc_and_adds_to_it():
    rng = np.random.default_rng(1)
    a = quantize(rng.standard_normal((4, 128)).astype(np.float32), "float8_e4m3fn")
    w = quantize(rng.standard_normal((5, 128)).astype(np.float32), "tai4")
    acc = np.full((4, 5), -0.0, dtype=np.float32)
    out = matmul(a, w, acc)
    assert np.all(np.signbit(acc))
    assert_same_bits(out, ref.ref_matmul(a, w, acc))


# ------------------------------------------------------------------ vector operations

SPECIALS = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e-45, -1e-45, 1.17549435e-38,
                     3.4028235e38, -3.4028235e38, 88.72, 88.73, -87.3, -103.9, -104.0, 89.0,
                     -20.0, -19.99, 15.5, -15.5, 1.0, -1.0, 0.5], dtype=np.float32)


def sample_floats(seed: int, n: int = 3000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    parts = [SPECIALS, rng.uniform(-110, 95, n), rng.standard_normal(n) * 4,
             rng.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32).view(np.float32)]
    return np.concatenate([np.asarray(p, dtype=np.float32) for p in parts])


@pytest.mark.parametrize(("fn", "rfn"), [(vexp, ref.exp32), (vsilu, ref.silu32),
                                         (vgelu, ref.gelu32)])
def test_transcendentals_match_reference(fn, rfn):
    x = sample_floats(11)
    want = np.array([ref.canon(rfn(v)) for v in x], dtype=np.float32)
    assert_same_bits(fn(x), want)


def test_transcendental_accuracy_vs_float64():
    x = np.concatenate([np.linspace(-80, 80, 20001), np.linspace(-8, 8, 20001)]).astype(
        np.float32)
    x64 = x.astype(np.float64)
    erfc = np.vectorize(math.erfc)
    for got, want in ((vexp(x), np.exp(x64)), (vsilu(x), x64 / (1 + np.exp(-x64))),
                      (vgelu(x), x64 * 0.5 * erfc(-x64 / math.sqrt(2)))):
        normal = np.abs(want) >= 2.0**-126
        ulp = 2.0 ** (np.floor(np.log2(np.abs(want[normal]))) - 23)
        assert np.max(np.abs(got[normal] - want[normal]) / ulp) < 16


def test_fma_single_rounding():
    rng = np.random.default_rng(5)
    a, b, c = (sample_floats(s, 400) for s in (1, 2, 3))
    c = rng.permutation(c)
    want = np.array([ref.fma32(x, y, z) for x, y, z in zip(a, b, c, strict=True)],
                    dtype=np.float32)
    assert_same_bits(vfma(a, b, c), want)
    # a case where fl(fl(a*b) + c) differs: (1 + 2^-12)^2 - 1 - 2^-11 = 2^-24 exactly
    t = np.float32(1 + 2.0**-12)
    got = vfma(np.array([t]), np.array([t]), np.array([-(1 + 2.0**-11)], dtype=np.float32))
    assert got[0] == np.float32(2.0**-24)


def test_reductions_minmax_rcp_rsqrt():
    x = sample_floats(9, 300)[:917].reshape(-1, 7)
    y = sample_floats(10, 300)[:917].reshape(-1, 7)
    assert_same_bits(vrsum(x), np.array([[ref.rsum(r)] for r in x], dtype=np.float32))
    want_max = np.array([[ref.fmax(p, q) for p, q in zip(r, s, strict=True)]
                         for r, s in zip(x, y, strict=True)], dtype=np.float32)
    want_min = np.array([[ref.fmin(p, q) for p, q in zip(r, s, strict=True)]
                         for r, s in zip(x, y, strict=True)], dtype=np.float32)
    assert_same_bits(vmax(x, y), want_max)
    assert_same_bits(vmin(x, y), want_min)
    rmax = []
    for r in x:
        m = r[0]
        for v in r[1:]:
            m = ref.fmax(m, v)
        rmax.append([ref.canon(m)])
    assert_same_bits(vrmax(x), np.array(rmax, dtype=np.float32))
    with np.errstate(all="ignore"):
        assert_same_bits(vrcp(x), np.array([[ref.canon(np.float32(1) / v) for v in r]
                                            for r in x], dtype=np.float32))
        assert_same_bits(vrsqrt(x), np.array(
            [[ref.canon(np.float32(1) / np.sqrt(np.float32(v))) for v in r] for r in x],
            dtype=np.float32))
    assert vmax(np.float32(-0.0), np.float32(0.0)) == 0 and not np.signbit(
        vmax(np.float32(-0.0), np.float32(0.0)))
    assert np.signbit(vmin(np.float32(0.0), np.float32(-0.0)))


def test_bf16_rounding_matches_ml_dtypes():
    x = sample_floats(4, 20000)
    ours = to_bf16(x)
    with np.errstate(all="ignore"):
        theirs = x.astype(ml_dtypes.bfloat16).view(np.uint16)
    finite = ~np.isnan(x)
    assert np.array_equal(ours[finite], theirs[finite])
    assert np.all(np.isnan(ours[~finite].view(ml_dtypes.bfloat16).astype(np.float32)))
    assert to_bf16(np.array([np.nan], dtype=np.float32))[0] == 0x7FC0
