"""Placement of tensors in DDR and tiles in the scratchpad, and DMA byte ranges.

Automatic placement is first fit in declaration order, at addresses aligned to
``ddr_align_bytes`` / ``spm_align_bytes``, never overlapping another tensor / tile. Explicitly
placed declarations (``ddr=`` / ``spm=``) are taken as given and may alias each other (a way to
view the same bytes twice, or to reuse scratchpad between phases); every tile must end within
``onchip_bytes``.

A tensor declared ``tile=HxW`` is stored tile by tile (:attr:`Placement.tile`): the bytes of tile
(i, j) - rows i*H.., columns j*W.. - are those of an (H, W) scratchpad tile of the same storage
(codes of its H rows, then their scales, then their metadata), at ``base + (i * C/W + j) *
tile_bytes``; a per-tensor scale follows the last tile. A DMA of such a tensor moves exactly one
tile: one contiguous run. :meth:`Placement.tiled_order` relates the two byte orders.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from prodigy_sim.errors import ProgramError
from prodigy_sim.isa._params import IsaParams
from prodigy_sim.isa._program import Program, TensorDecl, TileDecl
from prodigy_sim.numerics import RowBytes, Storage

__all__ = ["Placement", "Layout", "Segment", "layout", "column_bytes", "byte_columns"]


@dataclass(frozen=True)
class Placement:
    """Where one tensor or tile lives: base byte address, rows, per-row sizes, total bytes,
    columns, and the tile shape (H, W) a tiled tensor is stored in (None: row-major)."""

    base: int
    rows: int
    row: RowBytes
    nbytes: int
    cols: int
    tile: tuple[int, int] | None = None

    def code_base(self) -> int:
        return self.base

    def scale_base(self) -> int:
        return self.base + self.rows * self.row.code

    def meta_base(self) -> int:
        return self.base + self.rows * (self.row.code + self.row.scale)

    def tail_base(self) -> int:
        """Address of the per-tensor bytes (after every row's, or every tile's, bytes)."""
        return self.base + self.rows * self.row.per_row

    @functools.cached_property
    def regions(self) -> tuple[tuple[int, int], ...]:
        """``(first byte, bytes per row)`` of the codes, scales and metadata that have bytes,
        in the row-major order."""
        rb = self.row
        return tuple((base, per_row) for base, per_row in (
            (self.code_base(), rb.code), (self.scale_base(), rb.scale),
            (self.meta_base(), rb.meta)) if per_row)

    @functools.cached_property
    def tile_bytes(self) -> int:
        """Bytes of one tile of a tiled tensor (H rows of W columns' codes, scales, metadata)."""
        assert self.tile is not None
        part = column_bytes(self.row, self.cols, self.tile[1])
        assert part is not None             # whole bytes (checked with the declaration)
        return self.tile[0] * part.per_row

    def tile_address(self, row: int, col: int) -> int:
        """First byte of the tile at element (row, col) (multiples of the tile shape)."""
        assert self.tile is not None
        h, w = self.tile
        return self.base + (row // h * (self.cols // w) + col // w) * self.tile_bytes

    def tiled_order(self):
        """For a tiled tensor, the int64 array ``order`` of its ``nbytes`` such that
        ``stored = rowmajor[order]``: byte k of the tiled storage is byte ``order[k]`` of the same
        tensor stored row-major (offsets from ``base``)."""
        assert self.tile is not None
        h, w = self.tile
        r, c = self.rows, self.cols
        parts = []
        for base, per_row in self.regions:
            run = per_row * w // c              # bytes of W columns of one row
            idx = base - self.base + np.arange(r * per_row, dtype=np.int64)
            parts.append(idx.reshape(r // h, h, c // w, run).transpose(0, 2, 1, 3)
                         .reshape(r // h, c // w, h * run))
        tiles = np.concatenate(parts, axis=2).reshape(-1)
        tail = self.tail_base() - self.base + np.arange(self.row.per_tensor, dtype=np.int64)
        return np.concatenate([tiles, tail])


def byte_columns(p: Placement, storage: Storage) -> int:
    """The column step at which the rows of ``p`` (stored as ``storage``) start and end on
    bytes of codes, scales and metadata: a DMA window of columns ``col .. col + w - 1`` moves
    them alone iff ``col`` and ``w`` are multiples of it (or it is the whole row: a row's codes
    are padded to whole bytes; in 2-bit codes, columns 3..5 of a row of 6 start in the middle of
    its first byte)."""
    step = 1
    for part in (p.row.code, p.row.scale, p.row.meta):      # column_bytes is whole
        step = math.lcm(step, p.cols // math.gcd(part, p.cols))
    sp = storage.sparsity
    group, kept = (sp.group, sp.kept) if sp is not None else (1, 1)
    return math.lcm(step, group * 8 // math.gcd(kept * storage.bits, 8))     # whole code bytes


def column_bytes(row: RowBytes, cols: int, width: int) -> RowBytes | None:
    """Per-row codes, scales and metadata of ``width`` of the ``cols`` columns of rows stored as
    ``row``; None if a part is not a whole number of bytes."""
    parts = (row.code, row.scale, row.meta)
    if any(p * width % cols for p in parts):
        return None
    return RowBytes(*(p * width // cols for p in parts))


@dataclass(frozen=True, slots=True)
class Segment:
    """A 2-D strided byte range: ``count`` runs of ``length`` bytes, ``stride`` bytes apart."""

    address: int
    length: int
    stride: int
    count: int

    @property
    def nbytes(self) -> int:
        return self.length * self.count


@dataclass(frozen=True)
class Layout:
    """Placements of every tensor (DDR) and tile (scratchpad) and accumulator register numbers."""

    tensors: dict[str, Placement]
    tiles: dict[str, Placement]
    accs: dict[str, int]
    params: IsaParams

    def window(self, tensor: TensorDecl, tile: TileDecl, row: int, col: int
               ) -> tuple[Segment, ...]:
        """DDR byte ranges of the tile-shaped window at element (row, col) of the tensor: codes,
        then scales and metadata (those with bytes) - or, for a tiled tensor, the one tile -
        then the per-tensor bytes. Assumes the window was checked (inside the tensor, aligned,
        one tile of a tiled tensor)."""
        p = self.tensors[tensor.name]
        h, w = tile.shape
        C = tensor.shape[1]  # noqa: N806
        if p.tile is not None:
            n = p.tile_bytes
            out = [Segment(p.tile_address(row, col), n, n, 1)]
        else:
            out = [Segment(base + row * per_row + per_row * col // C, per_row * w // C, per_row,
                           h) for base, per_row in p.regions]
        if p.row.per_tensor:
            out.append(Segment(p.tail_base(), p.row.per_tensor, 0, 1))
        return tuple(out)


def _place(decls, addr_attr: str, align: int, limit: int, what: str, sizes) -> dict:
    taken: list[tuple[int, int]] = []
    out = {}
    for d in decls:
        addr = getattr(d, addr_attr)
        if addr is not None:
            taken.append((addr, addr + sizes[d.name].nbytes))
    taken.sort()
    for d in decls:
        size = sizes[d.name].nbytes
        addr = getattr(d, addr_attr)
        if addr is None:
            addr = 0
            for lo, hi in taken:
                if addr + size <= lo:
                    break
                addr = max(addr, -(-hi // align) * align)
            taken.append((addr, addr + size))
            taken.sort()
        if addr + size > limit:
            raise ProgramError(f"{what} {d.name} ({size} bytes at {addr:#x}) ends beyond the "
                               f"{limit} bytes of {'on-chip memory' if what == 'tile' else 'DDR'}"
                               f"; {sum(s.nbytes for s in sizes.values())} bytes declared in all")
        out[d.name] = Placement(addr, d.shape[0], sizes[d.name].row, size, d.shape[1],
                                getattr(d, "tile", None))
    return out


def _sizes(decls) -> dict[str, Placement]:
    out = {}
    for d in decls:
        rb = d.storage.row_bytes(d.shape[1])
        out[d.name] = Placement(0, d.shape[0], rb, rb.total(d.shape[0]), d.shape[1])
    return out


def layout(program: Program, params: IsaParams | None = None) -> Layout:
    """Place every tensor and tile (see the module docstring); allocate accumulator registers.

    Raises :class:`~prodigy_sim.errors.ProgramError` if tiles overflow on-chip memory, tensors
    overflow DDR, or there are more accumulators than registers.
    """
    params = params or IsaParams()
    tensors = _place(program.tensors, "ddr", params.ddr_align_bytes, params.ddr_bytes, "tensor",
                     _sizes(program.tensors))
    tiles = _place(program.tiles, "spm", params.spm_align_bytes, params.onchip_bytes, "tile",
                   _sizes(program.tiles))
    fixed = {a.reg for a in program.accs if a.reg is not None}
    free = (r for r in range(params.n_accumulators) if r not in fixed)
    accs = {}
    for a in program.accs:
        reg = a.reg if a.reg is not None else next(free, None)
        if reg is None or reg >= params.n_accumulators:
            raise ProgramError(f"accumulator {a.name}: only {params.n_accumulators} accumulator "
                               f"registers (declared {len(program.accs)})")
        accs[a.name] = reg
    if len(set(accs.values())) != len(accs):
        raise ProgramError("two accumulators are given the same reg=")
    return Layout(tensors, tiles, accs, params)
