"""First-come-first-served ports (a controller's or an L2 slice's link into the mesh, a core's
link out of it) as one Numba pass over the elements in (port, ready) order."""

from __future__ import annotations

import numpy as np
from numba import njit

from prodigy_sim.timing._ddr import _sort_runs, counting_order

__all__ = ["fifo_ports", "group_packets", "hit_packets"]


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


@njit(cache=True)
def _port_order(port, ready, nports):
    """Stable order of the elements by (port, ready): a counting sort by port (stable), then
    each port's elements in stable ready order (:func:`_sort_runs` where they are not already
    in order: they usually are). The same permutation as a stable argsort of the pair."""
    order, group = counting_order(port, nports)
    for p in range(nports):
        lo = group[p]
        hi = group[p + 1]
        for j in range(lo + 1, hi):
            if ready[order[j]] < ready[order[j - 1]]:
                _sort_runs(order, lo, hi, ready)
                break
    return order


@njit(cache=True)
def _fifo_ports(port, ready, count, line, free, bw, out):
    """:func:`_fifo` over the elements in :func:`_port_order`; element ``j`` carries
    ``count[j] * line`` bytes (``line`` when ``count`` is empty)."""
    order = _port_order(port, ready, free.shape[0])
    n = port.shape[0]
    if count.shape[0]:
        nbytes = count * line
    else:
        nbytes = np.full(n, line, np.int64)
    _fifo(order, port, ready, nbytes, free, bw, out)


def fifo_ports(port: np.ndarray, ready: np.ndarray, free: np.ndarray, bw: int, line: int,
               count: np.ndarray | None = None) -> np.ndarray:
    """Cycle (int64, shape (n,)) the last line of each element - a line, or a packet of
    ``count[j]`` lines of ``line`` bytes - has crossed its port ``port[j]`` (< ``free.size``):
    every port serves its elements first come first served in (ready, then element) order,
    ``line / bw`` cycles per line, no earlier than ``free[port]`` (int64, cycles; updated in
    place to the port's last departure). Per port ``d_j = max(ready_j, d_{j-1}) + c_j line /
    bw``, evaluated in byte units (``cycles x bw``) so it stays integer (:func:`_fifo`). The
    order is sorted in the same Numba call (:func:`_port_order`), or, for more than
    ``RADIX_SORT_MIN`` elements, by a radix sort of (port, ready) (:func:`_radix_argsort`:
    faster on long unsorted runs; the same order)."""
    n = port.size
    out = np.empty(n, np.int64)
    if not n:
        return out
    port = port.astype(np.int64, copy=False)
    ready = ready.astype(np.int64, copy=False)
    if n > RADIX_SORT_MIN:
        nbytes = np.full(n, line, np.int64) if count is None else count * line
        _fifo(_argsort_pairs(port, ready), port, ready, nbytes.astype(np.int64, copy=False),
              free, np.int64(bw), out)
    else:
        _fifo_ports(port, ready,
                    _NO_COUNT if count is None else count.astype(np.int64, copy=False),
                    np.int64(line), free, np.int64(bw), out)
    return out


RADIX_SORT_MIN = 4096
"""Elements from which :func:`fifo_ports` orders them with :func:`_radix_argsort`."""
_NO_COUNT = np.zeros(0, np.int64)


def _argsort_pairs(port: np.ndarray, ready: np.ndarray) -> np.ndarray:
    """Stable order by (port, ready) (int64, shape (n,), n >= 1): one stable radix argsort of
    a combined integer key, a lexsort if the key could overflow."""
    lo = int(ready.min())
    span = int(ready.max()) - lo + 1
    if span * (int(port.max()) + 1) >= 1 << 62:
        return np.lexsort((ready, port))
    return _radix_argsort(port * span + (ready - lo))


_RADIX_BITS = 11


