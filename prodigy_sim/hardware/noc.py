"""The on-chip network: a 2-D mesh of routers, one per core, clocked with the cores.

A message crossing ``h`` hops of the mesh costs ``h * hop_latency_cycles`` plus its serialization
``bytes / link_bandwidth_bytes_per_cycle``. The mesh shape is given, or derived from the core count
(the most nearly square ``rows x cols = cores`` with ``rows <= cols``).
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field, model_validator

from prodigy_sim.hardware._base import MAX_CYCLES, MIB, Block

__all__ = ["NocConfig", "mesh_shape_for"]


def mesh_shape_for(cores: int) -> tuple[int, int]:
    """The most nearly square ``(rows, cols)``, ``rows * cols == cores`` and ``rows <= cols``."""
    rows = max(r for r in range(1, math.isqrt(cores) + 1) if cores % r == 0)
    return rows, cores // rows


class NocConfig(Block):
    """The network-on-chip connecting the cores, their L2 slices and the memory controllers."""

    topology: Literal["mesh"] = Field("mesh", description="Network topology.")
    rows: int | None = Field(None, ge=1, le=1 << 16, description="Mesh rows (routers); null = "
                             "derived from the core count.")
    cols: int | None = Field(None, ge=1, le=1 << 16, description="Mesh columns (routers); null = "
                             "derived from the core count.")
    hop_latency_cycles: int = Field(2, ge=1, le=MAX_CYCLES, description="Router plus link "
                                    "traversal per hop (core cycles).")
    link_bandwidth_bytes_per_cycle: int = Field(32, ge=1, le=MIB, description="Bandwidth of one "
                                                "link in one direction (bytes/cycle).")

    @model_validator(mode="after")
    def _check_shape(self):
        if (self.rows is None) != (self.cols is None):
            raise ValueError("give both 'rows' and 'cols', or neither to derive them "
                             f"(got rows={self.rows}, cols={self.cols})")
        return self

    def shape(self, cores: int) -> tuple[int, int]:
        """``(rows, cols)`` of the mesh for a chip of ``cores`` cores."""
        if self.rows is not None and self.cols is not None:
            return self.rows, self.cols
        return mesh_shape_for(cores)

    def diameter_hops(self, cores: int) -> int:
        """Hops between opposite corners of the mesh (X-Y routing)."""
        rows, cols = self.shape(cores)
        return rows - 1 + cols - 1

    def bisection_bandwidth_bytes_per_cycle(self, cores: int) -> int:
        """Bandwidth across the cut halving the longer dimension, one direction (bytes/cycle)."""
        rows, cols = self.shape(cores)
        return min(rows, cols) * self.link_bandwidth_bytes_per_cycle
