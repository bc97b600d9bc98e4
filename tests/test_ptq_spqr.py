"""SpQR: outlier count and footprint exact, quantized scales as documented, error reduced."""

import math

import ml_dtypes
import numpy as np
import pytest

from prodigy_sim.errors import ConfigError
from prodigy_sim.numerics import get_format
from prodigy_sim.ptq import gptq, hessian, output_error, spqr
from tests.test_ptq_gptq import calibration, weights


def _layer(n=40, k=96, seed=0):
    x = calibration(384, k, seed=seed, rank=8)
    w = weights(n, k, seed=seed + 1)
    rng = np.random.default_rng(seed + 2)
    w[rng.random(w.shape) < 0.01] *= 12.0  # weight outliers
    return w, x


@pytest.mark.parametrize("fmt", ["int4", "tai4", "tai2"])
@pytest.mark.parametrize("outlier_dtype", ["float16", "bfloat16", "float32"])
def test_outlier_count_and_footprint_are_exact(fmt, outlier_dtype):
    n, k, group, tile, bits = 40, 96, 16, 16, 3
    w, x = _layer(n, k)
    r = spqr(w, hessian(x), fmt=fmt, group=group, scale_group=tile, scale_bits=bits,
             outlier_dtype=outlier_dtype)
    o = r.outliers
    dense = o.dense()
    assert o.count == r.stats["outliers"] == np.count_nonzero(dense) > 0
    assert np.array_equal(np.diff(o.row_ptr), np.count_nonzero(dense, axis=1))
    # the outliers replace the dense part's values; elsewhere the dense part is the weight
    at = dense != 0
    assert np.array_equal(r.weight[at], dense[at])
    assert np.array_equal(r.quantized.dequantize()[~at], r.weight[~at])
    # stored values (the error-compensated weights at that point) are values of the dtype
    dt = ml_dtypes.bfloat16 if outlier_dtype == "bfloat16" else np.dtype(outlier_dtype)
    assert np.array_equal(o.float_values().astype(dt).astype(np.float32), o.float_values())
    value_bytes = 4 if outlier_dtype == "float32" else 2
    g = math.ceil(k / group)
    want = (n * math.ceil(k * get_format(fmt).bits / 8)  # packed codes
            + n * math.ceil(g * bits / 8)  # 3-bit first-level scale codes
            + math.ceil(n / tile) * g * 2 * 2  # float16 lo and step per tile
            + o.count * value_bytes  # outlier values
            + (n + 1) * 4 + o.count * 2)  # CSR row pointers and uint16 column indices
    assert r.nbytes == want
    assert r.footprint["outlier_values"] == o.count * value_bytes


def test_scales_are_the_documented_second_level_quantization():
    w, x = _layer()
    r = spqr(w, hessian(x), fmt="int4")
    codes, lo, step = r.parts["scale_codes"], r.parts["scale_lo"], r.parts["scale_step"]
    assert codes.max() <= 7 and lo.dtype == step.dtype == np.float16
    rows = np.arange(w.shape[0]) // 16
    s_hat = (lo[rows].astype(np.float64) + step[rows].astype(np.float64) * codes).astype(
        np.float32)
    assert np.array_equal(r.quantized.scales, s_hat)
    assert r.quantized.scale == "fp32" and r.quantized.block == 16


def test_no_outliers_with_an_infinite_threshold_and_error_ordering():
    w, x = _layer(48, 128, seed=3)
    h = hessian(x)
    none = spqr(w, h, fmt="int4", outlier_threshold=np.inf)
    assert none.outliers.count == 0 and none.footprint["outlier_values"] == 0
    some = spqr(w, h, fmt="int4", outlier_threshold=0.2)
    many = spqr(w, h, fmt="int4", outlier_threshold=0.05)
    assert 0 < some.outliers.count < many.outliers.count
    e = [output_error(w, r.weight, x) for r in (none, some, many)]
    assert e[0] > e[1] > e[2]
    assert e[1] < output_error(w, gptq(w, h, fmt="int4").weight, x)


def test_spqr_rejects_bad_arguments():
    w, x = _layer()
    h = hessian(x)
    with pytest.raises(ConfigError, match="outlier_dtype"):
        spqr(w, h, fmt="int4", outlier_dtype="float8")
    with pytest.raises(ConfigError, match="scale_bits"):
        spqr(w, h, fmt="int4", scale_bits=0)


def test_bfloat16_and_float16_storage_round_once_to_nearest_even():
    from prodigy_sim.ptq._spqr import _store

    rng = np.random.default_rng(0)
    x = rng.standard_normal(20000) * np.exp2(rng.integers(-30, 15, 20000))
    x = np.concatenate([x, [1 + 2.0**-8, 1 + 3 * 2.0**-8, -(1 + 2.0**-8), 2.0**-130 * 1.5]])
    x = x.astype(np.float32).astype(np.float64)  # float32 inputs: ml_dtypes rounds them once
    for name, dt in (("bfloat16", ml_dtypes.bfloat16), ("float16", np.float16)):
        stored, vals = _store(x, name)
        assert np.array_equal(vals, x.astype(np.float32).astype(dt).astype(np.float32)), name
    bits, _ = _store(np.array([1.5, -2.0]), "bfloat16")
    assert bits.tolist() == [0x3FC0, 0xC000]
    # a float64 just above a bfloat16 midpoint rounds up (via float32 it would tie down to 1)
    _, v = _store(np.array([1 + 2.0**-8 + 2.0**-40]), "bfloat16")
    assert v[0] == 1 + 2.0**-7
    with pytest.raises(ConfigError, match="float16 range"):
        _store(np.array([70000.0]), "float16")
