"""Adapter over the DDR5 model for the batches of every memory controller at once.

A controller (one 64-bit DDR5 channel) is ``config.channels`` 32-bit subchannels. Each subchannel
is fed **independently** - its own frontend and queues - as the chip's DMA engines and NoC deliver
requests to each subchannel controller on their own: a full queue on subchannel A never holds up
requests for subchannel B. A flush runs the subchannels of every controller in one
:func:`prodigy_sim.dram.simulate_grouped` call (one instance of a 1-subchannel system per
subchannel of the socket), so there is no per-controller or per-subchannel Python overhead.

The per-subchannel address is the controller-local line index with the subchannel bits removed:
the 1-subchannel mapping of that address gives the bank, row and column the ``S``-subchannel
mapping gives the controller-local address.

Two Numba passes bracket the DDR5 model, so a batch builds no per-request numpy temporaries
beyond a handful of int64 arrays: :func:`_prepare` (line -> subchannel instance, arrival DRAM
cycle, address inside the subchannel; requests grouped by instance in arrival order, each
controller's cycles counted from the refresh boundary before its first request) and
:func:`_finish` (completion back to core cycles in the caller's order; each subchannel's data
bus free cycle).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from prodigy_sim.dram import MemorySystemConfig, simulate_grouped
from prodigy_sim.dram.streams import DramStreams

__all__ = ["DdrRunner", "DdrGeometry", "run_batch", "StreamDdr", "ALL_WRITES"]

ALL_WRITES = 1 << 62
"""A :attr:`DdrGeometry.drain` longer than any run: reads queue behind every earlier write."""


class DdrRunner:
    """Runs request batches of one controller (``config``: its DDR5 system) to completion."""

    def __init__(self, config: MemorySystemConfig) -> None:
        self.config = config
        self.subchannels = config.channels
        self.sub_config = config.model_copy(update={"channels": 1})
        self.line = config.org.tx_bytes
        """Bytes of one request: a DRAM burst (a cache line of the chip)."""

    def complete(self, start: np.ndarray, arrive: np.ndarray, sub_addr: np.ndarray,
                 is_write: np.ndarray) -> np.ndarray:
        """Completion DRAM cycle of requests grouped by 1-subchannel instance (instance ``g``
        is requests ``start[g]:start[g+1]``), offered in array order at ``arrive``
        (non-decreasing per instance) at per-subchannel byte addresses ``sub_addr``."""
        return simulate_grouped(self.sub_config, start, arrive, sub_addr, is_write)


class DdrGeometry:
    """The integers :func:`run_batch` needs: ``ilv`` lines per interleave run, ``nsub``
    subchannels of the socket, ``sub`` per controller, ``line`` bytes, core cycles per DRAM
    cycle ``num / den``, ``lead`` (1 + nRCD + nCL), ``nbl``, ``refi`` (DRAM cycles), and
    ``drain`` (DRAM cycles): the most a later batch's read waits, after the earlier batches'
    last read, for the writes they left queued (default :data:`ALL_WRITES`: for all of them)."""

    __slots__ = ("ilv", "nsub", "sub", "line", "num", "den", "lead", "nbl", "refi", "drain")

    def __init__(self, ilv: int, nsub: int, sub: int, line: int, num: int, den: int, lead: int,
                 nbl: int, refi: int, drain: int = ALL_WRITES) -> None:
        self.ilv, self.nsub, self.sub, self.line = ilv, nsub, sub, line
        self.num, self.den, self.lead, self.nbl, self.refi = num, den, lead, nbl, refi
        self.drain = drain


@njit(cache=True)
def _sort_runs(order, lo, hi, key):
    """Stable-sort ``order[lo:hi]`` by ``key[order[j]]`` as runs of equal keys: a stable argsort
    of one key per run, each run kept in its order (the same order as a stable argsort of every
    entry). A subchannel's requests of one DMA share their arrival, so runs are long."""
    m = hi - lo
    run_start = np.empty(m + 1, np.int64)
    run_key = np.empty(m, np.int64)
    r = 0
    for j in range(lo, hi):
        if j == lo or key[order[j]] != key[order[j - 1]]:
            run_start[r] = j - lo
            run_key[r] = key[order[j]]
            r += 1
    run_start[r] = m
    perm = np.argsort(run_key[:r], kind="mergesort")
    part = order[lo:hi].copy()
    k = lo
    for q in range(r):
        a = run_start[perm[q]]
        b = run_start[perm[q] + 1]
        for j in range(a, b):
            order[k] = part[j]
            k += 1


