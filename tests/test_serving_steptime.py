"""Step times from the simulator: buckets, interpolation, caching and files (with a stand-in
simulator), and interpolation against direct simulation on held-out LLaMA-2-7B points."""

import json
from pathlib import Path

import numpy as np
import pytest

from prodigy_sim.errors import ConfigError
from prodigy_sim.serving import (
    EngineConfig,
    SimulatedStepTimes,
    StepShape,
    StepTimeModel,
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
                            on_simulate=lambda *a: calls.append(a))
    assert isinstance(st, StepTimeModel) and st.max_context == 4096
    assert st.context_grid == (64, 256, 1024, 4096)
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


def test_table_file_roundtrip_and_key(tmp_path):
    st = SimulatedStepTimes("llama-2-7b", simulate=fake)
    st.decode_seconds(3, 700)
    st.prefill_seconds(100)
    path = st.save(tmp_path / "t.json")
    again = SimulatedStepTimes("llama-2-7b", simulate=lambda *a: pytest.fail("simulated"))
    assert again.load(path) == 3
    assert again.decode_seconds(3, 700) == st.decode_seconds(3, 700)
    other = SimulatedStepTimes("llama-2-7b", sparsity="8:4", simulate=fake)
    with pytest.raises(ConfigError, match="another model, format, chip"):
        other.load(path)
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ConfigError, match="not a step-time table"):
        st.load(tmp_path / "bad.json")
    assert json.loads(path.read_text())["key"]["model"] == "llama-2-7b"


def test_check_interpolation_refuses_grid_points():
    st = SimulatedStepTimes("llama-2-7b", simulate=fake, decode_buckets=vllm_decode_buckets(64))
    with pytest.raises(ConfigError, match="not a held-out point"):
        check_interpolation(st, [(4, 1000)])  # 1000 -> 1024, a grid context
    row = check_interpolation(st, [(3, 600)], unpadded=True)[0]
    assert row.bucket == 4 and row.direct_s == pytest.approx(fake_decode(4, 600))
    assert row.unpadded_s == pytest.approx(fake_decode(3, 600))
    assert abs(row.error) < 0.01  # the stand-in is linear in the context


@pytest.mark.slow
def test_interpolated_decode_within_5_percent_of_direct_simulation():
    st = SimulatedStepTimes("llama-2-7b")
    rows = check_interpolation(st, [(8, 512), (3, 2048)])
    for row in rows:
        assert abs(row.error) < 0.05, row
    assert st.simulations == 4  # the grid points; the direct runs are not added to the grid
    doc = (Path(__file__).parent.parent / "docs" / "serving.md").read_text()
    row = rows[0]  # docs/serving.md, from `python benchmarks/bench_serving.py`
    assert (f"| 8 | 512 | {row.interpolated_s * 1e3:.3f} | {row.direct_s * 1e3:.3f} | "
            f"{row.error:+.1%} |") in doc


@pytest.mark.slow
def test_throughput_saturates_at_the_rate_simulated_step_times_predict():
    # one 1024-token prompt per prefill step, 16 decoding: three simulated shapes in all
    steps = SimulatedStepTimes("llama-2-7b", decode_buckets=(16,), context_grid=(1024, 2048))
    engine = EngineConfig(max_batch=16, max_prefill_tokens=1024)
    rate = saturation_requests_per_s(steps, 1024, 64, engine, prompts_per_prefill=1)
    r = simulate_serving(poisson_trace(1000, 3 * rate, "fixed:1024", "fixed:64", seed=1), steps,
                         engine)
    done = np.sort(r.finish_s)
    assert 799 / (done[899] - done[100]) == pytest.approx(rate, rel=0.01)
    assert steps.simulations == 3
