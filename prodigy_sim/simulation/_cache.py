"""Exact reuse of timing-engine runs across simulations, optionally run in parallel:
:class:`RunCache`.

Every :class:`~prodigy_sim.simulation.OpResult` is computed from one or a few runs of the timing
engine (:func:`prodigy_sim.timing.simulate`): the op's program on its cores of a chip, with its
residency (the tensors kept on chip and the bytes other kept data hold), the shared L3 sized by
default or off - the full unit loop, or the loop capped for the steady-state extrapolation. The
timing engine is deterministic and those are all its inputs, so a run is a pure function of
them. A :class:`RunCache` keeps each run's result under exactly those inputs (the program
compared whole, instruction by instruction and declaration by declaration; the chip
configuration compared field by field) and returns it when the same run is asked for again.

Simulations that share kernels then share their runs: decode steps of one batch at different
contexts run the same linear-layer programs (only attention and the KV-cache update depend on
the context), so a grid of step times over (batch, context) simulates the linear layers once per
batch. The cache is passed explicitly (``simulate(..., cache=RunCache())``); nothing is shared
between simulations without one. A recorded run (``trace``) is never cached.

**Parallel runs** (``RunCache(workers=n)``, n > 1): :meth:`RunCache.submit` starts a run in one
of ``n`` worker processes (forked from this one, started at the first submission) and
:meth:`RunCache.run` waits for it when the run is asked for (the driver's
:func:`~prodigy_sim.simulation.prefetch_runs` submits every run a simulation will make before
making it; a submitted run no worker has started yet when it is asked for is made in this
process instead, which would otherwise wait idle). The simulator's compiled kernels are loaded
before the workers are forked, so they start with them. A run is the same pure function in a
worker as here, and its result comes back by pickling (floats and integers exactly), so the
results are the same as with ``workers=1``; only which process computes a run, and when,
changes (``tests/test_simulation_cache.py``). ``prodigy-sim simulate`` and ``prodigy-sim
parallel`` start :func:`default_workers` of them unless told.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Collection
from concurrent.futures import Future, ProcessPoolExecutor

from prodigy_sim.errors import ConfigError
from prodigy_sim.hardware import ChipConfig
from prodigy_sim.isa import Program
from prodigy_sim.timing import SimulationResult, compile_kernels
from prodigy_sim.timing import simulate as simulate_program

__all__ = ["RunCache"]


def _run(program: Program, config: ChipConfig, cores: int | None, l3_bytes: int | None,
         resident: frozenset[str], held_bytes: int, aliased: frozenset[str], ddr: str
         ) -> SimulationResult:
    """One run (in a worker process)."""
    return simulate_program(program, config, cores=cores, l3_bytes=l3_bytes,
                            resident=resident, held_bytes=held_bytes, aliased=aliased, ddr=ddr)


def max_workers() -> int:
    """Most worker processes a run may start: four per CPU of this machine, at least 8 (more
    only contend, and each process holds its own copy of the simulator, ~0.3 GB; a spec written
    for a larger machine still runs)."""
    return max(8, 4 * (os.cpu_count() or 1))


DEFAULT_WORKERS_MAX = 8
"""At most this many worker processes by default: a simulation has about ten ops to share
out, and each worker holds its own copy of the simulator (~0.3-0.5 GB)."""


def default_workers() -> int:
    """Worker processes a command starts unless told (``prodigy-sim simulate --workers``): one
    per CPU this process may run on, at most :data:`DEFAULT_WORKERS_MAX`; 1 inside a daemonic
    process (a worker of a process pool or of a sweep's cluster may not start processes of its
    own). The results do not depend on it."""
    if multiprocessing.current_process().daemon:
        return 1
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:                  # (not on Linux)
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, DEFAULT_WORKERS_MAX))     # (max_workers() is at least 8)


def check_workers(workers: int, name: str = "workers") -> int:
    """``workers`` if it is in ``1..max_workers()``, else a :class:`ConfigError` naming ``name``."""
    if not 1 <= workers <= max_workers():
        raise ConfigError(f"{name!r} must be in 1..{max_workers()} (worker processes: four per "
                          f"CPU of this machine, at least 8) (got {workers})")
    return workers


class RunCache:
    """Results of timing-engine runs keyed by every input of the run (see the module docstring).

    ``workers``: processes that :meth:`submit` runs in (1: none, every run is made in
    :meth:`run`). ``hits`` and ``misses`` count lookups in :meth:`run` (a submitted run counts
    as a miss when it is asked for), ``submitted`` the runs given to the workers, ``made_here``
    those of them no worker had started when :meth:`run` asked for them (made in this process
    instead of waiting: it would otherwise idle while the workers work);
    ``len(cache)`` is the number of distinct runs kept.
    Memory: one :class:`~prodigy_sim.timing.SimulationResult` (per-core counters) and one
    reference to the program per distinct run. :meth:`close` (or ``with``) stops the workers.
    """

    def __init__(self, workers: int = 1) -> None:
        self.workers = check_workers(workers)
        self._runs: dict[tuple, SimulationResult] = {}
        self._pending: dict[tuple, Future[SimulationResult]] = {}
        self._pool: ProcessPoolExecutor | None = None
        self.hits = 0
        self.misses = 0
        self.submitted = 0
        self.made_here = 0

    def __len__(self) -> int:
        return len(self._runs)

    def __enter__(self) -> RunCache:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Stop the worker processes (runs submitted and not yet asked for are dropped); the
        cache stays usable (serially, or with new workers at the next submission)."""
        for fut in self._pending.values():
            fut.cancel()
        self._pending.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    @staticmethod
    def _key(program: Program, config: ChipConfig, cores: int | None, l3_bytes: int | None,
             resident: Collection[str], held_bytes: int, aliased: Collection[str],
             ddr: str) -> tuple:
        return (program, config, cores, l3_bytes, frozenset(resident), held_bytes,
                frozenset(aliased), ddr)

    def submit(self, program: Program, config: ChipConfig, *, cores: int | None,
               l3_bytes: int | None, resident: Collection[str], held_bytes: int,
               aliased: Collection[str] = (), ddr: str = "batched") -> None:
        """Start this run in a worker process unless it is kept or already started (nothing
        with ``workers=1``); :meth:`run` of the same arguments takes its result."""
        key = self._key(program, config, cores, l3_bytes, resident, held_bytes, aliased, ddr)
        if self.workers == 1 or key in self._runs or key in self._pending:
            return
        if self._pool is None:
            compile_kernels()               # (loaded once here, the forked workers have them)
            self._pool = ProcessPoolExecutor(self.workers,
                                             mp_context=multiprocessing.get_context("fork"))
        self._pending[key] = self._pool.submit(_run, *key)
        self.submitted += 1

    def run(self, program: Program, config: ChipConfig, *, cores: int | None,
            l3_bytes: int | None, resident: Collection[str], held_bytes: int,
            aliased: Collection[str] = (), ddr: str = "batched") -> SimulationResult:
        """:func:`prodigy_sim.timing.simulate` of these arguments (its other arguments at their
        defaults), from the cache when the same run was made before, from its worker when it
        was submitted and a worker has started it, else made here."""
        key = self._key(program, config, cores, l3_bytes, resident, held_bytes, aliased, ddr)
        found = self._runs.get(key)
        if found is not None:
            self.hits += 1
            return found
        self.misses += 1
        pending = self._pending.pop(key, None)
        if pending is not None and not pending.cancel():
            result = pending.result()       # (started in a worker: wait for it)
        else:                               # (not started yet: made here, not waited for)
            if pending is not None:
                self.made_here += 1
            result = _run(*key)
        self._runs[key] = result
        return result
