"""Wall time and peak memory of simulating whole models (targets from shared/design/targets.md).

Each case runs in a fresh subprocess (numba kernels compiled and cached beforehand by a warm-up
case), which reports its wall time, its CPU time (user + system: less sensitive than the wall time
to other load on a shared machine) and ``resource.getrusage`` peak RSS. Prints a markdown table
and the load average before and after.

    python benchmarks/bench_models.py [--full]

``--full`` also runs the LLaMA-2-7B decode on every core (no representative subset), to show
what the subset saves and how far apart the two are.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

CASES = [
    ("LLaMA-2-7B decode, b1, ctx 2048, tai4, 128 cores",
     dict(model="llama-2-7b", phase="decode", batch=1, context_length=2048), "auto", 2.0, 1.0),
    ("LLaMA-2-70B prefill, 2048 tokens, tai4",
     dict(model="llama-2-70b", phase="prefill", batch=1, sequence_length=2048), "auto", 30.0,
     2.0),
    ("BERT-base, seq 128, batch 8, tai4",
     dict(model="bert-base-uncased", phase="prefill", batch=8, sequence_length=128), "auto",
     2.0, None),
]

CHILD = """
import json, resource, sys, time
from prodigy_sim.models import Scenario
from prodigy_sim.reports import simulate_scenario
spec = json.loads(sys.argv[1])
ru0 = resource.getrusage(resource.RUSAGE_SELF)
cpu0 = ru0.ru_utime + ru0.ru_stime
t = time.perf_counter()
r = simulate_scenario(Scenario(**spec["scenario"]), core_subset=spec["subset"])
wall = time.perf_counter() - t
ru = resource.getrusage(resource.RUSAGE_SELF)
cpu = ru.ru_utime + ru.ru_stime - cpu0
rss = ru.ru_maxrss * 1024
print(json.dumps({"wall": wall, "cpu": cpu, "rss": rss, "seconds": r.seconds,
                  "roofline": r.ideal_roofline_s,
                  "tokens_per_s": r.tokens_per_s, "bound": r.bound}))
"""


def run_case(scenario: dict, subset) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, json.dumps({"scenario": scenario,
                                                                   "subset": subset})],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--full", action="store_true", help="also the 7B decode on every core")
    args = ap.parse_args()
    cases = list(CASES)
    if args.full:
        cases.append(("LLaMA-2-7B decode, every core simulated", CASES[0][1], None, None, None))
    run_case(dict(model="smollm2-135m", phase="decode", batch=1, context_length=128), "auto")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print("| case | wall s | CPU s | target s | peak RSS GB | target GB | simulated | roofline |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, sc, subset, t_wall, t_mem in cases:
        r = run_case(sc, subset)
        sim = (f"{r['tokens_per_s']:.1f} tok/s" if r["tokens_per_s"]
               else f"{r['seconds'] * 1e3:.2f} ms")
        print(f"| {name} | {r['wall']:.2f} | {r['cpu']:.2f} | {t_wall or '-'} | "
              f"{r['rss'] / 1e9:.2f} | "
              f"{t_mem or '-'} | {sim} | {r['roofline'] * 1e3:.2f} ms ({r['bound']}) |",
              flush=True)
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
