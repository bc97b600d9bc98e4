"""Number formats as the ISA sees them: name checks and byte footprints.

float32 and bfloat16 are storage types of the ISA itself. Every other format name is checked by
:func:`prodigy_sim.numerics.get_format`, and its byte size comes from
:func:`prodigy_sim.numerics.footprint`; both are imported lazily, at call time.

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

__all__ = ["SCALE_BITS", "check_format", "RowBytes", "row_bytes"]

#: Scale formats and their width in bits.
SCALE_BITS = {"e8m0": 8, "fp32": 32, "e4m3": 8, "absmean": 32, "none": 0}

# Names accepted when prodigy_sim.numerics is not importable (its registered names).
_FALLBACK_FORMATS = frozenset({
    "float8_e4m3fn", "float8_e5m2", "float4_e2m1fn", "float8_e8m0fnu", "tai4", "tai2", "int8",
    "int4", "ternary",
})


def check_format(name: str) -> str | None:
    """None if ``name`` is a known storage format, else a message saying what was expected."""
    if name in FLOAT_FORMATS:
        return None
    try:
        from prodigy_sim.numerics import get_format
    except ImportError:
        return None if name in _FALLBACK_FORMATS else f"unknown number format {name!r}"
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

    Raises :class:`~prodigy_sim.errors.ProgramError` if numerics is missing or refuses.
    """
    if fmt in FLOAT_FORMATS:
        return RowBytes(cols * FLOAT_FORMATS[fmt] // 8, 0, 0)
    try:
        from prodigy_sim.numerics import footprint
    except ImportError as exc:
        raise ProgramError(f"the byte size of fmt={fmt} needs prodigy_sim.numerics.footprint, "
                           f"which is not available ({exc})") from None
    sp = None if sparsity is None else f"{sparsity[0]}:{sparsity[1]}"
    per_tensor = block == 0 and scale != "none"
    try:
        fp = footprint((1, cols), fmt, block=cols if block == 0 else block,
                       scale="none" if per_tensor else scale, sparsity=sp)
    except (FormatError, ValueError) as exc:
        raise ProgramError(f"fmt={fmt} block={block} scale={scale} sparsity={sp} with {cols} "
                           f"columns: {exc}") from None
    return RowBytes(int(fp.code_bytes), int(fp.scale_bytes), int(fp.metadata_bytes),
                    SCALE_BITS[scale] // 8 if per_tensor else 0)
