"""Benchmark: GPTQ / SparseGPT over SmolLM2-135M-shaped linear layers, against round-to-nearest.

Run: python benchmarks/bench_ptq.py [--layers 30] [--tokens 2048] [--fmt tai4]

Per transformer layer (random weights and random correlated inputs of the real shapes): q
(576x576), k, v (192x576), o (576x576), gate, up (1536x576), down (576x1536); four Hessians (the
inputs of q/k/v, o, gate/up, down), each factored once and shared. Times are wall seconds for
all ``--layers`` layers, measured in one run: Hessians (2/T x^T x), inverse factors (plain and
act-order), then each method over every linear; the output error column is
``sqrt(sum ||x W^T - x W_q^T||^2)`` over all linears (first 256 tokens) relative to RTN's.
``--digest`` prints a SHA-256 of the float64 Hessians and factors and of every method's codes and
scales, to compare runs across BLAS kernels and thread counts.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import time

import numpy as np

from prodigy_sim.ptq import gptq, hessian, inverse_factor, output_error, rtn, sparsegpt

HIDDEN, INTER, KV = 576, 1536, 192
LINEARS = (("q", HIDDEN, "attn"), ("k", KV, "attn"), ("v", KV, "attn"), ("o", HIDDEN, "o"),
           ("gate", INTER, "mlp"), ("up", INTER, "mlp"), ("down", HIDDEN, "down"))
INPUTS = {"attn": HIDDEN, "o": HIDDEN, "mlp": HIDDEN, "down": INTER}


def layer_data(i: int, tokens: int):
    """Random float32 weights and correlated inputs (low rank + noise + outlier channels)."""
    rng = np.random.default_rng(1000 + i)
    xs = {}
    for name, k in INPUTS.items():
        x = rng.standard_normal((tokens, 64)) @ rng.standard_normal((64, k)) * 0.3
        x += rng.standard_normal((tokens, k))
        x[:, rng.choice(k, 4, replace=False)] *= 20.0
        xs[name] = x.astype(np.float32)
    ws = {name: (rng.standard_normal((n, INPUTS[src])) * 0.04).astype(np.float32)
          for name, n, src in LINEARS}
    return ws, xs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--layers", type=int, default=30)
    ap.add_argument("--tokens", type=int, default=2048)
    ap.add_argument("--fmt", default="tai4")
    ap.add_argument("--digest", action="store_true")
    args = ap.parse_args()
    methods = {
        "rtn (baseline)": lambda w, f: rtn(w, fmt=args.fmt),
        "gptq": lambda w, f: gptq(w, f["plain"], fmt=args.fmt),
        "gptq act-order": lambda w, f: gptq(w, f["act"], fmt=args.fmt),
        "sparsegpt 8:4 + quantize": lambda w, f: sparsegpt(w, f["plain"], sparsity="8:4",
                                                           fmt=args.fmt),
    }
    times = dict.fromkeys(["hessians", "inverse factors", "inverse factors (act-order)",
                           *methods], 0.0)
    errors = {m: 0.0 for m in methods}
    digests = {m: hashlib.sha256() for m in ["hessians", "inverse factors", *methods]}
    gptq(np.ones((4, 32), np.float32), np.eye(32), fmt=args.fmt)  # JIT warm-up
    for i in range(args.layers):
        ws, xs = layer_data(i, args.tokens)
        t = time.perf_counter()
        hs = {name: hessian(x) for name, x in xs.items()}
        times["hessians"] += time.perf_counter() - t
        t = time.perf_counter()
        facs = {name: {"plain": inverse_factor(h)} for name, h in hs.items()}
        times["inverse factors"] += time.perf_counter() - t
        t = time.perf_counter()
        for name, h in hs.items():
            facs[name]["act"] = inverse_factor(h, act_order=True)
        times["inverse factors (act-order)"] += time.perf_counter() - t
        for name in INPUTS:
            digests["hessians"].update(hs[name].tobytes())
            digests["inverse factors"].update(facs[name]["plain"].u.tobytes())
        for m, fn in methods.items():
            for name, _, src in LINEARS:
                t = time.perf_counter()
                res = fn(ws[name], facs[src])
                times[m] += time.perf_counter() - t
                errors[m] += output_error(ws[name], res.weight, xs[src][:256]) ** 2
                digests[m].update(res.quantized.codes.tobytes())
                digests[m].update(res.quantized.scales.tobytes())
    print(f"{args.layers} layers x 7 linears (SmolLM2-135M shapes), {args.tokens} calibration "
          f"tokens, {args.fmt} MX E8M0/32; {platform.machine()}, {os.cpu_count()} cores, "
          f"numpy {np.__version__}, load average {os.getloadavg()[0]:.2f} at the end\n")
    base = times["rtn (baseline)"]
    print("| step | seconds | vs RTN | output error vs RTN |")
    print("|---|---:|---:|---:|")
    for name, sec in times.items():
        err = (f"{np.sqrt(errors[name] / errors['rtn (baseline)']):.3f}" if name in errors
               else "")
        print(f"| {name} | {sec:.2f} | {sec / base:.1f}x | {err} |")
    shared = times["hessians"] + times["inverse factors"]
    act = times["hessians"] + times["inverse factors (act-order)"] + times["gptq act-order"]
    print(f"\nTotals (Hessians + factors + method): GPTQ {shared + times['gptq']:.1f} s, "
          f"GPTQ act-order {act:.1f} s, SparseGPT "
          f"{shared + times['sparsegpt 8:4 + quantize']:.1f} s, RTN {base:.1f} s")
    if args.digest:
        for m, d in digests.items():
            print(f"digest {m}: {d.hexdigest()[:16]}")


if __name__ == "__main__":
    main()
