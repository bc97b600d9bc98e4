"""prodigy_sim.testing: its strategies draw valid objects, the package agrees with its oracles
on random user formats, and a property test written only with it finds a planted rounding bug
(the example of docs/testing.md)."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from prodigy_sim.errors import EncodeError
from prodigy_sim.isa import assemble, decode, disassemble, encode
from prodigy_sim.numerics import encode as encode_values
from prodigy_sim.testing import (
    chip_configs,
    exact_encode,
    exact_values,
    float32_any,
    float32_near,
    formats,
    programs,
    quantized_tensors,
    user_formats,
)

# ---------------------------------------------------------------- the docs' example


def toy_encode(x: float, spec, ties: str = "even") -> int:
    """A user's toy rounding kernel: the code of the finite value nearest ``x``; on a tie the
    even code (``ties="even"``), or - the planted bug - the larger magnitude."""
    vals = spec.values
    codes = [c for c in range(vals.size) if np.isfinite(vals[c])]
    if ties == "even":
        return min(codes, key=lambda c: (abs(vals[c] - x), c & 1))
    return min(codes, key=lambda c: (abs(vals[c] - x), -abs(vals[c])))


def _as_number(v) -> Fraction:
    return v[0] if isinstance(v, tuple) else v


def rounding_property(ties: str):
    """The property test of docs/testing.md, for the toy kernel with ``ties``."""

    @settings(max_examples=300, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(st.data())
    def check(data):
        spec = data.draw(formats().filter(lambda s: s.rounding == "nearest_even"))
        x = data.draw(float32_near(spec).filter(lambda v: abs(v) <= spec.finite_values[-1]))
        want = exact_values(spec)[exact_encode(x, spec, "saturate")]
        got = exact_values(spec)[toy_encode(x, spec, ties)]
        assert _as_number(got) == _as_number(want), (spec.name, x)

    return check


def test_the_property_passes_a_correct_kernel():
    rounding_property("even")()


def test_the_property_finds_the_planted_rounding_bug():
    with pytest.raises(AssertionError):
        rounding_property("away")()


# ---------------------------------------------------------------- the strategies


@settings(max_examples=60, deadline=None)
@given(spec=user_formats(), data=st.data())
def test_encode_of_random_user_formats_is_the_written_rule(spec, data):
    """The package's encoder against the exact oracle on formats nobody shipped."""
    x = data.draw(st.one_of(float32_any(), float32_near(spec)))
    want = exact_encode(x, spec, spec.overflow)
    if want is None:
        with pytest.raises(EncodeError):
            encode_values(np.array([x], np.float32), spec, spec.overflow)
    else:
        assert int(encode_values(np.array([x], np.float32), spec, spec.overflow)[0]) == want


@settings(max_examples=40, deadline=None)
@given(spec=user_formats())
def test_user_formats_are_valid_and_exactly_decoded(spec):
    vals = exact_values(spec)
    finite = [v for v in vals if isinstance(v, Fraction)]
    assert finite and max(finite) > 0
    assert len(set(finite)) == len(finite)
    for code, v in enumerate(vals):
        if isinstance(v, Fraction):
            assert float(v) == spec.values[code]
        elif isinstance(v, tuple):
            assert spec.values[code] == 0
        elif v == "nan":
            assert math.isnan(spec.values[code])


@settings(max_examples=30, deadline=None)
@given(pair=quantized_tensors())
def test_quantized_tensors_match_their_storage(pair):
    x, q = pair
    assert q.shape == x.shape
    deq = q.dequantize()
    assert deq.shape == x.shape and deq.dtype == np.float32
    if q.storage.sparsity is not None:
        g, k = q.storage.sparsity.group, q.storage.sparsity.kept
        nz = (deq.reshape(x.shape[0], -1, g) != 0).sum(axis=-1)
        assert (nz <= k).all()


@settings(max_examples=25, deadline=None)
@given(program=programs(max_instructions=10))
def test_programs_round_trip(program):
    assert decode(encode(program)) == program
    assert assemble(disassemble(program)) == program


@settings(max_examples=8, deadline=None)
@given(drawn=chip_configs())
def test_chip_configs_apply_their_overrides(drawn):
    config, overrides = drawn
    if "cores" in overrides:
        assert config.cores == overrides["cores"]
    if "memory.channels" in overrides:
        assert config.memory.channels == overrides["memory.channels"]
