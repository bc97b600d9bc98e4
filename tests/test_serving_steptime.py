"""Step times from the simulator: buckets, interpolation, caching and files (with a stand-in
simulator), and interpolation against direct simulation on held-out LLaMA-2-7B points."""

import json
from pathlib import Path

import numpy as np
import pytest

from prodigy_sim.errors import ConfigError
from prodigy_sim.models import Routing
from prodigy_sim.serving import (
    EngineConfig,
    SimulatedStepTimes,
    StepShape,
    StepTimeModel,
    aligned,
    check_interpolation,
    default_decode_buckets,
    poisson_trace,
    saturation_requests_per_s,
    simulate_serving,
    vllm_decode_buckets,
)


def fake(scenario, config):
    """A stand-in simulator: seconds as a known function of the shape."""
    if scenario.phase == "decode":
        return 1e-3 + 1e-4 * scenario.batch + 1e-8 * scenario.batch * scenario.context_length
    return 2e-3 + 1e-5 * scenario.batch * scenario.sequence_length


def test_buckets():
    assert default_decode_buckets(64) == tuple(range(1, 65))
    assert default_decode_buckets(100) == tuple(range(1, 65)) + (128,)
    assert vllm_decode_buckets(64) == (1, 2, 4, 8, 16, 24, 32, 40, 48, 56, 64)
    assert vllm_decode_buckets(130) == (1, 2, 4, 8, 16, 24, 32, 40, 48, 56, 64, 128, 192)
    assert SimulatedStepTimes.prefill_bucket(1) == 64
    assert SimulatedStepTimes.prefill_bucket(300) == 512
    assert SimulatedStepTimes.prefill_bucket(4096) == 4096
    with pytest.raises(ConfigError, match="decode buckets \\[96\\]"):
        SimulatedStepTimes(decode_buckets=(1, 96), simulate=fake)


def test_rules_with_a_stand_in_simulator():
    calls = []
    st = SimulatedStepTimes("llama-2-7b", simulate=fake, decode_buckets=vllm_decode_buckets(64),
                            refine_tolerance=0, on_simulate=lambda *a: calls.append(a))
    assert isinstance(st, StepTimeModel) and st.max_context == 4096
    assert st.context_grid == (64, 256, 1024, 2048, 4096)
    # batch 5 runs as 8; context 100 -> 128, a third of the way from 64 to 256
    want = fake_decode(8, 64) + (fake_decode(8, 256) - fake_decode(8, 64)) * (128 - 64) / 192
    assert st.decode_seconds(5, 100) == pytest.approx(want)
    assert st.decode_seconds(8, 256) == fake_decode(8, 256)  # a grid point: exact
    assert st.prefill_seconds(300) == pytest.approx(2e-3 + 1e-5 * 512)
    assert st.prefill_seconds(8192) == pytest.approx(2e-3 + 1e-5 * 8192)  # 2 x 4096
    step = StepShape(decodes=5, decode_context_tokens=500, prefill_chunks=((200, 0), (100, 50)))
    assert st.step_seconds(step) == pytest.approx(st.prefill_seconds(300)
                                                  + st.decode_seconds(5, 100))
    n = len(calls)
    st.decode_seconds(6, 120)
    assert len(calls) == n  # cached: same bucket, same grid contexts
    assert ("prefill", 2, 4096) in [c[:3] for c in calls]


def fake_decode(b, c):
    return 1e-3 + 1e-4 * b + 1e-8 * b * c


def jump(scenario, config):
    """A stand-in decode time affine in the context except for a jump of 30% once the step's
    KV tokens (batch x context) reach 32768: a change of regime the bisection must find (the
    tests with it turn the aligned-step rule off: ``aligned_min=None``)."""
    b, c = scenario.batch, scenario.context_length
    t = 4e-3 + 6e-7 * b * c
    return t * 1.3 if b * c >= 32768 else t


