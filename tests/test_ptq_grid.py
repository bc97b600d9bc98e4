"""PTQ grid: scale rules against numerics (bit for bit) and against exact written-out rules."""

import ast
import math
from fractions import Fraction
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from prodigy_sim.errors import ConfigError
from prodigy_sim.numerics import get_format, quantize
from prodigy_sim.ptq import block_scales, make_grid, quantize_rows, round_to_scales, rtn

FORMATS = ["tai4", "tai2", "int4", "float4_e2m1fn", "float8_e4m3fn", "int8", "ternary"]


def _weights(seed=0, rows=24, k=96):
    """Rows with magnitudes spread over many octaves, some amax just below/at powers of two,
    and an all-zero block."""
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((rows, k)) * np.exp2(rng.integers(-12, 8, (rows, 1)))
    w[0, :32] = 0.0
    for i in range(1, 6):
        w[i, 3] = np.nextafter(np.float32(2.0 ** (i - 3)), np.float32(0))  # just below 2^e
        w[i, 40] = 2.0 ** (i - 3)
    return w.astype(np.float32)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("scale,block", [("e8m0", 32), ("e4m3", 16), ("e4m3", 32),
                                         ("fp32", 32), ("absmean", 32), ("none", 32),
                                         ("e8m0", None)])
@pytest.mark.parametrize("sparsity", [None, "8:4", "2:4"])
def test_default_rules_store_exactly_what_numerics_stores(fmt, scale, block, sparsity):
    """rtn with the kind's default rule (OCP floor for E8M0, nearest otherwise) equals
    numerics.quantize: codes, scales and mask bits, and dequantizes to its weight."""
    w = _weights()
    q = quantize(w, fmt, block=block, scale=scale, sparsity=sparsity)
    r = rtn(w, fmt=fmt, block=block, scale=scale, sparsity=sparsity)
    assert np.array_equal(r.quantized.codes, q.codes)
    assert r.quantized.scales.dtype == q.scales.dtype
    assert np.array_equal(r.quantized.scales, q.scales)
    if sparsity:
        assert np.array_equal(r.quantized.mask_bits, q.mask_bits)
    assert np.array_equal(r.quantized.dequantize(), q.dequantize())
    assert np.array_equal(r.weight, q.dequantize())


def test_floor_e8m0_is_numerics_e8m0_bit_for_bit_float64_input():
    """The OCP floor rule on float64 weights (GPTQ's working precision) matches numerics too."""
    w = _weights(5).astype(np.float64) * (1 + 1e-12)
    for fmt in ("tai4", "float4_e2m1fn", "int4"):
        sc = block_scales(w, make_grid(fmt, 32, "e8m0", "floor"))
        q = quantize(w, fmt, block=32, scale="e8m0")
        assert np.array_equal(sc.codes, q.scales)


# ---- exact written-out rules ---------------------------------------------------------------------

def _floor_log2(a: Fraction) -> int:
    e = math.frexp(float(a))[1] - 1
    while Fraction(2) ** e > a:
        e -= 1
    while Fraction(2) ** (e + 1) <= a:
        e += 1
    return e


def _ref_e8m0(amax: float, fmt: str, rule: str) -> int:
    """Exponent by the written rule, with Fractions (no float log2)."""
    if amax == 0:
        return -127
    a = Fraction(amax)
    top = Fraction(get_format(fmt).max_finite)
    if rule == "floor":
        e = _floor_log2(a) - _floor_log2(top)
    elif rule == "noclip":
        e = _floor_log2(a / top)
        if top * Fraction(2) ** e < a:
            e += 1
    else:  # nearest: 2^(2e-1) <= (a/top)^2 < 2^(2e+1)
        r2 = (a / top) ** 2
        e = (_floor_log2(r2) + 1) // 2
        assert Fraction(2) ** (2 * e - 1) <= r2 < Fraction(2) ** (2 * e + 1)
    return max(-127, min(127, e))


