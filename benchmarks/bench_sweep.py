"""Wall time of a sweep: serial (the reference) against an embedded Dask LocalCluster, and what a
shared lowering saves. Checks that both give the same rows. Prints a markdown table and the load
average before and after.

    python benchmarks/bench_sweep.py [--spec llama-2-7b-ddr] [--workers 2]

Wall and CPU (user + system) times: on a shared machine the CPU time shows the work, the wall
time what one waited. Dask: the cluster start-up (worker processes importing the package) is
timed apart; the CPU column sums the workers' CPU during the sweep. The lowering row times one
point's ``lower_model`` against its simulation.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", default="llama-2-7b-ddr")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    from prodigy_sim.lowering import lower_model
    from prodigy_sim.reports import report_lowered
    from prodigy_sim.sweep import dask_client, expand, load_spec, sweep

    spec = load_spec(args.spec)
    points = expand(spec)
    load0 = os.getloadavg()
    p = points[0]
    report_lowered(lower_model(p.scenario.card(), p.scenario, p.config), p.config)  # warm-up
    t = time.perf_counter()
    lowered = lower_model(p.scenario.card(), p.scenario, p.config)
    t_lower = time.perf_counter() - t
    t = time.perf_counter()
    report_lowered(lowered, p.config)
    t_sim = time.perf_counter() - t

    with tempfile.TemporaryDirectory() as tmp:
        t, c = time.perf_counter(), _cpu()
        serial = sweep(spec, out=Path(tmp) / "serial", executor="serial", plots=False)
        t_serial, c_serial = time.perf_counter() - t, _cpu() - c
        t = time.perf_counter()
        with dask_client(args.workers) as client:
            t_start = time.perf_counter() - t
            c0 = sum(client.run(_cpu).values())
            t = time.perf_counter()
            dask = sweep(spec, out=Path(tmp) / "dask", client=client, plots=False)
            t_dask = time.perf_counter() - t
            c_dask = sum(client.run(_cpu).values()) - c0
    load1 = os.getloadavg()
    n = len(points)
    print(f"{args.spec}: {n} points, {spec.compute}; Dask rows == serial rows: "
          f"{dask.rows == serial.rows}; {serial.count('ok')} ok")
    print()
    print("| run | wall s | wall vs serial | CPU s | CPU per point s |")
    print("|---|---|---|---|---|")
    print(f"| serial (this process) | {t_serial:.1f} | 1.00 | {c_serial:.1f} | "
          f"{c_serial / n:.2f} |")
    print(f"| Dask LocalCluster, {args.workers} workers | {t_dask:.1f} | "
          f"{t_dask / t_serial:.2f} | {c_dask:.1f} (workers) | {c_dask / n:.2f} |")
    print(f"| Dask cluster start-up | {t_start:.1f} | | | |")
    print(f"| one point: lower_model / simulation | {t_lower:.3f} / {t_sim:.3f} | | | "
          f"lowering = {100 * t_lower / (t_lower + t_sim):.1f}% of a point |")
    print()
    print(f"load average before {load0[0]:.2f}, after {load1[0]:.2f} ({os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()