def test_refinement_finds_the_jump_and_interpolates_only_where_affine():
    calls = []
    st = SimulatedStepTimes("llama-2-7b", aligned_min=None, simulate=jump,
                            on_simulate=lambda *a: calls.append(a))
    # batch 8: the jump at context 4096 is a grid point; 3008 lies in 2048..4096, whose midpoint
    # 3072 is 16% below the chord: refine [2048, 3072] (midpoint 2560 on the chord):
    # interpolate between 2560 and 3072, exactly.
    assert st.decode_seconds(8, 3000) == pytest.approx(4e-3 + 6e-7 * 8 * 3008)
    assert sorted(c[2] for c in calls) == [2048, 2560, 3072, 4096]
    # batch 32: the jump at 1024; around it refinement goes down to the 64-token tile, so
    # context 900 (960) is simulated itself; with 128-token intervals it is interpolated
    # across the jump
    assert st.decode_seconds(32, 900) == pytest.approx(4e-3 + 6e-7 * 32 * 960)
    assert st.decode_interval(32, 960) == (960, 960)
    coarse = SimulatedStepTimes("llama-2-7b", aligned_min=None, simulate=jump, min_interval=128)
    assert coarse.decode_interval(32, 960) == (896, 1024)
    assert coarse.decode_seconds(32, 900) > 1.1 * st.decode_seconds(32, 900)
    # without refinement, interpolating across the jump misses
    plain = SimulatedStepTimes("llama-2-7b", aligned_min=None, simulate=jump, refine_tolerance=0)
    assert plain.decode_seconds(8, 3000) / (4e-3 + 6e-7 * 8 * 3008) - 1 > 0.05
    # the points simulated do not depend on the order of the queries
    again = SimulatedStepTimes("llama-2-7b", aligned_min=None, simulate=jump)
    assert again.decode_seconds(32, 900) == st.decode_seconds(32, 900)
    assert again.decode_seconds(8, 3000) == st.decode_seconds(8, 3000)
    assert again.table() == st.table()
    with pytest.raises(ConfigError, match="refine_tolerance"):
        SimulatedStepTimes("llama-2-7b", aligned_min=None, simulate=jump, min_interval=32)


def test_batch_bisection_interpolates_only_where_affine():
    st = SimulatedStepTimes("llama-2-7b", aligned_min=None, simulate=jump)
    # batch 5 at context 1024: 4..8 (8192 KV tokens at most) is affine, its middle batch 6 on
    # the chord: interpolated between batches 4 and 6, exactly
    assert st.decode_batches(5, 1024) == (4, 6)
    assert st.decode_seconds(5, 1000) == pytest.approx(4e-3 + 6e-7 * 5 * 1024)
    assert not any(b == 5 for b, _, _ in st.table()["decode"])
    # batch 10 at context 2048: batch 16 is past the jump (32768 KV tokens), the middle batch 12
    # is off the chord; 8..12 again (batch 10 its middle): simulated
    assert st.decode_batches(10, 2048) == (10, 10)
    assert st.decode_seconds(10, 2048) == pytest.approx(4e-3 + 6e-7 * 10 * 2048)
    # batch 40 at context 512: 32..64 crosses the jump at 64; 48 (24576 tokens) is off the
    # chord, so is 40 in 32..48: down to 40 itself
    assert st.decode_batches(40, 512) == (40, 40)
    assert st.decode_seconds(40, 512) == pytest.approx(4e-3 + 6e-7 * 40 * 512)
    every = SimulatedStepTimes("llama-2-7b", aligned_min=None, simulate=jump, batch_grid=())
    assert every.decode_batches(5, 1024) == (5, 5)


def test_table_file_roundtrip_and_key(tmp_path):
    st = SimulatedStepTimes("llama-2-7b", simulate=fake)
    # batch 3: the middle of the batch grid interval 2..4 is 3 itself, simulated without the
    # chord through 2 and 4; contexts 256, 1024 and the midpoint 640 (fake is affine: no more)
    st.decode_seconds(3, 700)
    assert {(b, c) for b, c, _ in st.table()["decode"]} == {(3, c) for c in (256, 640, 1024)}
    st.prefill_seconds(100)
    path = st.save(tmp_path / "t.json")
    again = SimulatedStepTimes("llama-2-7b", simulate=lambda *a: pytest.fail("simulated"))
    assert again.load(path) == 4
    assert again.decode_seconds(3, 700) == st.decode_seconds(3, 700)
    other = SimulatedStepTimes("llama-2-7b", sparsity="8:4", simulate=fake)
    with pytest.raises(ConfigError, match="another model, format, chip"):
        other.load(path)
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ConfigError, match="not a step-time table"):
        st.load(tmp_path / "bad.json")
    assert json.loads(path.read_text())["key"]["model"] == "llama-2-7b"


