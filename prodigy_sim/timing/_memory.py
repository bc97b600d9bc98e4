"""DDR traffic of DMA transfers: line requests, channel interleave, batched DDR5 model, NoC ports.

A DMA's DDR segments become the cache lines they touch (``core.on_chip_memory.line_bytes``,
which is also a DRAM burst) (``Segment`` runs, deduplicated). Lines
are interleaved over the socket's 32-bit subchannels exactly as the socket-wide DDR5 mapping does
(``subchannel = line % subchannels``, :meth:`MemoryConfig.socket_memory_system`); controller
``k`` owns subchannels ``k*S .. k*S+S-1`` (``S = channel_width_bits / 32``) and is modelled by
one :func:`prodigy_sim.dram.simulate_requests` run of ``memory.dram`` (its own frontend and
queues), fed with the line's address local to the controller.

Stores write whole lines to DDR. A line a store writes only in part is merged in its home L2
slice with the other pieces of that line (write combining, :meth:`MemorySystem._combine`) and
goes to DDR once, when complete or when the kernel ends (:meth:`MemorySystem.write_back_partials`).

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
simulation in one batch per controller and reports the difference. The L2 slices' and the
cores' NoC ports keep their reservations across batches as busy intervals
(:class:`PortCalendar`): a later batch's data crosses in a gap the earlier ones left, where it
fits.

The persistent DDR (``ddr="persistent"``) has no batches on the DDR side: a flush adds its
requests to one DDR5 run per subchannel that lasts the whole simulation
(:class:`~prodigy_sim.timing._ddr.StreamDdr`), its completions are speculated, and a core
confirms a load against the real run before it uses it (:meth:`MemorySystem.confirm`); the L3
and the NoC ports work as with batches, on the speculated completions.

Time: core cycles and DRAM cycles are converted with integer arithmetic on the reduced ratio
``tck_ps * frequency_hz / 1e12`` (rounding towards later), never with floats.
"""

from __future__ import annotations

import itertools
import math
from bisect import bisect_right
from dataclasses import dataclass, field

import numpy as np

from prodigy_sim.dram import SpeculationStats, simulate_requests
from prodigy_sim.errors import ConfigError, SimulationError
from prodigy_sim.hardware import ChipConfig
from prodigy_sim.isa import Segment
from prodigy_sim.timing._ddr import DdrGeometry, DdrRunner, StreamDdr, run_batch
from prodigy_sim.timing._l3 import LINES_PER_BLOCK, L3Blocks, fill_ready
from prodigy_sim.timing._methods import DDR_METHODS
from prodigy_sim.timing._noc import Mesh
from prodigy_sim.timing._ports import PortCalendar, deliver, group_packets, hit_packets

__all__ = ["DmaHandle", "MemorySystem", "LineMap", "check_batching"]

_NO_LINES = np.zeros(0, np.int64)
_NO_LINES.flags.writeable = False
_WINDOW_CACHE_ENTRIES = 4096
"""DMA windows whose lines a memory system keeps (:meth:`MemorySystem._load_lines`)."""
_WINDOW_CACHE_LINES = 1 << 23
"""Lines (8 bytes each) those windows may hold together (64 MiB)."""



@dataclass(slots=True, eq=False)
class DmaHandle:
    """One DMA transfer in flight. ``done`` (core cycle) is None until its batch is flushed.

    A multicast load (DMA.LDM) is one transfer for its whole group: every member holds a handle
    of its own (``issue`` = its own issue cycle); the transfer's handle is the first member's,
    and lists all of them (itself first) in ``members``. ``waiting`` is set on a member whose
    group has not been issued by every member yet (the SimPy event that fires when it has)."""

    core: int
    issue: int
    is_write: bool
    lines: np.ndarray | None
    """The cache lines it touches; dropped (None) when its batch is flushed."""
    nbytes: int
    index: int
    done: int | None = None
    released: int = 0
    """DMA.ST: the cycle its data has left the scratchpad (the tile may be overwritten)."""
    members: list[DmaHandle] | None = None
    waiting: object | None = None
    onchip: np.ndarray | None = None
    """The lines of resident tensors it touches (served by their home L2 slices, never DDR)."""
    ddr_ids: np.ndarray | None = None
    """With the persistent DDR: its DDR requests' ids in the streams, until ``done`` is
    confirmed (:meth:`MemorySystem.confirm`); None once it is, or with the batched DDR."""

    def pending_lines(self) -> np.ndarray:
        """``lines`` of a DMA whose batch is not flushed yet."""
        assert self.lines is not None  # dropped only once its batch is flushed
        return self.lines


