"""Adapter over the DDR5 model for many small batches of one memory controller.

A controller (one 64-bit DDR5 channel) is ``config.channels`` 32-bit subchannels. Each subchannel
is fed **independently** - its own frontend and queues - as the chip's DMA engines and NoC deliver
requests to each subchannel controller on their own: a full queue on subchannel A never holds up
requests for subchannel B. Every call runs all subchannels of the batch in one
:func:`prodigy_sim.dram.simulate_controllers` call (one instance of a 1-subchannel system per
subchannel), so there is no per-subchannel Python overhead.

The per-subchannel address is the controller-local line index with the subchannel bits removed,
``(line // S) * 64``: the 1-subchannel mapping of that address gives the same bank, row and
column as the ``S``-subchannel mapping of the controller-local address.
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

    def map(self, addr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Subchannel and per-subchannel byte address of controller-local byte addresses."""
        line = addr.astype(np.int64, copy=False) // self.line
        s = self.subchannels
        return line % s, (line // s) * self.line

    def complete(self, arrive: np.ndarray, addr: np.ndarray, is_write: np.ndarray,
                 mapped: tuple[np.ndarray, np.ndarray], sel: np.ndarray) -> np.ndarray:
        """Completion DRAM cycle of requests ``sel`` (offered in that order at ``arrive``, each
        subchannel fed on its own)."""
        sub, sub_addr = mapped
        return simulate_controllers(self.sub_config, sub[sel], arrive, sub_addr[sel], is_write,
                                    controllers=self.subchannels).complete_cycle