def test_table_key_holds_the_moe_routing(tmp_path):
    """Two MoE routing models never share cached step times; the routing reaches the
    simulated scenarios; a dense model refuses a routing."""
    seen = []

    def spy(scenario, config):
        seen.append(scenario.routing)
        return fake(scenario, config)

    skew = Routing(model="zipf", zipf_exponent=1.2)
    uniform = SimulatedStepTimes("mixtral-8x7b", simulate=spy)
    skewed = SimulatedStepTimes("mixtral-8x7b", routing=skew, simulate=spy)
    assert uniform.key() != skewed.key()
    assert skewed.key()["scenario"]["routing"]["zipf_exponent"] == 1.2
    skewed.decode_point(2, 64)
    assert seen == [skew]
    path = skewed.save(tmp_path / "skewed.json")
    with pytest.raises(ConfigError, match="another model, format, chip"):
        uniform.load(path)
    again = SimulatedStepTimes("mixtral-8x7b", routing=skew,
                               simulate=lambda *a: pytest.fail("simulated"))
    assert again.load(path) == 1 and again.decode_point(2, 64) == skewed.decode_point(2, 64)
    dropless = SimulatedStepTimes("mixtral-8x7b", routing=Routing(capacity_factor=None),
                                  simulate=spy)
    assert dropless.key() != uniform.key()
    with pytest.raises(ConfigError, match="has no experts"):
        SimulatedStepTimes("llama-2-7b", routing=skew, simulate=spy)


def test_check_interpolation_refuses_grid_points():
    st = SimulatedStepTimes("llama-2-7b", simulate=fake, decode_buckets=vllm_decode_buckets(64))
    with pytest.raises(ConfigError, match="not a held-out point"):
        check_interpolation(st, [(4, 1000)])  # 1000 -> 1024, a grid context
    with pytest.raises(ConfigError, match="not a held-out point"):
        check_interpolation(st, [(4, 600)])  # 600 -> 640, the midpoint of 256..1024
    assert check_interpolation(st, [(4, 600)], shift=True)[0].context == 664  # -> 704
    row = check_interpolation(st, [(3, 500)], unpadded=True)[0]
    assert row.bucket == 4 and row.direct_s == pytest.approx(fake_decode(4, 500))
    assert row.unpadded_s == pytest.approx(fake_decode(3, 500))
    assert abs(row.error) < 0.01  # the stand-in is linear in the context


@pytest.mark.slow
def test_interpolated_decode_within_5_percent_of_direct_simulation():
    st = SimulatedStepTimes("llama-2-7b")
    rows = check_interpolation(st, [(8, 512), (5, 700)], shift=True)  # 5: between batches
    for row in rows:
        assert abs(row.error) < 0.05, row
    simulated = {(b, c) for b, c, _ in st.table()["decode"]}
    assert not simulated & {(r.bucket, r.context) for r in rows}  # direct runs not added
    doc = (Path(__file__).parent.parent / "docs" / "serving.md").read_text()
    row = rows[0]  # docs/serving.md, from `python benchmarks/bench_serving.py`
    c0, c1 = st.decode_interval(8, st.grid_context(row.context))
    assert (f"| 8 | {row.context} | 8, 8 | {c0}, {c1} | {row.interpolated_s * 1e3:.3f} | "
            f"{row.direct_s * 1e3:.3f} | {row.error:+.1%} |") in doc


