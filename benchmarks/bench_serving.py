"""Serving LLaMA-2-7B: a 1,000-request Poisson trace, step times from the simulator.

Measures, in one process (load average printed before and after):

1. the wall and CPU time of serving the trace from a cold start (every step-time point simulated
   when first needed, timing-engine runs shared through the step-time model's RunCache and made
   in ``--workers`` processes), the same cold start serially (asserted to give the same table
   and results) and again with the table filled (the engine alone), beside one
   ``simulate_scenario`` decode step (batch 1, context 2048) as the baseline unit of work;
2. latency percentiles and throughput against the arrival rate (same lengths, gaps scaled);
3. saturation: fixed lengths above the rate the step times predict
   (``saturation_requests_per_s``), achieved requests/s in the steady middle of the run;
4. interpolation: decode step times at held-out contexts against direct simulation;
5. what padding or interpolating the batch would cost instead of simulating every batch size;
6. what padding prefill tokens to a power of two does.

    python benchmarks/bench_serving.py [--quick] [--only PART] [--table FILE] [--workers N]

``--quick`` skips parts 2-6; ``--table`` keeps the simulated step times in a file (part 1's cold
start is only cold without it). Prints markdown tables (docs/serving.md, docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import os
import resource
import time

import numpy as np

from prodigy_sim.models import Scenario
from prodigy_sim.reports import simulate_scenario
from prodigy_sim.serving import (
    EngineConfig,
    SimulatedStepTimes,
    check_interpolation,
    poisson_trace,
    saturation_requests_per_s,
    serve,
    simulate_serving,
    vllm_decode_buckets,
)

MODEL = "llama-2-7b"
PROMPT, OUTPUT = "lognormal:512,0.8,2048", "lognormal:128,0.8,1024"
RATE = 4.0
ENGINE = EngineConfig(max_batch=64)


def load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def _cpu() -> float:
    """CPU seconds of this process and of its finished (joined) worker processes."""
    child = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + child.ru_utime + child.ru_stime


def _timed(fn, close: SimulatedStepTimes | None = None):
    """``fn()``, its wall and CPU seconds (CPU: this process and, with ``close``, the worker
    processes of that step-time model, stopped at the end; on a loaded machine the wall time
    includes waiting for a core)."""
    t, c = time.perf_counter(), _cpu()
    out = fn()
    if close is not None:
        close.close()
    return out, time.perf_counter() - t, _cpu() - c


def part1(steps: SimulatedStepTimes) -> None:
    trace = poisson_trace(1000, RATE, PROMPT, OUTPUT, seed=0)
    simulate_scenario(Scenario(model=MODEL, phase="decode", batch=1, context_length=64))  # warm
    _, base, base_cpu = _timed(lambda: simulate_scenario(
        Scenario(model=MODEL, phase="decode", batch=1, context_length=2048)))
    cold_start = steps.simulations == 0
    print(f"\n## 1. Speed ({load()} at the start)\n")
    r, cold, cold_cpu = _timed(lambda: serve(trace, step_times=steps, engine=ENGINE), steps)
    n = steps.simulations
    kinds = f"{len(steps.table()['decode'])} decode, {len(steps.table()['prefill'])} prefill"
    at_cold = load()
    again, warm, warm_cpu = _timed(lambda: serve(trace, step_times=steps, engine=ENGINE))
    assert np.array_equal(r.finish_s, again.finish_s)
    print("| what | wall s | CPU s | / one decode-step simulation (CPU) |\n|---|---:|---:|---:|")
    print(f"| one `simulate_scenario` decode step (b1, ctx 2048), the baseline | {base:.2f} | "
          f"{base_cpu:.2f} | 1 |")
    print(f"| 1,000 requests at {RATE:g} req/s, {'cold' if cold_start else 'table loaded'} "
          f"({n} step-time points: {kinds}; {steps.runs.workers} worker processes, CPU "
          f"theirs + this process's) | {cold:.1f} | {cold_cpu:.1f} | "
          f"{cold_cpu / base_cpu:.0f} |")
    if cold_start:
        serial = SimulatedStepTimes(MODEL, max_batch=ENGINE.max_batch)
        one, s_wall, s_cpu = _timed(lambda: serve(trace, step_times=serial, engine=ENGINE))
        assert serial.table() == steps.table() and np.array_equal(one.finish_s, r.finish_s)
        print(f"| the same cold, serial (`workers=1`; the same table and results, bit for bit) "
              f"| {s_wall:.1f} | {s_cpu:.1f} | {s_cpu / base_cpu:.0f} |")
    print(f"| the same with the step-time table filled (engine alone, {r.steps} steps) | "
          f"{warm:.2f} | {warm_cpu:.2f} | {warm_cpu / base_cpu:.2f} |")
    print(f"\n({at_cold} after the cold run; {load()} at the end)")
    print("\n```\n" + r.table() + "\n```")


def part2(steps: SimulatedStepTimes) -> None:
    rates = (0.5, 1.0, 2.0, 4.0, 8.0)
    print(f"\n## 2. Latency against load ({load()})\n")
    print(f"1,000 requests, prompts {PROMPT}, outputs {OUTPUT}, seed 0, max batch "
          f"{ENGINE.max_batch}, no chunked prefill.\n")
    print("| rate req/s | achieved req/s | tokens/s | TTFT p50 / p90 / p99 ms | "
          "TPOT p50 / p90 / p99 ms | E2E p50 / p90 / p99 s | mean decode batch |")
    print("|---:|---:|---:|---|---|---|---:|")
    for rate in rates:
        r = serve(poisson_trace(1000, rate, PROMPT, OUTPUT, seed=0), step_times=steps,
                  engine=ENGINE)
        p = r.percentiles()
        s = r.summary()

        def fmt(name, scale, digits, p=p):
            return " / ".join(f"{p[name][q] * scale:.{digits}f}" for q in ("p50", "p90", "p99"))
        print(f"| {rate:g} | {r.requests_per_s:.3f} | {r.output_tokens_per_s:.1f} | "
              f"{fmt('ttft_s', 1e3, 0)} | {fmt('tpot_s', 1e3, 1)} | {fmt('e2e_s', 1, 2)} | "
              f"{s['mean_decode_batch']:.1f} |")


def _achieved(trace, steps, engine) -> float:
    done = np.sort(simulate_serving(trace, steps, engine).finish_s)
    return 799 / (done[899] - done[100])


def part3(steps: SimulatedStepTimes) -> None:
    print(f"\n## 3. Saturation ({load()})\n")
    print("Fixed lengths, max batch 16, arrivals above the predicted rate. Predicted by "
          "`saturation_requests_per_s` from the same step-time function, for `k` prompts per "
          "prefill step (`k = 16`: the synchronous cycle; `k = 1`: one admission per finished "
          "request). Achieved = 799 requests / the time between the 101st and the 900th "
          "completion.\n")
    print("| prompt, output tokens | prefill budget | offered req/s | predicted req/s (k) | "
          "achieved req/s | achieved / predicted |")
    print("|---|---:|---:|---:|---:|---:|")
    one = EngineConfig(max_batch=16, max_prefill_tokens=2048)
    rate = saturation_requests_per_s(steps, 2048, 128, one, prompts_per_prefill=1)
    for factor in (1.5, 3.0, 100.0):
        got = _achieved(poisson_trace(1000, factor * rate, "fixed:2048", "fixed:128", seed=1),
                        steps, one)
        print(f"| 2048, 128 | 2048 | {factor * rate:.3f} | {rate:.4f} (1) | {got:.4f} | "
              f"{got / rate:.4f} |")
    many = EngineConfig(max_batch=16, max_prefill_tokens=16 * 256)
    sync = saturation_requests_per_s(steps, 256, 128, many)
    stag = saturation_requests_per_s(steps, 256, 128, many, prompts_per_prefill=1)
    for factor in (1.5, 3.0, 100.0):
        got = _achieved(poisson_trace(1000, factor * sync, "fixed:256", "fixed:128", seed=1),
                        steps, many)
        print(f"| 256, 128 | 4096 | {factor * sync:.3f} | {sync:.4f} (16), {stag:.4f} (1) | "
              f"{got:.4f} | {got / sync:.4f}, {got / stag:.4f} |")


def part4(steps: SimulatedStepTimes) -> None:
    print(f"\n## 4. Interpolation against direct simulation ({load()})\n")
    points = [(1, 128), (1, 512), (1, 2048), (1, 3072), (8, 128), (8, 512), (8, 2048),
              (8, 3072), (32, 512), (32, 2048), (64, 512), (3, 1500),
              (5, 512), (12, 768), (20, 2048), (20, 700), (16, 1088), (40, 512)]
    rows = check_interpolation(steps, points, shift=True)
    print("Decode at held-out points (a context the step-time model simulated for that batch, "
          "or an aligned one, is moved up by 64 tokens until it is neither), interpolated "
          f"between simulated batches (the grid {steps.batch_grid}) and contexts (the grid "
          f"{steps.context_grid}), both refined by bisection where a midpoint is more than "
          f"{steps.refine_tolerance:.0%} off the chord, aligned nodes at their trend; `direct` "
          "is `simulate_scenario` at that batch and context (the grid's options: every unit "
          "simulated).\n")
    print("| batch | context | between batches | between contexts (first batch) | "
          "interpolated ms | direct ms | error |")
    print("|---:|---:|---|---|---:|---:|---:|")
    for row in rows:
        c = steps.grid_context(row.context)
        b0, b1 = steps.decode_batches(row.bucket, c)
        c0, c1 = steps.decode_interval(b0, c)
        print(f"| {row.batch} | {row.context} | {b0}, {b1} | {c0}, {c1} | "
              f"{row.interpolated_s * 1e3:.3f} | {row.direct_s * 1e3:.3f} | {row.error:+.1%} |")
    worst = max(abs(r.error) for r in rows)
    within = sum(abs(r.error) <= 0.05 for r in rows)
    print(f"\nLargest |error|: {worst:.1%}; within 5%: {within} of {len(rows)}.")
    print("\nAligned steps (KV tokens batch x context a power of two >= "
          f"{steps.aligned_min}): simulated, not interpolated; `trend` is what an interpolation "
          "through them takes instead (`decode_node`: the mean of the neighbouring tile "
          "contexts, or the line through the two below at the top of the grid).\n")
    print("| batch | context | KV tokens | simulated ms | trend ms | simulated / trend |")
    print("|---:|---:|---:|---:|---:|---:|")
    for b, c in ((8, 2048), (8, 4096), (16, 1024), (32, 1024), (32, 2048), (64, 512)):
        t, trend = steps.decode_point(b, c), steps.decode_node(b, c)
        print(f"| {b} | {c} | {b * c} | {t * 1e3:.3f} | {trend * 1e3:.3f} | "
              f"{t / trend - 1:+.1%} |")
    print("\nThe contexts simulated for batches 8 and 32 (the grid, its refinement and the "
          "neighbours of aligned nodes), with the slope of the step time in the context from "
          "the previous one.\n")
    print("| batch | context | KV tokens | step ms | slope us / token |")
    print("|---:|---:|---:|---:|---:|")
    points = steps.table()["decode"]
    for b in (8, 32):
        prev = None
        for bb, c, t in points:
            if bb != b:
                continue
            slope = "" if prev is None else f"{(t - prev[1]) / (c - prev[0]) * 1e6:.2f}"
            print(f"| {b} | {c} | {b * c} | {t * 1e3:.3f} | {slope} |")
            prev = (c, t)


def part5(steps: SimulatedStepTimes) -> None:
    print(f"\n## 5. Why batches are not padded ({load()})\n")
    coarse = vllm_decode_buckets(ENGINE.max_batch)
    print(f"With vLLM's capture sizes {coarse} as the only simulated batches, a batch between "
          "two of them is either padded up (what vLLM does) or interpolated; context 1024 (a "
          "grid context), against the simulated batch itself.\n")
    print("| batch | simulated ms | padded to | padded ms | padding costs | interpolated ms | "
          "interpolation error |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for b in (3, 5, 9, 12, 20, 36, 60):
        hi = min(x for x in coarse if x >= b)
        lo = max(x for x in coarse if x < b)
        t, t_hi, t_lo = (steps.decode_point(x, 1024) for x in (b, hi, lo))
        est = t_lo + (t_hi - t_lo) * (b - lo) / (hi - lo)
        print(f"| {b} | {t * 1e3:.3f} | {hi} | {t_hi * 1e3:.3f} | {t_hi / t - 1:+.1%} | "
              f"{est * 1e3:.3f} | {est / t - 1:+.1%} |")
    padded = SimulatedStepTimes(MODEL, max_batch=ENGINE.max_batch, decode_buckets=coarse)
    padded.load(steps.table())
    trace = poisson_trace(1000, RATE, PROMPT, OUTPUT, seed=0)
    a = serve(trace, step_times=steps, engine=ENGINE).summary()
    b = serve(trace, step_times=padded, engine=ENGINE).summary()
    print(f"\nThe 1,000-request trace at {RATE:g} req/s served with padded batches: TPOT p50 "
          f"{b['tpot_s_p50'] * 1e3:.2f} ms against {a['tpot_s_p50'] * 1e3:.2f} ms "
          f"({b['tpot_s_p50'] / a['tpot_s_p50'] - 1:+.1%}), end-to-end p50 "
          f"{b['e2e_s_p50']:.3f} s against {a['e2e_s_p50']:.3f} s "
          f"({b['e2e_s_p50'] / a['e2e_s_p50'] - 1:+.1%}).")


def part6(steps: SimulatedStepTimes) -> None:
    print(f"\n## 6. Prefill: tokens padded to a power of two ({load()})\n")
    print("| tokens | runs as | padded ms | unpadded ms (simulated) | padding costs |")
    print("|---:|---:|---:|---:|---:|")
    for n in (192, 384, 768, 1536):
        padded = steps.prefill_seconds(n)
        direct = steps.simulate("prefill", 1, n)
        print(f"| {n} | {steps.prefill_bucket(n)} | {padded * 1e3:.2f} | {direct * 1e3:.2f} | "
              f"{padded / direct - 1:+.1%} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="only the speed measurement")
    ap.add_argument("--only", type=int, default=None, metavar="PART",
                    help="run one part (with --table, skips the cold-start part 1)")
    ap.add_argument("--table", metavar="FILE", help="step-time table to read (if it exists) "
                                                    "and write: reruns skip the simulations")
    ap.add_argument("--workers", type=int, default=2,
                    help="worker processes of the step-time model (default 2)")
    args = ap.parse_args()
    print(f"# bench_serving: {MODEL}, prodigy-t16128 ({load()})")
    steps = SimulatedStepTimes(MODEL, max_batch=ENGINE.max_batch, workers=args.workers)
    if args.table and os.path.exists(args.table):
        steps.load(args.table)
    parts = (part1, part2, part3, part4, part5, part6)
    try:
        if args.only:
            parts[args.only - 1](steps)
            return
        part1(steps)
        if not args.quick:
            for part in parts[1:]:
                part(steps)
    finally:
        steps.close()
        if args.table:
            steps.save(args.table)
    print(f"\n({load()}; {steps.simulations} step-time points in the table)")


if __name__ == "__main__":
    main()
