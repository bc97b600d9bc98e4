"""First-come-first-served ports (a controller's or an L2 slice's link into the mesh, a core's
link out of it) as one Numba pass over the elements in (port, ready) order."""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["fifo_departures", "group_packets"]


@njit(cache=True)
def _fifo(order, port, ready, nbytes, free, bw, out):
    """Per element ``j`` in ``order`` (sorted by port, then ready): in bytes of its port,
    ``D_j = max(ready_j bw, D_prev) + nbytes_j`` with ``D_prev`` the port's previous departure
    (``free[port] bw`` at first); ``out[j] = ceil(D_j / bw)`` cycles. ``free`` ends as every
    port's last departure (cycles)."""
    n = order.shape[0]
    i = 0
    while i < n:
        p = port[order[i]]
        d = free[p] * bw
        dep = free[p]
        while i < n and port[order[i]] == p:
            j = order[i]
            a = ready[j] * bw
            if a > d:
                d = a
            d += nbytes[j]
            dep = -(-d // bw)
            out[j] = dep
            i += 1
        free[p] = dep


def fifo_departures(order: np.ndarray, port: np.ndarray, ready: np.ndarray,
                    nbytes: np.ndarray, free: np.ndarray, bw: int) -> np.ndarray:
    """Departure cycle of every element (int64, shape (n,)) through its port: see :func:`_fifo`.
    ``order`` must group the elements by port, each port's in ready order; ``free`` (int64,
    per port) is updated in place."""
    out = np.empty(port.size, np.int64)
    if port.size:
        _fifo(order.astype(np.int64, copy=False), port.astype(np.int64, copy=False),
              ready.astype(np.int64, copy=False), nbytes.astype(np.int64, copy=False), free,
              np.int64(bw), out)
    return out


@njit(cache=True)
def _packets(dma, line, ready, slices, n):
    """One pass of :func:`group_packets` (dense per (DMA, slice) counters, then their nonzero
    entries in key order)."""
    m = n * slices
    counts = np.zeros(m, np.int64)
    last = np.zeros(m, np.int64)
    for i in range(dma.shape[0]):
        k = dma[i] * slices + line[i] % slices
        counts[k] += 1
        if ready[i] > last[k]:
            last[k] = ready[i]
    nz = 0
    for k in range(m):
        if counts[k]:
            nz += 1
    pd = np.empty(nz, np.int64)
    home = np.empty(nz, np.int64)
    cnt = np.empty(nz, np.int64)
    lst = np.empty(nz, np.int64)
    j = 0
    for k in range(m):
        if counts[k]:
            pd[j] = k // slices
            home[j] = k % slices
            cnt[j] = counts[k]
            lst[j] = last[k]
            j += 1
    return pd, home, cnt, lst


def group_packets(dma: np.ndarray, line: np.ndarray, ready: np.ndarray, slices: int, n: int
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Group on-chip lines (int64, shape (k,): the DMA of each, < ``n``; its line index, homed
    in L2 slice ``line % slices``; the cycle it is in its slice, >= 0) into packets, one per
    (DMA, slice) in (DMA, slice) order: dma, slice, lines and the cycle the last of them is in
    the slice (int64, shape (p,) each)."""
    return _packets(dma.astype(np.int64, copy=False), line.astype(np.int64, copy=False),
                    ready.astype(np.int64, copy=False), np.int64(slices), np.int64(n))
