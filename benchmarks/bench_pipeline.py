"""Benchmark: a real model end to end as the simulator's lowered kernels, on the functional core
and on its numpy emulation, against the float32 numpy forward of the same prompt (baseline).

Run: python benchmarks/bench_pipeline.py [--repeat 3] [--cores 8]
Needs the 'models' extra and the two --no-deps model packages (see README). Prints a markdown
table: best of --repeat wall seconds after one warm-up run (which also JIT-compiles), and the
ratio to the float32 forward. Cases: all-MiniLM-L6-v2 on one 14-token sentence (padded to 32
rows), SmolLM2-135M on a 64-token prefill (+ LM head over all positions), tai4 MX weights.
"""

from __future__ import annotations

import argparse
import os
import platform

import numpy as np
from _timing import best_of

from prodigy_sim.realmodels import (
    QuantScheme,
    bert_hidden,
    encode_batch,
    eval_text,
    llama_logits,
    lower_real_model,
    minilm_tokenizer,
    minilm_weights,
    run_bert,
    run_llama,
    smollm2_tokenizer,
    smollm2_weights,
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--cores", type=int, default=8, help="logical cores of the programs")
    args = ap.parse_args()
    scheme = QuantScheme("tai4")
    rows = []

    w, tok = minilm_weights(), minilm_tokenizer()
    sentence = "The quick brown fox jumps over the lazy dog near the river bank."
    ids, mask = encode_batch(tok, [sentence])
    m = lower_real_model(w, scheme, ids.shape[1], cores=args.cores)
    base = best_of(lambda: bert_hidden(w, ids, mask), args.repeat)
    rows.append(("MiniLM, 1 sentence", f"{ids.shape[1]} -> {m.padded}", base,
                 best_of(lambda: run_bert(m, ids[0], "numpy"), args.repeat),
                 best_of(lambda: run_bert(m, ids[0], "core"), args.repeat)))

    w, tok = smollm2_weights(), smollm2_tokenizer()
    ids = np.asarray(tok.encode(eval_text()).ids[:64])
    m = lower_real_model(w, scheme, ids.size, cores=args.cores)
    base = best_of(lambda: llama_logits(w, ids), args.repeat)
    rows.append(("SmolLM2, prefill + LM head", f"{ids.size} -> {m.padded}", base,
                 best_of(lambda: run_llama(m, ids, "numpy"), args.repeat),
                 best_of(lambda: run_llama(m, ids, "core"), args.repeat)))

    print(f"host: {platform.machine()}, {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.2f}; {args.cores}-core programs, tai4 MX weights")
    print("| case | tokens -> rows | float32 numpy forward s (baseline) | lowered kernels, "
          "numpy emulation s | lowered kernels, functional core s |")
    print("|---|---|---:|---:|---:|")
    for name, tk, b, emu, core in rows:
        print(f"| {name} | {tk} | {b:.3f} | {emu:.2f} ({emu / b:.0f}x) | {core:.2f} "
              f"({core / b:.0f}x) |")


if __name__ == "__main__":
    main()
