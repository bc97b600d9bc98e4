"""``matmul``: the MMA specification on :class:`~prodigy_sim.numerics.QuantizedTensor` operands."""

from __future__ import annotations

import numpy as np

from prodigy_sim.errors import ConfigError
from prodigy_sim.functional._mma import MmaStats, mma_quantized
from prodigy_sim.functional.spec import CHUNK
from prodigy_sim.numerics import QuantizedTensor

__all__ = ["matmul", "matmul_stats", "DEFAULT_CHUNK"]

#: Accumulation chunk Kc of the MMA specification (elements of K per FP32 rounding): spec.CHUNK.
DEFAULT_CHUNK = CHUNK


def _check(a: QuantizedTensor, w: QuantizedTensor, acc, chunk: int) -> np.ndarray:
    for name, q in (("a", a), ("w", w)):
        if not isinstance(q, QuantizedTensor):
            raise ConfigError(f"'{name}' must be a QuantizedTensor (got {type(q).__name__}); "
                              "quantize it with prodigy_sim.numerics.quantize(x, fmt)")
        if len(q.shape) != 2 or q.axis != 1:
            raise ConfigError(f"'{name}' must be 2-D and quantized along its last axis (K); got "
                              f"shape {q.shape} quantized along axis {q.axis}")
    if a.sparsity is not None:
        raise ConfigError(f"'a' must be dense; only the weights may be sparse (a is "
                          f"{a.sparsity})")
    if a.shape[1] != w.shape[1]:
        raise ConfigError(f"K differs: a is {a.shape} (M,K) and w is {w.shape} (N,K)")
    K = a.shape[1]  # noqa: N806
    for name, q in (("a", a), ("w", w)):
        if q.scale != "none" and K % q.block:
            raise ConfigError(f"K = {K} is not a multiple of the block size {q.block} of "
                              f"'{name}'")
    if int(chunk) < 1:
        raise ConfigError(f"'chunk' must be >= 1 (got {chunk})")
    m, n = a.shape[0], w.shape[0]
    if acc is None:
        return np.zeros((m, n), dtype=np.float32)
    acc = np.asarray(acc)
    if acc.shape != (m, n) or acc.dtype != np.float32:
        raise ConfigError(f"'acc' must be float32 of shape ({m},{n}) (got {acc.dtype} "
                          f"{acc.shape})")
    return acc.copy()


def matmul_stats(a: QuantizedTensor, w: QuantizedTensor, acc: np.ndarray | None = None, *,
                 chunk: int = DEFAULT_CHUNK) -> tuple[np.ndarray, MmaStats]:
    """:func:`matmul`, also returning how many (tile, chunk) pieces took the exact fallback."""
    out = _check(a, w, acc, chunk)
    stats = mma_quantized(a, w, out, int(chunk))
    return out, stats


def matmul(a: QuantizedTensor, w: QuantizedTensor, acc: np.ndarray | None = None, *,
           chunk: int = DEFAULT_CHUNK) -> np.ndarray:
    """``acc + a . w^T`` bit-exactly by the MMA specification; float32 (M, N).

    a: (M, K) quantized along K (dense; FP8 activations in the ISA, any format here);
    w: (N, K) quantized along K, dense or n:m sparse; acc: float32 (M, N) start value (zeros if
    None; not modified). K is accumulated in chunks of ``chunk`` elements, each chunk's exact
    sum added to the FP32 accumulator with one round-to-nearest-even.
    """
    return matmul_stats(a, w, acc, chunk=chunk)[0]
