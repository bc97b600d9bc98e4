"""The arithmetic parameters of each lowered kernel kind, as typed, hashable records.

A :class:`~prodigy_sim.lowering.Kernel` carries one of these (``Kernel.params``): everything that
decides what its program computes - shapes, storages, epilogue, tile sizes, the unit cap of a
steady-state run - so that :func:`prodigy_sim.lowering.emulate_kernel` can recompute its outputs
independently, and a cache can key on it. Sizes are in elements unless named otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

from prodigy_sim.numerics import Storage

__all__ = ["LinearParams", "NormParams", "RopeKVParams", "AttentionParams", "MoEParams",
           "HadamardParams", "SpqrParams", "KernelParams"]


@dataclass(frozen=True)
class LinearParams:
    """``Y[m, n] = epilogue(X[m, k] W[n, k]^T)`` in ``(mt, nt)`` accumulator tiles, ``am x an``
    per unit, K streamed in tiles of ``kt``; ``init``: the accumulators start from the float32
    tensors ``C`` (and ``CU``) instead of zero or the residual."""

    m: int
    n: int
    k: int
    weight: Storage
    act: Storage
    out: Storage
    epilogue: str
    mt: int
    am: int
    nt: int
    an: int
    kt: int
    unit_cap: int | None = None
    op: str = "linear"
    init: bool = False


@dataclass(frozen=True)
class NormParams:
    """RMSNorm or LayerNorm (``norm``) of ``m`` rows of ``h`` features, ``rt`` rows per unit."""

    m: int
    h: int
    norm: str
    eps: float
    rt: int
    out: Storage
    unit_cap: int | None = None
    op: str = "norm"


@dataclass(frozen=True)
class RopeKVParams:
    """RoPE on Q and K (if ``rope``) and the writes of Q, K and V^T to their caches."""

    batch: int
    tokens: int
    heads: int
    kv_heads: int
    head_dim: int
    position: int
    context: int
    rope: bool
    q: Storage
    kv: Storage
    decode: bool
    ck: int
    cp: int
    rt: int
    unit_cap: int | None = None
    op: str = "rope_kv"


@dataclass(frozen=True)
class AttentionParams:
    """Flash attention over key chunks of ``ck`` (context padded to ``cp``); decode splits the
    context in ``splits`` slices of ``chunks_per_split`` chunks."""

    batch: int
    heads: int
    kv_heads: int
    head_dim: int
    queries: int
    context: int
    causal: bool
    q: Storage
    kv: Storage
    decode: bool
    ck: int
    cp: int
    splits: int
    chunks_per_split: int
    nd: int
    dh: int
    scale: float
    unit_cap: int | None = None
    op: str = "attention"


@dataclass(frozen=True)
class MoEParams:
    """A mixture-of-experts data-movement or routing kernel (``op``: ``route``, ``dispatch`` or
    ``combine``) over ``tokens`` tokens of width ``h`` (route: the padded experts), ``top_k``
    choices each, ``rows`` rows of expert buffers. Timing only: not emulated."""

    op: str
    tokens: int
    h: int
    top_k: int
    rows: int
    unit_cap: int | None = None


@dataclass(frozen=True)
class HadamardParams:
    """The online Hadamard kernel (``lowering._ptq_ops.hadamard_kernel``): ``m`` rows of
    ``n = p * mm`` features in blocks of ``rt`` rows."""

    m: int
    n: int
    p: int
    mm: int
    rt: int
    act: Storage
    unit_cap: int | None = None
    op: str = "hadamard"


@dataclass(frozen=True)
class SpqrParams:
    """The SpQR outlier kernel (``lowering._spqr.spqr_kernel``): the outlier products of
    ``counts`` outliers per weight (1 weight, or gate and up) over ``X (m, k)`` into float32
    ``(m, n)`` outputs (from the residual if ``residual``); values stored as ``values``, input
    columns and output rows as ``index_k`` / ``index_n``; blocks of ``rt`` rows, ``groups``
    groups of ``chunks[w]`` chunks of ``widths[w]`` outliers per weight; phase-2 column slices
    of ``ws``."""

    m: int
    n: int
    k: int
    counts: tuple[int, ...]
    values: Storage
    index_k: Storage
    index_n: Storage
    residual: bool
    rt: int
    groups: int
    chunks: tuple[int, ...]
    widths: tuple[int, ...]
    ws: int
    act: Storage
    unit_cap: int | None = None
    op: str = "spqr"

    @property
    def padded(self) -> tuple[int, ...]:
        """Outlier entries per weight the program reads (the count padded to whole chunks)."""
        return tuple(self.groups * g * c for g, c in zip(self.chunks, self.widths, strict=True))


KernelParams = (LinearParams | NormParams | RopeKVParams | AttentionParams | MoEParams
                | HadamardParams | SpqrParams)
"""The parameters of any lowered kernel (dispatch on the type, or on ``.op``)."""
