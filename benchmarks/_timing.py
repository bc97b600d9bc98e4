"""Shared by the benchmark scripts (run as ``python benchmarks/bench_*.py``, so this folder is on
``sys.path``)."""

from __future__ import annotations

import time
from collections.abc import Callable


def best_of(fn: Callable[[], object], repeat: int) -> float:
    """Best wall time (s) of ``repeat`` calls of ``fn`` after one warm-up call (which also
    JIT-compiles)."""
    fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def best_round_robin(fns: dict[str, Callable[[], object]], repeat: int, pause: float = 0.0
                     ) -> tuple[dict[str, float], dict[str, float]]:
    """Best wall time and best process CPU time (s, all threads) of each function over
    ``repeat`` rounds, one call of each per round after one warm-up call of each: load
    changes on a shared machine hit every function alike. ``pause`` (s): sleep before each
    timed call, so that what the previous call left running does not land in the next one's
    time (OpenBLAS's worker threads keep spinning on a core for about 0.1 s after a
    multi-threaded call)."""
    for fn in fns.values():
        fn()
    wall = {k: float("inf") for k in fns}
    cpu = {k: float("inf") for k in fns}
    for _ in range(repeat):
        for k, fn in fns.items():
            if pause > 0:
                time.sleep(pause)
            t, c = time.perf_counter(), time.process_time()
            fn()
            wall[k] = min(wall[k], time.perf_counter() - t)
            cpu[k] = min(cpu[k], time.process_time() - c)
    return wall, cpu
