"""First-come-first-served ports (a controller's or an L2 slice's link into the mesh, a core's
link out of it) as one Numba pass over the elements of a batch in (port, ready) order.

A :class:`PortCalendar` serves batch after batch (the memory system's flushes). Within a batch
each port serves its elements first come first served as they become ready; across batches it
remembers its reservations as busy intervals, not as one free cycle: an element of a later
batch that is ready in a gap the earlier batches left - before a packet that waits for a DDR
fill, say - crosses the port in that gap if it fits, instead of queueing behind the port's last
reservation (a single free cycle per port made every later batch wait for it: the batch seam).
Earlier reservations are never moved, so no two transfers ever share a port's cycle.

What it forgets: the reservations that end before its *horizon*, the latest first start of any
batch so far (the memory system's flushes). The cores of the timing model run on their own
clocks, so a later batch can hold a transfer of a core that lags the earlier batches' first
starts; such an element starts no earlier than the horizon (the port before it is not known any
more), a conservative delay of at most the lag. The calendar counts them (``late``).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from prodigy_sim.timing._ddr import _sort_runs, counting_order, group_offsets

__all__ = ["PortCalendar", "deliver", "group_packets", "hit_packets"]


INSERTION_SORT_MAX = 32
"""Longest group of one port's elements :func:`_port_order` puts in ready order by an insertion
sort (a port's elements in a batch are few: about four per port of 128 in a prefill's
flush); a batch with a longer unsorted group (the lines and packets of a few DMAs at their
cores' ports) is ordered by :func:`_radix_pairs` instead. Both are stable: the same order."""


@njit(cache=True)
def _insertion_sort(order, lo, hi, key):
    """Stable-sort ``order[lo:hi]`` by ``key[order[j]]`` in place (an insertion sort)."""
    for i in range(lo + 1, hi):
        x = order[i]
        k = key[x]
        j = i - 1
        while j >= lo and key[order[j]] > k:
            order[j + 1] = order[j]
            j -= 1
        order[j + 1] = x


@njit(cache=True)
def _row_need(group, lo, hi):
    """The longest row a port needs for a batch: its live intervals (``hi - lo``) plus one per
    new element (port ``p``'s are ``group[p]:group[p + 1]`` of the batch in port order)."""
    need = 0
    for p in range(lo.shape[0]):
        if group[p + 1] - group[p] + hi[p] - lo[p] > need:
            need = group[p + 1] - group[p] + hi[p] - lo[p]
    return need


@njit(cache=True)
def _port_order(port, ready, nports, lo, hi):
    """Stable order of the elements by (port, ready): a counting sort by port (stable), then
    each port's elements in stable ready order (:func:`_insertion_sort` where they are not
    already in order: they usually are); if a longer group is out of order, the whole batch
    by :func:`_radix_pairs` (or, should its key overflow, such groups by :func:`_sort_runs`).
    The same permutation as a stable argsort of the pair. Also returns the longest row a port
    needs: its live intervals (``hi - lo``) plus one per new element."""
    order, group = counting_order(port, nports)
    need = _row_need(group, lo, hi)
    long_unsorted = False
    for p in range(nports):
        a = group[p]
        b = group[p + 1]
        for j in range(a + 1, b):
            if ready[order[j]] < ready[order[j - 1]]:
                if b - a <= INSERTION_SORT_MAX:
                    _insertion_sort(order, a, b, ready)
                else:
                    long_unsorted = True
                break
    if long_unsorted:
        by_key = _radix_pairs(port, ready)
        if by_key.shape[0]:
            return by_key, need
        for p in range(nports):
            a = group[p]
            b = group[p + 1]
            if b - a > INSERTION_SORT_MAX:
                _sort_runs(order, a, b, ready)
    return order, need


@njit(cache=True)
def _first_after(row, lo, hi, t):
    """First index in ``lo .. hi`` whose ``row`` value (sorted) exceeds ``t`` (bisection)."""
    while lo < hi:
        mid = (lo + hi) >> 1
        if row[mid] <= t:
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(cache=True)
def _serve(order, port, ready, nbytes, bw, gap, S, E, lo, hi, horizon, out, cursor):
    """First come first served around reservations: per port ``p`` of ``order``'s port groups
    (its elements in ready order), the busy intervals ``[S[p, q], E[p, q])`` for ``q`` in
    ``lo[p] .. hi[p]`` (byte units, sorted, disjoint; rows have room for the port's elements,
    see :meth:`PortCalendar.serve`). Element ``j`` starts at the first ``t >= max(ready_j bw,
    horizon, D_prev)`` where its ``nbytes_j`` fit before the next interval (``D_prev``: the
    previous element's end on its port in this batch); ``out[j] = ceil((t + nbytes_j) /
    bw)``. The port's row then drops the intervals that end by ``horizon`` (bytes) and takes
    the batch's, intervals less than ``gap`` bytes apart merged (no element fits there);
    ``cursor``: one interval from 0 to the last end (no gaps to fill). Only the ports with
    elements are touched. Returns how many elements were ready before ``horizon`` (they start
    at it: what the port did before is forgotten), the sum and the largest of their delays
    (bytes: ``horizon - ready_j bw``)."""
    n = order.shape[0]
    cap = S.shape[1]
    bs = np.empty(n, np.int64)                  # one port's new intervals
    be = np.empty(n, np.int64)
    ts = np.empty(cap, np.int64)                # the old tail being merged
    te = np.empty(cap, np.int64)
    late = 0
    lag = np.int64(0)
    lag_max = np.int64(0)
    i = 0
    while i < n:
        p = port[order[i]]
        a0 = lo[p]
        h = hi[p]
        while a0 < h and E[p, a0] <= horizon:
            a0 += 1
        k = 0
        q = _first_after(E[p], a0, h, max(ready[order[i]] * bw, horizon))
        d = np.int64(0)
        while i < n and port[order[i]] == p:
            j = order[i]
            t = ready[j] * bw
            if t < horizon:
                lag += horizon - t
                lag_max = max(lag_max, horizon - t)
                t = horizon
                late += 1
            if t < d:
                t = d
            s = nbytes[j]
            while q < h and E[p, q] <= t:
                q += 1
            while q < h and S[p, q] < t + s:        # overlaps: wait for its end
                if E[p, q] > t:
                    t = E[p, q]
                q += 1
            d = t + s
            out[j] = -(-d // bw)
            if k and t - be[k - 1] < gap:
                be[k - 1] = d
            else:
                bs[k] = t
                be[k] = d
                k += 1
            i += 1
        # merge: the old intervals before the first new one stay; from the one before it on
        # (it may absorb new ones), the old tail and the new intervals are merged in place
        ins = _first_after(S[p], a0, h, bs[0])
        w = ins - 1 if ins > a0 else a0
        m = h - w
        for x in range(m):
            ts[x] = S[p, w + x]
            te[x] = E[p, w + x]
        if w + m + k > cap:                     # slide the row to its start
            shift = a0
            for x in range(a0, w):
                S[p, x - shift] = S[p, x]
                E[p, x - shift] = E[p, x]
            a0 -= shift
            w -= shift
        a = 0
        b = 0
        while a < m or b < k:
            if b == k or (a < m and ts[a] <= bs[b]):
                x0 = ts[a]
                x1 = te[a]
                a += 1
            else:
                x0 = bs[b]
                x1 = be[b]
                b += 1
            if w > a0 and (cursor or x0 - E[p, w - 1] < gap):
                if x1 > E[p, w - 1]:
                    E[p, w - 1] = x1
            else:
                S[p, w] = 0 if cursor else x0
                E[p, w] = x1
                w += 1
        lo[p] = a0
        hi[p] = w
    return late, lag, lag_max


class PortCalendar:
    """The reservations of ``nports`` ports of ``bw`` bytes a cycle, across batches (see the
    module docstring): per port, a row of sorted disjoint busy intervals in byte units
    (``cycles x bw``; live from ``lo[p]`` to ``hi[p]``) that end after the horizon as far as
    the port has been used since (a row is pruned when the port is next used). Elements are
    lines or packets of ``line``-byte lines; a gap shorter than a line holds none, so such gaps
    are merged away. ``served``: elements served; ``late``: those of them that were ready
    before the horizon (started at it), ``late_cycles`` the sum of their delays and
    ``late_cycles_max`` the largest (cycles).
    ``gaps=False``: a port is free only after its last reservation (one free cycle per port,
    no gaps filled)."""

    def __init__(self, nports: int, bw: int, line: int, gaps: bool = True) -> None:
        self.gaps = gaps
        self.bw = int(bw)
        self.line = int(line)
        self.lo = np.zeros(nports, np.int64)
        self.hi = np.zeros(nports, np.int64)
        self.S = np.zeros((nports, 16), np.int64)
        self.E = np.zeros((nports, 16), np.int64)
        self.horizon = 0
        self.served = 0
        self.late = 0
        self.late_cycles = 0.0
        self.late_cycles_max = 0.0

    def busy(self, port: int) -> list[tuple[int, int]]:
        """Port ``port``'s reservations ``[(start, end), ...]`` (byte units) that end after
        the horizon."""
        lo, hi = int(self.lo[port]), int(self.hi[port])
        top = self.horizon * self.bw
        return [(s, e) for s, e in zip(self.S[port, lo:hi].tolist(),
                                       self.E[port, lo:hi].tolist(), strict=True) if e > top]

    def serve(self, port: np.ndarray, ready: np.ndarray, horizon: int,
              count: np.ndarray | None = None) -> np.ndarray:
        """Cycle (int64, shape (n,)) the last byte of each element - a line, or a packet of
        ``count[j]`` lines - has crossed its port ``port[j]``, ready at ``ready[j]`` (cycles):
        per port first come first served in (ready, element) order (:func:`_port_order`),
        each in the first gap of the earlier batches' reservations where it fits
        (:func:`_serve`). ``horizon`` (cycles): the batch's first start; the calendar's
        horizon becomes the largest so far, reservations that end before it are dropped, and
        an element ready before it starts at it."""
        h = self.advance(horizon)
        n = port.size
        if not n:
            return np.empty(0, np.int64)
        nbytes = (np.full(n, self.line, np.int64) if count is None
                  else count.astype(np.int64, copy=False) * self.line)
        out, self.S, self.E, late, lag, lag_max = _serve_batch(
            port.astype(np.int64, copy=False), ready.astype(np.int64, copy=False), nbytes,
            self.S, self.E, self.lo, self.hi, np.int64(self.bw), np.int64(self.line), h,
            not self.gaps)
        self.account(n, late, lag, lag_max)
        return out

    def advance(self, horizon: int) -> np.int64:
        """Raise the calendar's horizon to ``horizon`` (cycles) if it is later; the horizon in
        byte units (what :func:`_serve_batch` takes)."""
        self.horizon = max(self.horizon, horizon)
        return np.int64(self.horizon) * self.bw

    def account(self, n: int, late: int, lag: int, lag_max: int) -> None:
        """Count a batch of ``n`` elements served by :func:`_serve_batch` (its ``late``
        elements, their summed and largest delay in byte units)."""
        self.served += n
        self.late += int(late)
        self.late_cycles += int(lag) / self.bw
        self.late_cycles_max = max(self.late_cycles_max, int(lag_max) / self.bw)


RADIX_SORT_MIN = 4096
"""Elements from which :meth:`PortCalendar.serve` orders them with :func:`_radix_argsort`
(faster on long unsorted runs; the same order as :func:`_port_order`)."""


@njit(cache=True)
def _radix_pairs(port, ready):
    """Stable order by (port, ready) (shape (n,), n >= 1) by one stable radix argsort of the
    combined key ``port * span + ready - min``; an empty array if that key could reach 2**62."""
    r0 = ready.min()
    span = ready.max() - r0 + 1
    ports = port.max() + 1
    limit = np.int64(1) << 62
    if span >= limit // ports + (1 if limit % ports else 0):
        return np.empty(0, np.int64)
    return _radix_argsort(port * span + (ready - r0))


@njit(cache=True)
def _pair_order(port, ready, nports, lo, hi):
    """:func:`_port_order` of a long batch: :func:`_radix_pairs` directly (or
    :func:`_port_order` should its key overflow), and the longest row a port needs."""
    order = _radix_pairs(port, ready)
    if not order.shape[0]:
        return _port_order(port, ready, nports, lo, hi)
    return order, _row_need(group_offsets(port, nports), lo, hi)


@njit(cache=True)
def _grow(S, E, lo, hi, need):
    """The rows ``S``, ``E`` with room for ``need`` intervals each: the same arrays if they
    have it, else new ones of doubled length (as often as needed) with each row's live
    intervals moved to its start (``lo``, ``hi`` updated in place)."""
    cap = S.shape[1]
    if need <= cap:
        return S, E
    while cap < need:
        cap *= 2
    S2 = np.zeros((S.shape[0], cap), np.int64)
    E2 = np.zeros((S.shape[0], cap), np.int64)
    for p in range(S.shape[0]):
        m = hi[p] - lo[p]
        for x in range(m):
            S2[p, x] = S[p, lo[p] + x]
            E2[p, x] = E[p, lo[p] + x]
        lo[p] = 0
        hi[p] = m
    return S2, E2


@njit(cache=True)
def _serve_batch(port, ready, nbytes, S, E, lo, hi, bw, line, horizon, cursor):
    """One batch of :meth:`PortCalendar.serve` (``n >= 1`` elements; ``horizon`` in byte
    units): the elements in (port, ready) order (:func:`_port_order`, above
    :data:`RADIX_SORT_MIN` elements :func:`_pair_order`), the rows grown if they lack room
    (:func:`_grow`), then :func:`_serve`. Returns the departures (cycles), the rows (new
    arrays if grown) and :func:`_serve`'s lateness counts."""
    n = port.shape[0]
    if n > RADIX_SORT_MIN:
        order, need = _pair_order(port, ready, lo.shape[0], lo, hi)
    else:
        order, need = _port_order(port, ready, lo.shape[0], lo, hi)
    S, E = _grow(S, E, lo, hi, need)
    out = np.empty(n, np.int64)
    late, lag, lag_max = _serve(order, port, ready, nbytes, bw, line, S, E, lo, hi, horizon,
                                out, cursor)
    return out, S, E, late, lag, lag_max


_RADIX_BITS = 11


@njit(cache=True)
def _deliver(l_dma, l_leave, l_src, pd, home, cnt, ready, start, cores, recv_first,
             recv_count, recv_core, slice_core_lat, src_core_lat, nctrl, line, so_S, so_E,
             so_lo, so_hi, so_bw, so_h, so_cursor, ci_S, ci_E, ci_lo, ci_hi, ci_bw, ci_h,
             ci_cursor):
    """A batch's reads delivered to their receiving cores (DMA ``d``, started at ``start[d]``
    on core ``cores[d]``, is received by cores ``recv_core[recv_first[d] + q]`` for ``q <
    recv_count[d]``: itself, or a multicast group): the DDR lines (DMA ``l_dma``, leaving
    controller port ``l_src`` at ``l_leave``) and the on-chip packets (DMA ``pd`` of ``cnt``
    lines from L2 slice ``home``, in the slice at ``ready``), the packets first through their
    slices' ports into the mesh (calendar ``so_*``, ready once the request reached the slice
    and the data is there), then every element, once per receiver, through the receiver's port
    out of the mesh (calendar ``ci_*``) in that order: the lines, then the packets, each
    element's receivers one after the other. ``*_h``: the calendars' horizons in byte units.
    Returns the cycle each receiver's last element has crossed its port (0 for none), the
    elements the cores' ports served, both calendars' rows and their :func:`_serve` lateness
    counts."""
    a = l_dma.shape[0]
    m = pd.shape[0]
    base_dma = np.empty(a + m, np.int64)        # per element: DMA, departure from its source
    leave = np.empty(a + m, np.int64)           # port, source port (row of src_core_lat),
    src = np.empty(a + m, np.int64)             # bytes
    nb = np.empty(a + m, np.int64)
    for i in range(a):
        base_dma[i] = l_dma[i]
        leave[i] = l_leave[i]
        src[i] = l_src[i]
        nb[i] = line
    so = (np.int64(0), np.int64(0), np.int64(0))
    if m:
        rs = np.empty(m, np.int64)
        snb = np.empty(m, np.int64)
        for j in range(m):
            r = start[pd[j]] + 1 + slice_core_lat[home[j], cores[pd[j]]]
            rs[j] = r if r > ready[j] else ready[j]
            snb[j] = cnt[j] * line
            nb[a + j] = snb[j]
        last, so_S, so_E, l1, g1, x1 = _serve_batch(home, rs, snb, so_S, so_E, so_lo, so_hi,
                                                    so_bw, line, so_h, so_cursor)
        so = (np.int64(l1), np.int64(g1), np.int64(x1))
        for j in range(m):
            base_dma[a + j] = pd[j]
            leave[a + j] = last[j] - ((cnt[j] - 1) * line) // so_bw
            src[a + j] = home[j] + nctrl
    k = 0
    for e in range(a + m):
        k += recv_count[base_dma[e]]
    rid = np.empty(k, np.int64)
    dest = np.empty(k, np.int64)
    arrive = np.empty(k, np.int64)
    enb = np.empty(k, np.int64)
    x = 0
    for e in range(a + m):
        d = base_dma[e]
        for q in range(recv_count[d]):
            r = recv_first[d] + q
            c = recv_core[r]
            rid[x] = r
            dest[x] = c
            arrive[x] = leave[e] + src_core_lat[src[e], c]
            enb[x] = nb[e]
            x += 1
    at, ci_S, ci_E, l2, g2, x2 = _serve_batch(dest, arrive, enb, ci_S, ci_E, ci_lo, ci_hi,
                                              ci_bw, line, ci_h, ci_cursor)
    recv = np.zeros(recv_core.shape[0], np.int64)
    for i in range(k):
        if at[i] > recv[rid[i]]:
            recv[rid[i]] = at[i]
    return (recv, np.int64(k), so_S, so_E, so[0], so[1], so[2], ci_S, ci_E, np.int64(l2),
            np.int64(g2), np.int64(x2))


def deliver(lines: tuple[np.ndarray, np.ndarray, np.ndarray],
            packets: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray], start: np.ndarray,
            cores: np.ndarray, receivers: tuple[np.ndarray, np.ndarray, np.ndarray] | None,
            slice_core_lat: np.ndarray, src_core_lat: np.ndarray, nctrl: int,
            slice_out: PortCalendar, core_in: PortCalendar, horizon: int) -> np.ndarray:
    """:func:`_deliver` on the calendars ``slice_out`` and ``core_in`` (their horizons raised
    to ``horizon``, cycles; the slices' only if there are packets): ``lines`` = (DMA, cycle it
    leaves its controller's port, controller) per DDR line, ``packets`` = (DMA, home slice,
    lines, cycle the last is in the slice) per packet, at least one element in all; ``start``,
    ``cores`` per DMA; ``receivers`` = (first, count per DMA; the receiving cores), None when
    every DMA is received by its own core (int64 throughout). The same departures, calendars
    and counts as serving the packets on ``slice_out`` and then every element, once per
    receiver, on ``core_in`` with :meth:`PortCalendar.serve`. Returns per receiver the cycle
    its last element has crossed its core's port (int64)."""
    if receivers is None:
        receivers = (np.arange(cores.size, dtype=np.int64), np.ones(cores.size, np.int64),
                     cores)
    pd = packets[0]
    so_h = slice_out.advance(horizon) if pd.size else np.int64(0)
    ci_h = core_in.advance(horizon)
    line = slice_out.line
    (recv, served, slice_out.S, slice_out.E, l1, g1, x1, core_in.S, core_in.E, l2, g2,
     x2) = _deliver(*lines, *packets, start, cores, *receivers, slice_core_lat, src_core_lat,
                    np.int64(nctrl), np.int64(line), slice_out.S, slice_out.E, slice_out.lo,
                    slice_out.hi, np.int64(slice_out.bw), so_h, not slice_out.gaps, core_in.S,
                    core_in.E, core_in.lo, core_in.hi, np.int64(core_in.bw), ci_h,
                    not core_in.gaps)
    if pd.size:
        slice_out.account(pd.size, l1, g1, x1)
    core_in.account(int(served), l2, g2, x2)
    return recv


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
