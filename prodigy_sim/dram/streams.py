"""Many independent DDR5 runs fed in pieces, with speculation: :class:`DramStreams`.

A chip model that cannot know its future requests (cores issue loads as earlier ones complete)
still needs to tell a waiting core when its requests complete. :class:`DramStreams` keeps ``G``
independent instances of one memory system (e.g. one per 32-bit subchannel of a socket), each a
persistent run of the DDR5 kernel - queues, open rows, refresh clock and tFAW window carried from
one call to the next - and answers with one :meth:`DramStreams.step` per batch of new requests:

1. the new requests join each instance's *future* list (sorted by arrival; requests that arrive
   at or after the horizon are held there, so a later call may still put an earlier arrival
   before them, as the controller's frontend would see them);
2. every instance runs **for real** up to ``horizon``, the DRAM cycle before which no later
   request can arrive (the caller's promise): every event before it is final, and the requests
   that arrive before it leave the future list for the run;
3. each instance that received requests is copied and the copy run to its end with the future
   list: the *speculated* completion of every new request, as if nothing else arrived.

Step 3 is the approximation: a request that arrives later and is served first (a row hit, say)
may delay a speculated one in the real run. :attr:`DramStreams.spec_stats` measures it: each
request's real completion (known once the real run reaches it) minus its speculated one.
Everything else is exact: requests per instance in arrival order, no seam between calls.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from prodigy_sim.dram import _kernel as K
from prodigy_sim.dram import mapping
from prodigy_sim.dram.config import MemorySystemConfig
from prodigy_sim.dram.model import _check_banks, _params, _stuck
from prodigy_sim.errors import ConfigError

__all__ = ["DramStreams", "SpeculationStats"]

# per-request fields, rows of one (fields, instances, capacity) int64 array
(R_OFFER, R_CHN, R_BGI, R_BKI, R_ROW, R_ADDR, R_ACC, R_FIRST, R_CLS, R_FIN, R_COMP, R_SPEC,
 R_TAG, R_ID) = range(14)
NFIELDS = 14
# speculation statistics (DramStreams._stats)
(SP_N, SP_LATE, SP_LATE_SUM, SP_LATE_MAX, SP_EARLY, SP_EARLY_SUM, SP_CLAMPED, SP_READS,
 SP_LATE_READS, SP_LATE_READ_SUM, SP_HIT, SP_MISS, SP_CONFLICT, SP_FORWARD) = range(14)
NSTATS = 14


@dataclass(frozen=True)
class SpeculationStats:
    """Speculated vs real completions of the requests the real runs have completed: how many
    (``requests``), how many completed later than speculated (``late``; their total and
    largest delay, DRAM cycles) or earlier (``early``, total), the same for the ``reads`` alone
    (``late_reads``, ``late_read_cycles``: a core waits for a load's data, while a store's
    completion only frees its DMA slot), and how many arrivals were
    before an earlier call's horizon (``clamped`` to it: the caller broke its promise; 0 in a
    correct use). Also the real runs' row-buffer outcome of every request they completed:
    ``row_hits``, ``row_misses``, ``row_conflicts`` (as the DDR5 model classifies a request by
    its bank's state at its first command) and ``forwarded`` (a read served from, or a write
    merged into, the write queue)."""

    requests: int
    late: int
    late_cycles: int
    late_max: int
    early: int
    early_cycles: int
    clamped: int
    reads: int = 0
    late_reads: int = 0
    late_read_cycles: int = 0
    row_hits: int = 0
    row_misses: int = 0
    row_conflicts: int = 0
    forwarded: int = 0

    @property
    def late_mean(self) -> float:
        """Mean delay of a request vs its speculated completion (DRAM cycles, over all)."""
        return self.late_cycles / self.requests if self.requests else 0.0


@njit(cache=True)
def _merge_new(R, isw, n_real, n_tot, g, lo, hi, offer, addr, is_w, tag, ids, coords, last,
               stats):
    """Append new requests ``lo:hi`` (offer-sorted) to instance ``g``'s future list and keep
    the list sorted by offer (stable: earlier calls' requests first among equal offers).
    ``coords`` (5, >= hi - lo): their mapped coordinates."""
    a = n_tot[g]
    m = hi - lo
    for j in range(m):
        o = offer[lo + j]
        if o < last[g]:
            o = last[g]
            stats[SP_CLAMPED] += 1
        k = a + j
        R[R_OFFER, g, k] = o
        R[R_CHN, g, k] = coords[0, j]
        R[R_BGI, g, k] = coords[1, j]
        R[R_BKI, g, k] = coords[2, j]
        R[R_ROW, g, k] = coords[3, j]
        R[R_ADDR, g, k] = addr[lo + j]
        R[R_COMP, g, k] = -1
        R[R_SPEC, g, k] = -1
        R[R_TAG, g, k] = tag[lo + j]
        R[R_ID, g, k] = ids[lo + j]
        isw[g, k] = is_w[lo + j]
    f0 = n_real[g]
    if a > f0 and m > 0 and R[R_OFFER, g, a] < R[R_OFFER, g, a - 1]:
        # stable sort of the future list by offer (it is short: requests beyond the horizon)
        perm = np.argsort(R[R_OFFER, g, f0:a + m], kind="mergesort")
        tmp = np.empty(a + m - f0, np.int64)
        for f in range(NFIELDS):
            for j in range(a + m - f0):
                tmp[j] = R[f, g, f0 + perm[j]]
            for j in range(a + m - f0):
                R[f, g, f0 + j] = tmp[j]
        tb = np.empty(a + m - f0, np.bool_)
        for j in range(a + m - f0):
            tb[j] = isw[g, f0 + perm[j]]
        for j in range(a + m - f0):
            isw[g, f0 + j] = tb[j]
    n_tot[g] = a + m


@njit(cache=True)
def _compact(R, isw, S, E, st, n_real, n_tot, g, channels, stats, final, out):
    """Drop instance ``g``'s leading requests the real run has completed (counting their
    speculated vs real completion into ``stats``; their completion into ``final`` by request
    id unless it is empty; a new request's - tag >= 0 - into ``out``: it needs no
    speculation)."""
    n = n_real[g]
    w0 = 0
    keep = final.shape[0] > 0
    while w0 < n and R[R_COMP, g, w0] >= 0:
        if keep:
            final[R[R_ID, g, w0]] = R[R_COMP, g, w0]
        c = R[R_CLS, g, w0]
        stats[SP_FORWARD if c < 0 else SP_HIT + c] += 1
        if R[R_TAG, g, w0] >= 0:
            out[R[R_TAG, g, w0]] = R[R_COMP, g, w0]
            R[R_SPEC, g, w0] = R[R_COMP, g, w0]
        d = R[R_COMP, g, w0] - R[R_SPEC, g, w0]
        if R[R_SPEC, g, w0] >= 0:
            stats[SP_N] += 1
            rd = not isw[g, w0]
            if rd:
                stats[SP_READS] += 1
            if d > 0:
                stats[SP_LATE] += 1
                stats[SP_LATE_SUM] += d
                if rd:
                    stats[SP_LATE_READS] += 1
                    stats[SP_LATE_READ_SUM] += d
                if d > stats[SP_LATE_MAX]:
                    stats[SP_LATE_MAX] = d
            elif d < 0:
                stats[SP_EARLY] += 1
                stats[SP_EARLY_SUM] -= d
        w0 += 1
    if w0 == 0:
        return
    K.shift_request_indices(S[g], E[g], st[g], channels, w0)
    m = n_tot[g]
    for f in range(NFIELDS):
        for j in range(m - w0):
            R[f, g, j] = R[f, g, j + w0]
    for j in range(m - w0):
        isw[g, j] = isw[g, j + w0]
    n_real[g] = n - w0
    n_tot[g] = m - w0


@njit(cache=True)
def _run(p, R, isw, S, E, nz, st, ref_stop, ref_total, g, n, until):
    """Instance ``g``'s real run of its first ``n`` requests up to ``until``, and on until its
    frontend has accepted all of them."""
    return K.run_kernel(p, R[R_OFFER, g], R[R_CHN, g], R[R_BGI, g], R[R_BKI, g], R[R_ROW, g],
                        R[R_ADDR, g], isw[g], R[R_ACC, g], R[R_FIRST, g], R[R_CLS, g],
                        R[R_FIN, g], R[R_COMP, g], ref_stop[g], ref_total[g], n, S[g], E[g],
                        nz[g], st[g], until, True)


@njit(cache=True)
def _step_kernel(p, offset_bits, channel_bits, shift, mask, bpg, bg_xor,
                 R, isw, S, E, nz, st, ref_stop, ref_total, n_real, n_tot, last,
                 start, offer, addr, is_w, tag, ids, horizon, out, stats, R1, final):
    """One :meth:`DramStreams.step` for every instance: merge, real run to ``horizon``,
    compaction, speculation (``R1``: one instance's scratch rows of the outputs). Returns (instance,
    status) of the first failed run, or (-1, 0)."""
    G = start.size - 1
    big = 1
    for g in range(G):
        big = max(big, start[g + 1] - start[g])
    coords = np.empty((5, big), np.int64)
    addr_u = addr.view(np.uint64)
    channels = p[K.P_CHANNELS]
    S1 = np.empty(S.shape[1], np.int64)
    E1 = np.empty(E.shape[1], np.int64)
    nz1 = np.empty(nz.shape[1], np.uint64)
    st1 = np.empty(st.shape[1], np.int64)
    rs1 = np.empty(ref_stop.shape[1], np.int64)
    rt1 = np.empty(ref_total.shape[1], np.int64)
    for g in range(G):
        lo = start[g]
        hi = start[g + 1]
        if hi > lo:
            mapping._map_kernel(addr_u[lo:hi], offset_bits, channel_bits, shift, mask, bpg,
                                bg_xor, coords)
            _merge_new(R, isw, n_real, n_tot, g, lo, hi, offer, addr, is_w, tag, ids, coords,
                       last, stats)
        # the requests arriving before the horizon join the real run, which runs up to it
        k = n_real[g]
        while k < n_tot[g] and R[R_OFFER, g, k] < horizon:
            k += 1
        n_real[g] = k
        if k > 0:
            _, status = _run(p, R, isw, S, E, nz, st, ref_stop, ref_total, g, k, horizon)
            if status != 0:
                return g, status
        if horizon > last[g]:
            last[g] = horizon
        if final.shape[0] > 0:          # every completion known so far, by request id
            for j in range(n_real[g]):
                if R[R_COMP, g, j] >= 0:
                    final[R[R_ID, g, j]] = R[R_COMP, g, j]
        _compact(R, isw, S, E, st, n_real, n_tot, g, channels, stats, final,
                 out)
        if hi == lo:
            continue
        # speculation: a copy of the run (its state and outputs), with every held request, to
        # its end; the requests' inputs are only read
        m = n_tot[g]
        for f in (R_ACC, R_FIRST, R_CLS, R_FIN, R_COMP):
            for j in range(m):
                R1[f, 0, j] = R[f, g, j]
        S1[:] = S[g]
        E1[:] = E[g]
        nz1[:] = nz[g]
        st1[:] = st[g]
        rs1[:] = ref_stop[g]
        rt1[:] = ref_total[g]
        _, status = K.run_kernel(p, R[R_OFFER, g], R[R_CHN, g], R[R_BGI, g], R[R_BKI, g],
                                 R[R_ROW, g], R[R_ADDR, g], isw[g], R1[R_ACC, 0],
                                 R1[R_FIRST, 0], R1[R_CLS, 0], R1[R_FIN, 0], R1[R_COMP, 0],
                                 rs1, rt1, m, S1, E1, nz1, st1, K.INF)
        if status != 0:
            return g, status
        for j in range(m):
            t = R[R_TAG, g, j]
            if t >= 0:
                c = R1[R_COMP, 0, j]
                out[t] = c
                R[R_SPEC, g, j] = c
                R[R_TAG, g, j] = -1
    return -1, 0


@njit(cache=True)
def _finish_kernel(p, R, isw, S, E, nz, st, ref_stop, ref_total, n_real, n_tot, last, stats,
                   final):
    """Run every instance's held requests (the future list too) to their end."""
    channels = p[K.P_CHANNELS]
    for g in range(n_tot.shape[0]):
        n_real[g] = n_tot[g]
        if n_tot[g] == 0:
            continue
        _, status = _run(p, R, isw, S, E, nz, st, ref_stop, ref_total, g, n_tot[g], K.INF)
        if status != 0:
            return g, status
        last[g] = max(last[g], R[R_OFFER, g, n_tot[g] - 1])
        _compact(R, isw, S, E, st, n_real, n_tot, g, channels, stats,
                 final, final[:0])
    return -1, 0


