"""Measurement (not a timing benchmark): the batched DDR against the persistent DDR on every
case of ``bench_models.py`` and every shipped scenario.

The timing model reaches the DDR5 model in one of two ways (``--ddr``, docs/timing.md, *DDR
methods*). ``batched`` (the default) simulates the requests issued until some core waits
together, each batch on fresh subchannels behind a seam rule. ``persistent`` keeps one DDR5 run
per subchannel for the whole op - queues, open rows, refresh and tFAW carried, no seam; its one
approximation is the completion a waiting core is told, speculated as if no later request
arrived, which the run measures against the real one. This prints, per case, the simulated
time of a pass by each method, their difference, the CPU time of each, and the persistent
runs' speculation: the share of DDR requests that completed later than speculated and their
mean delay (ns).

    python benchmarks/ddr_methods.py                 # every case (about 25 minutes)
    python benchmarks/ddr_methods.py --cases BERT    # the cases whose names contain BERT
"""

from __future__ import annotations

import argparse
import resource
import time

from bench_models import CASES, SHIPPED

from prodigy_sim.hardware import load_preset
from prodigy_sim.lowering import linear_op, lower_model
from prodigy_sim.models import Scenario, load_scenario
from prodigy_sim.numerics import Storage
from prodigy_sim.simulation import RunCache, SimMethod, default_workers, prefetch_runs, simulate_op
from prodigy_sim.timing import DDR_METHODS


def case_ops(spec: dict | str):
    """``(config, [(op, repeat), ...], lowered model or None)`` of one case (fields of a
    :class:`Scenario`, ``{"gemm": [m, n, k]}`` - no lowered model - or a shipped scenario's
    name)."""
    chip = load_preset("prodigy-t16128")
    if isinstance(spec, dict) and "gemm" in spec:
        m, n, k = spec["gemm"]
        return chip, [(linear_op("gemm", m, n, k, Storage.of("tai4"), chip), 1)], None
    sc = load_scenario(spec) if isinstance(spec, str) else Scenario(**spec)
    chip = load_preset(sc.hardware)
    low = lower_model(sc.card(), sc, chip)
    return chip, [(op, st.repeat) for st in low.stages for op in st.ops], low


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def measure(spec: dict | str, ddr_method: str, workers: int = 1) -> dict[str, float]:
    """Simulated seconds of a pass, CPU seconds (``workers`` > 1: the ops' runs made in that
    many worker processes too, their CPU counted; the same results), and (persistent) the
    speculation's late share and mean delay (ns) over every op's DDR requests."""
    chip, ops, low = case_ops(spec)
    method = SimMethod(ddr=ddr_method)
    sim = 0.0
    ddr = late = late_ns = 0.0                 # weighted by the ops' DDR bytes of a pass
    t0, c0 = time.process_time(), _children_cpu()
    with RunCache(workers) as cache:
        if low is not None:
            prefetch_runs(low, chip, cache, method=method)
        for op, repeat in ops:
            r = simulate_op(op, chip, method=method, cache=cache)
            sim += r.seconds * repeat
            if r.ddr_late_share is not None and r.ddr_late_ns is not None:
                w = r.ddr_bytes * repeat
                ddr += w
                late += w * r.ddr_late_share
                late_ns += w * r.ddr_late_share * r.ddr_late_ns
    cpu = time.process_time() - t0 + _children_cpu() - c0     # (the workers have ended)
    return {"seconds": sim, "cpu": cpu,
            "late_share": late / ddr if ddr else 0.0, "late_ns": late_ns / late if late else 0.0}


CPU_CELLS = (4, 5)
"""The cells of a row that are CPU times (measured, not recomputable)."""


def row_cells(name: str, b: dict[str, float], p: dict[str, float]) -> list[str]:
    """The table's cells of one case: :func:`measure` by the batched (``b``) and the persistent
    (``p``) DDR."""
    return [name, f"{b['seconds'] * 1e3:.3f} ms", f"{p['seconds'] * 1e3:.3f} ms",
            f"{100 * (b['seconds'] / p['seconds'] - 1):+.1f}%", f"{b['cpu']:.0f} s",
            f"{p['cpu']:.0f} s", f"{100 * p['late_share']:.1f}%", f"{p['late_ns']:.1f} ns"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default="", metavar="TEXT",
                    help="only the cases whose names contain TEXT (default: all)")
    ap.add_argument("--workers", type=int, default=default_workers(), metavar="N",
                    help="worker processes for each case's runs (default: one per CPU, as "
                         "prodigy-sim simulate; the same table but for the CPU times, which "
                         "count the workers')")
    args = ap.parse_args()
    cases = [(c[0], c[1]) for c in CASES] + [(n, n) for n in SHIPPED]
    print("| case | batched | persistent | difference | CPU batched | CPU persistent "
          "| late requests | their mean delay |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, spec in cases:
        if args.cases not in name:
            continue
        b, p = (measure(spec, m, args.workers) for m in DDR_METHODS)
        print("| " + " | ".join(row_cells(name, b, p)) + " |", flush=True)


if __name__ == "__main__":
    main()
