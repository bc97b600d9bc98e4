"""Speed of the DDR5 model on the Ramulator 2 calibration traces, reading the trace file included
(not a test).

Run: ``python benchmarks/bench_dram.py [--repeat N]``. For every case of
``tests/data/calibration/ddr5_cases.csv`` it writes the trace file with ``make_traces.py`` (not
timed) and times, best of N rounds after a warm-up that compiles the kernels:

- ``file``: :func:`prodigy_sim.dram.run_trace` on the file path - reading and parsing the trace,
  address mapping, the Numba kernel and the statistics: what ``prodigy-sim dram --trace FILE``
  does, and what Ramulator's ``wall_s`` (its own host time for the case, measured on this kind of
  machine, reading the same file) covers;
- ``model``: the same on the already parsed trace (a ``ParsedTrace``);
- ``text parser``: the Python line-by-line parser that the compiled scanner replaced (kept here as
  the baseline of the parsing figure), on the same file.

The rounds go round-robin over the cases (case 1, case 2, ..., case 1, ...), so a burst of load
from other users hits one run of every case rather than all runs of one case; a case shorter than
5 ms runs several times per round. Wall and process CPU time are both reported, with the load
average before and after (the machines are shared: under load the CPU time is the steadier
figure). Prints a markdown table; the accuracy columns repeat the calibration check.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import os
import platform
import tempfile
import time
from pathlib import Path

import numba
import numpy as np

from prodigy_sim.dram import memory_system_preset, parse_trace, run_trace

CALIBRATION = Path(__file__).resolve().parents[1] / "tests" / "data" / "calibration"


def text_parser(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The parser ``prodigy_sim.dram.trace`` used before the compiled scanner (the baseline)."""
    addrs, writes = [], []
    with path.open("r", encoding="utf-8") as f:
        for raw in f:
            text = raw.split("#", 1)[0].strip()
            if not text:
                continue
            op, tok = text.split()
            addrs.append(int(tok, 16) if tok.lower().startswith("0x") else int(tok, 10))
            writes.append(op.upper() == "ST")
    return np.array(addrs, dtype=np.uint64), np.array(writes, dtype=np.bool_)


def _timed(fn) -> tuple[float, float, object]:
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - t0, time.process_time() - c0, out


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
    tmp = tempfile.TemporaryDirectory()
    runs = []
    for case in cases:
        path = Path(tmp.name) / f"{case['trace']}.trace"
        if not path.exists():
            with open(path, "w") as f:
                f.writelines(f"{op} {addr:#x}\n" for op, addr in mt.TRACES[case["trace"]]())
        trace = parse_trace(path)
        rate = int(case["preset"].removeprefix("DDR5_").removesuffix("AN"))
        cfg = memory_system_preset(speed=rate, channels=int(case["channels"]))
        mode = "chain" if case["case"].startswith("unloaded_chain") else "saturate"
        run_trace(path, cfg, mode=mode)  # warm-up / compile
        wall, _, _ = _timed(lambda p=path, c=cfg, m=mode: run_trace(p, c, mode=m))
        # a case shorter than 5 ms runs several times per round (more samples of its best time)
        runs.append({"case": case, "path": path, "trace": trace, "cfg": cfg, "mode": mode,
                     "inner": max(1, int(0.005 / max(wall, 1e-6))),
                     "best": {k: [float("inf"), float("inf")] for k in ("file", "model", "text")}})
    for _ in range(args.repeat):
        for r in runs:
            jobs = {
                "file": lambda r=r: run_trace(r["path"], r["cfg"], mode=r["mode"]),
                "model": lambda r=r: run_trace(r["trace"], r["cfg"], mode=r["mode"]),
                "text": lambda r=r: text_parser(r["path"]),
            }
            for _ in range(r["inner"]):
                for key, job in jobs.items():
                    wall, cpu, out = _timed(job)
                    best = r["best"][key]
                    best[0], best[1] = min(best[0], wall), min(best[1], cpu)
                    if key == "file":
                        r["res"] = out
    print(f"load average after: {_load()}")
    print()
    print("| case | requests | Ramulator s | file ms wall / CPU | speed-up with parsing wall / "
          "CPU | model ms CPU | speed-up model only (CPU) | text parser ms CPU | "
          "BW GB/s ours / ref | lat cyc ours / ref |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    tot = {"ref": 0.0, "file": 0.0, "file_cpu": 0.0, "model": 0.0, "text": 0.0}
    for r in runs:
        case, n = r["case"], r["trace"].addr.size
        ref_s = float(case["wall_s"])
        fw, fc = r["best"]["file"]
        mc = r["best"]["model"][1]
        tc = r["best"]["text"][1]
        for k, v in (("ref", ref_s), ("file", fw), ("file_cpu", fc), ("model", mc),
                     ("text", tc)):
            tot[k] += v
        s = r["res"].stats
        print(f"| {case['case']} | {n} | {ref_s:.3f} | {fw * 1e3:.1f} / {fc * 1e3:.1f} | "
              f"{ref_s / fw:.0f}x / {ref_s / fc:.0f}x | {mc * 1e3:.1f} | {ref_s / mc:.0f}x | "
              f"{tc * 1e3:.1f} | {s.bandwidth_GBps:.3f} / {float(case['total_bw_GBps']):.3f} | "
              f"{s.avg_read_latency_cycles:.3f} / {float(case['avg_read_lat_cyc']):.3f} |")
    print(f"| **all cases** | | {tot['ref']:.3f} | {tot['file'] * 1e3:.1f} / "
          f"{tot['file_cpu'] * 1e3:.1f} | **{tot['ref'] / tot['file']:.0f}x / "
          f"{tot['ref'] / tot['file_cpu']:.0f}x** | {tot['model'] * 1e3:.1f} | "
          f"{tot['ref'] / tot['model']:.0f}x | {tot['text'] * 1e3:.1f} | | |")
    print(f"\nparsing (file - model, CPU): {(tot['file_cpu'] - tot['model']) * 1e3:.1f} ms; the "
          f"text parser alone: {tot['text'] * 1e3:.1f} ms")
    tmp.cleanup()


def _load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


if __name__ == "__main__":
    main()
