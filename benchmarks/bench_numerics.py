"""Benchmark: float32 -> FP8 codes and float32 -> MX blocks, against ml_dtypes' FP8 cast.

Run: python benchmarks/bench_numerics.py [--elements 16777216] [--repeat 5]
Prints a markdown table: every case timed round-robin with the baseline (one call of each per
round, best of --repeat after a warm-up call that also JIT-compiles), wall and CPU time of all
threads, and the 1-min load average before and after. ml_dtypes' cast runs in one thread; the
prodigy_sim kernels use the cores (Numba), so on a loaded machine the wall ratio falls while the
CPU ratio does not.
"""

from __future__ import annotations

import argparse
import os
import platform

import ml_dtypes
import numpy as np
from _timing import best_round_robin

from prodigy_sim.numerics import compress, encode, quantize

TARGETS = {"encode": "keep ~6.5x", "tai4": ">= 1.5x", "fp4": ">= 1.5x", "fp8": ">= 1x",
           "tai2": ">= 1x"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--elements", type=int, default=1 << 24)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(args.elements) * 10).astype(np.float32)
    rows = x.reshape(-1, 4096)
    base = "ml_dtypes float32 -> float8_e4m3fn (baseline)"
    cases = {
        base: (lambda: x.astype(ml_dtypes.float8_e4m3fn), ""),
        "prodigy_sim encode -> float8_e4m3fn (saturate)":
            (lambda: encode(x, "float8_e4m3fn"), TARGETS["encode"]),
        "prodigy_sim encode -> float8_e5m2 (nonsaturating)":
            (lambda: encode(x, "float8_e5m2", overflow="nonsaturating"), TARGETS["encode"]),
        "prodigy_sim quantize -> tai4, MX E8M0 / 32, packed":
            (lambda: quantize(rows, "tai4"), TARGETS["tai4"]),
        "prodigy_sim quantize -> float4_e2m1fn, MX E8M0 / 32, packed":
            (lambda: quantize(rows, "float4_e2m1fn"), TARGETS["fp4"]),
        "prodigy_sim quantize -> float8_e4m3fn, MX E8M0 / 32":
            (lambda: quantize(rows, "float8_e4m3fn"), TARGETS["fp8"]),
        "prodigy_sim quantize -> tai2, 8:4 sparse, MX E8M0 / 32":
            (lambda: quantize(rows, "tai2", sparsity="8:4"), TARGETS["tai2"]),
        "(part of the above) compress 8:4 by magnitude: the N:M selection alone":
            (lambda: compress(rows, 4, 8), ""),
    }
    load0 = os.getloadavg()
    wall, cpu = best_round_robin({k: fn for k, (fn, _) in cases.items()}, args.repeat)
    load1 = os.getloadavg()
    print(f"{args.elements:,} float32 elements; best of {args.repeat} round-robin rounds; "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"numpy {np.__version__}, ml_dtypes {ml_dtypes.__version__}; 1-min load average "
          f"{load0[0]:.2f} -> {load1[0]:.2f}\n")
    print("| operation | M elements/s | vs ml_dtypes FP8 cast (wall) | CPU vs ml_dtypes | "
          "target (wall) |")
    print("|---|---:|---:|---:|---|")
    for name, (_, target) in cases.items():
        rate = args.elements / wall[name] / 1e6
        print(f"| {name} | {rate:,.0f} | {wall[base] / wall[name]:.2f}x | "
              f"{cpu[base] / cpu[name]:.2f}x | {target} |")


if __name__ == "__main__":
    main()