class LineMap:
    """The cache lines (``line_bytes`` each) DMA segments touch.

    DMAs of one shape at different addresses touch the same pattern shifted by whole lines, so
    patterns are cached per (offset in the line, length, stride, count), at most
    ``max_patterns`` of them (the cache is this object's, cleared when full).
    """

    def __init__(self, line_bytes: int, max_patterns: int = 8192) -> None:
        self.line = line_bytes
        self.full_mask = (1 << line_bytes) - 1
        """The byte mask of a whole line (bit ``b`` = byte ``b``)."""
        self._cache: dict[tuple[int, int, int, int], np.ndarray] = {}
        self._wcache: dict[tuple[int, int, int, int],
                           tuple[np.ndarray, np.ndarray, tuple[int, ...]]] = {}
        self._max = max_patterns

    def _pattern(self, off: int, length: int, stride: int, count: int) -> np.ndarray:
        """Sorted unique lines of a segment starting at byte ``off`` (< line_bytes)."""
        key = (off, length, stride, count)
        lines = self._cache.get(key)
        if lines is None:
            line = self.line
            starts = off + stride * np.arange(count, dtype=np.int64)
            first = starts // line
            n = (starts + length - 1) // line - first + 1
            if np.all(n == n[0]):
                lines = (first[:, None] + np.arange(n[0], dtype=np.int64)).ravel()
            else:
                total = int(n.sum())
                offs = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(n) - n, n)
                lines = np.repeat(first, n) + offs
            if count > 1 and not (stride >= length + line - 1
                                  or np.all(lines[1:] > lines[:-1])):
                lines = np.unique(lines)
            lines.flags.writeable = False
            if len(self._cache) >= self._max:
                self._cache.clear()
            self._cache[key] = lines
        return lines

    def _write_pattern(self, off: int, length: int, stride: int, count: int
                       ) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
        """A store's segment starting at byte ``off`` (< line_bytes), split into the lines it
        writes whole (sorted unique) and the lines it writes in part, each with the mask of
        its bytes written (bit ``b`` = byte ``b`` of the line; lines sorted, disjoint from
        the whole ones)."""
        key = (off, length, stride, count)
        hit = self._wcache.get(key)
        if hit is None:
            line = self.line
            starts = off + stride * np.arange(count, dtype=np.int64)
            ends = starts + length
            a, b = -(-starts // line), ends // line          # whole lines [a, b) of each run
            n = np.maximum(b - a, 0)
            total = int(n.sum())
            offs = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(n) - n, n)
            whole = set((np.repeat(a, n) + offs).tolist())
            pieces: dict[int, int] = {}
            first, last = starts // line, (ends - 1) // line
            for s0, e0, f, g in zip(starts.tolist(), ends.tolist(), first.tolist(),
                                    last.tolist(), strict=True):
                ends_here = ((f, s0 - f * line, min(e0 - f * line, line)),
                             (g, 0, e0 - g * line))
                for ln, lo, hi in ends_here[:1 if g == f else 2]:
                    if hi - lo < line:
                        pieces[ln] = pieces.get(ln, 0) | (((1 << (hi - lo)) - 1) << lo)
            whole.update(ln for ln, m in pieces.items() if m == self.full_mask)
            part = sorted(ln for ln in pieces if ln not in whole)
            hit = (np.array(sorted(whole), np.int64), np.array(part, np.int64),
                   tuple(pieces[ln] for ln in part))
            for arr in hit[:2]:
                arr.flags.writeable = False
            if len(self._wcache) >= self._max:
                self._wcache.clear()
            self._wcache[key] = hit
        return hit

    def of_write(self, segments: tuple[Segment, ...]
                 ) -> tuple[np.ndarray, np.ndarray, list[int]]:
        """The lines a store writes whole (sorted unique, int64) and the lines it writes in
        part with the byte mask of each (sorted, disjoint from the whole ones; bytes two
        segments write of one line are merged into one mask)."""
        parts = [s for s in segments if s.length > 0 and s.count > 0]
        line = self.line
        if all(s.address % line == 0 and s.length % line == 0
               and (s.stride % line == 0 or s.count == 1) for s in parts):
            return self.of(segments), _NO_LINES, []
        pieces = []
        for s in parts:
            a = s.address
            w, p, masks = self._write_pattern(a % line, s.length, s.stride, s.count)
            base = a // line
            pieces.append((w + base, p + base, masks))
        if len(pieces) > 1:
            # segments on disjoint ranges of lines share no line: in range order their lines
            # are already sorted and none is merged (e.g. a tile's codes and its scales)
            span = sorted((min(x[0] for x in ws if x.size), max(x[-1] for x in ws if x.size), i)
                          for i, ws in enumerate(pc[:2] for pc in pieces))
            if all(a[1] < b[0] for a, b in itertools.pairwise(span)):
                pieces = [pieces[i] for _, _, i in span]
                return (np.concatenate([pc[0] for pc in pieces]),
                        np.concatenate([pc[1] for pc in pieces]),
                        [m for pc in pieces for m in pc[2]])
        whole = [pc[0] for pc in pieces]
        plines = [pc[1] for pc in pieces]
        pmasks = [m for pc in pieces for m in pc[2]]
        all_whole = np.unique(np.concatenate(whole)) if whole else _NO_LINES
        lines = np.concatenate(plines) if plines else _NO_LINES
        if len(parts) > 1 and lines.size:
            merged: dict[int, int] = {}
            for ln, piece in zip(lines.tolist(), pmasks, strict=True):
                merged[ln] = merged.get(ln, 0) | piece
            full = self.full_mask
            done = [ln for ln, m in merged.items() if m == full]
            if done:
                all_whole = np.union1d(all_whole, np.array(done, np.int64))
            written = set(all_whole.tolist())
            keep = sorted(ln for ln, m in merged.items() if m != full and ln not in written)
            lines = np.array(keep, np.int64)
            pmasks = [merged[ln] for ln in keep]
        return all_whole, lines, pmasks

    def of(self, segments: tuple[Segment, ...]) -> np.ndarray:
        """Sorted unique line indices touched by 2-D strided byte ranges (int64, shape (n,))."""
        parts = []
        for s in segments:
            if s.length <= 0 or s.count <= 0:
                continue
            a = s.address
            parts.append(self._pattern(a % self.line, s.length, s.stride, s.count)
                         + a // self.line)
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
    """Every DDR request of a run (``log=True``), batch by batch, each batch in the order the
    DDR5 model was offered its requests per controller: controller, arrival and offer DRAM
    cycles, address inside the subchannel, store or load, completion, and the chip's line
    index (which tensor it belongs to)."""

    ctrl: list = field(default_factory=list)
    arrive: list = field(default_factory=list)
    addr: list = field(default_factory=list)
    is_write: list = field(default_factory=list)
    complete: list = field(default_factory=list)
    offered: list = field(default_factory=list)
    line: list = field(default_factory=list)


class MemorySystem:
    """All DDR controllers, the NoC ports DDR data crosses, and the pending DMA batch."""

    def __init__(self, config: ChipConfig, mesh: Mesh, ncores: int, *, log: bool = False,
                 recorder=None, l3_bytes: int = 0,
                 resident: tuple[tuple[int, int], ...] = (), ddr: str = "batched") -> None:
        mem = config.memory
        self.dram = mem.dram
        self.line = config.core.on_chip_memory.line_bytes
        self.lines = LineMap(self.line)
        self.runner = DdrRunner(mem.dram)
        self.nctrl = mem.channels
        self.sub = mem.dram.channels
        self.nsub = self.nctrl * self.sub
        self.ilv = max(1, mem.interleave_bytes // self.line)   # lines per interleave run
        self.mesh = mesh
        t = mem.dram.timing
        f = round(config.frequency_hz)
        # core cycles per DRAM cycle = tck_ps * f / 1e12 = num / den (reduced)
        g = math.gcd(t.tck_ps * f, 10**12)
        self._num, self._den = t.tck_ps * f // g, 10**12 // g
        self._lead = 1 + t.nRCD + t.nCL
        self._nbl = t.nBL
        self._refi = t.nREFI
        # a later batch's read waits for one write drain at most, not for every write the
        # earlier batches left queued (see run_batch)
        self.geo = DdrGeometry(self.ilv, self.nsub, self.sub, self.line, self._num, self._den,
                               self._lead, self._nbl, self._refi,
                               mem.dram.controller.write_drain_bursts * t.nBL)
        self.bus_free = np.zeros((self.nctrl, self.sub), np.int64)
        self.read_free = np.zeros((self.nctrl, self.sub), np.int64)
        if ddr not in DDR_METHODS:
            raise ConfigError(f"'ddr': unknown DDR method {ddr!r} (choose from "
                              f"{', '.join(DDR_METHODS)})")
        self.ddr_method = ddr
        self.stream = (StreamDdr(self.runner, self.geo, int(mesh.latency.min()))
                       if ddr == "persistent" else None)
        self.poll_cycles = 1 + int(mesh.latency.min()) + max(
            1, (t.nCL + t.nBL) * self._num // self._den)
        """Core cycles :meth:`confirm` asks again after (a read not known at a horizon
        completes nCL + nBL after it at least)."""
        self.reads_learned_late = 0
        self.l2_bw = config.core.on_chip_memory.l2_bandwidth_bytes_per_cycle
        # the ports' reservations across flushes (PortCalendar: a later batch's data uses the
        # gaps the earlier batches left), and the cores' out ports (known at issue)
        core_bw = min(mesh.link_bw, self.l2_bw)
        # (a controller's port into the mesh needs no gaps: a later batch's reads are offered
        # after the earlier batches' reads, see run_batch, so their lines come after theirs)
        self.ctrl_in = PortCalendar(self.nctrl, mesh.link_bw, self.line, gaps=False)
        # mesh -> core, with the core's scratchpad write port
        self.core_in = PortCalendar(ncores, core_bw, self.line)
        self.core_out_free = [0] * ncores                          # core -> mesh
        self.pending: list[DmaHandle] = []
        self.bytes_per_ctrl = np.zeros(self.nctrl, np.int64)
        self.requests = 0
        self.flushes = 0
        self.log = _Log() if log else None
        self.recorder = recorder
        self._ddr_hook = getattr(recorder, "ddr_lines", None)
        self._latency_lists = mesh.latency.tolist()
        # the shared L3: LRU over 4 KiB blocks, line l homed in the L2 slice of core l % cores
        self.l3_blocks = l3_bytes // (self.line * LINES_PER_BLOCK)
        self.l3 = L3Blocks(self.l3_blocks) if self.l3_blocks > 0 else None
        self.l3_hit_lines = 0
        self.nslices = config.cores
        cols = mesh.cols
        sx = np.arange(self.nslices) % cols
        sy = np.arange(self.nslices) // cols
        kx = np.array([x for x, _ in mesh.controller_xy])
        ky = np.array([y for _, y in mesh.controller_xy])
        cx = np.array([x for x, _ in mesh.core_xy])
        cy = np.array([y for _, y in mesh.core_xy])
        self.ctrl_slice_lat = (np.abs(kx[:, None] - sx) + np.abs(ky[:, None] - sy)) * \
            mesh.hop_latency
        self.slice_core_lat = (np.abs(sx[:, None] - cx) + np.abs(sy[:, None] - cy)) * \
            mesh.hop_latency
        self.slice_out = PortCalendar(self.nslices, core_bw, self.line)   # slice -> mesh
        self.slice_in = PortCalendar(self.nslices, core_bw, self.line)    # mesh -> slice
        # resident tensors: byte ranges [lo, hi) kept in the on-chip memory (L2 slices)
        rs = sorted((lo // self.line, -(-hi // self.line)) for lo, hi in resident if hi > lo)
        self.res_lo = np.array([a for a, _ in rs], np.int64)
        self.res_hi = np.array([b for _, b in rs], np.int64)
        self._res_lo = [a for a, _ in rs]
        self._res_hi = [b for _, b in rs]
        self._res_reach = list(itertools.accumulate(self._res_hi, max))   # max end so far
        self.onchip_write_lines = 0
        # write combining: lines stores have written in part, merged in their home L2 slices
        # (line -> mask of the bytes written); a line goes to DDR once all its bytes are
        self.partial: dict[int, int] = {}
        # hops from each source port (controllers, then L2 slices) to each core
        self.src_core_lat = np.ascontiguousarray(np.vstack([mesh.latency.T,
                                                             self.slice_core_lat]))
        self.multicast_transfers = 0
        self.mc_open: dict[tuple, dict] = {}      # multicast groups waiting for members
        # the lines of the DMA windows seen lately (see _load_lines, _store_lines)
        self._load_cache: dict[tuple[Segment, ...], tuple] = {}
        self._store_cache: dict[tuple[Segment, ...], tuple] = {}
        self._cached_lines = 0

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
        if is_write:
            whole, part, masks, nbytes = self._store_lines(segments)
            lines, onchip = self._combine(whole, part, masks)
        else:
            lines, onchip, nbytes = self._load_lines(segments)
        h = DmaHandle(core, now, is_write, lines, nbytes, index, onchip=onchip)
        if is_write:
            # the store reads the tile out through the scratchpad read port and the core's link
            # into the mesh, in issue order: known now, so the tile is released at once
            start = max(now, self.core_out_free[core])
            h.released = start + max(-(-nbytes // self.l2_bw), self.mesh.serialization(nbytes))
            self.core_out_free[core] = h.released
        if lines.size == 0 and onchip is None:
            h.done = now + 1
        else:
            self.pending.append(h)
        return h

    def _load_lines(self, segments: tuple[Segment, ...]
                    ) -> tuple[np.ndarray, np.ndarray | None, int]:
        """A load's lines: (lines outside the resident tensors, lines inside them or None, the
        bytes it moves), :meth:`_split` of :meth:`LineMap.of`. Cached per ``segments`` (cores
        load the same windows again and again): the arrays are shared by every DMA of the window
        and never written (made read-only they would make Numba compile read-only variants of
        the flush kernels)."""
        hit = self._load_cache.get(segments)
        if hit is None:
            lines, onchip = self._split(self.lines.of(segments))
            hit = (lines, onchip, sum(s.nbytes for s in segments))
            self._remember(self._load_cache, segments, hit, lines.size)
        return hit

    def _store_lines(self, segments: tuple[Segment, ...]
                     ) -> tuple[np.ndarray, np.ndarray, list[int], int]:
        """A store's :meth:`LineMap.of_write` (lines written whole, lines written in part and
        their byte masks) and the bytes it moves. Cached per ``segments`` like
        :meth:`_load_lines` (the write combining itself, :meth:`_combine`, is not)."""
        hit = self._store_cache.get(segments)
        if hit is None:
            whole, part, masks = self.lines.of_write(segments)
            hit = (whole, part, masks, sum(s.nbytes for s in segments))
            self._remember(self._store_cache, segments, hit, whole.size + part.size)
        return hit

    def _remember(self, cache: dict, key: tuple[Segment, ...], value: tuple, size: int) -> None:
        """Keep ``value`` (``size`` lines) in a per-window cache: both caches are emptied when
        they hold ``_WINDOW_CACHE_ENTRIES`` windows or ``_WINDOW_CACHE_LINES`` lines."""
        if (len(self._load_cache) + len(self._store_cache) >= _WINDOW_CACHE_ENTRIES
                or self._cached_lines + size > _WINDOW_CACHE_LINES):
            self._load_cache.clear()
            self._store_cache.clear()
            self._cached_lines = 0
        cache[key] = value
        self._cached_lines += size

    def _combine(self, whole: np.ndarray, part: np.ndarray, masks: list[int]
                 ) -> tuple[np.ndarray, np.ndarray | None]:
        """A store's lines -> (lines it sends to DDR, lines it writes on chip or None).

        ``whole``: the lines it writes whole; ``part``: the lines it writes in part, with the
        byte ``masks`` it writes of each. Whole lines go to DDR (those of resident tensors stay
        on chip). A part-written line is written into its home L2 slice (on chip), merged with
        the earlier pieces of that line (write combining in the write-back on-chip memory);
        the store that completes a line also sends the whole line to DDR. Lines never
        completed are written back when the kernel ends (:meth:`write_back_partials`)."""
        lines, onchip = self._split(whole)
        if not part.size:
            return lines, onchip
        outside, inside = self._split(part)
        if inside is not None:                  # pieces of resident tensors: on chip anyway
            keep = np.isin(part, outside)
            masks = [m for m, k in zip(masks, keep.tolist(), strict=True) if k]
        partial, full = self.partial, self.lines.full_mask
        completed = []
        for ln, m in zip(outside.tolist(), masks, strict=True):
            m |= partial.pop(ln, 0)
            if m == full:
                completed.append(ln)
            else:
                partial[ln] = m
        if completed:
            lines = np.union1d(lines, np.array(completed, np.int64))
        onchip = part if onchip is None else np.union1d(onchip, part)
        return lines, onchip

    def write_back_partials(self, now: int) -> int | None:
        """Write every line still held in part (write combining) back to DDR, as one store
        issued at core cycle ``now`` by core 0 (the end of a kernel); returns the cycle the last
        of them is in DDR, or None when no line is held."""
        if not self.partial:
            return None
        lines = np.array(sorted(self.partial), np.int64)
        self.partial = {}
        nbytes = int(lines.size) * self.line
        h = DmaHandle(0, now, True, lines, nbytes, -1,
                      released=now + self.mesh.serialization(nbytes))
        self.pending.append(h)
        self.flush(now)
        if self.stream is not None:
            self.stream.streams.finish()
            self.confirm([h], now)
        assert h.done is not None
        return h.done

    def confirm(self, handles: list[DmaHandle], now: int, ready: int = 0) -> int | None:
        """With the persistent DDR, confirm the ``done`` of flushed handles at core cycle
        ``now`` (no DMA issued later starts before it): the pending batch is flushed, the DDR5
        runs go on for real as far as ``now`` allows, and a handle whose every DDR request's
        real completion is known gets ``done`` moved by the most any of them completed after
        (or, if all did, before) its speculated completion - the NoC ports' schedule is not
        redone: the data leaves them that much later - and never before ``now``. Returns None
        once every handle is confirmed, else the core cycle to ask again.

        Asking again then is in time for a load: a read not known at ``now`` issues its column
        command at the horizon or later and completes nCL + nBL after it, so a load is
        confirmed no later than its data arrives (``reads_learned_late`` counts the loads
        confirmed after their real ``done`` and after ``ready``, the cycle the core asking could
        have used them: 0 unless first asked after a real completion earlier than speculated).
        The cores confirm loads only (:meth:`Core._confirm`); stores are confirmed by
        :meth:`settle` once the DDR5 runs are finished, when every completion is known."""
        stream = self.stream
        if stream is None:
            return None
        if self.pending:
            self.flush(now)
        again = None
        for h in handles:
            ids = h.ddr_ids
            if ids is None:
                continue
            late = stream.lateness(ids, now)
            if late is None:
                t = now + self.poll_cycles
                again = t if again is None else min(again, t)
                continue
            h.ddr_ids = None
            assert h.done is not None
            done = h.done + late
            if done < now:
                if now > ready and not h.is_write:
                    self.reads_learned_late += 1
                done = now
            h.done = done
        return again

    def settle(self, handles: list[DmaHandle]) -> int:
        """After :meth:`finish`: confirm ``handles`` (every completion is known) and return
        the latest ``done`` among them (0 if none)."""
        self.confirm(handles, 0)
        return max((h.done for h in handles if h.done is not None), default=0)

    def finish(self) -> None:
        """The end of the run: the persistent DDR runs complete every request (their real
        completions, compared with the speculated ones: :meth:`speculation`)."""
        if self.stream is not None:
            self.stream.streams.finish()

    def speculation(self) -> SpeculationStats | None:
        """The persistent DDR's :class:`~prodigy_sim.dram.streams.SpeculationStats` (after
        :meth:`finish`), or None with the batched DDR."""
        return self.stream.streams.spec_stats if self.stream is not None else None

    def _split(self, lines: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """``lines`` (sorted) -> (lines outside the resident tensors, lines inside them or
        None). A line belongs to the range with the last start at or before it."""
        if not self._res_lo or not lines.size:
            return lines, None
        # the common cases from the first and the last line alone: no range reaches into
        # [lo, hi] (none inside), or one range holds it all (no range starts inside it)
        lo, hi = int(lines[0]), int(lines[-1])
        j = bisect_right(self._res_lo, hi) - 1
        if j < 0 or self._res_reach[j] <= lo:
            return lines, None
        if self._res_lo[j] <= lo and hi < self._res_hi[j]:
            return lines[:0], lines
        k = np.searchsorted(self.res_lo, lines, side="right") - 1
        inside = (k >= 0) & (lines < self.res_hi[np.maximum(k, 0)])
        if not inside.any():
            return lines, None
        return lines[~inside], lines[inside]

    def join_multicast(self, env, core: int, now: int, step, members: tuple[int, ...],
                       seq: int) -> DmaHandle:
        """Core ``core``'s part of its group's ``seq``-th multicast load (``members``: the
        group's cores). The last member to join issues the transfer; until then the handle's
        ``waiting`` event tells a core that needs the data to wait for the others."""
        key = (members, seq)
        h = DmaHandle(core, now, False, None, sum(s.nbytes for s in step.ddr), step.index)
        group = self.mc_open.get(key)
        if group is None:
            group = self.mc_open[key] = {"handles": [], "ddr": step.ddr, "event": env.event()}
        elif group["ddr"] != step.ddr:
            raise SimulationError(f"core {core}: multicast load {seq} of group {list(members)} "
                                  "reads another window than the first member's")
        group["handles"].append(h)
        h.waiting = group["event"]
        if len(group["handles"]) == len(members):
            del self.mc_open[key]
            order = {c: i for i, c in enumerate(members)}
            handles = sorted(group["handles"], key=lambda m: order[m.core])
            for m in handles:
                m.waiting = None
            self.issue_multicast(handles, group["ddr"])
            group["event"].succeed()
        return h

    def issue_multicast(self, members: list[DmaHandle], segments: tuple[Segment, ...]) -> None:
        """Issue the transfer of a complete multicast group (``members``: one handle per core,
        in group order, each with its own issue cycle). It starts when the last member issued;
        DDR (or the L3) is read once, from the first member's position."""
        lead = members[0]
        start = max(h.issue for h in members)
        lines, onchip, nbytes = self._load_lines(segments)
        t = DmaHandle(lead.core, start, False, lines, nbytes, lead.index, members=members,
                      onchip=onchip)
        if lines.size == 0 and onchip is None:
            for h in members:
                h.done = start + 1
        else:
            self.pending.append(t)
        self.multicast_transfers += 1

    def flush(self, now: int) -> None:
        """Run the pending batch through the shared L3, the NoC ports and the DDR5 model; set
        every ``done``. ``now``: the core cycle of the flush (no later DMA starts before it).

        DDR data moves as 64-B lines (each with its own DRAM completion); on-chip data (L3 hits,
        resident tensors) as packets: the lines of one DMA that live in one L2 slice, which
        cross a port back to back once the last of them is in the slice."""
        batch, self.pending = self.pending, []
        if not batch:
            return
        self.flushes += 1
        mesh = self.mesh
        n = len(batch)
        # a store's lines leave when its first byte is on the link, a load's at issue
        start = np.fromiter((max(h.issue, h.released - mesh.serialization(h.nbytes))
                             if h.is_write else h.issue for h in batch), np.int64, n)
        cores = np.fromiter((h.core for h in batch), np.int64, n)
        writes = np.fromiter((h.is_write for h in batch), np.bool_, n)
        pend = [h.pending_lines() for h in batch]
        line = np.concatenate(pend) if n > 1 else pend[0]
        dma = np.repeat(np.arange(n, dtype=np.int64),
                        np.fromiter((x.size for x in pend), np.int64, n))
        l3_info = None
        if self.l3 is not None:
            line, dma, l3_info = self._l3_lookup(line, dma, writes, self.l3)
        ctrl = ((line // self.ilv) % self.nsub) // self.sub
        is_w = writes[dma]
        comp_core, ids = (self._ddr(line, ctrl, dma, start, cores, is_w, now) if line.size
                          else (line, None))
        done = np.zeros(n, np.int64)
        wr = np.flatnonzero(is_w)
        if wr.size:
            # write data into the controllers; the store is done when the last write completes
            dw = dma[wr]
            np.maximum.at(done, dw, comp_core[wr] + mesh.latency[cores[dw], ctrl[wr]])
        # the loads' lines (all of them when the batch has no store)
        if wr.size:
            rd = np.flatnonzero(~is_w)
            rd_ctrl, rd_comp, rd_line_dma = ctrl[rd], comp_core[rd], dma[rd]
        else:
            rd_ctrl, rd_comp, rd_line_dma = ctrl, comp_core, dma
        # the ports' calendars forget what ends before the batch's first start (PortCalendar)
        horizon = int(start.min())
        # read data streams back: each controller's port into the mesh (an L2 slice's port for
        # on-chip data), then the core's port out of the mesh (and its scratchpad write port),
        # serve lines and packets first come first served as they become ready, so a port
        # interleaves the DMAs whose data it carries; in the gaps earlier batches left.
        at_port = self.ctrl_in.serve(rd_ctrl, rd_comp, horizon) if rd_ctrl.size else None
        # on-chip data: L3 hits, and lines of resident tensors (in their slices from the start;
        # stores into them go to the slices), as packets per (DMA, home slice)
        hits = None
        if l3_info is not None:
            hits = self._l3_fill(l3_info, line, ctrl, comp_core)
        wd: list[np.ndarray] = []
        wl: list[np.ndarray] = []
        od: list[int] = []
        ol: list[np.ndarray] = []
        for i, h in enumerate(batch):
            if h.onchip is not None:
                if h.is_write:
                    wd.append(np.full(h.onchip.size, i, np.int64))
                    wl.append(h.onchip)
                    self.onchip_write_lines += int(h.onchip.size)
                else:
                    od.append(i)
                    ol.append(h.onchip)
                    self.l3_hit_lines += int(h.onchip.size)
        packets = None
        if hits is not None or od:
            packets = self._read_packets(hits, od, ol, n)
            if not packets[0].size:
                packets = None
        if wd:
            # stores into resident tensors: the packets cross the mesh into their home slices
            lines = np.concatenate(wl)
            pd, home, cnt, _ = self._packets(np.concatenate(wd), lines,
                                             np.zeros(lines.size, np.int64), n)
            arrive = start[pd] + self.slice_core_lat[home, cores[pd]]
            at = self.slice_in.serve(home, arrive, horizon, cnt)
            np.maximum.at(done, pd, at)
        receivers = [h.members or [h] for h in batch]
        recv_done: list[int] | None = None
        if at_port is not None or packets is not None:
            # every receiving core takes every element of its transfer (a multicast fans out)
            recv = None
            if any(h.members for h in batch):
                count = np.fromiter((len(r) for r in receivers), np.int64, n)
                recv = (np.cumsum(count) - count, count,
                        np.fromiter((m.core for r in receivers for m in r), np.int64))
            none = np.zeros(0, np.int64)
            recv_done = deliver(
                (rd_line_dma, at_port, rd_ctrl) if at_port is not None else (none,) * 3,
                packets or (none,) * 4, start, cores, recv, self.slice_core_lat,
                self.src_core_lat, self.nctrl, self.slice_out, self.core_in, horizon).tolist()
        pos = 0
        for h, d, r in zip(batch, done.tolist(), receivers, strict=True):
            if recv_done is not None and not h.is_write:
                for m in r:
                    m.done = max(d, recv_done[pos])
                    pos += 1
            else:
                h.done = d
                pos += len(r)
        if ids is not None:
            # each DMA's DDR requests (lines DMA after DMA), to confirm its speculated ``done``
            cut = np.searchsorted(dma, np.arange(n + 1)).tolist()
            for i, r in enumerate(receivers):
                if cut[i + 1] > cut[i]:
                    mine = ids[cut[i]:cut[i + 1]]
                    for m in r:
                        m.ddr_ids = mine
        for h in batch:
            h.lines = None
            h.onchip = None
        if self.recorder is not None:             # every core's own transfer (multicast:
            for r in receivers:                   # each member's part)
                for m in r:
                    self.recorder.dma(m)

    def _ddr(self, line, ctrl, dma, start, cores, is_w, now: int
             ) -> tuple[np.ndarray, np.ndarray | None]:
        """Run the lines of a batch through the DDR5 model (``start``, ``cores``: per DMA, the
        core cycle its requests leave its core and the core; ``now``: the flush's core cycle);
        completion core cycle per line (speculated with the persistent DDR), and with the
        persistent DDR each line's request id in the streams (else None)."""
        ids: np.ndarray | None = None
        dram: np.ndarray | None
        offered: np.ndarray | None
        if self.stream is not None:
            done, per_inst, dram, offered, ids = self.stream.run(
                line, ctrl, dma, start, cores, self.mesh.latency, is_w, now)
        else:
            done, per_inst, dram, offered = run_batch(
                self.runner, self.geo, line, ctrl, dma, start, cores, self.mesh.latency, is_w,
                self.bus_free, self.read_free, dram_cycles=self.log is not None)
        if self.log is not None:
            assert dram is not None and offered is not None
            log_order = self._log_batch(self.log, line, ctrl,
                                        start[dma] + 1 + self.mesh.latency[cores[dma], ctrl], is_w,
                                        offered)
            self.log.complete.append(dram[log_order])
        self.requests += int(line.size)
        self.bytes_per_ctrl += per_inst.reshape(self.nctrl, self.sub).sum(axis=1) * self.line
        if self._ddr_hook is not None:
            self._ddr_hook(ctrl, done, self.line, self.nctrl)
        return done, ids

    def _log_batch(self, log: _Log, line, ctrl, sent, is_w, offered) -> np.ndarray:
        """Log a batch's requests per controller in the order the DDR5 model was offered them
        (``offered``: DRAM cycles, from :func:`run_batch`), for :func:`check_batching`;
        returns that order (for the completions)."""
        ns, s, g = self.nsub, self.sub, self.ilv
        run = line // g
        sub_local = (run % ns) % s
        addr = (((run // ns) * s + sub_local) * g + line % g) * self.line
        arrive = self.to_dram(sent)
        span = int(offered.max()) + 1
        by_ctrl = np.argsort(ctrl * span + offered, kind="stable")
        log.ctrl.append(ctrl[by_ctrl])
        log.arrive.append(arrive[by_ctrl])
        log.addr.append(addr[by_ctrl])
        log.is_write.append(is_w[by_ctrl])
        log.offered.append(offered[by_ctrl])
        log.line.append(line[by_ctrl])
        return by_ctrl

    def _packets(self, dma: np.ndarray, line: np.ndarray, ready: np.ndarray, n: int
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Group on-chip lines (line ``l`` lives in the L2 slice ``l % slices``) into packets per
        (DMA, slice): dma, slice, lines, and the cycle the last of them is in the slice."""
        return group_packets(dma, line, ready, self.nslices, n)

    def _read_packets(self, hits: tuple | None, od: list[int], ol: list[np.ndarray], n: int
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`_packets` of a batch's on-chip reads: the L3 hits (``hits`` from
        :meth:`_l3_fill`: dma, line, hit, entry of the looked-up lines; or None), ready when
        their block is in its slice, and the lines ``ol[j]`` of resident tensors DMA ``od[j]``
        reads (ready from the start)."""
        if od:
            odma = np.repeat(np.asarray(od, np.int64),
                             np.fromiter((x.size for x in ol), np.int64, len(ol)))
            oline = np.concatenate(ol) if len(ol) > 1 else ol[0]
        else:
            odma = oline = _NO_LINES
        if hits is None:
            return self._packets(odma, oline, np.zeros(odma.size, np.int64), n)
        assert self.l3 is not None
        hdma, hline, hit, ent = hits
        return hit_packets(hdma, hline, hit, ent, self.l3.ready, odma, oline, self.nslices, n)

    # -- the shared L3 ("virtual L3" in idle L2) -----------------------------------------------
    def _l3_lookup(self, line: np.ndarray, dma: np.ndarray, writes: np.ndarray, l3: L3Blocks
                   ) -> tuple[np.ndarray, np.ndarray, tuple]:
        """Look the loads of a batch up in the L3 in issue order (LRU over 4 KiB blocks, a valid
        bit per 64-B line: :class:`L3Blocks`). ``line``, ``dma``: every line of the batch, DMA
        after DMA, and its DMA (int64, shape (n,)); ``writes``: per DMA, a store. Returns the
        lines the DMAs take from DDR and their DMAs (the same order, hits removed), and what
        :meth:`_l3_fill` needs: per DDR line the L3 entry it fills (-1 for stores), and the
        looked-up lines' DMA, line, hit flag and entry (None without hits)."""
        loads = ~writes[dma]
        every = bool(loads.all())
        lines, ldma = (line, dma) if every else (line[loads], dma[loads])
        if not lines.size:
            return line, dma, (np.full(line.size, -1, np.int64), None)
        first = np.empty(lines.size, np.bool_)     # each DMA's first line
        first[0] = True
        np.not_equal(ldma[1:], ldma[:-1], out=first[1:])
        hit, ent, nhit = l3.lookup(lines, first)
        self.l3_hit_lines += nhit
        if every:
            fill_ent = ent
        else:
            fill_ent = np.full(line.size, -1, np.int64)     # stores fill no entry
            fill_ent[loads] = ent
        if not nhit:
            return line, dma, (fill_ent, None)
        hits = (ldma, lines, hit, ent)
        if every:
            keep = ~hit
        else:
            keep = np.ones(line.size, np.bool_)
            keep[loads] = ~hit
        return line[keep], dma[keep], (fill_ent[keep], hits)

    def _l3_fill(self, info: tuple, line: np.ndarray, ctrl: np.ndarray, comp_core: np.ndarray
                 ) -> tuple | None:
        """Set the slice-ready cycle of the blocks this batch filled from DDR (a filled line
        reaches its home slice from its controller); return the hits part of ``info`` (see
        :meth:`_l3_lookup`): their data is in its home slice at ``l3.ready[entry]``."""
        fill_ent, hits = info
        l3 = self.l3
        assert l3 is not None
        fill_ready(l3.ready, fill_ent, line, ctrl, comp_core, self.ctrl_slice_lat, self.nslices)
        return hits


def check_batching(memory: MemorySystem) -> dict[str, float]:
    """Replay every logged request in one DDR5 batch per controller and compare completions.

    Needs a memory system built with ``log=True``. Returns the mean and the largest relative
    difference of the per-controller drain cycle (last completion minus first arrival), the
    mean per-request completion difference in DRAM cycles (batched minus single batch), and
    the mean wait of reads and of writes behind the earlier batches' bursts, from their arrival
    to the cycle the seam rule offered them (``seam_wait_read`` / ``seam_wait_write``, DRAM
    cycles), beside the reads' mean latency in the DDR5 model from that offer
    (``model_latency_read``). Behind a saturated bus both are long (the queue); a long seam
    wait on a mostly idle bus is the seam itself, which the replay cannot see (the later
    arrivals it replays were already shaped by the seam). The ports' side of the seam
    (:class:`PortCalendar`): ``port_late_share``, the share of the NoC ports' elements (lines
    or packets) that were ready before their calendar's horizon and started at it, and
    ``port_late_cycles_mean`` / ``port_late_cycles_max``, their mean and largest delay (core
    cycles, the calendar's port clock: what each lost at most at that port).
    """
    ports = _port_lateness(memory)
    lg = memory.log
    if lg is None or not lg.ctrl:
        return {"drain_rel_diff_mean": 0.0, "drain_rel_diff_max": 0.0, "mean_diff_cycles": 0.0,
                "seam_wait_read": 0.0, "seam_wait_write": 0.0, "model_latency_read": 0.0,
                **ports}
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
    offered = np.concatenate(lg.offered)
    wait = offered - arrive

    def mean(x: np.ndarray) -> float:
        return float(x.mean()) if x.size else 0.0

    return {"drain_rel_diff_mean": float(np.mean(rel)),
            "drain_rel_diff_max": float(np.max(np.abs(rel))),
            "mean_diff_cycles": float(d.mean()),
            "seam_wait_read": mean(wait[~is_w]), "seam_wait_write": mean(wait[is_w]),
            "model_latency_read": mean((comp - offered)[~is_w]), **ports}


def _port_lateness(memory: MemorySystem) -> dict[str, float]:
    """``port_late_share``, ``port_late_cycles_mean`` and ``port_late_cycles_max`` of
    :func:`check_batching`, over every port calendar of ``memory``."""
    cals = [memory.ctrl_in, memory.core_in, memory.slice_out, memory.slice_in]
    served = sum(c.served for c in cals)
    late = sum(c.late for c in cals)
    return {"port_late_share": late / served if served else 0.0,
            "port_late_cycles_mean": sum(c.late_cycles for c in cals) / late if late else 0.0,
            "port_late_cycles_max": max(c.late_cycles_max for c in cals)}