@njit(cache=True)
def group_offsets(key, nkeys):
    """Where each key's elements start in key order (``key``: ints in ``[0, nkeys)``, shape
    (n,)): ``group`` (shape (nkeys + 1,)), key ``g``'s elements at ``group[g]:group[g + 1]``."""
    group = np.zeros(nkeys + 1, np.int64)
    for i in range(key.shape[0]):
        group[key[i] + 1] += 1
    for g in range(nkeys):
        group[g + 1] += group[g]
    return group


@njit(cache=True)
def counting_order(key, nkeys):
    """Stable order of the elements by ``key`` (ints in ``[0, nkeys)``, shape (n,)): a counting
    sort. Returns ``order`` (shape (n,)) and ``group`` (shape (nkeys + 1,)): the elements of key
    ``g`` are ``order[group[g]:group[g + 1]]``, in their original order."""
    n = key.shape[0]
    group = group_offsets(key, nkeys)
    order = np.empty(n, np.int64)
    pos = group[:nkeys].copy()
    for i in range(n):
        k = key[i]
        order[pos[k]] = i
        pos[k] += 1
    return order, group


@njit(cache=True)
def _prepare(line, ctrl, dma, start, cores, latency, bus_free, read_free, is_write, drain,
             ilv, nsub, s, line_bytes, num, den, lead, refi):
    """Per request ``i`` (line index ``line[i]`` of controller ``ctrl[i]``, sent by DMA
    ``dma[i]`` issued at core cycle ``start[dma[i]]`` from core ``cores[dma[i]]``): arrival
    DRAM cycle ``ceil((sent + 1 + latency[core, ctrl]) den / num)``, offered no earlier than
    ``bus_free[ctrl, sub] - lead`` (a write) or ``min(bus_free, read_free + drain) - lead``
    (a read, see :func:`run_batch`). Returns ``order`` (requests grouped by instance
    ``ctrl * s + sub``, each in stable arrival order), ``group`` (shape (nsub + 1,): instance
    ``g`` is ``order[group[g]:group[g+1]]``), and in that order the arrival counted from the
    controller's ``base`` (its first arrival rounded down to a refresh boundary), the byte
    address inside the subchannel, and ``base`` itself (shape (nctrl,))."""
    n = line.shape[0]
    nctrl = nsub // s
    inst = np.empty(n, np.int64)
    a_eff = np.empty(n, np.int64)
    for i in range(n):
        c = ctrl[i]
        sl = ((line[i] // ilv) % nsub) % s
        d = dma[i]
        t = (start[d] + 1 + latency[cores[d], c]) * den
        a = -(-t // num)
        b = bus_free[c, sl]
        if not is_write[i]:
            b = min(b, read_free[c, sl] + drain)
        b -= lead
        if b > a:
            a = b
        a_eff[i] = a
        inst[i] = c * s + sl
    order, group = counting_order(inst, nsub)
    never = np.iinfo(np.int64).max
    first = np.full(nctrl, never, np.int64)
    for g in range(nsub):
        lo = group[g]
        hi = group[g + 1]
        if hi == lo:
            continue
        ok = True
        for j in range(lo + 1, hi):
            if a_eff[order[j]] < a_eff[order[j - 1]]:
                ok = False
                break
        if not ok:
            _sort_runs(order, lo, hi, a_eff)
        c = g // s
        if a_eff[order[lo]] < first[c]:
            first[c] = a_eff[order[lo]]
    base = np.zeros(nctrl, np.int64)
    for c in range(nctrl):
        if first[c] < never:
            base[c] = (first[c] // refi) * refi
    arrive = np.empty(n, np.int64)
    addr = np.empty(n, np.int64)
    for j in range(n):
        i = order[j]
        arrive[j] = a_eff[i] - base[ctrl[i]]
        ln = line[i]
        addr[j] = ((ln // ilv // nsub) * ilv + ln % ilv) * line_bytes
    return order, group, arrive, addr, base


@njit(cache=True)
def _finish(order, group, comp, base, is_write, s, nbl, num, den, bus_free, read_free, done,
            dram):
    """``done[order[j]]`` = the first core cycle not before request ``j``'s completion
    ``comp[j] + base[ctrl]`` (DRAM cycles; also into ``dram[order[j]]`` unless ``dram`` is
    empty). Each subchannel's ``bus_free`` becomes at least its requests' completion (+ ``nbl``
    for a write: its data burst) and at least its old value + ``nbl`` per read whose burst
    began before it (the queued writes those reads went ahead of move back); ``read_free``
    at least its reads' completion."""
    nsub = group.shape[0] - 1
    keep = dram.shape[0] > 0
    for g in range(nsub):
        c = g // s
        sl = g % s
        old = bus_free[c, sl]
        bf = old
        rf = read_free[c, sl]
        ahead = 0
        for j in range(group[g], group[g + 1]):
            i = order[j]
            cm = comp[j] + base[c]
            if keep:
                dram[i] = cm
            done[i] = -(-(cm * num) // den)
            if is_write[i]:
                b = cm + nbl
            else:
                b = cm
                rf = max(rf, cm)
                if cm - nbl < old:
                    ahead += 1
            if b > bf:
                bf = b
        bus_free[c, sl] = max(bf, old + ahead * nbl)
        read_free[c, sl] = rf


def run_batch(runner: DdrRunner, geo: DdrGeometry, line: np.ndarray, ctrl: np.ndarray,
              dma: np.ndarray, start: np.ndarray, cores: np.ndarray, latency: np.ndarray,
              is_write: np.ndarray, bus_free: np.ndarray, read_free: np.ndarray, *,
              dram_cycles: bool = False
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Run the lines of a batch through the DDR5 model: ``line``, ``ctrl``, ``dma``,
    ``is_write`` per request (shape (n,)); ``start``, ``cores`` per DMA (its first core cycle on
    the link, its core); ``latency`` (cores, controllers) mesh cycles. ``bus_free`` and
    ``read_free`` (controllers, subchannels; DRAM cycles, updated in place): the cycle each
    subchannel's data bus frees after the earlier batches, and after their reads.

    The seam between batches: a write is offered no earlier than ``bus_free - lead``, so its
    burst follows the earlier batches' bursts. A read may go ahead of the writes the earlier
    batches left at the end of the bus, as a controller that serves reads first does with the
    writes in its write queue: it is offered no earlier than ``min(bus_free, read_free +
    geo.drain) - lead`` (``drain``: one write drain, the bursts from the write queue's high
    watermark down to its low one, which a read may find under way), and every read whose
    burst begins before the old ``bus_free`` moves ``bus_free`` back by one burst (the writes
    it went ahead of still take the bus, so no batch moves more bursts than the bus carries).
    Returns the completion core cycle of every request, the number of requests per
    instance (shape (nsub,)) and, with ``dram_cycles``, every request's completion and offer
    DRAM cycles (else None, None)."""
    g = geo
    order, group, arrive, addr, base = _prepare(
        line, ctrl, dma, start, cores, latency, bus_free, read_free, is_write, g.drain, g.ilv,
        g.nsub, g.sub, g.line, g.num, g.den, g.lead, g.refi)
    comp = runner.complete(group, arrive, addr, is_write[order])
    done = np.empty(line.size, np.int64)
    dram = np.empty(line.size if dram_cycles else 0, np.int64)
    _finish(order, group, comp, base, is_write, g.sub, g.nbl, g.num, g.den, bus_free,
            read_free, done, dram)
    if not dram_cycles:
        return done, np.diff(group), None, None
    offered = np.empty(line.size, np.int64)
    offered[order] = arrive + base[ctrl[order]]
    return done, np.diff(group), dram, offered


class StreamDdr:
    """The socket's subchannels as persistent DDR5 runs (:class:`~prodigy_sim.dram.DramStreams`,
    one instance of a 1-subchannel system per subchannel): no seam between flushes. A flush's
    completions are speculated (as if nothing else arrived) and the runs go on for real up to
    the cycle no later request can arrive before; :meth:`real` tells the real completions as
    the runs reach them."""

    def __init__(self, runner: DdrRunner, geo: DdrGeometry, min_latency: int) -> None:
        self.geo = geo
        self.streams = DramStreams(runner.sub_config, geo.nsub, record=True)
        self.min_latency = min_latency
        """Fewest mesh cycles from any core to any controller."""
        self._zero = np.zeros((geo.nsub // geo.sub, geo.sub), np.int64)

    def horizon(self, now: int) -> int:
        """The first DRAM cycle a request sent at core cycle ``now`` or later can arrive."""
        g = self.geo
        return -(-((now + 1 + self.min_latency) * g.den) // g.num)

    def run(self, line: np.ndarray, ctrl: np.ndarray, dma: np.ndarray, start: np.ndarray,
            cores: np.ndarray, latency: np.ndarray, is_write: np.ndarray, now: int
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """As :func:`run_batch` (same arguments but the seam state; ``now``: the core cycle of
        the flush, before which no later DMA starts), with the offer DRAM cycle equal to the
        arrival. Returns the speculated completion core cycle of every request, the requests
        per instance, every request's speculated completion and offer DRAM cycles, and its id
        in the streams (for :meth:`real`)."""
        g = self.geo
        z = self._zero
        order, group, arrive, addr, base = _prepare(
            line, ctrl, dma, start, cores, latency, z, z, is_write, 0, g.ilv, g.nsub, g.sub,
            g.line, g.num, g.den, g.lead, g.refi)
        arrive_abs = arrive + base[ctrl[order]]
        first = self.streams.first_id
        comp = self.streams.step(group, arrive_abs, addr, is_write[order], self.horizon(now))
        dram = np.empty(line.size, np.int64)
        dram[order] = comp
        offered = np.empty(line.size, np.int64)
        offered[order] = arrive_abs
        ids = np.empty(line.size, np.int64)
        ids[order] = np.arange(first, first + line.size, dtype=np.int64)
        done = -(-(dram * g.num) // g.den)
        return done, np.diff(group), dram, offered, ids

    def lateness(self, ids: np.ndarray, now: int) -> int | None:
        """Run the streams for real as far as a request sent at core cycle ``now`` allows (not
        once they are finished); then the most core cycles any of the requests ``ids``
        completes after its speculated completion (negative: all of them earlier), or None
        while some of them is not known yet."""
        st = self.streams
        g = self.geo
        known, late = _lateness(st.final, st.speculated, ids, g.num, g.den)
        if not known:                       # (known already: the runs need not go on)
            if not st.finished:
                st.advance(self.horizon(now))
            known, late = _lateness(st.final, st.speculated, ids, g.num, g.den)
            if not known:
                return None
        return int(late)


@njit(cache=True)
def _lateness(final, spec, ids, num, den):
    """(False, 0) if some request ``ids`` has no known completion in ``final`` (-1), else
    (True, the most core cycles any completes after its ``spec``ulated completion): DRAM cycles
    to core cycles as ``ceil(c * num / den)``."""
    late = np.int64(-(1 << 62))
    for i in ids:
        r = final[i]
        if r < 0:
            return False, np.int64(0)
        d = -(-(r * num) // den) - -(-(spec[i] * num) // den)
        if d > late:
            late = d
    return True, late
