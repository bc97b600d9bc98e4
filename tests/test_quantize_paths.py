"""The fast paths of the quantization kernels against the written reference and the general path.

``_quantize_rows`` serves a row of float32 E8M0 blocks from the float32 LUT (exponent-field
scaling) and sends a block back to the exact float64 encoder when an element or its scaled value
is subnormal; NaN / Inf blocks get the NaN scale. ``compress`` selects N:M in one kernel pass for
float32 / float64 data and falls back to the general path (boolean masks) for NaN scores and
other dtypes.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prodigy_sim.errors import EncodeError
from prodigy_sim.numerics import (
    compress,
    encode,
    get_format,
    nm_mask,
    quantize,
    wanda_scores,
)
from prodigy_sim.testing.numerics_oracle import ref_mx_block
from tests.strategies import float32_arrays

FORMATS = ["float8_e4m3fn", "float8_e5m2", "float4_e2m1fn", "tai4", "tai2", "int8"]


def mixed_rows(rng: np.random.Generator) -> np.ndarray:
    """Rows of 8 blocks of 32: ordinary blocks next to blocks with float32 subnormals, with
    elements 2^-140 below the block maximum (scaled values below 2^-126), zeros and -0,
    NaN and Inf, and all-zero blocks."""
    rows = []
    for _ in range(6):
        blocks = []
        for kind in rng.permutation(8):
            b = (rng.standard_normal(32) * 2.0 ** rng.integers(-20, 20)).astype(np.float32)
            if kind == 1:
                b[rng.integers(32, size=3)] = np.float32(3e-39) * rng.choice([-1, 1])
            elif kind == 2:
                b[rng.integers(32)] = np.float32(2.0 ** -140)
                b[rng.integers(32)] = np.float32(1e30)
            elif kind == 3:
                b[::3] = 0.0
                b[1::5] = -0.0
            elif kind == 4:
                b[rng.integers(32)] = np.nan
            elif kind == 5:
                b[rng.integers(32)] = -np.inf
            elif kind == 6:
                b[:] = 0.0
            blocks.append(b)
        rows.append(np.concatenate(blocks))
    return np.stack(rows)


@pytest.mark.parametrize("fmt", FORMATS)
def test_mixed_blocks_match_the_written_reference(fmt):
    rng = np.random.default_rng(FORMATS.index(fmt))
    x = mixed_rows(rng)
    q = quantize(x, fmt)
    codes = q.element_codes()
    spec = get_format(fmt)
    for r, row in enumerate(x):
        for b in range(8):
            blk = row[32 * b:32 * b + 32]
            scale, want = ref_mx_block([float(v) for v in blk], spec)
            assert int(q.scales[r, b]) == scale, (r, b)
            if want is not None:
                # the reference's Fractions drop the sign of -0; the rule keeps it (ml_dtypes too)
                neg0 = int(encode(np.float32(-0.0), fmt))
                want = [neg0 if v == 0 and np.signbit(v) else c for v, c in zip(blk, want,
                                                                                  strict=True)]
                assert codes[r, 32 * b:32 * b + 32].tolist() == want, (r, b)


@pytest.mark.parametrize("fmt", FORMATS)
def test_float32_lut_path_equals_the_float64_path(fmt):
    """float64 input never takes the LUT; the same values as float32 must give the same
    codes and scales (both round the same real numbers once)."""
    rng = np.random.default_rng(10 + FORMATS.index(fmt))
    x = mixed_rows(rng)
    x[:, :64] = (rng.standard_normal((6, 64)) * 1e3).astype(np.float32)
    a, b = quantize(x, fmt), quantize(x.astype(np.float64), fmt)
    assert np.array_equal(a.codes, b.codes) and np.array_equal(a.scales, b.scales)
    for block, scale in ((16, "e8m0"), (64, "e4m3"), (32, "fp32")):
        a = quantize(x, fmt, block=block, scale=scale)
        b = quantize(x.astype(np.float64), fmt, block=block, scale=scale)
        assert np.array_equal(a.codes, b.codes)


def test_unscaled_nan_is_refused_or_kept_by_the_format():
    x = np.array([[1.0, np.nan, -2.0, 0.5]], np.float32)
    with pytest.raises(EncodeError, match="no NaN code"):
        quantize(x, "tai4", scale="none")
    q = quantize(x, "float8_e4m3fn", scale="none")
    assert q.element_codes()[0].tolist() == [0x38, 0x7F, 0xC0, 0x30]


@pytest.mark.parametrize("fmt", ["float4_e2m1fn", "int4", "float6_e2m3fn", "tai4"])
def test_exact_path_elements_whose_lut_pattern_is_nan_are_not_refused(fmt):
    """Regression (found by the quantized_tensors strategy): with the block maximum at the
    float32 maximum (shift 2^125 for E2M1), 0.1875 (bits 0x3E400000) scales below the normal
    range and goes to the exact path; its exponent-field subtraction wraps to 0xFFC00000, a
    NaN pattern, whose LUT code -1 was counted as a NaN input (EncodeError). Codes and scales
    must be those of the float64 path, which never takes the LUT."""
    top = np.finfo(np.float32).max
    x = np.zeros((3, 16), np.float32)
    x[0, 14:] = [0.1875, top]
    x[1, :4] = [-0.1875, -top, 0.1875 * 2.0 ** -3, 3e-39]
    x[2, 5] = np.float32(2.0 ** -126)
    x[2, 6] = np.float32(2.0 ** 127)
    a = quantize(x, fmt, block=16)
    b = quantize(x.astype(np.float64), fmt, block=16)
    assert np.array_equal(a.codes, b.codes) and np.array_equal(a.scales, b.scales)
    spec = get_format(fmt)
    for r in range(3):
        scale, want = ref_mx_block([float(v) for v in x[r]], spec)
        assert int(a.scales[r, 0]) == scale
        assert want is not None
        neg0 = int(encode(np.float32(-0.0), fmt))
        want = [neg0 if v == 0 and np.signbit(v) else c for v, c in zip(x[r], want, strict=True)]
        assert a.element_codes()[r].tolist() == want, r


def general_compress(w, n, m, scores=None):
    """The general path: an explicit mask (nm_mask) and boolean indexing."""
    return compress(w, n, m, mask=nm_mask(w, n, m, scores=scores))


@pytest.mark.parametrize(("n", "m"), [(4, 8), (2, 4), (1, 2), (3, 16), (8, 8)])
def test_compress_kernel_equals_the_general_path(n, m):
    rng = np.random.default_rng(n * 100 + m)
    w = (rng.standard_normal((5, 7 * 16)) * 3).astype(np.float32)
    w[0, :16] = 1.0  # ties: the lower position wins
    w[1, :8] = -0.0
    w[2, 5] = np.inf
    for arr in (w, w.astype(np.float64), w.T.copy()):
        axis = 0 if arr.shape[0] != 5 else -1
        fast = compress(arr, n, m, axis=axis)
        slow = compress(arr, n, m, axis=axis, mask=nm_mask(arr, n, m, axis=axis))
        assert np.array_equal(fast.values.view(np.uint8), slow.values.view(np.uint8))
        assert np.array_equal(fast.mask_bits, slow.mask_bits)
    norms = np.abs(rng.standard_normal(w.shape[1])) + 0.1
    fast = compress(w, n, m, method="wanda", act_norms=norms)
    slow = general_compress(w, n, m, scores=wanda_scores(w, norms))
    assert np.array_equal(fast.values, slow.values)
    assert np.array_equal(fast.mask_bits, slow.mask_bits)


def test_compress_nan_is_reported_with_its_index():
    w = np.ones((3, 16), np.float32)
    w[2, 9] = np.nan
    with pytest.raises(EncodeError, match=r"NaN in w at index \(2, 9\)"):
        compress(w, 4, 8)
    with pytest.raises(EncodeError, match="NaN"):
        quantize(w, "tai2", sparsity="8:4")


# -- the one-pass row kernel (_mx_row_lut): which blocks take the table, which the exact path ---

def _window_cases() -> np.ndarray:
    """Blocks of 16 chosen for each decision of the one-pass kernel: in the table's window
    (ordinary; with +-0; all zeros; elements 2^-100 below the maximum, scaled but normal),
    and out of it (a subnormal input; an element whose scaled value is subnormal; the
    maximum at 2^127; the block maximum the float32 maximum), plus NaN / Inf blocks."""
    rng = np.random.default_rng(77)
    blocks = []
    for kind in range(11):
        b = (rng.standard_normal(16) * 2.0 ** (kind - 5)).astype(np.float32)
        if kind == 1:
            b[::4], b[1::4] = 0.0, -0.0
        elif kind == 2:
            b[:] = 0.0
        elif kind == 3:
            b[3] = np.float32(2.0 ** -100)
        elif kind == 4:
            b[5] = np.float32(1e-40)  # subnormal input
        elif kind == 5:
            b[0], b[9] = np.float32(2.0 ** 100), np.float32(-(2.0 ** -30))  # scaled: subnormal
        elif kind == 6:
            b[2] = np.float32(2.0 ** 127)
        elif kind == 7:
            b[7] = np.finfo(np.float32).max
        elif kind == 8:
            b[4] = np.nan
        elif kind == 9:
            b[11] = -np.inf
        elif kind == 10:
            b = (rng.standard_normal(16) * 1e-39).astype(np.float32)
        blocks.append(b)
    return np.concatenate(blocks)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("k", [176, 170, 7])
def test_one_pass_kernel_equals_the_float64_path_in_every_block_kind(fmt, k):
    """Each block kind of :func:`_window_cases`, full and cut short (K not a multiple of the
    block, so the last block is partial), E8M0 and unscaled, float32 (the table where the
    window allows, the exact path elsewhere) against float64 input (always the exact path),
    and the E8M0 blocks against the written reference."""
    x = _window_cases()[None, :k]
    spec = get_format(fmt)
    for scale in ("e8m0", "none"):
        args = {"block": 16, "scale": scale}
        finite = np.isfinite(x).all()
        if scale == "none" and not finite and spec.nan_codes == ():
            with pytest.raises(EncodeError, match="no NaN code"):
                quantize(x, fmt, **args)
            continue
        a, b = quantize(x, fmt, **args), quantize(x.astype(np.float64), fmt, **args)
        assert np.array_equal(a.codes, b.codes) and np.array_equal(a.scales, b.scales)
    q = quantize(x, fmt, block=16)
    neg0 = int(encode(np.float32(-0.0), fmt))
    for b0 in range(0, k, 16):
        blk = x[0, b0:b0 + 16]
        scale, want = ref_mx_block([float(v) for v in blk], spec)
        assert int(q.scales[0, b0 // 16]) == scale, b0
        if want is not None:
            want = [neg0 if v == 0 and np.signbit(v) else c for v, c in zip(blk, want,
                                                                              strict=True)]
            assert q.element_codes()[0, b0:b0 + 16].tolist() == want, b0


@settings(max_examples=60, deadline=None)
@given(x=float32_arrays(min_size=1, max_size=96, specials=True),
       p=st.integers(-170, 100), fmt=st.sampled_from(FORMATS),
       block=st.sampled_from([8, 16, 32, None]), scale=st.sampled_from(["e8m0", "none"]))
def test_one_pass_kernel_equals_the_float64_path(x, p, fmt, block, scale):
    """Any finite float32 data scaled by 2^p (so whole blocks of subnormals, and blocks whose
    scaled values leave the normal range, are common; signed zeros and the extremes mixed in):
    the float32 kernel gives the codes and scales of the float64 path, which never takes the
    table."""
    with np.errstate(over="ignore"):
        x = np.clip(x.astype(np.float64) * 2.0 ** p, -3e38, 3e38).astype(np.float32)
    a = quantize(x, fmt, block=block, scale=scale)
    b = quantize(x.astype(np.float64), fmt, block=block, scale=scale)
    assert np.array_equal(a.codes, b.codes) and np.array_equal(a.scales, b.scales)
