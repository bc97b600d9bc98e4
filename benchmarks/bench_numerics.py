"""Benchmark: float32 -> FP8 codes and float32 -> tai4 MX blocks, against ml_dtypes' FP8 cast.

Run: python benchmarks/bench_numerics.py [--elements 16777216] [--repeat 5]
Prints a markdown table (best of --repeat, after one warm-up call that also JIT-compiles).
"""

from __future__ import annotations

import argparse
import os
import platform

import ml_dtypes
import numpy as np
from _timing import best_of

from prodigy_sim.numerics import encode, quantize


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--elements", type=int, default=1 << 24)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(args.elements) * 10).astype(np.float32)
    rows = x.reshape(-1, 4096)
    cases = {
        "ml_dtypes float32 -> float8_e4m3fn (baseline)": lambda: x.astype(ml_dtypes.float8_e4m3fn),
        "prodigy_sim encode -> float8_e4m3fn (saturate)": lambda: encode(x, "float8_e4m3fn"),
        "prodigy_sim encode -> float8_e5m2 (nonsaturating)":
            lambda: encode(x, "float8_e5m2", overflow="nonsaturating"),
        "prodigy_sim quantize -> tai4, MX E8M0 / 32, packed": lambda: quantize(rows, "tai4"),
        "prodigy_sim quantize -> float4_e2m1fn, MX E8M0 / 32, packed":
            lambda: quantize(rows, "float4_e2m1fn"),
        "prodigy_sim quantize -> float8_e4m3fn, MX E8M0 / 32":
            lambda: quantize(rows, "float8_e4m3fn"),
        "prodigy_sim quantize -> tai2, 8:4 sparse, MX E8M0 / 32":
            lambda: quantize(rows, "tai2", sparsity="8:4"),
    }
    base = None
    print(f"{args.elements:,} float32 elements; best of {args.repeat}; "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"numpy {np.__version__}, ml_dtypes {ml_dtypes.__version__}\n")
    print("| operation | M elements/s | vs ml_dtypes FP8 cast |")
    print("|---|---:|---:|")
    for name, fn in cases.items():
        t = best_of(fn, args.repeat)
        rate = args.elements / t / 1e6
        base = base or rate
        print(f"| {name} | {rate:,.0f} | {rate / base:.2f}x |")


if __name__ == "__main__":
    main()
