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
