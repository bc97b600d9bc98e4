"""Speed of the DDR5 model on the Ramulator 2 calibration traces (not a test).

Run: ``python benchmarks/bench_dram.py [--repeat N]``. For every case of
``shared/calibration/ddr5_cases.csv`` it generates the trace with ``make_traces.py`` (not timed),
replays it with :func:`prodigy_sim.dram.run_trace` (timed: address mapping, the Numba kernel and the
statistics; best of N runs after a warm-up that compiles the kernel) and compares with Ramulator 2's
own wall time for the case (``wall_s``, measured on this kind of machine). The N rounds go
round-robin over the cases (case 1, case 2, ..., case 1, ...), so a burst of load from other users
hits one run of every case rather than all runs of one case; a case shorter than 5 ms runs several
times per round. Both our wall time and our process CPU time are reported, and the speed-up on
both (the machines are shared: under load the CPU time is the steadier figure), with the load
average before and after. Prints a markdown table; the accuracy columns repeat the calibration
check.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import os
import platform
import time
from pathlib import Path

import numba
import numpy as np

from prodigy_sim.dram import memory_system_preset, run_trace
from prodigy_sim.dram.trace import ParsedTrace

CALIBRATION = Path(__file__).resolve().parents[2] / "shared" / "calibration"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=15,
                    help="timed runs per case, round-robin over the cases (best is kept)")
    ap.add_argument("--calibration", type=Path, default=CALIBRATION,
                    help="folder with ddr5_cases.csv and make_traces.py")
    args = ap.parse_args()
    spec = importlib.util.spec_from_file_location("make_traces",
                                                  args.calibration / "make_traces.py")
    mt = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mt)
    with open(args.calibration / "ddr5_cases.csv", newline="") as f:
        cases = list(csv.DictReader(f))

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}, numpy {np.__version__}, numba {numba.__version__}")
    print(f"load average before: {_load()}")
    runs = []
    for case in cases:
        ops = mt.TRACES[case["trace"]]()
        trace = ParsedTrace(name=case["trace"],
                            addr=np.fromiter((a for _, a in ops), np.uint64, len(ops)),
                            is_write=np.fromiter((o == "ST" for o, _ in ops), np.bool_, len(ops)))
        rate = int(case["preset"].removeprefix("DDR5_").removesuffix("AN"))
        cfg = memory_system_preset(speed=rate, channels=int(case["channels"]))
        mode = "chain" if case["case"].startswith("unloaded_chain") else "saturate"
        run_trace(trace, cfg, mode=mode)  # warm-up / compile
        t0 = time.perf_counter()
        run_trace(trace, cfg, mode=mode)
        # a case shorter than 5 ms runs several times per round (more samples of its best time)
        inner = max(1, int(0.005 / max(time.perf_counter() - t0, 1e-6)))
        runs.append([case, trace, cfg, mode, float("inf"), float("inf"), None, inner])
    for _ in range(args.repeat):
        for run in runs:
            _, trace, cfg, mode = run[:4]
            for _ in range(run[7]):
                t0, c0 = time.perf_counter(), time.process_time()
                res = run_trace(trace, cfg, mode=mode)
                run[4] = min(run[4], time.perf_counter() - t0)
                run[5] = min(run[5], time.process_time() - c0)
            run[6] = res
    print(f"load average after: {_load()}")
    print()
    print("| case | requests | Ramulator s | ours ms (wall) | ours ms (CPU) | ours Mreq/s (wall) | "
          "speed-up wall / CPU | BW GB/s ours / ref | lat cyc ours / ref |")
    print("|---|---|---|---|---|---|---|---|---|")
    tot_ref = tot_ours = tot_cpu = 0.0
    for case, trace, _, _, best, best_cpu, res, _ in runs:
        n = trace.addr.size
        ref_s = float(case["wall_s"])
        tot_ref += ref_s
        tot_ours += best
        tot_cpu += best_cpu
        s = res.stats
        print(f"| {case['case']} | {n} | {ref_s:.3f} | {best * 1e3:.1f} | {best_cpu * 1e3:.1f} | "
              f"{n / best / 1e6:.2f} | "
              f"{ref_s / best:.0f}x / {ref_s / best_cpu:.0f}x | "
              f"{s.bandwidth_GBps:.3f} / {float(case['total_bw_GBps']):.3f} "
              f"| {s.avg_read_latency_cycles:.3f} / {float(case['avg_read_lat_cyc']):.3f} |")
    print(f"| **all cases** | | {tot_ref:.3f} | {tot_ours * 1e3:.1f} | {tot_cpu * 1e3:.1f} | | "
          f"**{tot_ref / tot_ours:.0f}x / {tot_ref / tot_cpu:.0f}x** | | |")


def _load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"

if __name__ == "__main__":
    main()
