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
from prodigy_sim.isa import CID, Program, ProgramBuilder, Reg
from prodigy_sim.numerics import footprint

__all__ = ["Kernel", "Storage", "kernel_params", "row_nbytes", "unit_loop_count", "split_cols",
           "ACT", "F32", "BF16"]

ACT = "float8_e4m3fn"
"""Activation format fed to the matrix unit (MX: E8M0 scale per 32 elements)."""
F32 = "float32"
BF16 = "bfloat16"


@dataclass(frozen=True)
class Storage:
    """Element format of a tensor or tile as the ISA declares it."""

    fmt: str
    block: int = 32
    scale: str = "e8m0"
    sparsity: tuple[int, int] | None = None

    @classmethod
    def of(cls, fmt: str, block: int | None = None, scale: str | None = None,
           sparsity: tuple[int, int] | None = None) -> Storage:
        if fmt in (F32, BF16):
            return cls(fmt, 0, "none", sparsity)
        sc = "e8m0" if scale is None else scale
        return cls(fmt, 32 if block is None else block, sc, sparsity)

    def kw(self) -> dict:
        return {"block": self.block, "scale": self.scale, "sparsity": self.sparsity}


def row_nbytes(st: Storage, cols: int) -> int:
    """Bytes of one row of ``cols`` elements (codes + scales + sparsity masks)."""
    if st.fmt == F32:
        return 4 * cols
    if st.fmt == BF16:
        return 2 * cols
    # the ISA writes (group, kept), numerics (kept, group)
    nm = None if st.sparsity is None else (st.sparsity[1], st.sparsity[0])
    fp = footprint((1, cols), st.fmt, st.block or None, st.scale, nm)
    return int(fp.total_bytes)


@dataclass(frozen=True)
class Kernel:
    """One lowered operation: its program and what it executes.

    ``units``: work units over all cores; ``per_core_units``: most units any core runs
    (``ceil(units / cores)``) - the unit loop the steady-state extrapolation scales;
    ``mma_flops``: 2 x MACs of every executed MMA (8:4-sparse counted dense); ``dma_bytes``: DDR
    bytes of every executed DMA (codes, scales, masks). Both are for the full unit loop and all
    ``cores`` (analytic; tests check them against :func:`prodigy_sim.timing.roofline_bound`).
    """

    name: str
    kind: str
    program: Program
    cores: int
    units: int
    mma_flops: int
    dma_bytes: int
    weight_format: str
    sparse: bool = False
    uniform_units: bool = True
    min_section_units: int | None = None
    """Units of the smallest unit loop when the program has several (None: one loop)."""
    params: tuple[tuple[str, object], ...] = ()
    """The generator's arguments that determine the arithmetic as sorted ``(name, value)`` pairs
    (hashable): ``op`` (``linear``, ``norm``, ``rope_kv``, ``attention``), shapes, formats and
    :class:`Storage`, epilogue, norm kind (``norm``) and eps, tile sizes, key chunk ``ck`` and
    padded context ``cp``, causal, rope, decode, splits, ``unit_cap``, ... (see each generator's
    ``kernel_params`` call). Read them with :meth:`param` or :attr:`param_dict`;
    :func:`prodigy_sim.lowering.emulate_kernel` is built from them."""

    @property
    def symmetric(self) -> bool:
        """True if every core runs at least one unit of every unit loop (a core subset is
        representative)."""
        return min(self.units, self.min_section_units or self.units) >= self.cores

    @property
    def per_core_units(self) -> int:
        return -(-self.units // self.cores)

    @property
    def param_dict(self) -> dict[str, object]:
        """:attr:`params` as a dict."""
        return dict(self.params)

    def param(self, name: str) -> object:
        """One construction parameter (ConfigError if the generator did not record it)."""
        for key, value in self.params:
            if key == name:
                return value
        raise ConfigError(f"kernel {self.name!r} ({self.kind}) has no parameter {name!r} "
                          f"(recorded: {', '.join(k for k, _ in self.params) or 'none'})")


def kernel_params(**kw: object) -> tuple[tuple[str, object], ...]:
    """``Kernel.params`` from keyword arguments: sorted ``(name, value)`` pairs."""
    return tuple(sorted(kw.items()))


def unit_loop_count(b: ProgramBuilder, dst: Reg, units: int, cores: int,
                    cap: int | None) -> None:
    """``dst = min(ceil((units - cid) / cores), cap)``: the units core ``cid`` runs."""
    b.li(dst, units + cores - 1)
    b.sub(dst, dst, CID)
    b.divi(dst, dst, cores)
    if cap is not None:
        tmp = Reg(15)
        b.li(tmp, max(0, cap))
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
