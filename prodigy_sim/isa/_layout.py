"""Placement of tensors in DDR and tiles in the scratchpad, and DMA byte ranges.

Automatic placement is first fit in declaration order, at addresses aligned to
``ddr_align_bytes`` / ``spm_align_bytes``, never overlapping another tensor / tile. Explicitly
placed declarations (``ddr=`` / ``spm=``) are taken as given and may alias each other (a way to
view the same bytes twice, or to reuse scratchpad between phases); every tile must end within
``onchip_bytes``.
"""

from __future__ import annotations

from dataclasses import dataclass

from prodigy_sim.errors import ProgramError
from prodigy_sim.isa._params import IsaParams
from prodigy_sim.isa._program import Program, TensorDecl, TileDecl
from prodigy_sim.numerics import RowBytes

__all__ = ["Placement", "Layout", "Segment", "layout"]


@dataclass(frozen=True)
class Placement:
    """Where one tensor or tile lives: base byte address, per-row sizes, total bytes."""

    base: int
    rows: int
    row: RowBytes
    nbytes: int

    def code_base(self) -> int:
        return self.base

    def scale_base(self) -> int:
        return self.base + self.rows * self.row.code

    def meta_base(self) -> int:
        return self.base + self.rows * (self.row.code + self.row.scale)


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
        then scales and metadata (those with bytes). Assumes the window was bounds-checked."""
        p = self.tensors[tensor.name]
        h, w = tile.shape
        C = tensor.shape[1]  # noqa: N806
        out = []
        for base, per_row in ((p.code_base(), p.row.code), (p.scale_base(), p.row.scale),
                              (p.meta_base(), p.row.meta)):
            if per_row:
                start = per_row * col // C
                out.append(Segment(base + row * per_row + start, per_row * w // C, per_row, h))
        if p.row.per_tensor:
            out.append(Segment(p.meta_base() + p.rows * p.row.meta, p.row.per_tensor, 0, 1))
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
        out[d.name] = Placement(addr, d.shape[0], sizes[d.name].row, size)
    return out


def _sizes(decls) -> dict[str, Placement]:
    out = {}
    for d in decls:
        rb = d.storage.row_bytes(d.shape[1])
        out[d.name] = Placement(0, d.shape[0], rb, rb.total(d.shape[0]))
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
