"""Number formats as the ISA sees them: name checks and byte footprints.

float32 and bfloat16 are storage types of the ISA itself. Every other format name is checked by
:func:`prodigy_sim.numerics.get_format`, its byte size comes from
:func:`prodigy_sim.numerics.footprint`, and the scale kinds are those of
:func:`prodigy_sim.numerics.quantize`.

Byte layout of a tensor or tile of shape (R, C) (DDR and scratchpad alike)::

    base -> | codes: R x row_code_bytes | scales: R x row_scale_bytes | metadata: R x row_meta |

Each row holds the packed codes of its C elements (the kept ones only for sparse storage), then -
after all rows - the per-row scales (C / block of them, in order along C), then the per-row
sparsity metadata. Per-row sizes are ``footprint((1, C), ...)``; a per-tensor scale (block = 0)
is one scale value after the codes.
"""

from __future__ import annotations

from dataclasses import dataclass

from prodigy_sim.errors import FormatError, ProgramError
from prodigy_sim.isa._program import FLOAT_FORMATS
from prodigy_sim.numerics import SCALE_KINDS, footprint, get_format, scale_bytes_per_block

__all__ = ["SCALE_KINDS", "check_format", "RowBytes", "row_bytes"]


def check_format(name: str) -> str | None:
    """None if ``name`` is a known storage format, else a message saying what was expected."""
    if name in FLOAT_FORMATS:
        return None
    try:
        get_format(name)
    except FormatError as exc:
        return f"unknown number format {name!r} ({exc})"
    return None


@dataclass(frozen=True)
class RowBytes:
    """Bytes per row of a (R, C) storage: packed codes, scales, sparsity metadata; and per-tensor
    bytes (a per-tensor scale)."""

    code: int
    scale: int
    meta: int
    per_tensor: int = 0

    def total(self, rows: int) -> int:
        """Whole footprint in bytes of ``rows`` rows."""
        return rows * (self.code + self.scale + self.meta) + self.per_tensor


def row_bytes(fmt: str, cols: int, block: int, scale: str, sparsity: tuple[int, int] | None
              ) -> RowBytes:
    """Per-row byte sizes of ``cols`` elements stored in ``fmt`` (see the module docstring).

    Raises :class:`~prodigy_sim.errors.ProgramError` if numerics refuses the combination.
    """
    if fmt in FLOAT_FORMATS:
        return RowBytes(cols * FLOAT_FORMATS[fmt] // 8, 0, 0)
    sp = None if sparsity is None else f"{sparsity[0]}:{sparsity[1]}"
    per_tensor = block == 0 and scale != "none"
    try:
        fp = footprint((1, cols), fmt, block=cols if block == 0 else block,
                       scale="none" if per_tensor else scale, sparsity=sp)
    except (FormatError, ValueError) as exc:
        raise ProgramError(f"fmt={fmt} block={block} scale={scale} sparsity={sp} with {cols} "
                           f"columns: {exc}") from None
    return RowBytes(int(fp.code_bytes), int(fp.scale_bytes), int(fp.metadata_bytes),
                    scale_bytes_per_block(scale) if per_tensor else 0)
