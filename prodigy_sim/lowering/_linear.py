"""Linear layers ``Y[M,N] = X[M,K] W[N,K]^T`` with fused epilogues, as SPMD tile programs.

How the work is cut and placed is a :class:`LinearMapping` (chosen by
:mod:`prodigy_sim.lowering._mapper`):

- The output is cut into **blocks** of ``BM x BN = (mt am) x (nt an)``: ``am x an`` accumulator
  tiles of ``(mt, nt)``. A core computes a block at a time, the whole of K, in its accumulators
  (output stationary).
- The cores form a ``gm x gn`` **grid**: core ``c = i gn + j`` (``c < gm gn``; the others idle)
  owns the row blocks ``i, i + gm, ...`` and the column blocks ``j, j + gn, ...``. It walks its
  blocks in one flat sequence, column blocks fastest (``order="mn"``: X is the *outer* operand,
  a row of X blocks stays in use while the W column blocks, the *inner* operand, stream) or row
  blocks fastest (``"nm"``: W outer, X inner).
- The reduction axis is cut in **K steps** of ``kt`` elements (a multiple of the MMA chunk, 128,
  so no accumulation chunk straddles two steps; only the last, the *tail*, may be shorter).
- **Software pipeline over the whole sequence** of (block, K step) of a core: the operands of
  the next step are loaded before the current step's MMAs are issued - across block boundaries
  too (the first step of block ``t + 1`` is loaded before the last step and the epilogue of
  block ``t``, its residual tiles with it). Full K steps alternate between two buffers by the
  parity of their position in the core's sequence; the block loop is unrolled by two when a
  block has an odd number of full steps, so that the parity of every tile is static. The tail
  has a buffer of its own (its previous reader is a whole block earlier). The tile scoreboard
  orders every load after the last reader of its buffer; only the first step of a core waits
  for a full memory round trip.
- **Pre-packed weights**: when K has no tail (one or more whole steps), ``W`` (and ``WU``) are
  declared ``tile=(nt, kt)`` - stored tile by tile, as the scratchpad tiles a K step loads
  (isa/README.md, *Tiled tensors*) - so every weight DMA reads one contiguous run of DDR
  instead of ``nt`` rows of ``kt`` codes (or, for whole rows, a run of codes, one of scales and
  one of sparsity metadata, each in its own region). Packing is done once, offline, when the
  weights are written; the values and the MMAs are those of the row-major layout.
- **Load order**: a K step issues the loads of its outer operand first, then the inner's - or
  the weights' first (``first="W"``), which the lowering asks for when the residency plan keeps
  X on chip (``with_residency``): the DDR loads then take the core's DMA slots before the
  on-chip ones (the 70B prefill's ``gate_up``, ``mn`` on a 16x8 multicast grid: 427.9 -> 410.8
  us). Only the issue order moves; the tiles, the MMAs and the bits are the same.
- **Stationary outer operand** (``stationary=True``): the outer operand is kept on chip for the
  whole K, one tile per K step (X for ``mn``, W for ``nm``), and loaded - step by step, one step
  ahead like the rest - only by the first block of each outer index; the other blocks stream
  the inner operand alone. Each stationary tile is its own buffer: it is overwritten a whole
  block after its last reader.
- **Sharing** (``multicast=True``): the cores of a grid row need the same X tiles and the cores
  of a grid column the same W tiles; they load them with ``DMA.LDM`` - X to the row group
  (``gn`` cores, stride 1), W to the column group (``gm`` cores, stride ``gn``) - so DDR (or the
  shared L3) is read once per group. Needs every group member to walk the same blocks: ``gm``
  divides the row blocks and ``gn`` the column blocks. Without it, cores that read the same
  tiles at about the same time share them only through the L3.

Epilogues (``epilogue=``): ``store`` (BF16 out), ``quant`` (FP8 out, for the next MMA),
``residual`` (the accumulators start from the residual tile, ``ACC.LD``; BF16 out), ``bias``
(+ ``(1, nt)`` bias, FP8 out), ``bias_store`` (bias, BF16 out), ``bias_residual`` (bias and
residual, BF16 out), ``gelu`` (bias, GELU, FP8 out) and ``gated`` (two weight matrices,
``silu(X Wg^T) * (X Wu^T)``, FP8 out). The bias of a block is loaded when the block starts
(read by its epilogue), its residual one block ahead (read when it starts).

**Accumulators from a tensor** (``init=True``, any epilogue): every accumulator starts from a
float32 DDR tensor ``C (M, N)`` (``ACC.LD``; gated: the up accumulators from ``CU``) instead of
zero or the residual - SpQR's outlier products computed before the linear, residual included
(``spqr_kernel``); a residual epilogue then reads no ``R``. Loaded like a residual, one block
ahead.

The MMAs of a block, their K steps and their order are those of the unpipelined program: the
pipeline only moves loads earlier, so the bits never depend on it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from prodigy_sim.errors import ConfigError
from prodigy_sim.functional.spec import CHUNK
from prodigy_sim.isa import CID, Expr, ProgramBuilder, Reg, opcode_table
from prodigy_sim.lowering._common import ACT, BF16, F32, Budgets, Kernel
from prodigy_sim.lowering._params import LinearParams
from prodigy_sim.numerics import Storage

__all__ = ["linear_kernel", "EPILOGUES", "LinearMapping", "linear_tile_bytes", "packed_weight_tile",
           "tile_shape"]

EPILOGUES = ("store", "quant", "residual", "bias", "bias_store", "bias_residual", "gelu", "gated")
_QUANT_OUT = ("quant", "bias", "gelu", "gated")
_BIAS = ("bias", "bias_store", "bias_residual", "gelu")
_RESIDUAL = ("residual", "bias_residual")


@dataclass(frozen=True)
class LinearMapping:
    """Where and how a linear layer runs (see the module docstring). Sizes in elements."""

    mt: int
    am: int
    nt: int
    an: int
    kt: int
    gm: int
    gn: int
    order: str = "mn"
    multicast: bool = False
    stationary: bool = False
    """Keep the outer operand (X for ``mn``, W for ``nm``) on chip for the whole K."""
    stagger: int = 1
    """Classes of cores that walk their inner blocks rotated: the class of a core is its grid
    row modulo ``stagger`` (``mn``; its grid column for ``nm``), and class ``r`` starts at its
    ``r``-th inner block, so that at any time ``stagger`` neighbouring inner blocks are written
    (and read) instead of one."""

    @property
    def block_m(self) -> int:
        return self.mt * self.am

    @property
    def block_n(self) -> int:
        return self.nt * self.an

    @property
    def cores(self) -> int:
        """Cores that get work (the grid)."""
        return self.gm * self.gn

    @property
    def outer(self) -> str:
        """The operand a run of consecutive blocks shares: ``"X"`` (``mn``) or ``"W"``."""
        return "X" if self.order == "mn" else "W"

    @classmethod
    def simple(cls, m: int, n: int, k: int, cores: int, budgets: Budgets | None = None
               ) -> LinearMapping:
        """A valid mapping without a cost model (for functional runs): one accumulator tile per
        block, as tall and wide as the accumulator allows and divides M and N, K in
        :data:`CHUNK` steps, blocks spread over up to ``cores`` cores."""
        bud = budgets or Budgets.of()
        mt = max(d for d in range(1, min(m, bud.acc_max_rows) + 1) if m % d == 0)
        nt = max(d for d in range(1, min(n, bud.acc_max_cols) + 1) if n % d == 0)
        kt = CHUNK if k > CHUNK else k
        gm = min(cores, m // mt)
        gn = max(1, min(cores // gm, n // nt))
        return cls(mt, 1, nt, 1, kt, gm, gn)

    def describe(self) -> str:
        """One line: e.g. ``grid 16x8 multicast, blocks 128x256 (2x64 by 4x64), kt 1024, mn,
        X stationary``."""
        share = " multicast" if self.multicast else ""
        keep = f", {self.outer} stationary" if self.stationary else ""
        rot = f", stagger {self.stagger}" if self.stagger > 1 else ""
        return (f"grid {self.gm}x{self.gn}{share}, blocks {self.block_m}x{self.block_n} "
                f"({self.am}x{self.mt} by {self.an}x{self.nt}), kt {self.kt}, {self.order}"
                f"{keep}{rot}")


def _k_steps(k: int, kt: int) -> tuple[int, int]:
    """``(full K steps, tail width)`` of a reduction of ``k`` in steps of ``kt``."""
    kt = min(kt, k)
    return divmod(k, kt)


def packed_weight_tile(mp: LinearMapping, k: int) -> tuple[int, int] | None:
    """The tile ``(nt, kt)`` the weights of ``mp`` over a reduction of ``k`` are pre-packed in
    (one K step's weight DMA = one contiguous DDR run), or ``None`` (row-major) when K has a
    tail step (module docstring, *Pre-packed weights*)."""
    _, tail = _k_steps(k, mp.kt)
    return None if tail else (mp.nt, min(mp.kt, k))


def tile_shape(mp: LinearMapping) -> tuple:
    """What :func:`linear_tile_bytes` reads of a mapping (its scratchpad depends on nothing
    else of it: not the grid, the order or multicast), to cache the bytes by."""
    return (mp.mt, mp.am, mp.nt, mp.an, mp.kt, mp.stationary, mp.outer)


def linear_tile_bytes(mp: LinearMapping, k: int, weight: Storage, act: Storage,
                      epilogue: str, align: int = 64, init: bool = False) -> int:
    """Scratchpad bytes the tiles of a linear kernel take on each core: every tile
    :func:`linear_kernel` declares, each placed at an ``align``-byte boundary
    (``IsaParams.spm_align_bytes``) - the streamed operand's two buffers of a K step and one of
    the tail, the stationary operand's tile per K step and tail, the epilogue's tiles (two
    FP32 and two output buffers, the gated up tile, a bias tile per accumulator column, a
    residual tile per accumulator, or with ``init`` a float32 starting tile per accumulator)."""
    nw = 2 if epilogue == "gated" else 1
    nk, tail = _k_steps(k, mp.kt)
    kt = min(mp.kt, k)
    out = ACT if epilogue in _QUANT_OUT else BF16
    sizes: list[int] = []
    for name, count, st, rows in (("X", mp.am, act, mp.mt), ("W", nw * mp.an, weight, mp.nt)):
        keep = mp.stationary and mp.outer == name
        sizes += [st.nbytes(rows, kt)] * (count * (nk if keep else 2))
        if tail:
            sizes += [st.nbytes(rows, tail)] * count
    sizes += [F32.nbytes(mp.mt, mp.nt)] * (3 if epilogue == "gated" else 2)
    sizes += [out.nbytes(mp.mt, mp.nt)] * (mp.am * mp.an)
    if epilogue in _BIAS:
        sizes += [F32.nbytes(1, mp.nt)] * mp.an
    if init:
        sizes += [F32.nbytes(mp.mt, mp.nt)] * (mp.am * mp.an * nw)
    elif epilogue in _RESIDUAL:
        sizes += [BF16.nbytes(mp.mt, mp.nt)] * (mp.am * mp.an)
    return sum(-(-b // align) * align for b in sizes)


def _check(name: str, m: int, n: int, k: int, mp: LinearMapping, cores: int, bud: Budgets,
           epilogue: str) -> None:
    def need(ok: bool, why: str) -> None:
        if not ok:
            raise ConfigError(f"{name}: mapping {mp.describe()}: {why}")

    need(epilogue in EPILOGUES, f"unknown epilogue {epilogue!r} (known: {', '.join(EPILOGUES)})")
    need(m % mp.block_m == 0 and n % mp.block_n == 0,
         f"M={m} must be a multiple of {mp.block_m} and N={n} of {mp.block_n}")
    need(1 <= mp.mt <= bud.acc_max_rows and 1 <= mp.nt <= bud.acc_max_cols,
         f"accumulator tiles are at most {bud.acc_max_rows}x{bud.acc_max_cols}")
    naccs = mp.am * mp.an * (2 if epilogue == "gated" else 1)
    need(naccs <= bud.n_accumulators,
         f"{naccs} accumulators needed, the core has {bud.n_accumulators}")
    need(1 <= mp.cores <= cores, f"the grid needs {mp.cores} of the {cores} cores")
    need(mp.kt == k or (mp.kt % CHUNK == 0 and 0 < mp.kt < k),
         f"kt must be K or a multiple of {CHUNK} below it")
    need(mp.order in ("mn", "nm"), "order must be 'mn' or 'nm'")
    if mp.multicast:
        need((m // mp.block_m) % mp.gm == 0 and (n // mp.block_n) % mp.gn == 0,
             "multicast needs gm to divide the row blocks and gn the column blocks")
    need(mp.stagger >= 1, "stagger must be >= 1")
    if mp.multicast and mp.stagger > 1:
        need((mp.gm if mp.order == "mn" else mp.gn) % mp.stagger == 0,
             "multicast with stagger needs the stagger to divide the grid's "
             + ("rows" if mp.order == "mn" else "columns"))



_UNROLL_STEPS = 8
"""K steps of a block up to which the K loop is unrolled (beyond: a loop of pairs)."""


def _imm_max() -> int:
    """Largest offset a DMA.LD address expression (register + immediate) encodes."""
    spec = opcode_table().by_mnemonic["DMA.LD"]
    bits = min(o.imm_bits for o in spec.operands if o.kind == "expr")
    return (1 << (bits - 1)) - 1


# registers of the linear program
_ZERO, _BASE_ROW, _BASE_COL, _INNER, _CNT, _LOOP_T = (Reg(i) for i in range(6))
_ROW, _COL, _B, _NROW, _NCOL, _NB, _LOOP_K, _S0, _S1, _ROT = (Reg(i) for i in range(6, 16))


class _Gen:
    """Emits the program of one linear layer (see the module docstring). Registers: ``r0`` = 0,
    ``r1, r2`` the grid position's first row / column, ``r3`` the inner blocks per outer index,
    ``r4`` the blocks of this core, ``r5`` the block loop counter, ``r6..r8`` the current block
    (row, column, inner index: 0 means the first block of its outer index), ``r9..r11`` the
    next block's, ``r12`` the K loop counter, ``r13, r14`` scratch, ``r15`` the rotation of the
    core's inner blocks (its stagger class). A block's index is a register plus an offset."""

    def __init__(self, b: ProgramBuilder, mp: LinearMapping, k: int, nw: int, sparse: bool,
                 tensors: dict, tiles: dict, epilogue: str, first: str) -> None:
        self.b, self.mp, self.k, self.nw = b, mp, k, nw
        self.first = first
        self.nk, self.tail = _k_steps(k, mp.kt)
        self.kt = min(mp.kt, k)
        self.t = tensors
        self.tl = tiles
        self.mma = b.mma_sp if sparse else b.mma
        self.epilogue = epilogue
        self.labels = 0
        self.imm_max = _imm_max()
        # multicast groups (size, stride): a grid row for X, a grid column for W, within the
        # stagger class when the class splits it
        sg = mp.stagger
        self.x_group = (mp.gn // sg, sg) if mp.order == "nm" and sg > 1 else (mp.gn, 1)
        self.w_group = (mp.gm // sg, mp.gn * sg) if mp.order == "mn" and sg > 1 else \
            (mp.gm, mp.gn)

    # -- helpers ---------------------------------------------------------------------------
    def label(self, what: str) -> str:
        self.labels += 1
        return f"{what}{self.labels}"

    def coords(self, t: tuple[Reg, int], row: Reg, col: Reg, inner: Reg) -> None:
        """Block ``t`` (register + offset) of this core: its first row, first column and inner
        index (before the rotation). Uses ``r13, r14``."""
        b, mp = self.b, self.mp
        b.addi(_S0, t[0], t[1])                     # block index
        b.div(_S1, _S0, _INNER)                     # outer index
        b.mul(inner, _S1, _INNER)
        b.sub(inner, _S0, inner)                    # inner index
        walk = inner
        if mp.stagger > 1:                          # rotated: (inner + class) mod inner count
            b.add(_S0, inner, _ROT)
            b.div(row, _S0, _INNER)
            b.mul(row, row, _INNER)
            b.sub(_S0, _S0, row)
            walk = _S0
        o_row, o_col = (_S1, walk) if mp.order == "mn" else (walk, _S1)
        b.muli(row, o_row, mp.gm * mp.block_m)
        b.muli(col, o_col, mp.gn * mp.block_n)
        b.add(row, row, _BASE_ROW)
        b.add(col, col, _BASE_COL)

    def step_tiles(self, q: int, parity: int) -> tuple[list, list]:
        """The X tiles (``am``) and W tiles (``nw`` x ``an``) of K step ``q`` (``q == nk``: the
        tail) at buffer ``parity``."""
        tl, mp = self.tl, self.mp
        out = []
        for name in ("X", "W"):
            if q == self.nk:
                out.append(tl[name + "T"])
            elif mp.stationary and mp.outer == name:
                out.append(tl[name][q])
            else:
                out.append(tl[name][parity])
        return out[0], out[1]

    def loads(self, q: int, parity: int, row: Reg, col: Reg, inner: Reg | None,
              kcol: int | tuple[Reg, int]) -> None:
        """Loads of K step ``q`` of the block at (``row``, ``col``) into buffer ``parity``;
        ``kcol`` is its first K column (an int, or a register and an offset). A stationary outer
        operand is loaded only if ``inner`` (the block's inner index) is 0 (``inner`` None:
        always)."""
        b, mp = self.b, self.mp
        xs, ws = self.step_tiles(q, parity)
        kreg: Reg | None = None

        def col_reg() -> Reg:
            nonlocal kreg
            if kreg is None:
                kreg = _S1
                if isinstance(kcol, int):
                    b.li(kreg, kcol)
                else:
                    b.addi(kreg, kcol[0], kcol[1])
            return kreg

        off = kcol if isinstance(kcol, int) else kcol[1]

        def kexpr() -> int | Expr:
            if abs(off) > self.imm_max:                 # beyond the expression's immediate
                return col_reg() + 0
            return kcol if isinstance(kcol, int) else kcol[0] + kcol[1]

        def load_x() -> None:
            for i, tile in enumerate(xs):
                if mp.multicast:
                    r = row
                    if i:
                        b.addi(_S0, row, i * mp.mt)
                        r = _S0
                    b.dma_ldm(tile, self.t["X"], r, col_reg(), *self.x_group)
                else:
                    b.dma_ld(tile, self.t["X"], row + i * mp.mt, kexpr())

        def load_w() -> None:
            for g, w in enumerate(self.t["W"]):
                for j, tile in enumerate(ws[g]):
                    if mp.multicast:
                        r = col
                        if j:
                            b.addi(_S0, col, j * mp.nt)
                            r = _S0
                        b.dma_ldm(tile, w, r, col_reg(), *self.w_group)
                    else:
                        b.dma_ld(tile, w, col + j * mp.nt, kexpr())

        fns = {"X": load_x, "W": load_w}
        for name in (self.first, "W" if self.first == "X" else "X"):
            if mp.stationary and name == mp.outer and inner is not None:
                skip = self.label("keep")
                b.bne(inner, _ZERO, skip)
                kreg_before = kreg
                fns[name]()
                b.label(skip)
                kreg = kreg_before      # the register may not be set on the skipping path
            else:
                fns[name]()

    def residual_loads(self, row: Reg, col: Reg) -> None:
        """The tiles the accumulators of the block at (``row``, ``col``) start from: its
        residual, or with ``init`` its ``C`` (and ``CU``) tiles."""
        mp = self.mp
        for res, rt in zip(self.t.get("I", ()), self.tl.get("I", ()), strict=True):
            for i in range(mp.am):
                for j in range(mp.an):
                    self.b.dma_ld(rt[i][j], res, row + i * mp.mt, col + j * mp.nt)

    def compute(self, q: int, parity: int) -> None:
        xs, ws = self.step_tiles(q, parity)
        accs = self.tl["acc"]
        for g in range(self.nw):
            for i in range(self.mp.am):
                for j in range(self.mp.an):
                    self.mma(accs[g][i][j], xs[i], ws[g][j])

    def next_block_loads(self, t: tuple[Reg, int], parity: int) -> None:
        """If block ``t + 1`` exists (``t``: register + offset): load its first K step (buffer
        ``parity``) and its residual tiles."""
        b = self.b
        skip = self.label("last")
        b.addi(_S0, t[0], t[1] + 2)
        b.blt(_CNT, _S0, skip)                      # t + 1 >= blocks: nothing to prefetch
        self.coords((t[0], t[1] + 1), _NROW, _NCOL, _NB)
        self.loads(0, parity, _NROW, _NCOL, _NB, 0)
        self.residual_loads(_NROW, _NCOL)
        b.label(skip)

    # -- a block -----------------------------------------------------------------------------
    def block(self, t: tuple[Reg, int], p0: int) -> None:
        """Block ``t`` (register + offset) whose first full K step uses buffer ``p0``."""
        b, mp, nk, kt = self.b, self.mp, self.nk, self.kt
        tl = self.tl
        b.addi(_NROW, _ROW, 0)                      # the previous block, stored in this one
        b.addi(_NCOL, _COL, 0)
        self.coords(t, _ROW, _COL, _B)
        for g in range(self.nw):
            for i in range(mp.am):
                for j in range(mp.an):
                    if "I" in tl:
                        b.acc_ld(tl["acc"][g][i][j], tl["I"][g][i][j])
                    else:
                        b.acc_zero(tl["acc"][g][i][j])
        if "B" in tl:
            for j in range(mp.an):
                b.dma_ld(tl["B"][j], self.t["B"], 0, _COL + j * mp.nt if j else _COL)
        steps = nk + (1 if self.tail else 0)
        # full steps before the last full one, in a loop of pairs when there are many (a
        # stationary outer operand has a tile per step: always unrolled)
        pairs = 0 if mp.stationary or nk <= _UNROLL_STEPS else (nk - 1) // 2
        if pairs:
            with b.loop(_LOOP_K, pairs, 2 * kt):
                for h in range(2):
                    self.loads(h + 1, (p0 + h + 1) % 2, _ROW, _COL, None,
                               (_LOOP_K, (h + 1) * kt))
                    self.compute(h, (p0 + h) % 2)
        # the previous block's output tiles are stored together, after the loads of the first
        # unrolled step (before the next block's in the last step, which reuses r9, r10): the
        # DDR's write queue then sees the block's rows, not a tile of them per K step
        first = 2 * pairs
        mine = list(range(mp.am * mp.an))
        for q in range(first, steps):
            if q > first:
                mine = []
            if q + 1 < steps:
                self.loads(q + 1, (p0 + q + 1) % 2, _ROW, _COL, _B, (q + 1) * kt)
                self.stores(mine, _NROW, _NCOL, t)
            else:
                self.stores(mine, _NROW, _NCOL, t)
                self.next_block_loads(t, (p0 + nk) % 2)
            self.compute(q, (p0 + q) % 2)
        self.epilogue_ops(t)

    def stores(self, which: list[int], row: Reg, col: Reg, t: tuple[Reg, int] | None) -> None:
        """Store the output tiles ``which`` (accumulator numbers ``i an + j``) of the block at
        (``row``, ``col``); if ``t`` is given, only when block ``t`` is not the core's first (the
        tiles then hold block ``t - 1``'s outputs)."""
        if not which:
            return
        b, mp = self.b, self.mp
        skip = None
        if t is not None:
            skip = self.label("first")
            b.addi(_S0, t[0], t[1] - 1)
            b.blt(_S0, _ZERO, skip)                     # block 0: nothing stored yet
        for s in which:
            i, j = divmod(s, mp.an)
            b.dma_st(self.t["Y"], row + i * mp.mt if i else row,
                     col + j * mp.nt if j else col, self.tl["Y"][s])
        if skip is not None:
            b.label(skip)

    def epilogue_ops(self, t: tuple[Reg, int]) -> None:
        """The epilogue of block ``t`` (register + offset): each output tile from its
        accumulator to its ``Y`` tile. The core's last block has no next block to spread its
        stores over, so it stores each tile right after that tile's epilogue (the store of
        tile ``s`` overlaps the epilogue of tile ``s + 1``)."""
        b, mp, tl, epi = self.b, self.mp, self.tl, self.epilogue
        accs, f32 = tl["acc"], tl["F"]
        out_q = epi in _QUANT_OUT
        b.addi(_S1, t[0], t[1] + 1)                     # r14 = t + 1 (< blocks: not the last)
        for i in range(mp.am):
            for j in range(mp.an):
                s = i * mp.an + j
                f = f32[s % 2]
                y = tl["Y"][s]
                if epi in ("store", "residual"):
                    b.acc_st(y, accs[0][i][j])
                else:
                    b.acc_st(f, accs[0][i][j])
                    if "B" in tl:
                        b.vadd(f, f, tl["B"][j])
                    if epi == "gelu":
                        b.vgelu(f, f)
                    if "U" in tl:
                        b.acc_st(tl["U"], accs[1][i][j])
                        b.vsilu(f, f)
                        b.vmul(f, f, tl["U"])
                    if out_q:
                        b.vquant(y, f)
                    else:
                        b.vcvt(y, f)
                skip = self.label("notlast")
                b.blt(_S1, _CNT, skip)
                self.stores([s], _ROW, _COL, None)
                b.label(skip)

    # -- the program -------------------------------------------------------------------------
    def program(self, mblocks: int, nblocks: int, unit_cap: int | None) -> None:
        b, mp = self.b, self.mp
        b.li(_ZERO, 0)
        # grid position (i, j) (idle cores get no blocks) and this core's block counts
        b.divi(_S0, CID, mp.gn)
        b.muli(_S1, _S0, mp.gn)
        b.sub(_S1, CID, _S1)
        _block_count(b, _CNT, _S0, mblocks, mp.gm)       # row blocks of this core
        _block_count(b, _INNER, _S1, nblocks, mp.gn)     # column blocks of this core
        b.muli(_BASE_ROW, _S0, mp.block_m)
        b.muli(_BASE_COL, _S1, mp.block_n)
        if mp.stagger > 1:                                # the class: grid row (column) mod S
            pos = _S0 if mp.order == "mn" else _S1
            b.divi(_ROT, pos, mp.stagger)
            b.muli(_ROT, _ROT, mp.stagger)
            b.sub(_ROT, pos, _ROT)
        b.li(_S0, mp.cores)
        b.blt(CID, _S0, "work")
        b.li(_CNT, 0)
        b.label("work")
        if mp.order == "nm":                              # row blocks are the inner index
            b.addi(_S0, _INNER, 0)
            b.addi(_INNER, _CNT, 0)
            b.mul(_CNT, _CNT, _S0)                        # blocks of this core
        else:
            b.mul(_CNT, _CNT, _INNER)
        # the cap is always applied (uncapped: every block), so that a capped program runs
        # the same instructions as the full one up to its cap (the steady-state extrapolation
        # times prefixes of the full run, not a program shifted by two instructions)
        b.li(_S0, max(0, unit_cap) if unit_cap is not None else mblocks * nblocks)
        b.min(_CNT, _CNT, _S0)
        # prologue: the first K step of block 0
        self.next_block_loads((_ZERO, -1), 0)
        if self.nk % 2 == 0:
            with b.loop(_LOOP_T, _CNT, 1):
                self.block((_LOOP_T, 0), 0)
        else:                                             # parities alternate: pairs of blocks
            b.divi(_S0, _CNT, 2)
            with b.loop(_LOOP_T, _S0, 2):
                self.block((_LOOP_T, 0), 0)
                self.block((_LOOP_T, 1), 1)
            b.divi(_S0, _CNT, 2)                          # an odd last block
            b.muli(_S0, _S0, 2)
            b.sub(_S0, _CNT, _S0)
            with b.loop(_LOOP_T, _S0, 1):
                self.block((_CNT, -1), 0)
        b.barrier()                                       # (the last block stored its own tiles)


def linear_kernel(name: str, m: int, n: int, k: int, *, weight: Storage, cores: int,
                  mapping: LinearMapping, epilogue: str = "store", act: Storage | None = None,
                  budgets: Budgets | None = None, unit_cap: int | None = None,
                  init: bool = False, first: str | None = None) -> Kernel:
    """The program of one linear layer over ``cores`` logical cores, cut and placed by
    ``mapping``.

    ``m, n, k``: rows (tokens), output features and input features. ``weight``: the weight
    storage (format, block, scale, 8:4 sparsity -> ``MMA.SP``). ``budgets``: the core's limits
    (default: the ISA's default parameters). ``unit_cap``: run at most that many blocks per
    core (steady-state extrapolation). ``init``: the accumulators start from the float32 DDR
    tensors ``C`` (and ``CU`` when gated; see the module docstring). ``first``: the operand
    (``"X"`` or ``"W"``) whose loads a K step issues first (default: the outer operand; see
    *Load order* in the module docstring). Returns a :class:`Kernel`.
    """
    bud = budgets or Budgets.of()
    mp = mapping
    _check(name, m, n, k, mp, cores, bud, epilogue)
    if first not in (None, "X", "W"):
        raise ConfigError(f"linear {name!r}: 'first' must be 'X' or 'W' (got {first!r})")
    act = act or (BF16 if weight.fmt.wide else ACT)
    mt, am, nt, an, kt = mp.mt, mp.am, mp.nt, mp.an, mp.kt
    gated = epilogue == "gated"
    nw = 2 if gated else 1
    nk, tail = _k_steps(k, kt)
    kt = min(kt, k)
    mblocks, nblocks = m // mp.block_m, n // mp.block_n
    sparse = weight.sparsity is not None
    out_st = ACT if epilogue in _QUANT_OUT else BF16
    has_bias, has_res = epilogue in _BIAS, epilogue in _RESIDUAL and not init

    b = ProgramBuilder()
    tensors: dict = {"X": b.tensor("X", (m, k), act)}
    packed = packed_weight_tile(mp, k)
    tensors["W"] = [b.tensor("W", (n, k), weight, tile=packed)]
    if gated:
        tensors["W"].append(b.tensor("WU", (n, k), weight, tile=packed))
    tensors["Y"] = b.tensor("Y", (m, n), out_st)
    if has_bias:
        tensors["B"] = b.tensor("BIAS", (1, n), F32)
    if has_res:
        tensors["I"] = [b.tensor("R", (m, n), BF16)]
    if init:
        tensors["I"] = [b.tensor(name, (m, n), F32) for name in ("C", "CU")[:nw]]

    def x_set(tag: str, width: int) -> list:
        return [b.tile(f"X{tag}_{i}", (mt, width), act) for i in range(am)]

    def w_set(tag: str, width: int) -> list:
        return [[b.tile(f"W{tag}_{g}_{j}", (nt, width), weight) for j in range(an)]
                for g in range(nw)]

    tiles: dict = {}
    for op, make in (("X", x_set), ("W", w_set)):
        keep = mp.stationary and mp.outer == op
        tiles[op] = [make(f"{'K' if keep else 'B'}{s}", kt) for s in range(nk if keep else 2)]
        if tail:
            tiles[op + "T"] = make("T", tail)
    tiles["acc"] = [[[b.acc(f"C{g}_{i}_{j}", (mt, nt)) for j in range(an)] for i in range(am)]
                    for g in range(nw)]
    tiles["F"] = [b.tile(f"F{s}", (mt, nt), F32) for s in range(2)]
    if gated:
        tiles["U"] = b.tile("U", (mt, nt), F32)
    tiles["Y"] = [b.tile(f"Y{s}", (mt, nt), out_st) for s in range(am * an)]
    if has_bias:
        tiles["B"] = [b.tile(f"B{j}", (1, nt), F32) for j in range(an)]
    if has_res:
        tiles["I"] = [[[b.tile(f"R{i}_{j}", (mt, nt), BF16) for j in range(an)]
                       for i in range(am)]]
    if init:
        tiles["I"] = [[[b.tile(f"I{g}_{i}_{j}", (mt, nt), F32) for j in range(an)]
                       for i in range(am)] for g in range(nw)]
    _Gen(b, mp, k, nw, sparse, tensors, tiles, epilogue,
         first or mp.outer).program(mblocks, nblocks, unit_cap)
    program = b.build()

    # analytic counts (every block of every core; the unit cap is not applied)
    widths = [kt] * nk + ([tail] if tail else [])
    units = mblocks * nblocks
    x_bytes = sum(am * mt * act.nbytes(1, w) for w in widths)         # X of one block, all K
    w_bytes = sum(nw * an * nt * weight.nbytes(1, w) for w in widths)
    per_unit_bytes = am * an * mt * out_st.nbytes(1, nt)
    if has_res:
        per_unit_bytes += am * an * mt * BF16.nbytes(1, nt)
    if init:
        per_unit_bytes += nw * am * an * mt * F32.nbytes(1, nt)
    if has_bias:
        per_unit_bytes += an * F32.nbytes(1, nt)
    if mp.stationary:
        # the outer operand is loaded once per (core, outer index): every outer index by the
        # grid's cores along the other axis that have blocks
        if mp.outer == "X":
            dma = mblocks * min(mp.gn, nblocks) * x_bytes + units * w_bytes
        else:
            dma = nblocks * min(mp.gm, mblocks) * w_bytes + units * x_bytes
    else:
        dma = units * (x_bytes + w_bytes)
    dma += units * per_unit_bytes
    compulsory = {"X": act.nbytes(m, k), "W": weight.nbytes(n, k), "Y": out_st.nbytes(m, n)}
    if gated:
        compulsory["WU"] = weight.nbytes(n, k)
    if has_res:
        compulsory["R"] = BF16.nbytes(m, n)
    if init:
        compulsory.update({name: F32.nbytes(m, n) for name in ("C", "CU")[:nw]})
    if has_bias:
        compulsory["BIAS"] = F32.nbytes(1, n)
    per_core = math.ceil(mblocks / mp.gm) * math.ceil(nblocks / mp.gn)
    return Kernel(name=name, kind="linear", program=program, cores=cores, units=units,
                  mma_flops=2 * m * n * k * nw, dma_bytes=dma,
                  compulsory=tuple(compulsory.items()), weight_format=weight.fmt, sparse=sparse,
                  per_core=per_core, busy_cores=min(units, mp.cores),
                  in_place=(("R", "Y"),) if has_res else (),
                  params=LinearParams(m=m, n=n, k=k, weight=weight, act=act, out=out_st,
                                      epilogue=epilogue, mt=mt, am=am, nt=nt, an=an, kt=kt,
                                      unit_cap=unit_cap, init=init),
                  mapping=mp.describe())


def _block_count(b: ProgramBuilder, dst: Reg, pos: Reg, blocks: int, stride: int) -> None:
    """``dst = ceil((blocks - pos) / stride)``: the blocks ``pos, pos + stride, ...`` below
    ``blocks`` (``0 <= pos < stride``)."""
    b.li(dst, blocks + stride - 1)
    b.sub(dst, dst, pos)
    b.divi(dst, dst, stride)
