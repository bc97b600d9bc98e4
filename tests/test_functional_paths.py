"""Each path of the exact MMA on data chosen to take it, against the slow reference.

The float32 path (``functional/_f32.py``) serves a (tile, chunk) piece when a bound proves one
float32 GEMM exact (class 0 rows) or exact after moving a row's few finest elements to a float64
correction (class 1, "split" rows); everything else takes the float64 / exact path. ``MmaStats``
says which path ran, so every test checks both the path and the bits.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import prodigy_sim.testing.core_oracle as ref
from prodigy_sim.functional import _f32, _mma, matmul_stats
from prodigy_sim.functional._operand import operand_from_quantized
from prodigy_sim.numerics import QuantizedTensor, quantize


def assert_same_bits(got: np.ndarray, want: np.ndarray) -> None:
    assert got.dtype == np.float32 and got.shape == want.shape
    g, w = got.view(np.uint32), np.asarray(want, np.float32).view(np.uint32)
    bad = np.flatnonzero(g != w)
    assert bad.size == 0, (f"{bad.size} differ, first at {np.unravel_index(bad[0], got.shape)}: "
                           f"{got.flat[bad[0]]!r} vs {want.flat[bad[0]]!r}")


def old_path(a, w, acc=None, chunk=128) -> np.ndarray:
    """The float64 / exact path alone (the implementation before the float32 path)."""
    out = np.zeros((a.shape[0], w.shape[0]), np.float32) if acc is None else acc.copy()
    _mma.mma_operands(operand_from_quantized(a, chunk), operand_from_quantized(w, chunk), out)
    return out


def check(a, w, acc=None, chunk=128):
    out, stats = matmul_stats(a, w, acc, chunk=chunk)
    assert_same_bits(out, ref.ref_matmul(a, w, acc, chunk))
    return stats


def with_codes(q: QuantizedTensor, codes=None, scales=None) -> QuantizedTensor:
    return QuantizedTensor(q.codes if codes is None else codes,
                           q.scales if scales is None else scales, q.fmt, q.shape, q.axis,
                           q.block, q.scale, q.sparsity, q.mask_bits)


def gaussian(rng, shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def test_clean_rows_one_float32_gemm():
    """Small integers: every chunk sum fits 24 bits with room to spare."""
    rng = np.random.default_rng(1)
    x = rng.integers(-8, 9, (6, 256)).astype(np.float32)
    w = rng.standard_normal((5, 256)).astype(np.float32)
    s = check(quantize(x, "float8_e4m3fn"), quantize(w, "tai4"))
    assert (s.f32_tiles, s.split_rows, s.blas_tiles, s.fallback_tiles) == (2, 0, 0, 0)


def test_split_rows_tiny_elements():
    """Rows whose smallest elements (FP8 subnormals of the block scale) make the chunk sum
    need about 30 bits: split, one GEMM plus the float64 correction."""
    rng = np.random.default_rng(2)
    x = gaussian(rng, (7, 384), 100.0)
    x[:, 5::37] = 1e-3  # 2^-10 below the block maximum: FP8 subnormal codes
    x[:, 6::41] = -3e-3
    w = gaussian(rng, (6, 384))
    a, wq = quantize(x, "float8_e4m3fn"), quantize(w, "tai4")
    s = check(a, wq)
    assert s.f32_tiles == 3 and s.split_rows > 0 and s.blas_tiles == s.fallback_tiles == 0


def test_float32_is_not_exact_here_but_the_result_is():
    """Wide dynamic range inside one long chunk: a float32 GEMM of the same values rounds
    (differs from the reference), the MMA does not."""
    rng = np.random.default_rng(3)
    k = 1024
    x = gaussian(rng, (3, k)) * np.exp2(rng.integers(-12, 13, (3, k))).astype(np.float32)
    w = gaussian(rng, (3, k))
    a, wq = quantize(x, "float8_e4m3fn", block=32), quantize(w, "tai4")
    naive = a.dequantize() @ wq.dequantize().T
    want = ref.ref_matmul(a, wq, chunk=k)
    assert not np.array_equal(naive.view(np.uint32), want.view(np.uint32))
    out, stats = matmul_stats(a, wq, chunk=k)
    assert_same_bits(out, want)
    assert stats.split_rows > 0 or stats.blas_tiles + stats.fallback_tiles > 0


@pytest.mark.parametrize("exponent", [-90, 70])
def test_values_outside_the_float32_window_take_the_float64_path(exponent):
    """|value| > 2^50 or quanta below 2^-60: not eligible (the float32 path stays far from
    float32 overflow and subnormals)."""
    rng = np.random.default_rng(4)
    x = gaussian(rng, (4, 256), 2.0 ** exponent)
    w = gaussian(rng, (3, 256))
    s = check(quantize(x, "float8_e4m3fn"), quantize(w, "tai4"))
    assert s.f32_tiles == 0 and s.blas_tiles + s.fallback_tiles > 0


def test_subnormal_and_nan_scales():
    rng = np.random.default_rng(5)
    a = quantize(gaussian(rng, (4, 384)), "float8_e4m3fn")
    w = quantize(gaussian(rng, (3, 384)), "tai4")
    sc = a.scales.copy()
    sc[1, 5] = 0  # E8M0 2^-127: quanta 2^-136, chunk 1 of row 1 is not eligible
    sc[2, 9] = 0xFF  # NaN scale: chunk 2 of row 2 is NaN
    s = check(with_codes(a, scales=sc), w)
    assert s.f32_tiles == 1 and s.blas_tiles + s.fallback_tiles == 2


def test_weights_that_are_not_float32_numbers():
    """int8 codes times FP32 scales have up to 31 significant bits: the float64 path."""
    rng = np.random.default_rng(6)
    a = quantize(gaussian(rng, (5, 256)), "float8_e4m3fn")
    w = quantize(gaussian(rng, (4, 256)) * np.float32(1.1), "int8", scale="fp32")
    assert not np.all(w.dequantize().astype(np.float64) ==
                      w.element_codes().astype(np.float64)
                      * np.repeat(w.scale_values().astype(np.float64), 32, axis=1))
    s = check(a, w)
    assert s.f32_tiles == 0 and s.blas_tiles > 0


def test_specials_mix_paths_chunk_by_chunk():
    rng = np.random.default_rng(7)
    a = quantize(gaussian(rng, (5, 512)), "float8_e5m2")
    w = quantize(gaussian(rng, (4, 512)), "float8_e4m3fn")
    codes = a.codes.copy()
    codes[1, 130] = 0x7C  # +Inf in chunk 1
    codes[3, 140] = 0xFC  # -Inf in chunk 1 of another row
    wc = w.codes.copy()
    wc[2, 300] = 0x7F  # NaN weight in chunk 2
    acc = gaussian(rng, (5, 4), 1e3)
    s = check(with_codes(a, codes), with_codes(w, wc), acc)
    assert s.f32_tiles == 2 and s.blas_tiles + s.fallback_tiles == 2


def test_cancellation_and_signed_zeros():
    """Exact cancellation inside a chunk gives +0; -0 codes everywhere give +0 too, so an
    accumulator holding -0 becomes +0 (RNE(-0 + +0))."""
    x = np.zeros((3, 128), np.float32)
    x[0, :64] = np.arange(1, 65)
    x[0, 64:] = -np.arange(1, 65)
    x[1, :] = -0.0
    x[2, 3] = 2.0 ** -100  # below every quantum the float32 path takes
    w = np.ones((2, 128), np.float32)
    w[1, 64:] = 0.5
    a, wq = quantize(x, "float8_e4m3fn"), quantize(w, "tai4")
    acc = np.full((3, 2), -0.0, np.float32)
    out, _ = matmul_stats(a, wq, acc)
    assert_same_bits(out, ref.ref_matmul(a, wq, acc))
    assert out[0, 0] == 0 and not np.signbit(out[0, 0])
    assert not np.signbit(out[1]).any()


def test_sparse_e4m3_scaled_and_per_row_weights_odd_chunks():
    rng = np.random.default_rng(8)
    a = quantize(gaussian(rng, (4, 192), 30.0), "float8_e4m3fn")
    for w in (quantize(gaussian(rng, (3, 192)), "tai2", sparsity="8:4"),
              quantize(gaussian(rng, (3, 192)), "float4_e2m1fn", scale="e4m3"),
              quantize(gaussian(rng, (3, 192)), "tai4", block=None)):
        for chunk in (32, 48, 128, 192):
            s = check(a, w, chunk=chunk)
            assert s.f32_tiles > 0


def test_threaded_tiles_equal_the_reference(monkeypatch):
    """Several output tiles in worker threads, some with special values."""
    monkeypatch.setattr(_mma, "_THREAD_MIN_MACS", 0)
    monkeypatch.setattr(_mma, "_TILE_M", 4)
    rng = np.random.default_rng(9)
    x = gaussian(rng, (9, 256), 10.0)
    x[2, 7] = 1e-4
    a = quantize(x, "float8_e4m3fn")
    codes = a.codes.copy()
    codes[5, 200] = 0x7F
    a = with_codes(a, codes)
    w = quantize(gaussian(rng, (300, 256)), "tai4")
    s = check(a, w)
    assert s.f32_tiles > 0 and s.blas_tiles + s.fallback_tiles > 0


@pytest.mark.parametrize("threaded", [False, True])
def test_wide_w_tiles_with_every_path(monkeypatch, threaded):
    """W tiles of the wide kind (``_TN32_WIDE`` rows, shrunk here to 64 so that 300 rows make
    four full tiles and a partial one): clean, split and float64 / exact pieces in the same
    tiles, against the reference."""
    monkeypatch.setattr(_mma, "_TN32_WIDE", 64)
    monkeypatch.setattr(_mma, "_WIDE_ROWS", 100)
    if threaded:
        monkeypatch.setattr(_mma, "_THREAD_MIN_MACS", 0)
        monkeypatch.setattr(_mma, "_TILE_M", 4)
    rng = np.random.default_rng(10)
    x = gaussian(rng, (9, 384), 100.0)
    x[:, 5::37] = 1e-3  # split rows (FP8 subnormal codes of the block scale)
    a = quantize(x, "float8_e4m3fn")
    codes = a.codes.copy()
    codes[4, 200] = 0x7F  # NaN in chunk 1 of row 4: that piece takes the float64 / exact path
    a = with_codes(a, codes)
    w = gaussian(rng, (300, 384))
    w[70, 300] = 2.0 ** 60  # a value outside the float32 window: tile 1, chunk 2 is not eligible
    wq = quantize(w, "tai4")
    acc = gaussian(rng, (9, 300), 1e3)
    s = check(a, wq, acc)
    assert s.split_rows > 0 and s.blas_tiles + s.fallback_tiles > 0
    # (A tiles x 5 W tiles x 3 chunks) pieces, less chunk 1 of the NaN row's A tile in every
    # W tile and chunk 2 of W tile 1 in every A tile (1 A tile, or 3 of 4 rows when threaded)
    a_tiles = 3 if threaded else 1
    assert s.f32_tiles == a_tiles * 5 * 3 - 5 - a_tiles


def test_wide_tiles_at_their_real_size_equal_the_float64_path():
    """2100 W rows: four 512-row tiles and a partial one, as a real layer takes them."""
    assert _mma._tn32(2100) == _mma._TN32_WIDE and _mma._tn32(100) == _mma._TN32
    rng = np.random.default_rng(11)
    x = gaussian(rng, (3, 256), 10.0)
    x[1, 7::29] = 1e-3
    a, w = quantize(x, "float8_e4m3fn"), quantize(gaussian(rng, (2100, 256)), "tai4")
    out, s = matmul_stats(a, w)
    assert_same_bits(out, old_path(a, w))
    assert s.f32_tiles == 5 * 2 and s.split_rows > 0


@st.composite
def random_case(draw):
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    m, n = draw(st.integers(1, 40)), draw(st.integers(1, 300))
    k = 32 * draw(st.integers(1, 12))
    spread = draw(st.sampled_from([0, 3, 12, 40]))
    x = rng.standard_normal((m, k)) * np.exp2(rng.integers(-spread, spread + 1, (m, k)))
    w = rng.standard_normal((n, k)) * np.exp2(rng.integers(-spread, spread + 1, (n, k)))
    afmt = draw(st.sampled_from(["float8_e4m3fn", "float8_e5m2"]))
    wfmt = draw(st.sampled_from(["tai4", "tai2", "float4_e2m1fn", "float8_e4m3fn", "int8"]))
    sparse = draw(st.booleans())
    a = quantize(x.astype(np.float32), afmt, scale=draw(st.sampled_from(["e8m0", "fp32"])))
    wq = quantize(w.astype(np.float32), wfmt, scale=draw(st.sampled_from(["e8m0", "e4m3"])),
                  sparsity="8:4" if sparse else None)
    chunk = draw(st.sampled_from([32, 64, 128, 96]))
    acc = (rng.standard_normal((m, n)) * 100).astype(np.float32) if draw(st.booleans()) else None
    return a, wq, acc, chunk


@given(random_case())
@settings(max_examples=60)
def test_float32_path_equals_the_float64_path(case):
    """Many shapes (several W tiles), formats and dynamic ranges: the same bits as the
    float64 / exact path, which tests/test_functional.py checks against the reference."""
    a, w, acc, chunk = case
    out, _ = matmul_stats(a, w, acc, chunk=chunk)
    assert_same_bits(out, old_path(a, w, acc, chunk))


def test_lowbit_kernel():
    rng = np.random.default_rng(10)
    vals = np.concatenate([rng.standard_normal(200) * np.exp2(rng.integers(-1070, 1000, 200)),
                           [5e-324, 2.0 ** -1022, 3 * 2.0 ** -1073, 1.0, 6.0, 2.0 ** 1023]])
    for v in vals:
        m, e = math.frexp(abs(float(v)))
        num = int(m * 2 ** 53)
        want = math.ldexp(num & -num, e - 53)
        assert _f32._lowbit(float(v)) == want