@pytest.mark.slow
def test_throughput_saturates_at_the_rate_simulated_step_times_predict():
    # one 1024-token prompt per prefill step, 16 decoding: a few simulated shapes in all
    steps = SimulatedStepTimes("llama-2-7b", decode_buckets=(16,), context_grid=(1024, 2048))
    engine = EngineConfig(max_batch=16, max_prefill_tokens=1024)
    rate = saturation_requests_per_s(steps, 1024, 64, engine, prompts_per_prefill=1)
    r = simulate_serving(poisson_trace(1000, 3 * rate, "fixed:1024", "fixed:64", seed=1), steps,
                         engine)
    done = np.sort(r.finish_s)
    assert 799 / (done[899] - done[100]) == pytest.approx(rate, rel=0.01)
    table = steps.table()  # one prefill; decode at the grid and its bisection midpoints
    assert [n for n, _ in table["prefill"]] == [1024]
    contexts = [c for b, c, _ in table["decode"] if b == 16]
    assert len(contexts) == len(table["decode"]) and {1024, 1536} <= set(contexts)
    # 16 x 2048 KV tokens is aligned (2**15): the top node is the line through the two tiles
    # below it, and no step of this trace (contexts up to 1088) runs at 2048 itself
    assert aligned(16, 2048) and 2048 not in contexts and {1920, 1984} <= set(contexts)


def spiky(scenario, config):
    """The stand-in, 20% slower where the step's KV tokens are a power of two >= 2**14 (as the
    lowering's contiguous KV layout makes the simulator; docs/serving.md)."""
    t = fake(scenario, config)
    if scenario.phase == "decode" and aligned(scenario.batch, scenario.context_length):
        t *= 1.2
    return t


def test_aligned_steps_are_simulated_and_never_interpolation_nodes():
    assert aligned(64, 512) and aligned(8, 2048) and aligned(1, 1 << 14)
    assert not aligned(8, 1024) and not aligned(64, 576) and not aligned(48, 512)
    st = SimulatedStepTimes("llama-2-7b", simulate=spiky)
    # an aligned step is a simulation of its own: its spike is the simulator's answer
    assert st.decode_seconds(64, 500) == spiky_decode(64, 512) and st.simulated_at(64, 512)
    # steps around aligned nodes (64 x 1024, 16 x 1024, 32 x 2048, ...) follow the trend: the
    # stand-in is affine off the spikes, so interpolation is exact there
    for b, c in [(64, 576), (64, 960), (63, 1024), (48, 1024), (16, 1100), (20, 2000),
                 (8, 4000), (8, 3000), (40, 4096)]:
        assert not aligned(st.decode_bucket(b), st.grid_context(c))
        assert st.decode_seconds(b, c) == pytest.approx(fake_decode(b, st.grid_context(c)),
                                                        rel=1e-9), (b, c)
    # taking the spikes as nodes would have leaked them into the chords
    assert st.decode_node(64, 1024) == pytest.approx(fake_decode(64, 1024), rel=1e-9)
    assert st.decode_point(64, 1024) == pytest.approx(1.2 * fake_decode(64, 1024))
    assert st.decode_node(8, 4096) == pytest.approx(fake_decode(8, 4096), rel=1e-9)


def spiky_decode(batch, context):
    return 1.2 * fake_decode(batch, context)


def test_worker_processes_give_the_serial_grid_bit_for_bit():
    """``workers=2`` (each query's points lowered together, their timing-engine runs made in
    worker processes) simulates the same points with the same seconds as ``workers=1``, and
    answers every query the same; a small model on 8 cores, so that it is quick."""
    queries = [(1, 300), (3, 700), (2, 2000), (6, 100)]
    out = []
    for workers in (1, 2):
        with SimulatedStepTimes("smollm2-135m", cores=8, max_batch=8, workers=workers) as st:
            times = [st.decode_seconds(b, c) for b, c in queries] + [st.prefill_seconds(100)]
            out.append((times, st.table()))
            assert (st.runs.submitted > 0) == (workers > 1)
    assert out[0] == out[1]
    assert len(out[0][1]["decode"]) > len(queries)  # bisections, in contexts and batches
    with pytest.raises(ConfigError, match="unknown simulation options"):
        SimulatedStepTimes("smollm2-135m", cache=None)
