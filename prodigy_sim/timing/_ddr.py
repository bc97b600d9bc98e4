"""Adapter over the DDR5 model for the batches of every memory controller at once.

A controller (one 64-bit DDR5 channel) is ``config.channels`` 32-bit subchannels. Each subchannel
is fed **independently** - its own frontend and queues - as the chip's DMA engines and NoC deliver
requests to each subchannel controller on their own: a full queue on subchannel A never holds up
requests for subchannel B. A flush runs the subchannels of every controller in one
:func:`prodigy_sim.dram.simulate_controllers` call (one instance of a 1-subchannel system per
subchannel of the socket), so there is no per-controller or per-subchannel Python overhead.

The per-subchannel address is the controller-local line index with the subchannel bits removed
(:meth:`prodigy_sim.timing._memory.MemorySystem._ddr`): the 1-subchannel mapping of that address
gives the bank, row and column the ``S``-subchannel mapping gives the controller-local address.
"""

from __future__ import annotations

import numpy as np

from prodigy_sim.dram import MemorySystemConfig, simulate_controllers

__all__ = ["DdrRunner"]


class DdrRunner:
    """Runs request batches of one controller (``config``: its DDR5 system) to completion."""

    def __init__(self, config: MemorySystemConfig) -> None:
        self.config = config
        self.subchannels = config.channels
        self.sub_config = config.model_copy(update={"channels": 1})
        self.line = config.org.tx_bytes
        """Bytes of one request: a DRAM burst (a cache line of the chip)."""

    def complete(self, instance: np.ndarray, arrive: np.ndarray, sub_addr: np.ndarray,
                 is_write: np.ndarray, instances: int) -> np.ndarray:
        """Completion DRAM cycle of requests offered in array order at ``arrive`` (non-decreasing
        per instance) to independent 1-subchannel instances ``instance`` (< ``instances``) at
        per-subchannel byte addresses ``sub_addr``."""
        return simulate_controllers(self.sub_config, instance, arrive, sub_addr, is_write,
                                    controllers=instances).complete_cycle
