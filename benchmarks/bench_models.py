"""Whole models: wall time and peak memory of simulating them, their fidelity against the roofline,
and (``--check``) the reduced simulation method against the full one.

Each case runs in a fresh subprocess (numba kernels compiled and cached beforehand by a warm-up
case), which reports its wall time, its CPU time (user + system: less sensitive than the wall time
to other load on a shared machine) and ``resource.getrusage`` peak RSS. Prints a markdown table
and the load average before and after.

    python benchmarks/bench_models.py            # the targets of shared/design/targets.md
    python benchmarks/bench_models.py --check    # + every shipped scenario, steady state vs
                                                 #   every unit (slow: the full method)
    python benchmarks/bench_models.py --mapping-candidates 4   # each linear op's 4 cheapest
                                                 #   mappings simulated, the fastest kept (and
                                                 #   the shipped scenarios with and without)
    python benchmarks/bench_models.py --check --cases 70B   # only the cases (and shipped
                                                 #   scenarios) whose names contain "70B"

Targets (wall, memory; simulated time x roofline): LLaMA-2-7B decode b1 ctx 2048 tai4 <= 2 s,
<= 1 GB, <= 1.3x; LLaMA-2-70B prefill 2048 <= 30 s, <= 2 GB, <= 1.5x; BERT-base b8 s128 <= 2 s,
<= 3x; an 8192^3 GEMM (FP8 X, tai4 W, BF16 Y) on all 128 cores <= 1.25x of its roofline, whose
memory term counts X, W and Y once.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

from prodigy_sim.simulation import default_workers

CASES = [
    ("LLaMA-2-7B decode, b1, ctx 2048, tai4",
     dict(model="llama-2-7b", phase="decode", batch=1, context_length=2048), 2.0, 1.0, 1.3),
    ("LLaMA-2-70B prefill, 2048 tokens, tai4",
     dict(model="llama-2-70b", phase="prefill", batch=1, sequence_length=2048), 30.0, 2.0, 1.5),
    ("BERT-base, seq 128, batch 8, tai4",
     dict(model="bert-base-uncased", phase="prefill", batch=8, sequence_length=128), 2.0, None,
     3.0),
    ("GEMM 8192x8192x8192, FP8 x tai4 -> BF16, 128 cores", dict(gemm=[8192, 8192, 8192]), None,
     None, 1.25),
]

SHIPPED = ["llama-2-7b-decode-tai4", "llama-2-70b-decode-tai2-sparse", "bert-base-prefill-fp8",
           "llama-3-8b-prefill-fp8"]

CHILD = """
import json, resource, sys, time
from prodigy_sim.models import Scenario, load_scenario
from prodigy_sim.reports import simulate_scenario
from prodigy_sim.simulation import RunCache
spec = json.loads(sys.argv[1])
scenario = spec["scenario"]
workers = spec["workers"]
ru0 = resource.getrusage(resource.RUSAGE_SELF)
cpu0 = ru0.ru_utime + ru0.ru_stime
t = time.perf_counter()
cache = RunCache(workers) if workers > 1 else None
if isinstance(scenario, dict) and "gemm" in scenario:
    from prodigy_sim.hardware import load_preset
    from prodigy_sim.lowering import linear_op
    from prodigy_sim.numerics import Storage
    from prodigy_sim.simulation import RunCache, SimMethod, fastest_mapping, simulate_op
    chip = load_preset("prodigy-t16128")
    m, n, k = scenario["gemm"]
    op = linear_op("gemm", m, n, k, Storage.of("tai4"), chip)
    method = SimMethod(steady_units=spec["steady_units"],
                       mapping_candidates=spec["mapping_candidates"])
    runs = cache if cache is not None else RunCache()   # the op kept: not simulated again
    r = simulate_op(fastest_mapping(op, chip, method=method, cache=runs), chip, method=method,
                    cache=runs)
    out = {"seconds": r.seconds, "roofline": r.roofline_seconds, "tokens_per_s": None,
           "bound": "compute" if r.mma_flops / chip.peak_matrix_flops("tai4", False)
           >= r.compulsory_bytes / chip.peak_ddr_bandwidth_bytes_per_s else "memory",
           "ddr_bytes": r.ddr_bytes, "compulsory_bytes": r.compulsory_bytes,
           "mapping": r.mapping, "ops": {"gemm": [r.seconds, r.method, r.mapping]}}
else:
    sc = load_scenario(scenario) if isinstance(scenario, str) else Scenario(**scenario)
    r = simulate_scenario(sc, steady_units=spec["steady_units"],
                          mapping_candidates=spec["mapping_candidates"], cache=cache)
    out = {"seconds": r.seconds, "roofline": r.ideal_roofline_s, "tokens_per_s": r.tokens_per_s,
           "bound": r.bound, "ddr_bytes": r.ddr_bytes, "compulsory_bytes": r.compulsory_bytes,
           "mapping": "", "ops": {f"{o['stage']}/{o['op']}": [o["seconds"], o["method"],
                                                              o["mapping"]]
                                  for o in r.ops}}
if cache is not None:
    cache.close()                        # (the workers end: their usage is counted below)
wall = time.perf_counter() - t
ru = resource.getrusage(resource.RUSAGE_SELF)
ch = resource.getrusage(resource.RUSAGE_CHILDREN)
# memory: this process's peak plus each worker at the largest worker's peak (a bound on the sum)
out.update(wall=wall, cpu=ru.ru_utime + ru.ru_stime - cpu0 + ch.ru_utime + ch.ru_stime,
           rss=(ru.ru_maxrss + (workers if workers > 1 else 0) * ch.ru_maxrss) * 1024)