class DramStreams:
    """``instances`` independent runs of the memory system ``config``, fed by :meth:`step`.

    Cycles are DRAM cycles counted from one cycle 0 for every instance (their refresh clocks
    start together). Addresses are byte addresses inside an instance. With ``record``, the real
    completion of every request is kept (:attr:`final`, by the order requests were added)."""

    def __init__(self, config: MemorySystemConfig, instances: int, *,
                 record: bool = False) -> None:
        if instances < 1:
            raise ConfigError(f"'instances' must be >= 1 (got {instances})")
        _check_banks(config)
        self.config = config
        self.instances = instances
        self._p = _params(config, False)
        S, E, nz, st = K.kernel_state(self._p)
        G = instances
        self._S = np.zeros((G, S.size), np.int64)
        self._E = np.zeros((G, E.size), np.int64)
        self._nz = np.zeros((G, nz.size), np.uint64)
        self._st = np.zeros((G, st.size), np.int64)
        self._ref_stop = np.zeros((G, config.channels), np.int64)
        self._ref_total = np.zeros((G, config.channels), np.int64)
        self._n_real = np.zeros(G, np.int64)
        self._n_tot = np.zeros(G, np.int64)
        self._last = np.zeros(G, np.int64)
        self._stats = np.zeros(NSTATS, np.int64)
        self._R = np.zeros((NFIELDS, G, 0), np.int64)
        self._isw = np.zeros((G, 0), np.bool_)
        self._R1 = np.zeros((NFIELDS, 1, 0), np.int64)
        self._layout = mapping._layout(config)
        self.horizon = 0
        """The cycle every instance has run to: no later request may arrive before it."""
        self._record = record
        self._final = np.full(0, -1, np.int64)
        self._spec = np.full(0, -1, np.int64)
        self._added = 0
        self._finished = False

    def _reserve(self, need: int) -> None:
        cap = self._R.shape[2]
        if need <= cap:
            return
        cap = max(need, 2 * cap, 256)
        R = np.zeros((NFIELDS, self.instances, cap), np.int64)
        R[:, :, :self._R.shape[2]] = self._R
        isw = np.zeros((self.instances, cap), np.bool_)
        isw[:, :self._isw.shape[1]] = self._isw
        self._R, self._isw = R, isw
        self._R1 = np.zeros((NFIELDS, 1, cap), np.int64)

    def step(self, start: np.ndarray, arrive: np.ndarray, addr: np.ndarray,
             is_write: np.ndarray, horizon: int) -> np.ndarray:
        """Add requests grouped by instance (instance ``g``: ``start[g]:start[g+1]``, arrival
        DRAM cycles ``arrive`` non-decreasing within it, none before :attr:`horizon`; int64
        byte ``addr``; bool ``is_write``), run every instance for real to ``horizon`` (the
        cycle before which no later request will arrive, not before :attr:`horizon`) and
        return the speculated completion DRAM cycle of each new request (int64, shape (n,))."""
        n = arrive.size
        G = self.instances
        if start.shape != (G + 1,) or start[0] != 0 or start[-1] != n:
            raise ConfigError(f"'start' must be {G + 1} offsets from 0 to {n}")
        if horizon < self.horizon:
            raise ConfigError(f"'horizon' {horizon} is before the streams' {self.horizon}")
        if self._finished:
            raise ConfigError("the streams are finished: no request may be added")
        counts = np.diff(start)
        self._reserve(int((self._n_tot + counts).max()))
        out = np.full(n, -1, np.int64)
        tag = np.arange(n, dtype=np.int64)
        ids = tag + self._added
        self._added += n
        if self._record and self._final.size < self._added:
            cap = max(self._added, 2 * self._final.size)
            for name in ("_final", "_spec"):
                old = getattr(self, name)
                new = np.full(cap, -1, np.int64)
                new[:old.size] = old
                setattr(self, name, new)
        _, ob, cb, shift, mask, bpg = self._layout
        bad, status = _step_kernel(
            self._p, ob, cb, shift, mask, bpg, self.config.bank_group_xor, self._R, self._isw,
            self._S, self._E, self._nz, self._st, self._ref_stop, self._ref_total,
            self._n_real, self._n_tot, self._last, start, arrive, addr, is_write, tag, ids,
            horizon, out, self._stats, self._R1, self._final)
        if bad >= 0:
            raise _stuck(status, self.config, f" in instance {bad}")
        self.horizon = horizon
        if self._record:
            self._spec[ids] = out
        return out

    def advance(self, horizon: int) -> None:
        """Run every instance for real to ``horizon`` (a :meth:`step` without requests)."""
        if horizon > self.horizon:
            none = np.zeros(0, np.int64)
            self.step(np.zeros(self.instances + 1, np.int64), none, none,
                      np.zeros(0, np.bool_), horizon)

    @property
    def finished(self) -> bool:
        """True after :meth:`finish`."""
        return self._finished

    @property
    def first_id(self) -> int:
        """The id the next request added gets (ids count requests in the order added)."""
        return self._added

    def finish(self) -> None:
        """Run every held request to its end; no request may be added afterwards."""
        if self._finished:
            return
        bad, status = _finish_kernel(self._p, self._R, self._isw, self._S, self._E, self._nz,
                                     self._st, self._ref_stop, self._ref_total, self._n_real,
                                     self._n_tot, self._last, self._stats, self._final)
        if bad >= 0:
            raise _stuck(status, self.config, f" in instance {bad}")
        self._finished = True

    @property
    def final(self) -> np.ndarray:
        """With ``record``: the real completion DRAM cycle of every request added (by id: in
        the order added; -1 while not known, final once known), else an empty array. A view:
        read it before the next call."""
        return self._final[:self._added] if self._record else self._final[:0]

    @property
    def speculated(self) -> np.ndarray:
        """With ``record``: the completion :meth:`step` returned for every request (by id),
        else an empty array. A view, like :attr:`final`."""
        return self._spec[:self._added] if self._record else self._spec[:0]

    @property
    def held(self) -> int:
        """Requests held (not completed in the real runs, or in the future lists)."""
        return int(self._n_tot.sum())

    @property
    def spec_stats(self) -> SpeculationStats:
        """Speculated vs real completion of every request the real runs have completed."""
        s = self._stats.tolist()
        return SpeculationStats(requests=s[SP_N], late=s[SP_LATE], late_cycles=s[SP_LATE_SUM],
                                late_max=s[SP_LATE_MAX], early=s[SP_EARLY],
                                early_cycles=s[SP_EARLY_SUM], clamped=s[SP_CLAMPED],
                                reads=s[SP_READS], late_reads=s[SP_LATE_READS],
                                late_read_cycles=s[SP_LATE_READ_SUM], row_hits=s[SP_HIT],
                                row_misses=s[SP_MISS], row_conflicts=s[SP_CONFLICT],
                                forwarded=s[SP_FORWARD])
