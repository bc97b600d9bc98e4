"""Speed of the SimPy timing model: simulated cycles per wall-clock second (not a test).

Run: ``python benchmarks/bench_timing.py [--repeat N]``. For each case the program is simulated
once to warm up (Numba kernel load) and then ``N`` times; the best wall time is kept. Prints a
markdown table: simulated core cycles, wall seconds, simulated cycles per wall second, executed
instructions and DDR 64-B requests per wall second, the ratio to the roofline bound.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

from prodigy_sim.hardware import load_preset
from prodigy_sim.timing import roofline_bound, simulate
from prodigy_sim.timing.programs import gemv_program, kloop_gemm_program, resident_gemm_program


def cases():
    return [
        ("GEMM 8192x256x2048 fp8, W resident, 2 cores", resident_gemm_program(8192, 256, 2048, 2),
         2),
        ("GEMM 8192x64x4096 fp8, K-streamed, 128 cores",
         kloop_gemm_program(8192, 64, 4096, 128, k_chunk=256), 128),
        ("GEMV 4096x4096 tai4 (8 MiB), 128 cores", gemv_program(4096, 4096, 128), 128),
        ("GEMV 8192x8192 tai4 (32 MiB), 128 cores", gemv_program(8192, 8192, 128), 128),
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3, help="timed runs per case (best is kept)")
    ap.add_argument("--preset", default="prodigy-t16128")
    args = ap.parse_args()
    chip = load_preset(args.preset)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}; preset {args.preset}")
    print()
    print("| case | sim cycles | sim time us | wall s | sim cycles / wall s | instr / wall s "
          "| DDR req / wall s | x roofline |")
    print("|---|---|---|---|---|---|---|---|")
    for name, program, cores in cases():
        res = simulate(program, chip, cores=cores)
        best = float("inf")
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            res = simulate(program, chip, cores=cores)
            best = min(best, time.perf_counter() - t0)
        bound = roofline_bound(program, chip, cores=cores)[0]
        ninstr = sum(res.instructions.values())
        print(f"| {name} | {res.cycles} | {res.seconds * 1e6:.1f} | {best:.3f} | "
              f"{res.cycles / best:,.0f} | {ninstr / best:,.0f} | {res.dram_requests / best:,.0f} "
              f"| {res.seconds / bound:.2f} |")


if __name__ == "__main__":
    main()
