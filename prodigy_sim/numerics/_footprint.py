"""Memory footprint of a quantized tensor: codes + block scales + sparsity metadata.

The count is the exact size of the arrays :func:`~prodigy_sim.numerics.quantize` produces
(``QuantizedTensor.nbytes``), so it can be used for tensors too big to materialize (a model's
weights) and still be trusted. The byte layout itself is :class:`~prodigy_sim.numerics.Storage`'s.
"""

from __future__ import annotations

import math

from prodigy_sim.errors import ConfigError
from prodigy_sim.numerics._spec import FormatSpec
from prodigy_sim.numerics._storage import Footprint, ScaleKind, Sparsity, Storage, scale_kind

__all__ = ["Footprint", "footprint"]


def footprint(shape: tuple[int, ...], fmt: FormatSpec | str | Storage, block: int | None = 32,
              scale: ScaleKind | str | None = None,
              sparsity: Sparsity | str | tuple[int, int] | None = None,
              axis: int = -1) -> Footprint:
    """Bytes of a tensor of ``shape`` quantized along ``axis`` (arguments as ``quantize``'s;
    ``fmt`` may be a :class:`Storage`, which then gives block, scale and sparsity)."""
    storage = fmt if isinstance(fmt, Storage) else Storage.of(
        fmt, block=block, scale=None if scale is None else scale_kind(scale), sparsity=sparsity)
    if (not isinstance(shape, (tuple, list)) or not shape
            or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0
                       for s in shape)):
        raise ConfigError(f"'shape' must be a non-empty tuple of sizes >= 0 (got {shape!r})")
    if not -len(shape) <= axis < len(shape):
        raise ConfigError(f"'axis' = {axis} is out of range for a {len(shape)}-d shape")
    ax = axis % len(shape)
    k = shape[ax]
    rows = math.prod(s for i, s in enumerate(shape) if i != ax)
    return storage.footprint(rows, k)