print(json.dumps(out))
"""


def run_case(scenario: dict | str, steady_units: int | None = 2,
             mapping_candidates: int = 1, workers: int = 1) -> dict:
    """Simulate ``scenario`` (fields, or a shipped scenario's name) in a fresh process, each
    linear op's ``mapping_candidates`` cheapest mappings simulated (1: the mapper's choice),
    the timing-engine runs in ``workers`` processes (``RunCache(workers)``; 1: in the
    process). Its CPU time counts the workers'; its peak RSS bounds their sum."""
    spec = json.dumps({"scenario": scenario, "steady_units": steady_units,
                       "mapping_candidates": mapping_candidates, "workers": workers})
    out = subprocess.run([sys.executable, "-c", CHILD, spec], check=True, capture_output=True,
                         text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true",
                    help="also every shipped scenario with the steady-state extrapolation and "
                         "with every unit simulated")
    ap.add_argument("--mapping-candidates", type=int, default=1, metavar="N",
                    help="simulate each linear op's N cheapest mappings by the mapper's costs "
                         "and keep the fastest (default: 1, the mapper's choice)")
    ap.add_argument("--cases", default="", metavar="TEXT",
                    help="only the cases and shipped scenarios whose names contain TEXT "
                         "(default: all)")
    ap.add_argument("--workers", type=int, default=default_workers(), metavar="N",
                    help="worker processes for each case's timing-engine runs (default: "
                         "prodigy-sim simulate's, one per CPU; the first table also times "
                         "each case with none, its last column)")
    args = ap.parse_args()
    w = args.workers
    cases = [c for c in CASES if args.cases in c[0]]
    shipped = [n for n in SHIPPED if args.cases in n]
    run_case(dict(model="smollm2-135m", phase="decode", batch=1, context_length=128))
    print(f"load average before: {_load()}")
    print(f"{w} worker process(es) per case")
    print("| case | wall s | CPU s | target s | peak RSS GB | target GB | simulated | roofline | "
          "x roofline | target | DDR GB | compulsory GB | wall s, no workers |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    kept: list[str] = []
    for name, sc, t_wall, t_mem, t_fid in cases:
        r = run_case(sc, mapping_candidates=args.mapping_candidates, workers=w)
        serial = "-"
        if w > 1:
            r1 = run_case(sc, mapping_candidates=args.mapping_candidates)
            if r1["seconds"] != r["seconds"] or r1["ops"] != r["ops"]:
                sys.exit(f"{name}: the workers' results differ from the serial run's")
            serial = f"{r1['wall']:.2f}"
        kept += [f"- {name}: `{op}` {how[2]}" for op, how in r["ops"].items() if how[2]]
        sim = (f"{r['tokens_per_s']:.1f} tok/s" if r["tokens_per_s"]
               else f"{r['seconds'] * 1e3:.3f} ms")
        print(f"| {name} | {r['wall']:.2f} | {r['cpu']:.2f} | {t_wall or '-'} | "
              f"{r['rss'] / 1e9:.2f} | {t_mem or '-'} | {sim} | "
              f"{r['roofline'] * 1e3:.3f} ms ({r['bound']}) | "
              f"{r['seconds'] / r['roofline']:.2f} | {t_fid} | {r['ddr_bytes'] / 1e9:.3f} | "
              f"{r['compulsory_bytes'] / 1e9:.3f} | {serial} |", flush=True)
    if args.mapping_candidates > 1:
        print()
        print(f"Mappings kept (the fastest of each linear op's {args.mapping_candidates} "
              f"cheapest):")
        print("\n".join(kept))
        print()
        print(f"| shipped scenario | mapper's choice ms | fastest of "
              f"{args.mapping_candidates} ms | change | linear ops changed | "
              f"wall s (choice / search) |")
        print("|---|---:|---:|---:|---:|---:|")
        for name in shipped:
            base = run_case(name, workers=w)
            best = run_case(name, mapping_candidates=args.mapping_candidates, workers=w)
            moved = sum(1 for k, (_, _, mp) in best["ops"].items()
                        if mp and mp != base["ops"][k][2])
            lin = sum(1 for _, _, mp in best["ops"].values() if mp)
            print(f"| {name} | {base['seconds'] * 1e3:.3f} | {best['seconds'] * 1e3:.3f} | "
                  f"{best['seconds'] / base['seconds'] - 1:+.2%} | {moved} of {lin} | "
                  f"{base['wall']:.1f} / {best['wall']:.1f} |", flush=True)
    if args.check:
        print()
        print("| case | steady state ms | every unit ms | difference | ops extrapolated | "
              "largest op difference | wall s (steady / every unit) |")
        print("|---|---:|---:|---:|---:|---|---:|")
        for name, sc in [(c[0], c[1]) for c in cases] + [(n, n) for n in shipped]:
            fast, full = run_case(sc, workers=w), run_case(sc, None, workers=w)
            steady = [k for k, (_, how, _) in fast["ops"].items() if how.startswith("steady")]
            worst = max(fast["ops"], key=lambda k: abs(fast["ops"][k][0] / full["ops"][k][0] - 1))
            d = fast["ops"][worst][0] / full["ops"][worst][0] - 1
            print(f"| {name} | {fast['seconds'] * 1e3:.3f} | {full['seconds'] * 1e3:.3f} | "
                  f"{fast['seconds'] / full['seconds'] - 1:+.2%} | {len(steady)} of "
                  f"{len(fast['ops'])} | {worst} {d:+.2%} | {fast['wall']:.1f} / "
                  f"{full['wall']:.1f} |", flush=True)
    print(f"load average after: {_load()}")


if __name__ == "__main__":
    main()
