"""Exact reuse of timing-engine runs across simulations: :class:`RunCache`.

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
"""

from __future__ import annotations

from collections.abc import Collection

from prodigy_sim.hardware import ChipConfig
from prodigy_sim.isa import Program
from prodigy_sim.timing import SimulationResult
from prodigy_sim.timing import simulate as simulate_program

__all__ = ["RunCache"]


class RunCache:
    """Results of timing-engine runs keyed by every input of the run (see the module docstring).

    ``hits`` and ``misses`` count lookups; ``len(cache)`` is the number of distinct runs kept.
    Memory: one :class:`~prodigy_sim.timing.SimulationResult` (per-core counters) and one
    reference to the program per distinct run.
    """

    def __init__(self) -> None:
        self._runs: dict[tuple, SimulationResult] = {}
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._runs)

    def run(self, program: Program, config: ChipConfig, *, cores: int | None,
            l3_bytes: int | None, resident: Collection[str], held_bytes: int
            ) -> SimulationResult:
        """:func:`prodigy_sim.timing.simulate` of these arguments (its other arguments at their
        defaults), from the cache when the same run was made before."""
        key = (program, config, cores, l3_bytes, frozenset(resident), held_bytes)
        found = self._runs.get(key)
        if found is not None:
            self.hits += 1
            return found
        self.misses += 1
        result = simulate_program(program, config, cores=cores, l3_bytes=l3_bytes,
                                  resident=resident, held_bytes=held_bytes)
        self._runs[key] = result
        return result
