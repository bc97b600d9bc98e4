"""The wide storage formats (bfloat16, float16, float32) as FormatSpecs: every code decodes as
ml_dtypes / numpy do, and encoding equals their casts (one rounding, also from float64)."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from prodigy_sim.errors import FormatError
from prodigy_sim.numerics import Storage, decode, encode, footprint, get_format, quantize

WIDE = {"bfloat16": (ml_dtypes.bfloat16, np.uint16), "float16": (np.float16, np.uint16),
        "float32": (np.float32, np.uint32)}


def _hard_inputs() -> np.ndarray:
    rng = np.random.default_rng(3)
    x = rng.standard_normal(200_000) * 10.0 ** rng.integers(-46, 39, 200_000)
    specials = [0.0, -0.0, np.inf, -np.inf, 3.4e38, 3.5e38, 1e-45, 1e-46, 7e-46, 65504.0,
                65519.99, 65520.0, 6.0e-8, 2.9e-8, 3.0e-8, 1.0 + 2**-8, 1.0 + 3 * 2**-8]
    return np.concatenate([x, specials, -np.asarray(specials)])


@pytest.mark.parametrize("name", ["bfloat16", "float16"])
def test_every_code_decodes_as_the_oracle(name):
    dt, ct = WIDE[name]
    codes = np.arange(1 << 16, dtype=ct)
    want = codes.view(dt).astype(np.float32)
    got = decode(codes, name)
    assert np.array_equal(got.view(np.uint32)[~np.isnan(want)],
                          want.view(np.uint32)[~np.isnan(want)])
    assert np.array_equal(np.isnan(got), np.isnan(want))


@pytest.mark.parametrize("name", sorted(WIDE))
@pytest.mark.parametrize("src", [np.float64, np.float32])
def test_encode_equals_the_cast(name, src):
    dt, ct = WIDE[name]
    with np.errstate(over="ignore"):
        x = _hard_inputs().astype(src)
        want = x.astype(dt).view(ct)
    got = encode(x, name, overflow="nonsaturating")
    assert got.dtype == ct and np.array_equal(got, want)


@given(st.integers(0, 2**32 - 1))
def test_float32_bits_through_bfloat16_match_ml_dtypes(bits):
    x = np.array([bits], dtype=np.uint32).view(np.float32)
    got = encode(x, "bfloat16", overflow="nonsaturating")
    if np.isnan(x[0]):                     # quiet NaN, sign and top payload bits kept
        assert got[0] == ((bits >> 16) | 0x40)
    else:
        assert got[0] == x.astype(ml_dtypes.bfloat16).view(np.uint16)[0]


def test_saturate_clamps_to_the_largest_finite():
    for name in WIDE:
        spec = get_format(name)
        x = np.array([np.inf, -np.inf, 1e300, spec.max_finite * 2.0])
        assert np.array_equal(decode(encode(x, name, "saturate"), name),
                              np.float32([1, -1, 1, 1]) * np.float32(spec.max_finite))


def test_facts_and_refusals():
    assert get_format("float32").max_finite == float(np.finfo(np.float32).max)
    assert get_format("float16").min_positive == 2.0**-24
    assert get_format("bfloat16").wide and not get_format("tai4").wide
    with pytest.raises(FormatError, match="no value table"):
        get_format("float32").values  # noqa: B018
    assert Storage.of("float32").row_bytes(10).code == 40


@pytest.mark.parametrize("name", sorted(WIDE))
def test_quantize_stores_wide_words(name):
    x = np.random.default_rng(1).standard_normal((3, 16)).astype(np.float32)
    q = quantize(x, name)
    assert q.scale == "none" and q.nbytes == footprint(x.shape, name).total_bytes
    dt = WIDE[name][0]
    assert np.array_equal(q.dequantize(), x.astype(dt).astype(np.float32))
