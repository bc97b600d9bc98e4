"""What every PTQ method returns: :class:`PTQResult` (and SpQR's :class:`Outliers`).

A result serves two callers: float emulation multiplies by ``weight`` (float32, the dequantized
values), and the ISA / functional core reads ``quantized``, a
:class:`~prodigy_sim.numerics.QuantizedTensor` in exactly the layout ``numerics.quantize`` uses
(packed codes, stored scale codes, N:M mask bits) with ``quantized.dequantize() == weight`` bit
for bit (SpQR: except at the outlier positions, which ``outliers`` overwrite).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from prodigy_sim._jit import one_blas_thread
from prodigy_sim.detmath import matmul
from prodigy_sim.errors import ConfigError
from prodigy_sim.numerics import QuantizedTensor, Sparsity, compress, pack, scale_kind
from prodigy_sim.ptq._grid import BlockScales, Grid

__all__ = ["PTQResult", "Outliers", "build_quantized", "output_error"]


@dataclass(frozen=True, eq=False)
class Outliers:
    """Weights kept in higher precision (SpQR), in compressed sparse row (CSR) form.

    ``row_ptr``: int32 ``(N + 1,)``, outliers of row ``i`` are entries ``row_ptr[i]:row_ptr[i+1]``;
    ``cols``: column (K) index of each outlier, uint16 when ``K <= 65536`` else int32, increasing
    within a row; ``values``: the stored values in ``dtype`` (``float16``, ``float32``, or
    ``bfloat16`` kept as its uint16 bit pattern); ``shape``: the dense ``(N, K)``.
    """

    row_ptr: np.ndarray
    cols: np.ndarray
    values: np.ndarray
    dtype: str
    shape: tuple[int, int]

    @property
    def count(self) -> int:
        """Number of outliers."""
        return int(self.cols.size)

    def float_values(self) -> np.ndarray:
        """The stored values as float32 ``(count,)`` (exact)."""
        if self.dtype == "bfloat16":
            return (self.values.astype(np.uint32) << np.uint32(16)).view(np.float32)
        return self.values.astype(np.float32)

    def rows(self) -> np.ndarray:
        """Row index of each outlier, int64 ``(count,)``."""
        return np.repeat(np.arange(self.shape[0]), np.diff(self.row_ptr))

    def dense(self) -> np.ndarray:
        """float32 ``(N, K)`` with the outlier values at their positions, 0 elsewhere."""
        out = np.zeros(self.shape, dtype=np.float32)
        out[self.rows(), self.cols.astype(np.int64)] = self.float_values()
        return out

    @property
    def nbytes(self) -> int:
        """Bytes stored: row pointers + column indices + values."""
        return int(self.row_ptr.nbytes + self.cols.nbytes + self.values.nbytes)

    @classmethod
    def stack(cls, parts: list[Outliers]) -> Outliers:
        """The outliers of the weights ``parts`` stacked along rows (N), e.g. q, k and v fused
        into one ``(N_q + N_k + N_v, K)`` weight; the same K and dtype."""
        first = parts[0]
        if any(p.shape[1] != first.shape[1] or p.dtype != first.dtype for p in parts):
            raise ConfigError("stacked outliers need the same K and dtype")
        offsets = np.cumsum([0] + [p.count for p in parts])
        row_ptr = np.concatenate([p.row_ptr[:-1] + o for p, o in zip(parts, offsets,
                                                                      strict=False)]
                                 + [[offsets[-1]]]).astype(np.int32)
        cols = np.concatenate([p.cols for p in parts])
        return cls(row_ptr=row_ptr, cols=cols.astype(first.cols.dtype),
                   values=np.concatenate([p.values for p in parts]), dtype=first.dtype,
                   shape=(sum(p.shape[0] for p in parts), first.shape[1]))


@dataclass(frozen=True, eq=False)
class PTQResult:
    """A quantized (and/or pruned) linear weight ``W`` (N out, K in).

    Attributes:
        weight: float32 ``(N, K)``, the dequantized weight (pruned positions 0).
        quantized: the stored form as ``numerics`` lays it out (codes, scales, mask bits), or
            None when nothing was quantized (pruning only).
        mask: bool ``(N, K)`` kept positions of an N:M-sparse weight, else None.
        outliers: SpQR's higher-precision weights (they replace ``quantized``'s values at their
            positions), else None.
        footprint: bytes stored, by part (``codes``, ``scales``, ``mask``; SpQR: ``codes``,
            ``scales`` (3-bit first level), ``scales2`` (second level), ``outlier_values``,
            ``outlier_index``); float32 weights count 4 bytes each as ``weights``.
        stats: method name, parameters and counts (e.g. ``obs_loss``: the OBS proxy
            ``sum (w - q)^2 / (2 [H^-1]_qq)`` over all processed weights; ``outliers``).
        parts: stored arrays that ``quantized`` does not hold (SpQR's 3-bit scale codes and
            float16 second-level scales), by name.
    """

    weight: np.ndarray
    quantized: QuantizedTensor | None
    mask: np.ndarray | None = None
    outliers: Outliers | None = None
    footprint: dict[str, int] = field(default_factory=dict)
    stats: dict[str, object] = field(default_factory=dict)
    parts: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def nbytes(self) -> int:
        """Total bytes stored (sum of :attr:`footprint`)."""
        return int(sum(self.footprint.values()))


def build_quantized(codes: np.ndarray, scales: BlockScales, grid: Grid,
                    mask: np.ndarray | None = None,
                    sparsity: tuple[int, int] | None = None) -> QuantizedTensor:
    """The :class:`QuantizedTensor` of element ``codes`` (uint8 ``(N, K)``, one per dense
    position), block ``scales`` and optional N:M ``mask`` (bool ``(N, K)``, ``sparsity = (n, m)``).

    Kept codes are packed in position order, scales are stored per ``grid.block`` dense
    positions and the mask as ``numerics`` group bitmasks, as ``numerics.quantize`` lays them out.
    """
    n_rows, k = codes.shape
    block = grid.block_for(k)
    mask_bits = None
    kept = codes
    if mask is not None:
        if sparsity is None:
            raise ConfigError("a sparse weight needs its 'sparsity' (n, m)")
        n, m = sparsity
        if block % m:
            raise ConfigError(f"'block' = {block} must be a multiple of the sparsity group m = {m}")
        mask_bits = compress(np.zeros((n_rows, k), np.float32), n, m, mask=mask).mask_bits
        kept = codes[mask].reshape(n_rows, k * n // m)
    return QuantizedTensor(codes=pack(np.ascontiguousarray(kept), grid.fmt.bits),
                           scales=scales.codes, fmt=grid.fmt, shape=(n_rows, k), axis=1,
                           block=block, scale=scale_kind(grid.scale),
                           sparsity=None if mask is None else Sparsity(group=m, kept=n),
                           mask_bits=mask_bits)


def quantized_footprint(q: QuantizedTensor) -> dict[str, int]:
    """Bytes of a :class:`QuantizedTensor` by part."""
    return {"codes": int(q.codes.nbytes), "scales": int(q.scales.nbytes),
            "mask": 0 if q.mask_bits is None else int(q.mask_bits.nbytes)}


@one_blas_thread
def output_error(w: np.ndarray, w_q: np.ndarray, x: np.ndarray) -> float:
    """``||x W^T - x W_q^T||_F`` for inputs ``x (T, K)`` and weights ``(N, K)``, in float64
    (fixed summation order)."""
    d = np.asarray(w, dtype=np.float64) - np.asarray(w_q, dtype=np.float64)
    x2 = np.asarray(x, dtype=np.float64).reshape(-1, d.shape[1])
    return float(np.sqrt(np.sum(matmul(x2, np.ascontiguousarray(d.T)) ** 2)))
