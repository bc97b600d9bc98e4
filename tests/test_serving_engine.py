"""The serving engine: exact timelines on small cases, preemption by recompute, chunked prefill,
latency against load and saturation at the rate the step times predict (analytic step times)."""

import numpy as np
import pytest

from prodigy_sim.errors import ConfigError
from prodigy_sim.serving import (
    AnalyticStepTimes,
    EngineConfig,
    Request,
    StepShape,
    poisson_trace,
    saturation_requests_per_s,
    simulate_serving,
    sweep_rates,
)

MS = 1e-3
# 1 ms per step plus 10 us per prompt token, nothing else: times are easy to follow by hand.
SIMPLE = AnalyticStepTimes(fixed_s=1e-3, decode_s=0.0, context_token_s=0.0,
                           prefill_token_s=1e-5)


def test_two_requests_step_by_step():
    trace = [Request(0, 0.0, 100, 3), Request(1, 1.5e-3, 50, 2)]
    r = simulate_serving(trace, SIMPLE, EngineConfig(max_batch=4, kv_blocks=100))
    # prefill r0 (0-2 ms), prefill r1 (2-3.5), decode both (3.5-4.5: r1 done), decode r0 (-5.5)
    assert r.timeline[:, 0].tolist() == [0, 2_000_000, 3_500_000, 4_500_000]
    assert r.timeline[:, 2].tolist() == [0, 0, 2, 1]  # decodes
    assert r.timeline[:, 3].tolist() == [100, 50, 0, 0]  # prompt tokens
    assert r.timeline[:, 5].tolist() == [7, 11, 11, 7]  # KV blocks of 16 tokens in use
    assert r.ttft_s == pytest.approx([2 * MS, 2 * MS])
    assert r.e2e_s == pytest.approx([5.5 * MS, 3.0 * MS])
    assert r.tpot_s == pytest.approx([1.75 * MS, 1.0 * MS])
    assert r.output_tokens_per_s == pytest.approx(5 / 5.5e-3)


def test_preemption_by_recompute():
    trace = [Request(0, 0.0, 16, 3), Request(1, 0.0, 16, 3)]
    r = simulate_serving(trace, SIMPLE, EngineConfig(max_batch=4, kv_blocks=2))
    # both prefill (1 block each); r0's first decode needs a second block: r1 (newest) is
    # preempted; r0 finishes; r1 is recomputed (prompt + its first token) and finishes
    assert r.timeline[:, 2].tolist() == [0, 1, 1, 0, 1]
    assert r.timeline[:, 3].tolist() == [32, 0, 0, 17, 0]
    assert r.preemptions.tolist() == [0, 1]
    assert r.ttft_s.tolist() == [r.ttft_s[0]] * 2  # r1 keeps its first token time
    assert r.finish_s[1] > r.finish_s[0]
    assert r.timeline[:, 5].max() == 2


def test_a_request_larger_than_the_cache_is_refused():
    trace = [Request(0, 0.0, 40, 10), Request(1, 0.0, 8, 2)]
    r = simulate_serving(trace, SIMPLE, EngineConfig(kv_blocks=3))
    assert r.refused == (0,) and r.ids.tolist() == [1]


def test_chunked_prefill_splits_a_prompt_and_runs_decodes_beside_it():
    trace = [Request(0, 0.0, 8, 4), Request(1, 0.5e-3, 300, 2)]
    r = simulate_serving(trace, SIMPLE, EngineConfig(max_batch=4, chunk_tokens=128))
    t = r.timeline
    assert t[:, 3].tolist()[:4] == [8, 127, 127, 46]  # r1's prompt in chunks beside a decode
    assert t[:, 2].tolist()[:4] == [0, 1, 1, 1]
    assert all(t[:, 2] + t[:, 3] <= 128)


def test_engine_refuses_bad_settings():
    with pytest.raises(ValueError, match="'chunk_tokens' \\(64\\) must exceed 'max_batch'"):
        EngineConfig(max_batch=64, chunk_tokens=64)
    limited = AnalyticStepTimes(max_context=100)
    with pytest.raises(ConfigError, match="request 0: prompt 90 \\+ output 20 tokens exceed"):
        simulate_serving([Request(0, 0.0, 90, 20)], limited)


def test_deterministic():
    trace = poisson_trace(300, 40.0, "lognormal:200,0.7,1000", "lognormal:60,0.7,300", seed=3)
    cfg = EngineConfig(max_batch=16, kv_blocks=150, chunk_tokens=256)
    a = simulate_serving(trace, AnalyticStepTimes(), cfg)
    b = simulate_serving(trace, AnalyticStepTimes(), cfg)
    assert np.array_equal(a.timeline, b.timeline) and np.array_equal(a.finish_s, b.finish_s)
    assert a.summary()["preemptions"] > 0  # the small cache made it preempt


def test_latency_percentiles_rise_with_the_arrival_rate():
    steps = AnalyticStepTimes()
    engine = EngineConfig(max_batch=32)
    peak = saturation_requests_per_s(steps, 256, 128, engine.model_copy(
        update={"max_prefill_tokens": 32 * 256}))
    rates = [0.3 * peak, 0.7 * peak, 1.5 * peak]
    results = sweep_rates(rates, steps, requests=1000, prompt="lognormal:256,0.6,1024",
                          output="lognormal:128,0.6,512", seed=0, engine=engine)
    table = [r.percentiles() for r in results]
    for metric in ("ttft_s", "e2e_s", "tpot_s"):
        for q in ("p50", "p90", "p99"):
            values = [p[metric][q] for p in table]
            assert values == sorted(values) and values[-1] > 1.5 * values[0], (metric, q, values)


def test_throughput_saturates_at_the_rate_the_step_times_predict():
    steps = AnalyticStepTimes()
    engine = EngineConfig(max_batch=16, max_prefill_tokens=16 * 256)
    predicted = saturation_requests_per_s(steps, 256, 64, engine)
    # the closed form by hand: one prefill of 16 x 256 tokens, then 63 decodes of 16
    by_hand = 16 / (5e-3 + 5e-5 * 4096 + sum(5e-3 + 16e-4 + 2e-7 * 16 * (256 + j)
                                             for j in range(1, 64)))
    assert predicted == pytest.approx(by_hand)
    achieved = []
    for load in (2.0, 5.0):
        r = simulate_serving(poisson_trace(1000, load * predicted, "fixed:256", "fixed:64",
                                           seed=1), steps, engine)
        done = np.sort(r.finish_s)
        lo, hi = done[100], done[899]  # the steady middle of the run
        achieved.append(799 / (hi - lo))
    assert achieved == pytest.approx([predicted, predicted], rel=0.01)
    below = simulate_serving(poisson_trace(1000, 0.5 * predicted, "fixed:256", "fixed:64",
                                           seed=1), steps, engine)
    assert below.requests_per_s == pytest.approx(0.5 * predicted, rel=0.1)


def test_step_shape():
    s = StepShape(decodes=3, decode_context_tokens=300, prefill_chunks=((10, 0), (5, 20)))
    assert (s.prefill_tokens, s.mean_context, s.tokens) == (15, 100.0, 18)
    t = AnalyticStepTimes(1.0, 2.0, 3.0, 4.0, 5.0).step_seconds(s)
    assert t == 1.0 + 2.0 * 3 + 3.0 * 300 + 4.0 * 15 + 5.0 * (10 * 10 + 5 * 25)