@njit(cache=True)
def _radix_argsort(key):
    """Stable argsort of non-negative int64 keys (shape (n,)): least significant digit first,
    ``_RADIX_BITS`` bits a pass, as many passes as the largest key needs (the same
    permutation as numpy's stable argsort)."""
    n = key.shape[0]
    top = 0
    for i in range(n):
        if key[i] > top:
            top = key[i]
    radix = 1 << _RADIX_BITS
    mask = radix - 1
    order = np.arange(n)
    k = key.copy()
    order2 = np.empty(n, np.int64)
    k2 = np.empty(n, np.int64)
    counts = np.empty(radix + 1, np.int64)
    shift = 0
    while True:
        counts[:] = 0
        for i in range(n):
            counts[((k[i] >> shift) & mask) + 1] += 1
        for d in range(radix):
            counts[d + 1] += counts[d]
        for i in range(n):
            d = (k[i] >> shift) & mask
            j = counts[d]
            order2[j] = order[i]
            k2[j] = k[i]
            counts[d] = j + 1
        order, order2 = order2, order
        k, k2 = k2, k
        shift += _RADIX_BITS
        if (top >> shift) == 0:
            break
    return order


@njit(cache=True)
def _tally(counts, last, dma, line, ready, slices):
    """Add lines to the dense per (DMA, slice) packet counters: the count, and the latest
    ``ready``."""
    for i in range(dma.shape[0]):
        k = dma[i] * slices + line[i] % slices
        counts[k] += 1
        if ready[i] > last[k]:
            last[k] = ready[i]


@njit(cache=True)
def _nonzero_packets(counts, last, slices):
    """The packets the counters hold, in key order: dma, slice, lines, last ready."""
    m = counts.shape[0]
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


@njit(cache=True)
def _packets(dma, line, ready, slices, n):
    """One pass of :func:`group_packets` (dense per (DMA, slice) counters, then their nonzero
    entries in key order)."""
    m = n * slices
    counts = np.zeros(m, np.int64)
    last = np.zeros(m, np.int64)
    _tally(counts, last, dma, line, ready, slices)
    return _nonzero_packets(counts, last, slices)


@njit(cache=True)
def _hit_packets(dma, line, hit, ent, entry_ready, odma, oline, slices, n):
    """:func:`_packets` of the lines ``i`` with ``hit[i]`` (ready ``entry_ready[ent[i]]``) and
    of the lines ``odma``, ``oline`` (ready 0), without gathering them first."""
    m = n * slices
    counts = np.zeros(m, np.int64)
    last = np.zeros(m, np.int64)
    for i in range(dma.shape[0]):
        if hit[i]:
            k = dma[i] * slices + line[i] % slices
            counts[k] += 1
            r = entry_ready[ent[i]]
            if r > last[k]:
                last[k] = r
    for i in range(odma.shape[0]):
        counts[odma[i] * slices + oline[i] % slices] += 1
    return _nonzero_packets(counts, last, slices)


def hit_packets(dma: np.ndarray, line: np.ndarray, hit: np.ndarray, ent: np.ndarray,
                entry_ready: np.ndarray, odma: np.ndarray, oline: np.ndarray, slices: int,
                n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """:func:`group_packets` of a batch's on-chip reads: the L3 hits among ``dma``, ``line``
    (int64, shape (k,); ``hit`` bool, ``ent`` the L3 entry of each, ready in its slice at
    ``entry_ready[ent]``) together with the lines ``odma``, ``oline`` (int64, shape (j,)) of
    resident tensors, in their slices from the start (ready 0). The same packets as
    :func:`group_packets` of the hits and those lines concatenated."""
    return _hit_packets(dma, line, hit, ent, entry_ready, odma, oline, np.int64(slices),
                        np.int64(n))


def group_packets(dma: np.ndarray, line: np.ndarray, ready: np.ndarray, slices: int, n: int
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Group on-chip lines (int64, shape (k,): the DMA of each, < ``n``; its line index, homed
    in L2 slice ``line % slices``; the cycle it is in its slice, >= 0) into packets, one per
    (DMA, slice) in (DMA, slice) order: dma, slice, lines and the cycle the last of them is in
    the slice (int64, shape (p,) each)."""
    return _packets(dma.astype(np.int64, copy=False), line.astype(np.int64, copy=False),
                    ready.astype(np.int64, copy=False), np.int64(slices), np.int64(n))
