"""Block-scaled quantization: the OCP MX rule, other scale rules, sparsity, footprint."""

import dataclasses

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from prodigy_sim.errors import ConfigError
from prodigy_sim.numerics import (
    decode,
    footprint,
    get_format,
    quantize,
)
from prodigy_sim.testing.numerics_oracle import ref_mx_block
from tests.strategies import float32_arrays, narrow_format_names

ELEMENT_FORMATS = ["float8_e4m3fn", "float8_e5m2", "float4_e2m1fn", "float6_e2m3fn", "tai4",
                   "tai2", "int8", "int4", "ternary"]


def _mx_reference(x, fmt, block):
    spec = get_format(fmt)
    scales, codes = [], []
    for start in range(0, x.size, block):
        s, c = ref_mx_block([float(v) for v in x[start:start + block]], spec)
        scales.append(s)
        codes.append(c)
    return scales, codes


@pytest.mark.parametrize("fmt", ELEMENT_FORMATS)
def test_mx_matches_written_reference_below_powers_of_two(fmt):
    """Blocks whose amax lies just below / at / above a power of two (where a float log2 picks
    the wrong exponent), tiny and huge blocks, and random data."""
    rng = np.random.default_rng(3)
    rows = []
    for e in (-130, -126, -20, -1, 0, 1, 7, 8, 9, 100, 126):
        p2 = np.float32(2.0 ** e) if e > -150 else np.float32(0)
        for amax in (np.nextafter(p2, np.float32(0)), p2, np.nextafter(p2, np.float32(np.inf))):
            row = rng.uniform(-1, 1, 32).astype(np.float32) * amax
            row[rng.integers(32)] = amax
            rows.append(row)
    rows.append(np.zeros(32, np.float32))
    rows.append((rng.standard_normal(32) * 1e3).astype(np.float32))
    x = np.stack(rows)
    q = quantize(x, fmt, block=32)
    codes = q.element_codes()
    for r, row in enumerate(x):
        scales, ref_codes = _mx_reference(row, fmt, 32)
        assert q.scales[r].tolist() == scales, (r, row.max())
        assert codes[r].tolist() == ref_codes[0], r


def test_float_log2_would_pick_the_wrong_exponent():
    """The reason for taking floor(log2) from the bits: float32 log2 rounds up just below 2^k."""
    a = np.nextafter(np.float32(2.0**100), np.float32(0))
    assert np.floor(np.log2(a)) == 100.0  # wrong: a < 2^100
    q = quantize(np.full((1, 32), a, np.float32), "float8_e4m3fn")
    assert q.scales[0, 0] == 127 + 99 - 8  # floor(log2(a)) = 99, emax(e4m3) = 8


def test_nan_or_inf_block_gets_nan_scale():
    x = np.ones((1, 64), np.float32)
    x[0, 40] = np.inf
    q = quantize(x, "tai4")
    assert q.scales.tolist() == [[127 - 0, 0xFF]]
    d = q.dequantize()
    assert np.all(d[0, :32] == 1) and np.all(np.isnan(d[0, 32:]))


def _half_step_bound(y, spec):
    vals = spec.finite_values
    i = np.clip(np.searchsorted(vals, y), 1, vals.size - 1)
    return (vals[i] - vals[i - 1]) / 2


@pytest.mark.parametrize("scale", ["e8m0", "e4m3", "fp32", "absmean", "none"])
@pytest.mark.parametrize("fmt", ELEMENT_FORMATS)
@given(x=float32_arrays(min_size=1, max_size=80), block=st.sampled_from([8, 16, 32]))
def test_dequantize_error_is_within_half_a_step(fmt, scale, x, block):
    spec = get_format(fmt)
    q = quantize(x, fmt, block=block, scale=scale)
    d = q.dequantize().astype(np.float64)
    s = np.repeat(q.scale_values().astype(np.float64), block)[: x.size] if scale != "none" \
        else np.ones(x.size)
    x64 = x.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        y = np.where(s > 0, x64 / s, 0.0)
    lo, hi = spec.finite_values[0], spec.finite_values[-1]
    clamped = (y > hi) | (y < lo)
    bound = _half_step_bound(y, spec) * s
    slack = 2.0**-23 * np.abs(d) + 1e-45  # one float32 rounding of decode(q) * s
    ok = np.abs(d - x64) <= bound + slack
    assert np.all(ok | clamped)
    edge = np.where(y > hi, hi, lo)
    assert np.all(d[clamped] == (edge * s).astype(np.float32)[clamped])


