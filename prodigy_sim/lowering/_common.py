"""Pieces shared by the kernel generators: the lowered-kernel record, byte counts, unit loops.

Every kernel is an SPMD program over a fixed number ``P`` of *logical* cores: the work is cut into
``units`` (an output block of a linear layer, a (sequence, head, query block) of attention, a
block of rows of a norm), and core ``cid`` runs units ``cid, cid + P, cid + 2P, ...``. ``P`` is an
immediate of the program, not the ``ncores`` register, so that the same program can be run on a
representative subset of the cores (:mod:`prodigy_sim.lowering._run`). A per-core ``unit_cap``
limits the unit loop (steady-state extrapolation).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from prodigy_sim.errors import ConfigError
from prodigy_sim.isa import CID, IsaParams, Program, ProgramBuilder, Reg
from prodigy_sim.lowering._params import KernelParams
from prodigy_sim.numerics import FormatSpec, Storage

__all__ = ["Kernel", "unit_loop_count", "split_cols", "ACT", "F32", "BF16", "Budgets"]

ACT = Storage.of("float8_e4m3fn")
"""Activations fed to the matrix unit: FP8 E4M3 with MX E8M0 scales per 32 elements."""
F32 = Storage.of("float32")
BF16 = Storage.of("bfloat16")


@dataclass(frozen=True)
class Budgets:
    """The per-core limits a kernel generator plans with (from the ISA's parameters, which the
    chip configuration sets): accumulator registers and their largest shape, and the on-chip
    bytes one buffer of weight tiles (a quarter of the scratchpad: two buffers of weights, two of
    activations and outputs) or of norm rows (five eighths: the working set of a block of rows)
    may take."""

    n_accumulators: int
    acc_max_rows: int
    acc_max_cols: int
    onchip_bytes: int

    @classmethod
    def of(cls, params: IsaParams | None = None) -> Budgets:
        p = params or IsaParams()
        return cls(p.n_accumulators, p.acc_max_rows, p.acc_max_cols, p.onchip_bytes)

    @property
    def weight_buffer_bytes(self) -> int:
        return self.onchip_bytes // 4

    @property
    def norm_rows_bytes(self) -> int:
        return self.onchip_bytes * 5 // 8


@dataclass(frozen=True)
class Kernel:
    """One lowered operation: its program and what it executes.

    ``units``: work units over all cores; ``per_core_units``: most units any core runs
    (``ceil(units / cores)``) - the unit loop the steady-state extrapolation scales;
    ``mma_flops``: 2 x MACs of every executed MMA (8:4-sparse counted dense); ``dma_bytes``: DDR
    bytes of every executed DMA (codes, scales, masks). Both are for the full unit loop and all
    ``cores`` (analytic; tests check them against :func:`prodigy_sim.timing.roofline_bound`).
    ``weight_format``: the format the matrix unit's rate depends on (float32 for vector-only
    kernels). ``params``: the typed arithmetic parameters (:mod:`._params`), from which
    :func:`prodigy_sim.lowering.emulate_kernel` recomputes the outputs.
    """

    name: str
    kind: str
    program: Program
    cores: int
    units: int
    mma_flops: int
    dma_bytes: int
    weight_format: FormatSpec
    params: KernelParams
    compulsory: tuple[tuple[str, int], ...] = ()
    """Per DDR tensor, the bytes that must move at least once: every input read once, every
    output written once (a tensor's touched part; scratch the kernel re-reads counts once)."""
    sparse: bool = False
    uniform_units: bool = True
    per_core: int | None = None
    """Units of the busiest core (default ``ceil(units / cores)``)."""
    busy_cores: int | None = None
    """Cores with work (default ``min(units, cores)``)."""
    mapping: str = ""
    """How the work is placed, in words (the report shows it)."""
    private_rows: tuple[str, ...] = ()
    """The input tensors each unit reads its own rows of (no two cores read the same bytes of
    them: a norm's ``X``, RoPE's ``QKV``, attention's ``Q``): the kernel needs the shared L3
    only for its other inputs (a norm's gains, RoPE's tables, attention's K and V). The
    residency plan may then give kept activations the rest
    (:func:`~._residency.private_rows_share`)."""
    in_place: tuple[tuple[str, str], ...] = ()
    """``(input, output)`` tensor pairs of equal shape and element type that may share storage:
    each element of the output is written by the unit that reads the same element of the
    input, after it reads it (a linear layer's residual ``R`` and its output ``Y``). The
    residency plan may keep both in one buffer (:func:`~._residency.plan_residency`)."""

    @property
    def compulsory_bytes(self) -> int:
        """Bytes DDR must move at least once (all of :attr:`compulsory`)."""
        return sum(b for _, b in self.compulsory)

    def compulsory_off_chip(self, resident: frozenset[str]) -> int:
        """:attr:`compulsory_bytes` less the tensors that live on chip (``resident``)."""
        return sum(b for t, b in self.compulsory if t not in resident)

    @property
    def per_core_units(self) -> int:
        """Units of the busiest core: the unit loop the steady-state extrapolation scales."""
        return self.per_core if self.per_core is not None else -(-self.units // self.cores)


def key_chunk(context: int) -> int:
    """Keys per attention chunk over a cache of ``context`` keys (padded to a multiple of it):
    64, or 32 for caches of at most 32 keys."""
    return 64 if context > 32 else 32


def padded_context(context: int) -> int:
    """Length of a cache of ``context`` keys as the kernels lay it out: a multiple of
    :func:`key_chunk`."""
    ck = key_chunk(context)
    return -(-context // ck) * ck


def q_shape(batch: int, heads: int, head_dim: int, cp: int, decode: bool) -> tuple[int, int]:
    """Shape of ``Q``, the attention's FP8 queries, head-major: row ``b heads + h`` (decode),
    ``(b heads + h) cp + position`` (prefill), so that a block of queries of one head is one
    contiguous run of DDR (``(B cp, heads d)`` put a 64-query block in 64 runs of ``d``
    bytes)."""
    return (batch * heads * (1 if decode else cp), head_dim)


def vt_shape(batch: int, kv_heads: int, head_dim: int, cp: int, ck: int) -> tuple[int, int]:
    """Shape of ``VT``, the prompt's values transposed for prefill attention, chunk-major:
    ``(B kv (cp / ck) d, ck)`` - key chunk ``j`` of KV head ``h`` of sequence ``b`` is the
    ``(d, ck)`` block at row ``((b kv + h) cp / ck + j) d``, one contiguous run of DDR (a
    row-major ``(B kv d, cp)`` put each chunk in ``d`` runs of ``ck`` bytes, which the DDR5
    model serves at about a third of its peak)."""
    return (batch * kv_heads * (cp // ck) * head_dim, ck)


def unit_loop_count(b: ProgramBuilder, dst: Reg, units: int, cores: int,
                    cap: int | None) -> None:
    """``dst = min(ceil((units - cid) / cores), cap)``: the units core ``cid`` runs. The cap
    is always applied (None: ``units``, no bound), so that a capped program runs the same
    instructions as the full one up to its cap."""
    b.li(dst, units + cores - 1)
    b.sub(dst, dst, CID)
    b.divi(dst, dst, cores)
    tmp = Reg(15)
    b.li(tmp, max(0, cap) if cap is not None else units)
    b.min(dst, dst, tmp)


def split_cols(n: int, cores: int, *, choices: tuple[int, ...] = (64, 32), quantized: bool = True,
               max_group: int = 4) -> tuple[int, int]:
    """``(nt, an)``: accumulator width and accumulators per unit for ``n`` output columns.

    Minimizes the columns of the busiest core (``ceil(units / cores) * nt * an``), then prefers
    at least one unit per core, then wider tiles. Quantized outputs need ``nt`` a multiple of
    the MX block (32).
    """
    best = None
    for nt in choices:
        if n % nt or (quantized and nt % 32):
            continue
        for an in range(1, max_group + 1):
            if n % (nt * an):
                continue
            units = n // (nt * an)
            busiest = math.ceil(units / cores) * nt * an
            key = (busiest, units < cores, -(nt * an))
            if best is None or key < best[0]:
                best = (key, nt, an)
    if best is None:
        raise ConfigError(f"{n} output features cannot be split into accumulator tiles of "
                          f"{'/'.join(map(str, choices))} columns")
    return best[1], best[2]
