"""The on-chip mesh seen by DMA traffic: core and memory-controller positions, hops, link ports.

Geometry (assumption: Tachyum does not publish the floorplan). Core ``i`` sits at router
``(x, y) = (i % cols, i // cols)`` of the ``rows x cols`` mesh. The ``memory.channels``
controllers sit just outside the mesh, half (rounded up) above row 0 and the rest below the last
row, spread evenly over the columns; controller ``k`` of an edge with ``n`` controllers is at
column ``(2k + 1) * cols // (2n)``. Routing is X-Y, so a core-controller path has
``|dx| + |dy|`` hops, counting the hop between the edge router and the controller.

Contention is modelled at the two ports every DDR byte must cross: a controller's link into the
mesh and a core's link out of it (both ``link_bandwidth_bytes_per_cycle`` per direction). Links
inside the mesh are not reserved: X-Y routes spread DDR traffic over the mesh, whose bisection
bandwidth (1.46 TB/s on the T16128) exceeds the DDR bandwidth (0.92 TB/s). A port is a
reservation calendar (the cycle it becomes free); a transfer of ``B`` bytes holds it for
``ceil(B / bandwidth)`` cycles, in the order the memory model processes transfers.
"""

from __future__ import annotations

import numpy as np

from prodigy_sim.hardware import ChipConfig

__all__ = ["Mesh"]


class Mesh:
    """Hop counts between the cores and the memory controllers of one chip."""

    def __init__(self, config: ChipConfig, ncores: int) -> None:
        rows, cols = config.mesh_shape
        nctrl = config.memory.channels
        top = -(-nctrl // 2)
        bottom = nctrl - top
        ctrl_xy = [((2 * k + 1) * cols // (2 * top), -1) for k in range(top)]
        ctrl_xy += [((2 * k + 1) * cols // (2 * bottom), rows) for k in range(bottom)]
        self.rows, self.cols = rows, cols
        self.controller_xy = tuple(ctrl_xy)
        self.hop_latency = config.noc.hop_latency_cycles
        self.link_bw = config.noc.link_bandwidth_bytes_per_cycle
        core_xy = [(i % cols, i // cols) for i in range(ncores)]
        self.core_xy = tuple(core_xy)
        hops = np.array([[abs(cx - kx) + abs(cy - ky) for kx, ky in ctrl_xy]
                         for cx, cy in core_xy], dtype=np.int64)
        self.hops = hops
        """(ncores, controllers) hop counts."""
        self.latency = hops * self.hop_latency
        """(ncores, controllers) one-way head latency (cycles)."""

    def serialization(self, nbytes: int) -> int:
        """Cycles a link is held by ``nbytes`` bytes."""
        return -(-nbytes // self.link_bw)
