"""DDR traffic of DMA transfers: 64-B requests, channel interleave, batched DDR5 model, NoC ports.

A DMA's DDR segments become the 64-byte lines they touch (``Segment`` runs, deduplicated). Lines
are interleaved over the socket's 32-bit subchannels exactly as the socket-wide DDR5 mapping does
(``subchannel = line % subchannels``, :meth:`MemoryConfig.socket_memory_system`); controller
``k`` owns subchannels ``k*S .. k*S+S-1`` (``S = channel_width_bits / 32``) and is modelled by
one :func:`prodigy_sim.dram.simulate_requests` run of ``memory.dram`` (its own frontend and
queues), fed with the line's address local to the controller.

Batching (the approximation). There is no SimPy event per DRAM cycle or per request. DMAs are
collected as they issue; the pending batch is *flushed* - run through the DDR5 model, one call
per controller - only when some core needs the completion of a pending DMA (an operand, a DMA
slot, DMA.WAIT, BARRIER, the end of the program). A flush at cycle ``t`` holds every DMA issued
before ``t`` by any core, and DMAs issued later queue behind it, so completions respect
causality exactly; what is approximate is the seam between two batches: each batch starts with
closed banks and empty queues. To keep back-to-back batches streaming, the memory system
remembers per subchannel the cycle its data bus frees (``bus_free``); a request of a later batch
is offered no earlier than ``bus_free - (1 + nRCD + nCL)``, so its burst follows the previous one
without a gap and without overlap. :func:`check_batching` replays the logged requests of a
simulation in one batch per controller and reports the difference.

Time: core cycles and DRAM cycles are converted with integer arithmetic on the reduced ratio
``tck_ps * frequency_hz / 1e12`` (rounding towards later), never with floats.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from prodigy_sim.dram import simulate_requests
from prodigy_sim.hardware import ChipConfig
from prodigy_sim.isa import Segment
from prodigy_sim.timing._ddr import DdrRunner
from prodigy_sim.timing._noc import Mesh

__all__ = ["DmaHandle", "MemorySystem", "segment_lines", "check_batching"]

LINE = 64


@dataclass(slots=True, eq=False)
class DmaHandle:
    """One DMA transfer in flight. ``done`` (core cycle) is None until its batch is flushed."""

    core: int
    issue: int
    is_write: bool
    lines: np.ndarray
    nbytes: int
    index: int
    done: int | None = None
    released: int = 0
    """DMA.ST: the cycle its data has left the scratchpad (the tile may be overwritten)."""


_SEG_CACHE: dict[tuple[int, int, int, int], np.ndarray] = {}
_SEG_CACHE_MAX = 8192


def _segment_pattern(off: int, length: int, stride: int, count: int) -> np.ndarray:
    """Sorted unique lines of a segment starting at byte ``off`` (< 64): DMAs of one shape at
    different addresses touch the same pattern shifted by whole lines, so it is cached."""
    key = (off, length, stride, count)
    lines = _SEG_CACHE.get(key)
    if lines is None:
        starts = off + stride * np.arange(count, dtype=np.int64)
        first = starts // LINE
        n = (starts + length - 1) // LINE - first + 1
        if np.all(n == n[0]):
            lines = (first[:, None] + np.arange(n[0], dtype=np.int64)).ravel()
        else:
            total = int(n.sum())
            offs = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(n) - n, n)
            lines = np.repeat(first, n) + offs
        if count > 1 and not (stride >= length + LINE - 1 or np.all(lines[1:] > lines[:-1])):
            lines = np.unique(lines)
        lines.flags.writeable = False
        if len(_SEG_CACHE) >= _SEG_CACHE_MAX:
            _SEG_CACHE.clear()
        _SEG_CACHE[key] = lines
    return lines


def segment_lines(segments: tuple[Segment, ...]) -> np.ndarray:
    """Sorted unique 64-B line indices touched by 2-D strided byte ranges (int64, shape (n,))."""
    parts = []
    for s in segments:
        if s.length <= 0 or s.count <= 0:
            continue
        a = s.address
        parts.append(_segment_pattern(a % LINE, s.length, s.stride, s.count) + a // LINE)
    if not parts:
        return np.zeros(0, np.int64)
    if len(parts) == 1:
        return parts[0]
    parts.sort(key=lambda x: int(x[0]))
    if all(int(parts[i][-1]) < int(parts[i + 1][0]) for i in range(len(parts) - 1)):
        return np.concatenate(parts)
    return np.unique(np.concatenate(parts))


@dataclass
class _Log:
    ctrl: list = field(default_factory=list)
    arrive: list = field(default_factory=list)
    addr: list = field(default_factory=list)
    is_write: list = field(default_factory=list)
    complete: list = field(default_factory=list)


class MemorySystem:
    """All DDR controllers, the NoC ports DDR data crosses, and the pending DMA batch."""

    def __init__(self, config: ChipConfig, mesh: Mesh, ncores: int, *, log: bool = False,
                 recorder=None) -> None:
        mem = config.memory
        self.dram = mem.dram
        self.runner = DdrRunner(mem.dram)
        self.nctrl = mem.channels
        self.sub = mem.dram.channels
        self.nsub = self.nctrl * self.sub
        self.mesh = mesh
        t = mem.dram.timing
        f = round(config.frequency_hz)
        # core cycles per DRAM cycle = tck_ps * f / 1e12 = num / den (reduced)
        g = math.gcd(t.tck_ps * f, 10**12)
        self._num, self._den = t.tck_ps * f // g, 10**12 // g
        self._lead = 1 + t.nRCD + t.nCL
        self._nbl = t.nBL
        self._refi = t.nREFI
        self.bus_free = np.zeros((self.nctrl, self.sub), np.int64)
        self.l2_bw = config.core.on_chip_memory.l2_bandwidth_bytes_per_cycle
        self.ctrl_in_free = [0] * self.nctrl      # controller -> mesh port
        self.ctrl_out_free = [0] * self.nctrl     # mesh -> controller port
        self.core_in_free = [0] * ncores          # mesh -> core port
        self.core_out_free = [0] * ncores         # core -> mesh port
        self.spm_free = [0] * ncores              # scratchpad port used by DMA
        self.pending: list[DmaHandle] = []
        self.bytes_per_ctrl = np.zeros(self.nctrl, np.int64)
        self.requests = 0
        self.flushes = 0
        self.log = _Log() if log else None
        self.recorder = recorder
        self._latency_lists = mesh.latency.tolist()

    # -- time conversion (integer) -------------------------------------------------------------
    def to_dram(self, core_cycles: np.ndarray) -> np.ndarray:
        """Core cycles -> the first DRAM cycle not before them."""
        return -(-(core_cycles * self._den) // self._num)

    def to_core(self, dram_cycles: np.ndarray) -> np.ndarray:
        """DRAM cycles -> the first core cycle not before them."""
        return -(-(dram_cycles * self._num) // self._den)

    # -- DMA issue and flush -------------------------------------------------------------------
    def issue(self, core: int, now: int, segments: tuple[Segment, ...], is_write: bool,
              index: int) -> DmaHandle:
        lines = segment_lines(segments)
        nbytes = sum(s.nbytes for s in segments)
        h = DmaHandle(core, now, is_write, lines, nbytes, index)
        if is_write:
            # the store reads the tile out through the scratchpad read port and the core's link
            # into the mesh, in issue order: known now, so the tile is released at once
            start = max(now, self.core_out_free[core])
            h.released = start + max(-(-nbytes // self.l2_bw), self.mesh.serialization(nbytes))
            self.core_out_free[core] = h.released
        if lines.size == 0:
            h.done = now + 1
        else:
            self.pending.append(h)
        return h

    def flush(self) -> None:
        """Run the pending batch through the NoC ports and the DDR5 model; set every ``done``."""
        batch, self.pending = self.pending, []
        if not batch:
            return
        self.flushes += 1
        mesh = self.mesh
        ns, s = self.nsub, self.sub
        n = len(batch)
        sizes = np.fromiter((h.lines.size for h in batch), np.int64, n)
        line = np.concatenate([h.lines for h in batch]) if n > 1 else batch[0].lines
        sub = line % ns
        ctrl = sub // s
        sub_local = sub % s
        addr = ((line // ns) * s + sub_local) * LINE
        # a store's lines leave when its first byte is on the link, a load's at issue
        start = np.fromiter((max(h.issue, h.released - mesh.serialization(h.nbytes))
                             if h.is_write else h.issue for h in batch), np.int64, n)
        cores = np.fromiter((h.core for h in batch), np.int64, n)
        writes = np.fromiter((h.is_write for h in batch), np.bool_, n)
        dma = np.repeat(np.arange(n, dtype=np.int64), sizes)
        arrive = self.to_dram(start[dma] + 1 + mesh.latency[cores[dma], ctrl])
        is_w = writes[dma]
        complete = np.empty_like(arrive)
        mapped = self.runner.map(addr)
        by_ctrl = np.argsort(ctrl, kind="stable")
        bounds = np.searchsorted(ctrl[by_ctrl], np.arange(self.nctrl + 1)).tolist()
        for k in range(self.nctrl):
            if bounds[k] == bounds[k + 1]:
                continue
            sel = by_ctrl[bounds[k]:bounds[k + 1]]
            a = arrive[sel]
            subc = sub_local[sel]
            bus_free = self.bus_free[k]
            a_eff = np.maximum(a, bus_free[subc] - self._lead)
            order = np.argsort(a_eff, kind="stable")
            sel, a_eff, subc = sel[order], a_eff[order], subc[order]
            base = (int(a_eff[0]) // self._refi) * self._refi
            comp = self.runner.complete(a_eff - base, addr, is_w[sel], mapped, sel) + base
            complete[sel] = comp
            bus = comp + np.where(is_w[sel], self._nbl, 0)
            np.maximum.at(bus_free, subc, bus)          # the row of self.bus_free, in place
            if self.log is not None:
                self.log.ctrl.append(np.full(sel.size, k))
                self.log.arrive.append(a[order])
                self.log.addr.append(addr[sel])
                self.log.is_write.append(is_w[sel])
                self.log.complete.append(comp)
        self.requests += int(arrive.size)
        self.bytes_per_ctrl += np.bincount(ctrl, minlength=self.nctrl) * LINE
        comp_core = self.to_core(complete)
        key = dma * self.nctrl + ctrl
        size = n * self.nctrl
        first = np.full(size, np.iinfo(np.int64).max, np.int64)
        last = np.full(size, -1, np.int64)
        np.minimum.at(first, key, comp_core)
        np.maximum.at(last, key, comp_core)
        count = np.bincount(key, minlength=size)
        first, last, count = first.reshape(n, -1), last.reshape(n, -1), count.reshape(n, -1)
        bw = mesh.link_bw
        lat_all = self._latency_lists
        firsts, lasts, counts = first.tolist(), last.tolist(), count.tolist()
        ctrl_in_free, ctrl_out_free = self.ctrl_in_free, self.ctrl_out_free
        for i, h in enumerate(batch):
            c = h.core
            lat = lat_all[c]
            fi, la, co = firsts[i], lasts[i], counts[i]
            ks = [k for k, v in enumerate(co) if v]
            if h.is_write:
                h.done = max(la[k] + lat[k] for k in ks)
                for k in ks:   # write data into the controllers
                    if la[k] > ctrl_out_free[k]:
                        ctrl_out_free[k] = la[k]
                continue
            head = None
            tail = 0
            total = 0
            for k in ks:
                start = max(fi[k], ctrl_in_free[k])
                end = max(start + -(-co[k] * LINE // bw), la[k] + -(-LINE // bw))
                ctrl_in_free[k] = end
                hop = lat[k]
                head = start + hop if head is None else min(head, start + hop)
                tail = max(tail, end + hop)
                total += co[k]
            total *= LINE
            start = max(head, self.core_in_free[c])
            end = max(tail, start + -(-total // bw))
            self.core_in_free[c] = end
            start = max(head, self.spm_free[c])
            end = max(end, start + -(-total // self.l2_bw))
            self.spm_free[c] = end
            h.done = end
        for h in batch:
            h.lines = None
        if self.recorder is not None:
            for h in batch:
                self.recorder.dma(h)


def check_batching(memory: MemorySystem) -> dict[str, float]:
    """Replay every logged request in one DDR5 batch per controller and compare completions.

    Needs a memory system built with ``log=True``. Returns the mean and the largest relative
    difference of the per-controller drain cycle (last completion minus first arrival), and the
    mean per-request completion difference in DRAM cycles (batched minus single batch).
    """
    lg = memory.log
    if lg is None or not lg.ctrl:
        return {"drain_rel_diff_mean": 0.0, "drain_rel_diff_max": 0.0, "mean_diff_cycles": 0.0}
    ctrl = np.concatenate(lg.ctrl)
    arrive = np.concatenate(lg.arrive)
    addr = np.concatenate(lg.addr)
    is_w = np.concatenate(lg.is_write)
    comp = np.concatenate(lg.complete)
    rel, diffs = [], []
    for k in np.unique(ctrl):
        sel = np.flatnonzero(ctrl == k)
        order = np.argsort(arrive[sel], kind="stable")
        sel = sel[order]
        base = (int(arrive[sel][0]) // memory._refi) * memory._refi
        ref = simulate_requests(memory.dram, arrive[sel] - base, addr[sel].astype(np.uint64),
                                is_w[sel]).complete_cycle + base
        t0 = arrive[sel].min()
        span_ref = ref.max() - t0
        span = comp[sel].max() - t0
        rel.append((span - span_ref) / span_ref)
        diffs.append(comp[sel] - ref)
    d = np.concatenate(diffs)
    return {"drain_rel_diff_mean": float(np.mean(rel)),
            "drain_rel_diff_max": float(np.max(np.abs(rel))),
            "mean_diff_cycles": float(d.mean())}