@given(st.floats(min_value=2.0**-140, max_value=2.0**120, allow_subnormal=True, width=32),
       st.sampled_from(["tai4", "tai2", "int4", "float4_e2m1fn", "float8_e4m3fn", "int8"]),
       st.sampled_from(["floor", "nearest", "noclip"]))
def test_e8m0_rules_match_the_written_rule(amax, fmt, rule):
    x = np.zeros((1, 32), np.float32)
    x[0, 7] = -amax
    x[0, 9] = amax / 3
    sc = block_scales(x, make_grid(fmt, 32, "e8m0", rule))
    assert int(sc.codes[0, 0]) - 127 == _ref_e8m0(float(np.float32(amax)), fmt, rule)
    assert sc.values[0, 0] == np.float32(2.0 ** (int(sc.codes[0, 0]) - 127))


_E4M3 = sorted({Fraction(float(v)) for v in np.arange(0, 0x7F, dtype=np.uint8).view(
    ml_dtypes.float8_e4m3fn).astype(np.float64) if v > 0})


@given(st.floats(min_value=2.0**-20, max_value=2.0**20, width=32),
       st.sampled_from(["tai4", "int4", "float4_e2m1fn", "int8"]),
       st.sampled_from(["floor", "noclip"]))
def test_e4m3_floor_and_noclip_match_the_written_rule(amax, fmt, rule):
    """Largest E4M3 scale with s * M <= amax (floor) / smallest with s * M >= amax (noclip),
    clamped to [2^-9, 448]; E4M3 values listed by ml_dtypes."""
    x = np.full((1, 16), amax / 2, np.float32)
    x[0, 0] = amax
    top = Fraction(get_format(fmt).max_finite)
    a = Fraction(float(np.float32(amax)))
    if rule == "floor":
        ok = [v for v in _E4M3 if v * top <= a]
        want = ok[-1] if ok else _E4M3[0]
    else:
        ok = [v for v in _E4M3 if v * top >= a]
        want = ok[0] if ok else _E4M3[-1]
    sc = block_scales(x, make_grid(fmt, 16, "e4m3", rule))
    assert Fraction(float(sc.values[0, 0])) == want


@given(st.floats(min_value=2.0**-100, max_value=2.0**100, width=32),
       st.sampled_from(["tai4", "int4", "float4_e2m1fn", "int8", "float8_e4m3fn"]))
def test_fp32_floor_and_noclip_are_the_neighbouring_float32s(amax, fmt):
    x = np.array([[amax, -amax / 5]], np.float32)
    top = Fraction(get_format(fmt).max_finite)
    a = Fraction(float(np.float32(amax)))
    lo = block_scales(x, make_grid(fmt, 2, "fp32", "floor")).values[0, 0]
    hi = block_scales(x, make_grid(fmt, 2, "fp32", "noclip")).values[0, 0]
    up = Fraction(float(np.nextafter(lo, np.float32(1e38))))
    down = Fraction(float(np.nextafter(hi, np.float32(0))))
    assert Fraction(float(lo)) * top <= a < up * top
    assert Fraction(float(hi)) * top >= a > down * top


# ---- properties between rules -------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["tai4", "tai2", "int4", "float4_e2m1fn", "float8_e4m3fn"])
@pytest.mark.parametrize("scale,block", [("e8m0", 32), ("e4m3", 16), ("fp32", 32)])
def test_noclip_never_clips_and_rules_are_ordered(fmt, scale, block):
    w = _weights(1)
    spec = get_format(fmt)
    vals = {r: block_scales(w, make_grid(fmt, block, scale, r)).values.astype(np.float64)
            for r in ("floor", "nearest", "noclip")}
    nc = np.repeat(vals["noclip"], block, axis=1)[:, :w.shape[1]]
    nz = nc > 0
    assert np.all(np.abs(w[nz]) / nc[nz] <= spec.max_finite)
    assert np.all(vals["floor"] <= vals["noclip"])
    assert np.all(vals["nearest"] <= vals["noclip"])
    if spec.max_finite == 2.0 ** spec.emax or scale != "e8m0":  # tai4, tai2; E4M3/fp32 grids
        assert np.all(vals["floor"] <= vals["nearest"])
    if scale != "fp32":  # fp32 floor is within an ulp of amax / M; the others clip visibly
        fl = np.repeat(vals["floor"], block, axis=1)[:, :w.shape[1]]
        assert np.any(np.abs(w[fl > 0]) / fl[fl > 0] > spec.max_finite)


