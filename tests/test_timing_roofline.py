"""Simulated time against the roofline bound: never below it; close to it for large kernels.

The large GEMM runs on 2 of the 128 cores of ``prodigy-t16128``: with private 1 MiB
scratchpads and 8 accumulators a core cannot reach the ~3,250 MACs per DDR byte that the whole
chip would need to be compute-bound (4,096 MACs/cycle/core against 1.26 DDR B/cycle/core), so a
compute-bound GEMM is one that runs on few cores; each core's work is the same as it would be
on more cores. The GEMV runs on all 128 cores.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prodigy_sim.hardware import load_preset
from prodigy_sim.timing import batching_error, roofline_bound, simulate
from prodigy_sim.timing.programs import gemv_program, kloop_gemm_program, resident_gemm_program

CHIP = load_preset("prodigy-t16128")


@st.composite
def small_gemms(draw):
    ncores = draw(st.sampled_from([1, 2, 4]))
    rows = draw(st.sampled_from([16, 32, 48, 64]))
    n = draw(st.sampled_from([16, 32, 64]))
    k_chunk = draw(st.sampled_from([32, 64, 128]))
    double = draw(st.booleans())
    steps = draw(st.integers(1, 4)) * (2 if double else 1)
    w_fmt = draw(st.sampled_from(["float8_e4m3fn", "tai4", "float4_e2m1fn"]))
    return ncores, kloop_gemm_program(rows * ncores, n, k_chunk * steps, ncores,
                                      k_chunk=k_chunk, double_buffer=double, w_fmt=w_fmt)


@settings(max_examples=25)
@given(small_gemms())
def test_never_below_the_roofline(case):
    ncores, program = case
    bound = roofline_bound(program, CHIP, cores=ncores)[0]
    assert simulate(program, CHIP, cores=ncores).seconds >= bound


def test_large_compute_bound_gemm_is_within_125_percent_of_the_roofline():
    program = resident_gemm_program(8192, 256, 2048, 2)
    seconds, flops, nbytes = roofline_bound(program, CHIP, cores=2)
    compute_bound = flops / (2 * CHIP.peak_matrix_flops("float8_e4m3fn") / CHIP.cores)
    res = simulate(program, CHIP, cores=2)
    assert (seconds == pytest.approx(compute_bound), res.seconds / seconds < 1.25) == (True, True)


def test_large_memory_bound_gemv_is_within_125_percent_of_the_roofline():
    program = gemv_program(4096, 4096, 128)
    seconds = roofline_bound(program, CHIP)[0]
    assert simulate(program, CHIP).seconds / seconds < 1.25


def test_large_gemv_with_the_shared_l3_stays_within_the_roofline_band():
    # X is read by every core: one DDR read, 127 L3 hits; W is read once, so the bound holds
    program = gemv_program(4096, 4096, 128)
    ratio = simulate(program, CHIP, l3_bytes=None).seconds / roofline_bound(program, CHIP)[0]
    assert 1 <= ratio < 1.25


def test_large_gemv_time_is_the_ddr_models_time():
    # the batched DDR traffic drains within 1% of one DDR5 batch per controller of the same
    # requests: the gap to the roofline is the DDR5 model's, not the batching's
    err = batching_error(gemv_program(4096, 4096, 128), CHIP)
    assert err["drain_rel_diff_max"] < 0.01
