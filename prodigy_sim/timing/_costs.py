"""Closed-form occupancy of one instruction inside its unit (cycles of the core clock).

Matrix unit (one ``tile_m x tile_n x tile_k`` MAC block per cycle at FP8)::

    MMA (M,N,K):    occupancy = ceil(ceil(M/tile_m) * ceil(N/tile_n) * ceil(K/tile_k)
                                 / (rate(w.fmt) * (sparsity_speedup if MMA.SP)))

``rate(fmt)`` is ``MatrixUnitConfig.relative_rate``: the preset's ``relative_throughput`` entry,
or its rule for unlisted formats.
                    result     = issue + occupancy + latency_cycles

The pipeline latency overlaps back-to-back MMAs: an MMA that accumulates into the accumulator of
the previous MMA may issue as soon as the unit is free (the partial sums are forwarded inside the
unit), so ``n`` chained MMAs take ``n * occupancy + latency_cycles``. Any other reader of the
accumulator (``ACC.ST``) waits for the full latency. ``ACC.LD`` / ``ACC.ST`` move ``M*N`` FP32
values through the L2 port (``ceil(4*M*N / l2_bandwidth_bytes_per_cycle)``); ``ACC.ZERO`` is one
cycle.

Vector units: arithmetic is FP32, so a unit has ``width_bits / 32`` lanes; one tile operation is
split across all ``count`` units (they are busy together)::

    occupancy = ceil(elements / (lanes * count)) * op_interval_cycles[class]
    result    = issue + occupancy + op_latency_cycles[class]

``elements`` is the largest tile operand (the source of a row reduction), except for the indexed
moves VGATHER / VSCATADD: their ``(R, J)`` operand (one element per index and row; the indexed
tile is not swept). Scalar instructions take one cycle; LOOP / ENDLOOP are zero-overhead; every
other instruction uses one issue slot.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from prodigy_sim.errors import ConfigError

if TYPE_CHECKING:  # annotations only: reading DEFAULT_DMA_OUTSTANDING stays light
    from prodigy_sim.hardware import ChipConfig
    from prodigy_sim.isa import Instruction, Program
    from prodigy_sim.numerics import FormatSpec

__all__ = ["VECTOR_OP_CLASS", "DEFAULT_DMA_OUTSTANDING", "mma_cycles", "matrix_cost",
           "vector_cost", "vector_elements", "mma_macs"]

DEFAULT_DMA_OUTSTANDING = 8
"""Transfers one core's DMA engine keeps in flight (assumption; not public)."""

VECTOR_OP_CLASS = {
    "VADD": "add", "VSUB": "add", "VMAX": "add", "VMIN": "add", "VADDI": "add", "VMAXI": "add",
    "VMINI": "add", "VRSUM": "add", "VRMAX": "add", "VROTH": "add",
    "VHBF": "add",
    "VMUL": "mul", "VMULI": "mul", "VFMA": "fma",
    "VEXP": "transcendental", "VGELU": "transcendental", "VSILU": "transcendental",
    "VRCP": "div", "VRSQRT": "sqrt",
    "VCVT": "convert", "VQUANT": "convert", "VDEQUANT": "convert", "VTRANS": "convert",
    "VGATHER": "convert", "VSCATADD": "add",
}
"""Vector mnemonic -> operation class of ``VectorUnitConfig.op_latency_cycles``."""


def mma_shape(ins: Instruction, program: Program) -> tuple[int, int, int]:
    """``(M, N, K)`` of an MMA / MMA.SP."""
    m, n = program.acc[ins.name(0)].shape
    k = program.tile[ins.name(1)].shape[1]
    return m, n, k


def mma_macs(ins: Instruction, program: Program) -> int:
    """Dense MACs of an MMA (8:4-sparse work counted as the dense MACs it replaces)."""
    m, n, k = mma_shape(ins, program)
    return m * n * k


def mma_cycles(m: int, n: int, k: int, w_fmt: str | FormatSpec, config: ChipConfig,
               sparse: bool = False) -> int:
    """Matrix-unit occupancy of an (M,N,K) MMA with weights in ``w_fmt`` (cycles)."""
    mu = config.core.matrix_unit
    rate = mu.relative_rate(w_fmt)
    name = w_fmt if isinstance(w_fmt, str) else w_fmt.name
    if rate <= 0:
        raise ConfigError(f"weight format {name!r} does not run on the matrix unit "
                          f"('core.matrix_unit.relative_throughput' has "
                          f"{', '.join(mu.relative_throughput)}; unlisted formats: "
                          f"{dict(mu.unlisted_relative_throughput)})")
    if sparse:
        if not mu.runs_sparse(w_fmt):
            raise ConfigError(f"weight format {name!r} has no sparse mode "
                              f"('core.matrix_unit.sparse_formats')")
        rate *= mu.sparsity_speedup
    blocks = -(-m // mu.tile_m) * -(-n // mu.tile_n) * -(-k // mu.tile_k)
    return max(1, math.ceil(blocks / rate - 1e-9))


def matrix_cost(ins: Instruction, program: Program, config: ChipConfig) -> tuple[int, int]:
    """``(occupancy, latency)`` of a matrix-unit instruction (cycles)."""
    mu = config.core.matrix_unit
    op = ins.opcode
    if op in ("MMA", "MMA.SP"):
        m, n, k = mma_shape(ins, program)
        w = program.tile[ins.name(2)]
        return mma_cycles(m, n, k, w.fmt, config, sparse=op == "MMA.SP"), mu.latency_cycles
    if op == "ACC.ZERO":
        return 1, 1
    acc = ins.name(1 if op == "ACC.ST" else 0)
    m, n = program.acc[acc].shape
    bw = config.core.on_chip_memory.l2_bandwidth_bytes_per_cycle
    return -(-4 * m * n // bw), mu.latency_cycles


_INDEXED = {"VGATHER": 0, "VSCATADD": 1}
"""Indexed moves -> the operand whose ``(R, J)`` shape is their element count."""


def vector_elements(ins: Instruction, program: Program) -> int:
    """Elements a vector instruction processes: its largest tile operand, or for VGATHER /
    VSCATADD the ``(R, J)`` operand (rows x indices)."""
    if ins.opcode in _INDEXED:
        r, c = program.tile[ins.name(_INDEXED[ins.opcode])].shape
        return r * c
    return max(r * c for r, c in (program.tile[o].shape for o in ins.operands
                                  if isinstance(o, str) and o in program.tile))


def vector_cost(ins: Instruction, program: Program, config: ChipConfig) -> tuple[int, int]:
    """``(occupancy, latency)`` of a vector instruction split over all vector units (cycles)."""
    vu = config.core.vector_unit
    cls = VECTOR_OP_CLASS[ins.opcode]
    elements = vector_elements(ins, program)
    per_cycle = vu.fp32_lanes * vu.count
    return -(-elements // per_cycle) * vu.op_interval_cycles[cls], vu.op_latency_cycles[cls]


def vector_flops(ins: Instruction, program: Program) -> int:
    """FP32 operations of a vector instruction (an FMA counts 2 per element)."""
    elements = vector_elements(ins, program)
    return elements * (2 if ins.opcode == "VFMA" else 1)
