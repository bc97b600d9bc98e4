"""Bit-exact FP8 x TAI4 GEMM (prodigy_sim.functional.matmul) against numpy float32 / float64 GEMM.

Run: ``python benchmarks/bench_gemm.py [--m 512 --k 4096 --n 4096] [--repeat 5] [--json]``.
Activations: float8_e4m3fn with OCP MX E8M0 scales (blocks of 32 along K); weights: tai4 with MX
scales. All three GEMMs run on the same shape in the same process; the ratio is numpy-float32
time / matmul time (>= 0.5 is the target of issue 15, 1x the moonshot). Quantization is not
timed (operands are prepared once); ``matmul`` is timed end to end (decode, classification,
chunked exact GEMM, FP32 accumulation). The machine is shared and noisy: the three methods are
timed round-robin (one run of each per round, so load changes hit all of them alike), the best
of ``--repeat`` rounds is kept - wall time, and CPU time of all threads as a second view - and
the load average before and after is printed. Each timed call follows a ``--pause`` (0.3 s):
after a multi-threaded GEMM OpenBLAS's worker thread keeps spinning on a core for about 0.1 s,
and the exact matmul, which runs its own two threads, measured right after one loses that core
(0.17 s instead of 0.12 s on the idle 2-core machine; ``--pause 0`` shows it). Also reports
which exact path the (tile, chunk) pieces took.
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np
from _timing import best_round_robin

from prodigy_sim.functional import matmul_stats
from prodigy_sim.numerics import quantize


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--m", type=int, default=512, help="rows of activations (M)")
    p.add_argument("--k", type=int, default=4096, help="reduction length (K)")
    p.add_argument("--n", type=int, default=4096, help="rows of weights (N)")
    p.add_argument("--repeat", type=int, default=5, help="timed rounds (best kept)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--pause", type=float, default=0.3,
                   help="seconds of sleep before each timed call (default 0.3; 0 = none): "
                        "OpenBLAS's worker threads spin on a core for about 0.1 s after a "
                        "multi-threaded GEMM, which slows whatever runs next")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = p.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    x = rng.standard_normal((args.m, args.k), dtype=np.float32)
    w = (rng.standard_normal((args.n, args.k), dtype=np.float32) * 0.02).astype(np.float32)
    a_q = quantize(x, "float8_e4m3fn")
    w_q = quantize(w, "tai4")
    a32, w32 = a_q.dequantize(), w_q.dequantize()
    a64, w64 = a32.astype(np.float64), w32.astype(np.float64)
    stats = {}

    def run_exact():
        stats["s"] = matmul_stats(a_q, w_q)[1]

    flops = 2.0 * args.m * args.k * args.n
    load0 = os.getloadavg()
    wall, cpu = best_round_robin({"matmul_exact": run_exact, "numpy_f32": lambda: a32 @ w32.T,
                                  "numpy_f64": lambda: a64 @ w64.T}, args.repeat,
                                 args.pause)
    load1 = os.getloadavg()
    t32 = wall["numpy_f32"]
    s = stats["s"]
    res = {
        "shape": [args.m, args.k, args.n],
        "seconds": wall, "cpu_seconds": cpu,
        "gflops": {k: flops / t / 1e9 for k, t in wall.items()},
        "ratio_vs_f32": t32 / wall["matmul_exact"],
        "ratio_vs_f64": wall["numpy_f64"] / wall["matmul_exact"],
        "cpu_ratio_vs_f32": cpu["numpy_f32"] / cpu["matmul_exact"],
        "chunks": s.chunks, "f32_tiles": s.f32_tiles, "split_rows": s.split_rows,
        "blas_tiles": s.blas_tiles, "fallback_tiles": s.fallback_tiles,
        "fallback_elements": s.fallback_elements,
        "loadavg_1min": [load0[0], load1[0]], "cpus": os.cpu_count(), "pause_s": args.pause,
    }
    if args.json:
        print(json.dumps(res, indent=2))
        return res
    print(f"GEMM {args.m}x{args.k}x{args.n}, FP8 e4m3 (MX) x TAI4 (MX), best of {args.repeat} "
          f"round-robin rounds, {args.pause:g} s pause before each call; {os.cpu_count()} "
          f"CPUs, 1-min load average {load0[0]:.2f} -> {load1[0]:.2f}\n")
    print("| method | wall s | GFLOP/s | speed vs numpy f32 | CPU s (all threads) | CPU vs f32 |")
    print("|---|---:|---:|---:|---:|---:|")
    for key, label in (("matmul_exact", "prodigy_sim.functional.matmul (bit-exact)"),
                       ("numpy_f32", "numpy float32 GEMM"), ("numpy_f64", "numpy float64 GEMM")):
        t = wall[key]
        print(f"| {label} | {t:.4f} | {res['gflops'][key]:.1f} | {t32 / t:.2f}x | "
              f"{cpu[key]:.4f} | {cpu['numpy_f32'] / cpu[key]:.2f}x |")
    pieces = s.f32_tiles + s.blas_tiles
    print(f"\n(tile, chunk) pieces: {s.f32_tiles} of {pieces} by one float32 GEMM "
          f"({s.split_rows} (row, piece) pairs split with a float64 correction), "
          f"{s.blas_tiles} by float64 BLAS, {s.fallback_tiles} exact-fallback sub-tiles "
          f"({s.fallback_elements} output elements)")
    return res


if __name__ == "__main__":
    main()