@pytest.mark.parametrize("fmt", ["tai4", "tai2", "int4", "float4_e2m1fn"])
@pytest.mark.parametrize("scale,block", [("e8m0", 32), ("e4m3", 16), ("fp32", 32)])
def test_mse_rule_has_the_least_block_error(fmt, scale, block):
    """``mse`` tries noclip and smaller scales; for E8M0 the candidates include floor and
    nearest, so its squared error is at most theirs in every block."""
    w = _weights(2).astype(np.float64)
    errs = {}
    for r in SCALE_RULES_ALL:
        _, v, _ = quantize_rows(w, make_grid(fmt, block, scale, r))
        d = (w - v) ** 2
        errs[r] = d.reshape(d.shape[0], -1, block).sum(axis=2)
    assert np.all(errs["mse"] <= errs["noclip"])
    if scale == "e8m0":
        assert np.all(errs["mse"] <= errs["floor"])
        assert np.all(errs["mse"] <= errs["nearest"])
    assert errs["mse"].sum() < errs["noclip"].sum()


SCALE_RULES_ALL = ("floor", "nearest", "noclip", "mse")


def test_round_to_scales_is_encode_then_decode_times_scale():
    spec = get_format("tai4")
    # x / 0.5 = 0.6 -> 0.5; -1.48 -> -1; 3.2 saturates to 1; 0; 2^-6 exact; 1.5 * 2^-6 is a tie
    # between 2^-6 (code 1) and 2^-5 (code 2, even) -> 2^-5
    x = np.array([0.3, -0.74, 1.6, 0.0, 2.0**-7, 3 * 2.0**-8], np.float64)
    codes, vals = round_to_scales(x, np.float32(0.5), spec)
    assert vals.tolist() == [0.25, -0.5, 0.5, 0.0, 2.0**-7, 2.0**-6]
    codes0, vals0 = round_to_scales(x, np.float32(0.0), spec)
    assert np.all(vals0 == 0) and np.all(codes0 == codes0[0])


def test_bad_grid_arguments_raise_config_error():
    with pytest.raises(ConfigError, match="'rule'"):
        make_grid("tai4", 32, "e8m0", "ceil")
    with pytest.raises(ConfigError, match="'scale'"):
        make_grid("tai4", 32, "e5m2")
    with pytest.raises(ConfigError, match="single rule"):
        make_grid("ternary", 32, "absmean", "noclip")
    with pytest.raises(ConfigError, match="finite"):
        block_scales(np.array([[np.nan, 1.0]]), make_grid("tai4", 2))


def test_ptq_imports_only_errors_jit_detmath_and_public_numerics():
    """prodigy_sim.ptq sits right above numerics: it imports errors, detmath (fixed-order
    products) and numerics' public API."""
    allowed = {"prodigy_sim.errors", "prodigy_sim.numerics", "prodigy_sim._jit",
               "prodigy_sim.detmath"}
    for path in (Path(__file__).parents[1] / "prodigy_sim" / "ptq").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("prodigy_sim"):
                mod = node.module
                assert mod in allowed or mod.startswith("prodigy_sim.ptq"), (path.name, mod)
            if isinstance(node, ast.Import):
                assert not any(a.name.startswith("prodigy_sim") for a in node.names), path.name
