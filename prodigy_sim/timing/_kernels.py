"""The Numba kernels a simulation runs (the DDR5 model's, the L3 lookup, the FIFO ports): whether
they are in the on-disk cache, and compiling them up front so a first run can say so before it
starts."""

from __future__ import annotations

import numpy as np

from prodigy_sim import dram
from prodigy_sim._jit import cached_on_disk
from prodigy_sim.dram import streams
from prodigy_sim.timing._ddr import _finish, _lateness, _prepare, _sort_runs
from prodigy_sim.timing._l3 import L3Blocks, _count_lookups, _fill_ready, _lookup, fill_ready
from prodigy_sim.timing._ports import (
    PortCalendar,
    _deliver,
    _first_after,
    _grow,
    _hit_packets,
    _insertion_sort,
    _nonzero_packets,
    _packets,
    _pair_order,
    _port_order,
    _radix_argsort,
    _radix_pairs,
    _row_need,
    _serve,
    _serve_batch,
    _tally,
    deliver,
    group_packets,
    hit_packets,
)

__all__ = ["kernels_compiled", "compile_kernels"]


def kernels_compiled() -> bool:
    """True if every kernel a simulation runs is in the on-disk cache (``cache=True``)."""
    return dram.kernels_compiled() and cached_on_disk(_lookup, _serve, _packets, _prepare,
                                                      _sort_runs, _finish, _fill_ready,
                                                      _first_after, _port_order, _tally,
                                                      _radix_argsort, _nonzero_packets,
                                                      _hit_packets, _count_lookups,
                                                      _insertion_sort, _serve_batch, _grow,
                                                      _pair_order, _deliver, _radix_pairs,
                                                      _row_need, streams._step_kernel,
                                                      streams._finish_kernel, _lateness)


def compile_kernels() -> None:
    """Compile every kernel a simulation runs now (or load them from the on-disk cache)."""
    dram.compile_kernels()
    st = dram.DramStreams(dram.MemorySystemConfig(), 1)      # the persistent DDR's kernels
    st.step(np.array([0, 1]), np.zeros(1, np.int64), np.zeros(1, np.int64),
            np.zeros(1, np.bool_), 1)
    st.finish()
    L3Blocks(1).lookup(np.zeros(1, np.int64), np.ones(1, np.bool_))
    one = np.zeros(1, np.int64)
    PortCalendar(1, 32, 64).serve(one, one, 0)       # (packets and gaps=False: the same kernel)
    deliver((one, one, one), (one, one, one, one), one, one, None, np.zeros((1, 1), np.int64),
            np.zeros((2, 1), np.int64), 1, PortCalendar(1, 32, 64), PortCalendar(1, 32, 64), 0)
    _pair_order(one, one, 1, one, one)
    _radix_argsort(one)
    group_packets(one, one, one, 4, 1)
    hit_packets(one, one, np.ones(1, np.bool_), one, one, one, one, 4, 1)
    fill_ready(one.copy(), one, one, one, one, np.zeros((1, 1), np.int64), 1)
    _sort_runs(np.arange(2), 0, 2, np.array([1, 0]))
    _lateness(one, one, one, 3, 2)
    _finish(one, np.array([0, 1]), one, one, np.zeros(1, np.bool_), 1, 8, 3, 2,
            np.zeros((1, 1), np.int64), np.zeros((1, 1), np.int64), np.zeros(1, np.int64),
            np.zeros(0, np.int64))
    _prepare(one, one, one, one, one, np.zeros((1, 1), np.int64), np.zeros((1, 1), np.int64),
             np.zeros((1, 1), np.int64), np.zeros(1, np.bool_), 320, 1, 1, 1, 64, 3, 2, 1, 100)