def test_scale_rules_written_out():
    x = np.array([[0.3, -1.2, 2.9, 0.01]], np.float32)
    q = quantize(x, "float4_e2m1fn", block=4, scale="fp32")
    s = np.float32(np.float32(2.9) / np.float32(6.0))
    assert q.scales[0, 0] == s
    q8 = quantize(x, "float4_e2m1fn", block=4, scale="e4m3")
    s8 = decode(q8.scales, "float8_e4m3fn")[0, 0]
    assert s8 == decode(np.array([0x2F]), "float8_e4m3fn")[0]  # 2.9/6 = 0.483 -> 0.46875 (0x2F)
    qt = quantize(x, "ternary", block=None, scale="absmean")
    assert qt.scales[0, 0] == np.float32(np.abs(x.astype(np.float64)).mean())
    assert decode(qt.element_codes(), "ternary").tolist() == [[0, -1, 1, 0]]


def test_axis_and_per_channel():
    x = np.random.default_rng(0).standard_normal((64, 48)).astype(np.float32)
    q0 = quantize(x, "int8", block=None, axis=0, scale="fp32")
    assert q0.scales.shape == (48, 1) and q0.dequantize().shape == x.shape
    qt = quantize(x.T.copy(), "int8", block=None, axis=-1, scale="fp32")
    np.testing.assert_array_equal(q0.dequantize(), qt.dequantize().T)
    assert np.max(np.abs(q0.dequantize() - x)) <= np.max(np.abs(x)) / 127 / 2 * 1.0001


@pytest.mark.parametrize("fmt", ["tai4", "tai2", "float8_e4m3fn", "int4"])
@pytest.mark.parametrize("method", ["magnitude", "wanda"])
def test_sparse_quantized_tensor(fmt, method):
    rng = np.random.default_rng(1)
    w = rng.standard_normal((16, 128)).astype(np.float32)
    norms = rng.uniform(0.1, 3, 128).astype(np.float32)
    q = quantize(w, fmt, sparsity="8:4", prune=method, act_norms=norms if method == "wanda"
                 else None)
    mask = q.mask()
    assert mask.shape == w.shape and np.all(mask.reshape(16, -1, 8).sum(-1) == 4)
    d = q.dequantize()
    assert np.all(d[~mask] == 0)
    dense_q = quantize(np.where(mask, w, 0), fmt)  # same scales: pruned zeros don't move amax
    kept = d[mask]
    np.testing.assert_array_equal(kept, dense_q.dequantize()[mask])
    fp = footprint(w.shape, fmt, sparsity="8:4")
    assert fp.total_bytes == q.nbytes
    assert fp.metadata_bytes == q.mask_bits.nbytes == 16 * 128 // 8
    with pytest.raises(ConfigError, match=r"sparse \(8:4\) quantized tensor needs 'mask_bits'"):
        dataclasses.replace(q, mask_bits=None).mask()


@pytest.mark.parametrize("fmt", sorted(set(narrow_format_names()) - {"float8_e8m0fnu"}))
@pytest.mark.parametrize("scale", ["e8m0", "e4m3", "fp32", "none"])
@pytest.mark.parametrize("shape, block, sparsity", [
    ((3, 64), 32, None), ((5, 7, 96), 32, "8:4"), ((2, 50), 16, None), ((4, 64), None, "2:4"),
])
def test_footprint_equals_packed_nbytes(fmt, scale, shape, block, sparsity):
    x = np.random.default_rng(2).standard_normal(shape).astype(np.float32)
    q = quantize(x, fmt, block=block, scale=scale, sparsity=sparsity)
    fp = footprint(shape, fmt, block=block, scale=scale, sparsity=sparsity)
    meta = 0 if q.mask_bits is None else q.mask_bits.nbytes
    assert (fp.code_bytes, fp.scale_bytes, fp.metadata_bytes) == (
        q.codes.nbytes, q.scales.nbytes, meta)
    assert fp.total_bytes == q.nbytes


def test_footprint_bits_per_weight():
    n = 4096 * 4096
    assert footprint((4096, 4096), "float8_e4m3fn", scale="none").total_bytes == n
    tai4 = footprint((4096, 4096), "tai4")
    assert tai4.bits_per_element == 4 + 8 / 32  # 4-bit codes + one E8M0 per 32
    tai2 = footprint((4096, 4096), "tai2", sparsity="8:4")
    assert tai2.bits_per_element == 2 * 0.5 + 8 / 32 + 1  # kept codes + scales + 1-bit mask


@pytest.mark.parametrize("kwargs, match", [
    (dict(scale="e9m0"), "'scale' must be one of"),
    (dict(block=0), "'block' must be >= 1"),
    (dict(sparsity="8-4"), "'sparsity' must be 'none' or look like"),
    (dict(sparsity="8:4", block=12), "multiple of the sparsity group"),
    (dict(axis=3), "'axis' = 3 is out of range"),
])
def test_bad_quantize_arguments(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        quantize(np.ones((2, 32), np.float32), "tai4", **kwargs)
