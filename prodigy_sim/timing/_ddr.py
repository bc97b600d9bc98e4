"""Thin adapter over the DDR5 model for many small batches of one controller.

:func:`prodigy_sim.dram.simulate_requests` maps addresses and builds its parameter vector on
every call (~0.2 ms); the timing model calls it once per controller per memory batch. This
adapter maps a whole batch (every controller) once with the public
:func:`prodigy_sim.dram.map_addresses`, builds the parameter vector once, and calls the Numba
kernel of ``prodigy_sim.dram`` directly. If that private kernel's interface changes, it falls
back to the public ``simulate_requests`` (same results, slower).
"""

from __future__ import annotations

import numpy as np

from prodigy_sim.dram import MemorySystemConfig, map_addresses, simulate_requests
from prodigy_sim.errors import SimulationError

__all__ = ["DdrRunner"]


class DdrRunner:
    """Runs request batches of one controller (``config``: its DDR5 system) to completion."""

    def __init__(self, config: MemorySystemConfig) -> None:
        self.config = config
        self._kernel = None
        try:
            from prodigy_sim.dram import _kernel, model

            self._params = model._params(config, False)
            self._kernel = _kernel.simulate_kernel
        except (ImportError, AttributeError, TypeError):
            self._kernel = None

    def map(self, addr: np.ndarray):
        """DRAM coordinates of byte addresses (see :func:`prodigy_sim.dram.map_addresses`)."""
        return map_addresses(self.config, addr.astype(np.uint64, copy=False))

    def complete(self, arrive: np.ndarray, addr: np.ndarray, is_write: np.ndarray, mapped,
                 sel: np.ndarray) -> np.ndarray:
        """Completion DRAM cycle of requests ``sel`` (offered in that order at ``arrive``)."""
        if self._kernel is not None:
            n = arrive.size
            out = [np.full(n, -1, np.int64) for _ in range(5)]
            c = self.config.channels
            try:
                _, status = self._kernel(
                    self._params, np.ascontiguousarray(arrive, np.int64), mapped.channel[sel],
                    mapped.bank_group[sel], mapped.bank[sel], mapped.row[sel],
                    addr[sel].astype(np.int64), np.ascontiguousarray(is_write, np.bool_), *out,
                    np.zeros(c, np.int64), np.zeros(c, np.int64))
            except TypeError:
                self._kernel = None
            else:
                if status != 0:
                    raise SimulationError("DDR5 model deadlocked: a request could never be "
                                          "scheduled")
                return out[4]
        return simulate_requests(self.config, arrive, addr[sel].astype(np.uint64),
                                 is_write).complete_cycle
