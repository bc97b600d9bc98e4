"""Startup of the ``prodigy-sim`` command line, and the first-run kernel compilation (not a test).

Run: ``python benchmarks/bench_startup.py [--repeat N] [--no-compile]``. Every figure is a fresh
Python process (``python -m prodigy_sim ...``), wall time, best of N:

- ``python -c pass`` (the interpreter alone: the baseline of the same run);
- ``prodigy-sim --help`` and ``prodigy-sim COMMAND --help`` for every command;
- ``prodigy-sim simulate`` (the default scenario) in a new, empty Numba cache directory
  (``NUMBA_CACHE_DIR``): the first run after installing, which compiles the DDR5 kernels; then the
  same command again in a new process with that cache (the second run), best of N.

Prints a markdown table with the load average before and after.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = ("simulate", "footprint", "accuracy", "presets", "formats", "run", "asm", "disasm",
            "dram")


def _wall(argv: list[str], env: dict[str, str]) -> float:
    t = time.perf_counter()
    subprocess.run(argv, env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - t


def _best(argv: list[str], env: dict[str, str], repeat: int) -> float:
    return min(_wall(argv, env) for _ in range(repeat))


def _load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=7, help="processes per figure (best is kept)")
    ap.add_argument("--no-compile", action="store_true",
                    help="skip the first-run compilation measure (about 20-40 s)")
    args = ap.parse_args()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cli = [sys.executable, "-m", "prodigy_sim"]
    print(f"load average before: {_load()}")
    rows = [("python -c pass (baseline)", _best([sys.executable, "-c", "pass"], env,
                                                args.repeat))]
    rows.append(("prodigy-sim --help", _best([*cli, "--help"], env, args.repeat)))
    for command in COMMANDS:
        rows.append((f"prodigy-sim {command} --help",
                     _best([*cli, command, "--help"], env, args.repeat)))
    if not args.no_compile:
        with tempfile.TemporaryDirectory() as cache:
            fresh = {**env, "NUMBA_CACHE_DIR": cache}
            rows.append(("prodigy-sim simulate, first run (empty Numba cache)",
                         _wall([*cli, "simulate", "--quiet"], fresh)))
            rows.append(("prodigy-sim simulate, second run (new process)",
                         _best([*cli, "simulate", "--quiet"], fresh, min(args.repeat, 3))))
    print(f"load average after: {_load()}")
    print()
    print("| command | wall s (best) |")
    print("|---|---:|")
    for name, seconds in rows:
        print(f"| {name} | {seconds:.3f} |")


if __name__ == "__main__":
    main()
