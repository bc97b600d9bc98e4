"""The architectural parameters a program is validated, placed and expanded against.

The hardware configuration of the chip builds one of these (``IsaParams(onchip_bytes=...)``); the
defaults are the simulator's assumptions for the Prodigy T16128 core (1 MiB of per-core on-chip
memory, as the 1 MB L2 per core in the datasheet; the rest is not public).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["IsaParams", "DEFAULT_MAX_STEPS"]

DEFAULT_MAX_STEPS = 10_000_000
"""Default step budget: instructions one core may execute before the expander (and so every
executor) stops with a ProgramError - a branch loop that never ends, a LOOP of 2**50. The shipped
programs execute a few thousand instructions per core; at the expander's few million steps per
second a runaway program is stopped within seconds."""


class IsaParams(BaseModel):
    """Per-core architectural limits seen by programs."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    onchip_bytes: int = Field(1 << 20, gt=0, description="scratchpad capacity per core, bytes "
                              "(assumption: the 1 MB L2 per core of the T16128 datasheet)")
    n_accumulators: int = Field(8, ge=1, le=16, description="accumulator registers per core "
                                "(assumption; the binary field allows 16)")
    acc_max_rows: int = Field(64, ge=1, description="largest accumulator M, elements "
                              "(assumption)")
    acc_max_cols: int = Field(64, ge=1, description="largest accumulator N, elements "
                              "(assumption)")
    max_loop_depth: int = Field(8, ge=1, description="hardware loop stack depth (assumption)")
    ddr_bytes: int = Field(1 << 40, gt=0, description="size of the DDR address space, bytes")
    ddr_align_bytes: int = Field(4096, gt=0, description="alignment of automatically placed "
                                 "tensors, bytes (a page)")
    spm_align_bytes: int = Field(64, gt=0, description="alignment of automatically placed tiles, "
                                 "bytes (a cache line)")
