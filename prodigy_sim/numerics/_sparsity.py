"""N:M structured sparsity: pruning masks, Wanda scores, and the packed sparse layout.

Concept
-------
N:M sparsity keeps exactly ``n`` of every ``m`` consecutive weights along one axis - the
reduction (input) dimension of a matrix multiply. The Tachyum white paper writes the group size
first ("8:4" = keep 4 of every 8, as AMD's hipSPARSELt does); NVIDIA writes the kept count first
("2:4"). This module always names the two numbers ``n`` (kept) and ``m`` (group size), so Tachyum's
8:4 is ``n=4, m=8`` (the default) and NVIDIA's 2:4 is ``n=2, m=4``. Supported: ``m`` in
{2, 4, 8, 16} and ``1 <= n <= m``.

Along the sparse axis of length ``K`` (a multiple of ``m``), group ``g`` is the dense positions
``g*m .. g*m + m - 1``. Groups never straddle rows; there is no padding.

Choosing what to keep
---------------------
Each element gets a score - ``|w|`` for magnitude pruning, ``|w_ij| * ||X_j||_2`` for Wanda (Sun
et al. 2023, "A Simple and Effective Pruning Approach for Large Language Models") - and in every
group the ``n`` largest scores are kept. Ties are broken by position: among equal scores the lower
index is kept (a stable descending sort), so the mask is a deterministic function of the scores
alone. Zeros are ordinary scores (``-0.0`` ties with ``+0.0``); a NaN score is refused
(:class:`EncodeError` naming its position) because it has no place in the order.

Packed layout (:class:`SparseTensor`)
-------------------------------------
The sparse axis is moved last; the dense shape is then ``(..., K)``, with ``G = K // m`` groups
per row.

- ``values``: shape ``(..., G * n)``, the kept values of group 0, then group 1, ...; within a
  group in increasing dense position. The dtype is the input's - a plain dense array that the
  format library later quantizes (sparsity composes with any number format).
- ``mask_bits``: ``uint8``, shape ``(..., G * B)`` with ``B = ceil(m / 8)`` bytes per group.
  Group ``g`` owns bytes ``g*B .. g*B + B - 1``; bit ``j`` of the group (LSB first, little-endian
  across the two bytes when ``m = 16``) is set iff dense position ``g*m + j`` is kept::

      8:4 group   positions  7 6 5 4 3 2 1 0      kept: 0, 2, 3, 6
                  bits       0 1 0 0 1 1 0 1  ->  mask byte 0x4D, values [w0, w2, w3, w6]

      m = 16      byte 0 = positions 0..7 (bit j = position j), byte 1 = positions 8..15

  For ``m < 8`` the unused high bits must be zero. A valid group has exactly ``n`` bits set;
  anything else is invalid packed data (:class:`EncodeError` naming the group).

Metadata cost. The bitmask costs 1 bit per dense position = ``m`` bits per group, whatever ``n``
is. For 8:4 that is 8 bits per 4 kept values (2 bits per kept value, 1 bit per dense weight),
against 12 bits for the simple encoding of a 3-bit index per kept value, and the
information-theoretic minimum of ``ceil(log2 C(8, 4)) = ceil(log2 70) = 7`` bits. Other points,
as (bitmask / indices / minimum) bits per group: 2:4 -> 4 / 4 / 3 (NVIDIA's 2-bit indices are the
same 4 bits); 8:16 -> 16 / 32 / 14; 2:8 -> 8 / 6 / 5. So the bitmask is not always the smallest
(very sparse groups favour indices), but it is uniform, decodes without arithmetic, and
:func:`sparsity_metadata_nbytes` counts it exactly for footprint and bandwidth. Tachyum has not
published its metadata encoding; this layout is the simulator's documented assumption.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass

import numba
import numpy as np

from prodigy_sim._jit import parallel_if_large
from prodigy_sim.errors import ConfigError, EncodeError

__all__ = [
    "SUPPORTED_M",
    "SparseTensor",
    "compress",
    "nm_mask",
    "prune",
    "sparsity_metadata_nbytes",
    "unpack_mask",
    "wanda_scores",
]

SUPPORTED_M: tuple[int, ...] = (2, 4, 8, 16)
"""Group sizes ``m`` that the mask encoding supports."""

_METHODS = ("magnitude", "wanda")
_KERNEL_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


# --------------------------------------------------------------------------------------------------
# validation helpers


def _check_nm(n: int, m: int) -> tuple[int, int]:
    """Return ``(n, m)`` as Python ints, or raise ConfigError if they are not a supported pair."""
    vals = []
    for name, v in (("n", n), ("m", m)):
        if isinstance(v, (bool, np.bool_)):
            raise ConfigError(f"'{name}' must be an integer (got {v!r})")
        try:
            vals.append(operator.index(v))
        except TypeError:
            raise ConfigError(f"'{name}' must be an integer (got {v!r})") from None
    n, m = vals
    if m not in SUPPORTED_M:
        raise ConfigError(f"'m' (group size) must be one of {list(SUPPORTED_M)} (got {m})")
    if not 1 <= n <= m:
        raise ConfigError(f"'n' (kept per group) must satisfy 1 <= n <= m = {m} (got n={n})")
    return n, m


def _check_k(k: int, m: int, what: str = "the sparse axis") -> int:
    if k % m:
        raise ConfigError(f"length of {what} K={k} must be a multiple of the group size m={m}")
    return k // m


def _norm_axis(axis: int, ndim: int) -> int:
    if ndim == 0:
        raise ConfigError("N:M sparsity needs an array with at least 1 dimension (got a scalar)")
    try:
        axis = operator.index(axis)
    except TypeError:
        raise ConfigError(f"'axis' must be an integer (got {axis!r})") from None
    if not -ndim <= axis < ndim:
        raise ConfigError(f"'axis' {axis} is out of range for an array with {ndim} dimensions")
    return axis % ndim


def _bytes_per_group(m: int) -> int:
    return (m + 7) // 8


# --------------------------------------------------------------------------------------------------
# masks and scores


@numba.njit(cache=True)
def _keep_top_n(scores: np.ndarray, n: int, keep: np.ndarray) -> None:
    """Set ``keep[g, i]`` iff element ``i`` of group ``g`` ranks among the ``n`` best.

    ``scores`` and ``keep`` have shape ``(groups, m)``; scores contain no NaN. The rank of element
    ``i`` is the number of elements that beat it: a larger score anywhere in the group, or an
    equal score at a lower position (j < i). This is the stable descending order, so ties keep the
    lower position; ranks are a permutation of 0..m-1 and exactly ``n`` elements have rank < n.
    """
    n_groups, m = scores.shape
    for g in range(n_groups):
        for i in range(m):
            si = scores[g, i]
            rank = 0
            for j in range(i):
                rank += scores[g, j] >= si
            for j in range(i + 1, m):
                rank += scores[g, j] > si
            keep[g, i] = rank < n


@parallel_if_large
def _select_rows(x, scores, n, m, values, mask_bits):
    """Compress rows x (R, K) to n of every m: ``values`` (R, K // m * n) the kept values in
    position order, ``mask_bits`` (R, K // m * ceil(m / 8)) the group masks (LSB first); the
    kept elements are the n best scores of each group by the rank rule of :func:`_keep_top_n`
    (``scores`` (R, K), or |x| when ``scores`` is empty). Returns the number of NaN scores
    (then the outputs are incomplete and the caller reports the first one)."""
    rows, k = x.shape
    own = scores.shape[0] == 0
    nbytes = (m + 7) // 8
    nans = 0
    for r in numba.prange(rows):
        sc = np.empty(m)
        kept = np.empty(m, dtype=x.dtype)
        for g in range(k // m):
            base = g * m
            bad = 0
            for i in range(m):
                v = abs(np.float64(x[r, base + i])) if own else np.float64(scores[r, base + i])
                bad += v != v
                sc[i] = v
            if bad:
                nans += bad
                continue
            o = 0
            bits = np.int64(0)
            for i in range(m):  # branch-free: write every value, advance past the kept ones
                si = sc[i]
                rank = 0
                for j in range(m):  # j beats i: a larger score, or an equal one before it
                    rank += (sc[j] > si) | ((sc[j] == si) & (j < i))
                keep = rank < n
                kept[o] = x[r, base + i]
                o += keep
                bits |= np.int64(keep) << i
            for i in range(n):
                values[r, g * n + i] = kept[i]
            for b in range(nbytes):
                mask_bits[r, g * nbytes + b] = (bits >> (8 * b)) & 0xFF
    return nans


@parallel_if_large
def _select_rows_f32(xbits, n, m, values, mask_bits):
    """:func:`_select_rows` for float32 ``x`` ranked by its own magnitude, on the bits:
    ``xbits`` (R, K) is x viewed as uint32, ``values`` (R, K // m * n) uint32 (the kept bit
    patterns). The magnitude bits of a non-NaN float32 order like its magnitude (+0 and -0
    tie), so the key ``(bits & 0x7FFFFFFF) << 4 | (15 - i)`` of element ``i`` orders the
    group by the rank rule of :func:`_keep_top_n` with every key distinct (a tie goes to the
    lower position, m <= 16): ``rank_i`` = the number of larger keys, in integers. Returns the
    number of NaN elements (then the outputs are incomplete)."""
    rows, k = xbits.shape
    nbytes = (m + 7) // 8
    nans = 0
    for r in numba.prange(rows):
        key = np.empty(16, dtype=np.int64)
        kept = np.empty(16, dtype=np.uint32)
        for g in range(k // m):
            base = g * m
            bad = 0
            for i in range(m):
                mag = np.int64(xbits[r, base + i] & np.uint32(0x7FFFFFFF))
                bad += mag > 0x7F800000
                key[i] = (mag << 4) | (15 - i)
            if bad:
                nans += bad
                continue
            o = 0
            bits = np.int64(0)
            for i in range(m):
                ki = key[i]
                rank = 0
                for j in range(m):
                    rank += key[j] > ki
                keep = rank < n
                kept[o] = xbits[r, base + i]
                o += keep
                bits |= np.int64(keep) << i
            for i in range(n):
                values[r, g * n + i] = kept[i]
            for b in range(nbytes):
                mask_bits[r, g * nbytes + b] = (bits >> (8 * b)) & 0xFF
    return nans


def nm_mask(w: np.ndarray, n: int = 4, m: int = 8, *, axis: int = -1,
            scores: np.ndarray | None = None) -> np.ndarray:
    """Boolean N:M mask of ``w``: in every group of ``m`` consecutive elements, ``n`` are True.

    Args:
        w: array of shape ``(..., K, ...)`` with ``K = w.shape[axis]`` a multiple of ``m``.
        n: elements kept per group (``1 <= n <= m``).
        m: group size, one of 2, 4, 8, 16.
        axis: the axis along which groups are formed (the reduction / input dimension).
        scores: importance of each element, same shape as ``w``; default ``|w|``. The ``n`` largest
            scores of each group are kept; among equal scores the lower position wins.

    Returns:
        bool array of ``w.shape``.

    Raises:
        ConfigError: bad ``n``/``m``/``axis``, ``K`` not a multiple of ``m``, or ``scores`` of the
            wrong shape.
        EncodeError: a score is NaN (the message gives its index).
    """
    n, m = _check_nm(n, m)
    w = np.asarray(w)
    axis = _norm_axis(axis, w.ndim)
    _check_k(w.shape[axis], m)
    if scores is None:
        s = np.abs(w) if w.dtype in _KERNEL_DTYPES else np.abs(w.astype(np.float64))
    else:
        s = np.asarray(scores)
        if s.shape != w.shape:
            raise ConfigError(f"'scores' must have the shape of w {w.shape} (got {s.shape})")
    if s.dtype not in _KERNEL_DTYPES:
        # Integers, bools, float16: float64 holds them exactly (|x| < 2**53), so the order stays.
        s = s.astype(np.float64)
    nan = np.isnan(s)
    if nan.any():
        where = tuple(int(i) for i in np.argwhere(nan)[0])
        what = "w" if scores is None else "scores"
        raise EncodeError(f"NaN in {what} at index {where} (axis={axis}, {int(nan.sum())} NaN "
                          "in total): N:M pruning needs an ordered score for every element")

    s = np.moveaxis(s, axis, -1)
    lead, k = s.shape[:-1], s.shape[-1]
    groups = np.ascontiguousarray(s.reshape(-1, m))
    keep = np.empty(groups.shape, dtype=bool)
    _keep_top_n(groups, n, keep)
    return np.moveaxis(keep.reshape(*lead, k), -1, axis)


def wanda_scores(w: np.ndarray, act_norms: np.ndarray, *, axis: int = -1) -> np.ndarray:
    """Wanda importance scores ``|W_ij| * ||X_j||_2`` (Sun et al. 2023).

    Args:
        w: weights; ``j`` runs along ``axis`` (the reduction / input dimension, length ``K``).
        act_norms: shape ``(K,)``, the L2 norm over calibration tokens of each input feature's
            activation. Must be finite and >= 0.
        axis: the input-feature axis of ``w``.

    Returns:
        float64 array of ``w.shape``. Computed in float64, so for float32 (or narrower) inputs each
        product is exact and the ranking is the true one.

    Raises:
        ConfigError: ``act_norms`` of the wrong shape, negative or not finite.
        EncodeError: a score is NaN (a NaN weight, or an infinite weight on a zero norm).
    """
    w = np.asarray(w)
    axis = _norm_axis(axis, w.ndim)
    norms = np.asarray(act_norms)
    k = w.shape[axis]
    if norms.shape != (k,):
        raise ConfigError(f"'act_norms' must have shape ({k},) = (w.shape[{axis}],), one L2 norm "
                          f"per input feature (got shape {norms.shape})")
    norms = norms.astype(np.float64)
    bad = ~np.isfinite(norms) | (norms < 0)
    if bad.any():
        j = int(np.argmax(bad))
        raise ConfigError(f"'act_norms' must be finite and >= 0 (got {float(norms[j])!r} at "
                          f"index {j})")
    shape = [1] * w.ndim
    shape[axis] = k
    with np.errstate(invalid="ignore"):  # inf * 0 -> NaN, reported below
        scores = np.abs(w.astype(np.float64)) * norms.reshape(shape)
    nan = np.isnan(scores)
    if nan.any():
        where = tuple(int(i) for i in np.argwhere(nan)[0])
        raise EncodeError(f"Wanda score is NaN at index {where} (w = {float(w[where])!r}, "
                          f"act_norm = {float(norms[where[axis]])!r}): weights must not be NaN, "
                          "and an infinite weight needs a non-zero activation norm")
    return scores


def _method_scores(w: np.ndarray, axis: int, method: str,
                   act_norms: np.ndarray | None) -> np.ndarray | None:
    """Scores for ``method``, or None for plain magnitude."""
    if method not in _METHODS:
        raise ConfigError(f"'method' must be one of {list(_METHODS)} (got {method!r})")
    if method == "wanda":
        if act_norms is None:
            raise ConfigError("method='wanda' needs 'act_norms' (per-input-feature activation "
                              "L2 norms, shape (w.shape[axis],))")
        return wanda_scores(w, act_norms, axis=axis)
    if act_norms is not None:
        raise ConfigError("'act_norms' is only used by method='wanda' (got method='magnitude')")
    return None


def prune(w: np.ndarray, n: int = 4, m: int = 8, *, axis: int = -1, method: str = "magnitude",
          act_norms: np.ndarray | None = None) -> np.ndarray:
    """``w`` with all but ``n`` of every ``m`` consecutive elements along ``axis`` set to zero.

    Args:
        w: array, ``w.shape[axis]`` a multiple of ``m``.
        n, m, axis: as in :func:`nm_mask`.
        method: ``"magnitude"`` (keep the largest ``|w|``) or ``"wanda"`` (keep the largest
            ``|w| * act_norms``).
        act_norms: shape ``(w.shape[axis],)``; required by, and only allowed with, ``"wanda"``.

    Returns:
        array of ``w.shape`` and ``w.dtype``; kept entries are bit-identical to ``w``, pruned
        entries are ``+0``.
    """
    w = np.asarray(w)
    n, m = _check_nm(n, m)
    axis = _norm_axis(axis, w.ndim)
    scores = _method_scores(w, axis, method, act_norms)
    mask = nm_mask(w, n, m, axis=axis, scores=scores)
    return np.where(mask, w, np.zeros((), dtype=w.dtype))


# --------------------------------------------------------------------------------------------------
# packed layout


def sparsity_metadata_nbytes(shape: tuple[int, ...], n: int, m: int) -> int:
    """Bytes of ``mask_bits`` for a dense tensor of ``shape`` whose sparse axis is last.

    ``prod(shape[:-1]) * (K // m) * ceil(m / 8)``; equals ``SparseTensor.mask_bits.nbytes``.
    The bitmask size does not depend on ``n`` (it is validated all the same).
    """
    n, m = _check_nm(n, m)
    shape = tuple(operator.index(d) for d in shape)
    if not shape:
        raise ConfigError("N:M sparsity needs a shape with at least 1 dimension (got ())")
    if any(d < 0 for d in shape):
        raise ConfigError(f"shape dimensions must be >= 0 (got {shape})")
    groups = _check_k(shape[-1], m, "the last axis")
    return math.prod(shape[:-1]) * groups * _bytes_per_group(m)


def _pack_mask(mask_last: np.ndarray, m: int) -> np.ndarray:
    """Pack a bool mask ``(..., K)`` into ``uint8`` ``(..., (K // m) * ceil(m / 8))``."""
    lead, k = mask_last.shape[:-1], mask_last.shape[-1]
    groups = mask_last.reshape(*lead, k // m, m)
    # packbits(bitorder="little") puts position j at bit j % 8 of byte j // 8 and pads a short
    # group (m < 8) with zero high bits: exactly the documented layout.
    packed = np.packbits(groups, axis=-1, bitorder="little")
    return packed.reshape(*lead, (k // m) * _bytes_per_group(m))


def unpack_mask(mask_bits: np.ndarray, n: int, m: int, K: int) -> np.ndarray:  # noqa: N803
    """Decode and validate N:M mask bits.

    Args:
        mask_bits: ``uint8`` array of shape ``(..., (K // m) * ceil(m / 8))`` (see the module
            docstring for the bit layout).
        n, m: the sparsity pattern.
        K: dense length of the sparse (last) axis.

    Returns:
        bool array ``(..., K)``, True where the dense position is kept.

    Raises:
        ConfigError: bad ``n``/``m``, or ``K`` not a multiple of ``m``.
        EncodeError: wrong dtype or last-axis length, bits set above position ``m - 1``, or a group
            whose popcount is not ``n`` (the message names the row and group).
    """
    n, m = _check_nm(n, m)
    K = operator.index(K)  # noqa: N806
    groups = _check_k(K, m)
    bits = np.asarray(mask_bits)
    if bits.dtype != np.uint8:
        raise EncodeError(f"mask bits must be uint8 (got dtype {bits.dtype})")
    nb = _bytes_per_group(m)
    if bits.ndim == 0 or bits.shape[-1] != groups * nb:
        raise EncodeError(f"mask bits for K={K}, m={m} must have last axis {groups} groups x {nb} "
                          f"byte(s) = {groups * nb} (got shape {bits.shape})")
    lead = bits.shape[:-1]
    unpacked = np.unpackbits(bits.reshape(*lead, groups, nb), axis=-1, bitorder="little")
    if m < 8:
        high = unpacked[..., m:].any(axis=-1)
        if high.any():
            where = tuple(int(i) for i in np.argwhere(high)[0])
            raise EncodeError(f"mask bits of {_group_name(where, m)} set bits above position "
                              f"{m - 1} (byte 0x{int(bits[where]):02X}); a group of m={m} uses "
                              f"bits 0..{m - 1} only")
        unpacked = unpacked[..., :m]
    mask = unpacked.astype(bool)
    _check_popcount(mask, n, m)
    return mask.reshape(*lead, K)


def _group_name(index: tuple[int, ...], m: int) -> str:
    """Human name for group ``index[-1]`` of row ``index[:-1]`` (sparse axis last)."""
    g = index[-1]
    row = f" of row {index[:-1]}" if len(index) > 1 else ""
    return f"group {g}{row} (dense positions {g * m}..{g * m + m - 1} of the sparse axis)"


def _check_popcount(groups: np.ndarray, n: int, m: int) -> None:
    """Raise EncodeError unless every group in the bool array ``(..., G, m)`` has ``n`` True."""
    counts = groups.sum(axis=-1)
    bad = counts != n
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        pattern = "".join("1" if b else "0" for b in groups[where][::-1])
        raise EncodeError(f"{_group_name(where, m)} keeps {int(counts[where])} positions "
                          f"(pattern 0b{pattern}, position 0 rightmost); {n}:{m} sparsity "
                          f"needs exactly n={n} ({int(bad.sum())} bad group(s) in total)")


@dataclass(frozen=True, eq=False)
class SparseTensor:
    """An N:M-sparse tensor in packed form: kept values plus a per-group bitmask.

    The sparse axis is the LAST axis of ``shape`` (``compress`` moves it there). ``eq=False``: two
    tensors compare by identity; compare ``dense()`` arrays for value equality. The arrays are not
    copied, so mutating them mutates the tensor.

    Attributes:
        values: kept values, shape ``(..., K * n // m)``, in group order and, within a group, in
            increasing dense position; any dtype.
        mask_bits: ``uint8``, shape ``(..., (K // m) * ceil(m / 8))``; bit ``j`` of group ``g``
            set iff position ``g*m + j`` is kept.
        n: values kept per group.
        m: group size.
        shape: dense shape ``(..., K)``.
    """

    values: np.ndarray
    mask_bits: np.ndarray
    n: int
    m: int
    shape: tuple[int, ...]

    def __post_init__(self) -> None:
        n, m = _check_nm(self.n, self.m)
        shape = tuple(operator.index(d) for d in self.shape)
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "n", n)
        object.__setattr__(self, "m", m)
        if not shape or any(d < 0 for d in shape):
            raise ConfigError(f"'shape' must be a dense shape with >= 1 dimension (got {shape})")
        k = shape[-1]
        _check_k(k, m, "the last axis of 'shape'")
        want_values = (*shape[:-1], k * n // m)
        want_bits = (*shape[:-1], (k // m) * _bytes_per_group(m))
        values, bits = np.asarray(self.values), np.asarray(self.mask_bits)
        if values.shape != want_values:
            raise EncodeError(f"values of a {n}:{m} SparseTensor with dense shape {shape} must "
                              f"have shape {want_values} (got {values.shape})")
        if bits.dtype != np.uint8 or bits.shape != want_bits:
            raise EncodeError(f"mask_bits of a {n}:{m} SparseTensor with dense shape {shape} "
                              f"must be uint8 of shape {want_bits} (got {bits.dtype} "
                              f"{bits.shape})")
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "mask_bits", bits)

    def mask(self) -> np.ndarray:
        """The kept-position mask, bool of shape ``shape`` (validated: ``n`` per group)."""
        return unpack_mask(self.mask_bits, self.n, self.m, self.shape[-1])

    def dense(self) -> np.ndarray:
        """The dense tensor, shape ``shape`` (sparse axis last), dtype of ``values``.

        Kept positions hold the values bit for bit, pruned positions ``+0``. For a tensor
        compressed along another axis, ``np.moveaxis(t.dense(), -1, axis)`` restores the layout.
        """
        mask = self.mask()
        out = np.zeros(self.shape, dtype=self.values.dtype)
        # Boolean assignment walks the mask in C order: row by row, group by group, position by
        # position - the order in which ``values`` is stored.
        out[mask] = self.values.reshape(-1)
        return out

    @property
    def metadata_nbytes(self) -> int:
        """Bytes of mask metadata (``mask_bits.nbytes``)."""
        return int(self.mask_bits.nbytes)


def compress(w: np.ndarray, n: int = 4, m: int = 8, *, axis: int = -1, method: str = "magnitude",
             act_norms: np.ndarray | None = None, mask: np.ndarray | None = None) -> SparseTensor:
    """Prune ``w`` to N:M along ``axis`` and pack it into a :class:`SparseTensor`.

    Args:
        w: array, ``w.shape[axis]`` a multiple of ``m``.
        n, m, axis, method, act_norms: as in :func:`prune`.
        mask: optional bool array of ``w.shape`` to use instead of computing one; it must keep
            exactly ``n`` of every group (then ``method`` must stay ``"magnitude"`` and
            ``act_norms`` None, since they would be ignored).

    Returns:
        SparseTensor whose ``shape`` is ``w.shape`` with ``axis`` moved last; its ``dense()`` equals
        ``np.moveaxis(prune(w, ...), axis, -1)`` bit for bit.

    Raises:
        ConfigError: bad parameters (see :func:`prune`), or ``mask`` of the wrong shape or dtype.
        EncodeError: ``mask`` with a group that does not keep exactly ``n``; NaN scores.
    """
    w = np.asarray(w)
    n, m = _check_nm(n, m)
    axis = _norm_axis(axis, w.ndim)
    _check_k(w.shape[axis], m)
    if mask is None:
        scores = _method_scores(w, axis, method, act_norms)
        fast = _compress_fast(w, n, m, axis, scores)
        if fast is not None:
            return fast
        keep = nm_mask(w, n, m, axis=axis, scores=scores)
    else:
        if method != "magnitude" or act_norms is not None:
            raise ConfigError("give either 'mask' or a pruning method with its 'act_norms', "
                              f"not both (got method={method!r} and a mask)")
        keep = np.asarray(mask)
        if keep.dtype != np.bool_:
            raise ConfigError(f"'mask' must be a bool array (got dtype {keep.dtype})")
        if keep.shape != w.shape:
            raise ConfigError(f"'mask' must have the shape of w {w.shape} (got {keep.shape})")
    w_last = np.moveaxis(w, axis, -1)
    keep_last = np.moveaxis(keep, axis, -1)
    lead, k = w_last.shape[:-1], w_last.shape[-1]
    if mask is not None:
        _check_popcount(keep_last.reshape(*lead, k // m, m), n, m)
    values = np.ascontiguousarray(w_last[keep_last].reshape(*lead, k * n // m))
    return SparseTensor(values=values, mask_bits=_pack_mask(keep_last, m), n=n, m=m,
                        shape=tuple(w_last.shape))


def _compress_fast(w: np.ndarray, n: int, m: int, axis: int,
                   scores: np.ndarray | None) -> SparseTensor | None:
    """:func:`compress` by one kernel pass (scores from ``|w|`` when ``scores`` is None), or
    None when the kernel does not apply (other dtypes) or meets a NaN score - then the general
    path computes the same result or raises the located error."""
    if w.dtype not in _KERNEL_DTYPES or (scores is not None and scores.dtype not in
                                         _KERNEL_DTYPES):
        return None
    if w.size == 0:
        return None
    w_last = np.moveaxis(w, axis, -1)
    lead, k = w_last.shape[:-1], w_last.shape[-1]
    rows = np.ascontiguousarray(w_last.reshape(-1, k))
    sc = (np.zeros((0, 0)) if scores is None
          else np.ascontiguousarray(np.moveaxis(scores, axis, -1).reshape(-1, k)))
    values = np.empty((rows.shape[0], k // m * n), dtype=w.dtype)
    bits = np.empty((rows.shape[0], k // m * _bytes_per_group(m)), dtype=np.uint8)
    if scores is None and w.dtype == np.float32:
        if _select_rows_f32(rows.view(np.uint32), n, m, values.view(np.uint32), bits):
            return None
    elif _select_rows(rows, sc, n, m, values, bits):
        return None
    return SparseTensor(values=values.reshape(*lead, values.shape[1]),
                        mask_bits=bits.reshape(*lead, bits.shape[1]), n=n, m=m,
                        shape=tuple(w_last.shape))
