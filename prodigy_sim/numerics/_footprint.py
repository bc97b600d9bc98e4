"""Memory footprint of a quantized tensor: codes + block scales + sparsity metadata.

The count is the exact size of the arrays :func:`~prodigy_sim.numerics.quantize` produces
(``QuantizedTensor.nbytes``), so it can be used for tensors too big to materialize (a model's
weights) and still be trusted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from prodigy_sim.errors import ConfigError
from prodigy_sim.numerics._blocks import parse_sparsity, scale_bytes_per_block
from prodigy_sim.numerics._packing import packed_row_bytes
from prodigy_sim.numerics._registry import get_format
from prodigy_sim.numerics._spec import FormatSpec

__all__ = ["Footprint", "footprint"]


@dataclass(frozen=True)
class Footprint:
    """Bytes of one tensor, by part."""

    elements: int
    code_bytes: int
    scale_bytes: int
    metadata_bytes: int

    @property
    def total_bytes(self) -> int:
        return self.code_bytes + self.scale_bytes + self.metadata_bytes

    @property
    def bits_per_element(self) -> float:
        """Average stored bits per dense element (codes, scales and metadata together)."""
        return 8.0 * self.total_bytes / self.elements if self.elements else 0.0


def footprint(shape: tuple[int, ...], fmt: FormatSpec | str, block: int | None = 32,
              scale: str = "e8m0", sparsity: str | tuple[int, int] | None = None,
              axis: int = -1) -> Footprint:
    """Bytes of a tensor of ``shape`` quantized to ``fmt`` along ``axis`` (see ``quantize``)."""
    spec = get_format(fmt)
    shape = tuple(int(s) for s in shape)
    if not shape or any(s < 0 for s in shape):
        raise ConfigError(f"'shape' must be a non-empty tuple of sizes >= 0 (got {shape})")
    ax = axis % len(shape)
    k = shape[ax]
    rows = math.prod(shape) // k if k else math.prod(s for i, s in enumerate(shape) if i != ax)
    blk = k if block is None else int(block)
    if blk < 1:
        raise ConfigError(f"'block' must be >= 1 (got {block})")
    nm = parse_sparsity(sparsity)
    meta = 0
    kept, kept_block = k, blk
    if nm is not None:
        from prodigy_sim.numerics._sparsity import sparsity_metadata_nbytes

        n, m = nm
        if k % m or blk % m:
            raise ConfigError(f"axis length {k} and 'block' {blk} must be multiples of m = {m}")
        kept, kept_block = k * n // m, blk * n // m
        meta = sparsity_metadata_nbytes((rows, k), n, m)
    n_blocks = 0 if scale == "none" else -(-kept // kept_block)
    return Footprint(
        elements=rows * k,
        code_bytes=rows * packed_row_bytes(kept, spec.bits),
        scale_bytes=rows * n_blocks * scale_bytes_per_block(scale),
        metadata_bytes=meta,
    )
