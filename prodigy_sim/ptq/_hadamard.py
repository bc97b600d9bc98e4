"""Hadamard matrices, randomized Hadamard rotations, and the fast Walsh-Hadamard transform.

A Hadamard matrix ``H`` of order ``n`` has entries +-1 and ``H H^T = n I``; ``H / sqrt(n)`` is
orthogonal and spreads every input over all outputs with equal weight, which is what QuaRot
(Ashkboos et al., "QuaRot: Outlier-Free 4-Bit Inference in Rotated LLMs", 2024) uses to remove
outlier channels before quantization.

Orders built here (:func:`hadamard_matrix`): ``n = 2^k * p`` with

- ``p = 1`` or 2: Sylvester, ``H_2n = [[H, H], [H, -H]]`` (entry ``(-1)^popcount(i & j)``);
- ``p = q + 1`` for a prime ``q = 3 (mod 4)``: Paley construction I (12, 20, 24, 32, 44, 48, 60,
  68, 72, 80, 84, 104, ...);
- ``p = 2 (q + 1)`` for a prime ``q = 1 (mod 4)``: Paley construction II (12, 28, 36, 60, 76, 84,
  108, ...);

as the Kronecker product ``H_p (x) H_2^k`` with the smallest such ``p``. So 576 = 36 * 16 (Paley II
with q = 17), 1536 = 12 * 128, 384 = 12 * 32, and every power of two are exact Hadamard orders.
Other sizes (odd, ``2 (mod 4)``, or needing a Paley order from a prime power or another
construction, e.g. 92 or 116) raise :class:`ConfigError`, unless the caller asks for the
documented fallback: block-diagonal ``I_(n/d) (x) H_d`` with ``d`` the largest buildable order
dividing ``n`` - orthogonal, but it mixes only within blocks of ``d``.

A randomized Hadamard rotation (:class:`HadamardRotation`) is ``Q = diag(s) H / sqrt(n)`` with
random signs ``s`` (QuaRot's ``random_hadamard_matrix``); ``x Q`` is computed in
``O(n log n + n p)`` per row by :meth:`HadamardRotation.apply` (sign flip, fast Walsh-Hadamard
transform over the ``2^k`` factor, a ``p x p`` product over the other).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from prodigy_sim.errors import ConfigError

__all__ = ["hadamard_matrix", "hadamard_order", "fwht", "HadamardRotation", "random_hadamard"]

_MAX_BASE = 1024  # largest Paley order searched


def _is_prime(q: int) -> bool:
    if q < 2:
        return False
    return all(q % f for f in range(2, math.isqrt(q) + 1))


def _paley_kind(p: int) -> int:
    """1 or 2 if a Paley construction (I or II, prime q) gives order ``p``, else 0."""
    if p % 4 == 0 and _is_prime(p - 1) and (p - 1) % 4 == 3:
        return 1
    if p % 4 == 0 and _is_prime(p // 2 - 1) and (p // 2 - 1) % 4 == 1:
        return 2
    return 0


def _buildable_base(p: int) -> bool:
    return p in (1, 2) or _paley_kind(p) > 0


def _split(n: int) -> tuple[int, int] | None:
    """``(p, 2^k)`` with ``n = p 2^k``, ``p`` buildable and smallest, or None."""
    if n < 1:
        return None
    m = n & -n  # largest power of two dividing n
    odd = n // m
    p = odd
    while p <= min(n, _MAX_BASE):
        if n % p == 0 and _buildable_base(p):
            return p, n // p
        p *= 2
    return None


def hadamard_order(n: int) -> tuple[int, int] | None:
    """``(p, 2^k)`` if :func:`hadamard_matrix` builds order ``n`` as ``H_p (x) H_2^k``, else
    None."""
    return _split(int(n))


def _jacobsthal(q: int) -> np.ndarray:
    """Q[i, j] = chi(j - i) for the quadratic character chi mod prime q (chi(0) = 0)."""
    squares = np.zeros(q, dtype=np.int64)
    squares[(np.arange(1, q) ** 2) % q] = 1
    chi = np.where(squares == 1, 1, -1)
    chi[0] = 0
    idx = (np.arange(q)[None, :] - np.arange(q)[:, None]) % q
    return chi[idx]


@lru_cache(maxsize=32)
def _base(p: int) -> np.ndarray:
    """Hadamard matrix of buildable order ``p`` (int8); read-only."""
    if p == 1:
        h = np.ones((1, 1), np.int64)
    elif p == 2:
        h = np.array([[1, 1], [1, -1]], np.int64)
    elif _paley_kind(p) == 1:
        q = p - 1
        s = np.zeros((p, p), np.int64)
        s[0, 1:] = 1
        s[1:, 0] = -1
        s[1:, 1:] = _jacobsthal(q)
        h = s + np.eye(p, dtype=np.int64)
    else:
        q = p // 2 - 1
        c = np.zeros((q + 1, q + 1), np.int64)
        c[0, 1:] = 1
        c[1:, 0] = 1
        c[1:, 1:] = _jacobsthal(q)
        plus = np.array([[1, 1], [1, -1]], np.int64)
        zero = np.array([[1, -1], [-1, -1]], np.int64)
        h = np.kron(c, plus) + np.kron(np.eye(q + 1, dtype=np.int64), zero)
    out = h.astype(np.int8)
    out.flags.writeable = False
    return out


def _sylvester(m: int) -> np.ndarray:
    h = np.ones((1, 1), np.int8)
    while h.shape[0] < m:
        h = np.block([[h, h], [h, -h]])
    return h


def hadamard_matrix(n: int) -> np.ndarray:
    """A Hadamard matrix of order ``n`` (int8 ``(n, n)``, entries +-1, ``H H^T = n I``), built as
    ``H_p (x) H_2^k`` (module docstring). Raises :class:`ConfigError` for other orders."""
    split = _split(int(n))
    if split is None:
        raise ConfigError(f"no Hadamard matrix of order {n} is built here (orders 2^k * p with p "
                          "in 1, 2 or a Paley order from a prime); use a block-diagonal "
                          "rotation (random_hadamard(..., block_diagonal=True))")
    p, m = split
    return np.kron(_base(p), _sylvester(m)).astype(np.int8)


def fwht(x: np.ndarray) -> np.ndarray:
    """Unnormalized fast Walsh-Hadamard transform along the last axis: ``x @ H_n`` for the
    Sylvester matrix of order ``n = x.shape[-1]`` (a power of two), float64, ``n log2 n`` adds."""
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[-1]
    if n & (n - 1):
        raise ConfigError(f"fwht needs a power-of-two length (got {n})")
    lead = x.shape[:-1]
    y = x.reshape(-1, n).copy()
    h = 1
    while h < n:
        v = y.reshape(-1, n // (2 * h), 2, h)
        a = v[:, :, 0, :].copy()
        b = v[:, :, 1, :]
        v[:, :, 0, :] += b
        v[:, :, 1, :] = a - b
        h *= 2
    return y.reshape(*lead, n)


@dataclass(frozen=True, eq=False)
class HadamardRotation:
    """An orthogonal ``Q = diag(signs) (I_blocks (x) H_d) / sqrt(d)`` of size ``n = blocks * d``,
    ``H_d = H_p (x) H_m`` (``m`` a power of two). ``blocks = 1`` is a true randomized Hadamard
    rotation; ``blocks > 1`` the block-diagonal fallback.

    ``signs``: float64 ``(n,)`` of +-1.
    """

    n: int
    signs: np.ndarray
    p: int
    m: int
    blocks: int = 1

    @property
    def d(self) -> int:
        """Order of each Hadamard block."""
        return self.p * self.m

    def ops_per_row(self) -> dict[str, int]:
        """Arithmetic of one online :meth:`apply` on a row of ``n`` values: ``sign_flips`` (n),
        ``add_sub`` of the fast transform (``n log2 m``), ``mul_add`` of the ``p x p`` factor
        (``n p``, 0 when ``p = 1``) and ``scale_mul`` by ``1 / sqrt(d)`` (n; foldable into the
        next weights when they are rotated too)."""
        return {"sign_flips": self.n, "add_sub": self.n * (self.m.bit_length() - 1),
                "mul_add": self.n * self.p if self.p > 1 else 0, "scale_mul": self.n}

    def matrix(self) -> np.ndarray:
        """``Q`` as float64 ``(n, n)``."""
        hd = np.kron(_base(self.p), _sylvester(self.m)).astype(np.float64) / math.sqrt(self.d)
        full = np.kron(np.eye(self.blocks), hd) if self.blocks > 1 else hd
        return self.signs[:, None] * full

    def apply(self, x: np.ndarray, *, transpose: bool = False) -> np.ndarray:
        """``x @ Q`` (or ``x @ Q^T``) along the last axis of ``x (..., n)``, float64, without
        forming ``Q``: the online transform."""
        x = np.asarray(x, dtype=np.float64)
        if x.shape[-1] != self.n:
            raise ConfigError(f"the rotation has size {self.n}, the input has {x.shape[-1]}")
        lead = x.shape[:-1]
        y = x if transpose else x * self.signs
        # index i = block * d + ip * m + im;  y[b, a, c] = sum_{i, j} x[b, i, j] Hp[i, a] Hm[j, c]
        v = fwht(y.reshape(-1, self.blocks, self.p, self.m))
        if self.p > 1:
            # y[..., a, :] = sum_i v[..., i, :] hp[i, a], i = 0, 1, .. in order (entries +-1):
            # plain elementwise numpy, the same bits on every host (no BLAS / einsum kernels)
            hp = _base(self.p).astype(np.float64)
            mat = hp.T if transpose else hp
            out = np.empty_like(v)
            for a in range(self.p):
                acc = v[:, :, 0, :] * mat[0, a]
                for i in range(1, self.p):
                    acc = acc + v[:, :, i, :] * mat[i, a]
                out[:, :, a, :] = acc
            v = out
        v = v.reshape(*lead, self.n) / math.sqrt(self.d)
        return v * self.signs if transpose else v


def random_hadamard(n: int, seed: int = 0, *, block_diagonal: bool = False) -> HadamardRotation:
    """A randomized Hadamard rotation of size ``n`` with signs from ``numpy.random.default_rng(
    seed)`` (deterministic on every platform).

    ``block_diagonal``: if ``n`` is not a buildable Hadamard order, use ``I (x) H_d`` with the
    largest buildable ``d`` dividing ``n`` instead of raising :class:`ConfigError`.
    """
    n = int(n)
    if n < 1:
        raise ConfigError(f"a rotation needs size >= 1 (got {n})")
    split = _split(n)
    blocks = 1
    if split is None:
        if not block_diagonal:
            hadamard_matrix(n)  # raises with the explanation
        d = max(d for d in range(1, n + 1) if n % d == 0 and _split(d) is not None)
        blocks = n // d
        split = _split(d)
    assert split is not None  # d was chosen among the sizes that split
    p, m = split
    signs = np.random.default_rng(seed).integers(0, 2, n) * 2.0 - 1.0
    return HadamardRotation(n=n, signs=signs, p=p, m=m, blocks=blocks)
