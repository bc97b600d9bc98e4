"""Batch interface to the DDR5 model: arrays of requests in, per-request cycles and statistics out.

:func:`simulate_requests` is the entry point for other models (the SimPy chip model hands it a
batch of requests) and for the DRAM-only trace mode. Cycles are integer DRAM clock cycles (nCK);
cycle 0 is the first frontend iteration. A request offered at cycle ``k`` (its controller
*arrive*) can issue its first command at ``k + 1``; a read completes ``nCL + nBL`` cycles after its
RD command, a write when its WR command issues (write data latency is not modelled, as in
Ramulator).

Controller overhead: one cycle (the request is accepted in the cycle before the controller tick that
can schedule it), so the unloaded read latency is ``1 + nCL + nBL`` (row hit),
``1 + nRCD + nCL + nBL`` (bank closed) and ``1 + (nRP - 1) + nRCD + nCL + nBL`` (row conflict; the
``-1`` is the 2-cycle ACT adjustment of PRE->ACT).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numba import njit

from prodigy_sim._jit import cached_on_disk
from prodigy_sim.dram import _kernel as K
from prodigy_sim.dram import mapping
from prodigy_sim.dram.config import MemorySystemConfig
from prodigy_sim.dram.mapping import map_addresses
from prodigy_sim.errors import ConfigError, SimulationError

__all__ = ["RequestBatchResult", "DramStats", "ControllersResult", "simulate_requests",
           "simulate_controllers", "simulate_grouped", "kernels_compiled", "compile_kernels"]

ROW_HIT, ROW_MISS, ROW_CONFLICT, NO_DRAM_ACCESS = 0, 1, 2, -1


@dataclass(frozen=True)
class DramStats:
    """Aggregate figures of a replay, counted up to ``cycles`` (Ramulator's definitions).

    Bandwidth counts *all* requests of the batch (64 B each) over ``cycles``. Mean read latency is
    the sum of (data returned - controller arrive) over reads returned by ``cycles``, divided by the
    reads whose RD command issued by ``cycles`` (time waiting outside a full buffer is excluded).
    """

    cycles: int
    tck_ps: int
    n_requests: int
    n_reads: int
    n_writes: int
    bytes_per_request: int
    read_latency_sum_cycles: int
    reads_issued: int
    row_hits: int
    row_misses: int
    row_conflicts: int
    refreshes: int
    requests_per_channel: tuple[int, ...]

    @property
    def time_ns(self) -> float:
        """Simulated time, ns."""
        return self.cycles * self.tck_ps / 1000.0

    def _gbps(self, count: int) -> float:
        return count * self.bytes_per_request / (self.cycles * self.tck_ps * 1e-3) if self.cycles \
            else 0.0

    @property
    def bandwidth_GBps(self) -> float:
        """All requests x 64 B / simulated time, GB/s (1e9 B/s)."""
        return self._gbps(self.n_requests)

    @property
    def read_bandwidth_GBps(self) -> float:
        """Reads x 64 B / simulated time, GB/s."""
        return self._gbps(self.n_reads)

    @property
    def channel_bandwidth_GBps(self) -> tuple[float, ...]:
        """Per-channel requests x 64 B / simulated time, GB/s."""
        return tuple(self._gbps(n) for n in self.requests_per_channel)

    @property
    def avg_read_latency_cycles(self) -> float:
        """Mean read latency in DRAM cycles (NaN without reads)."""
        if not self.reads_issued:
            return float("nan")
        return self.read_latency_sum_cycles / self.reads_issued

    @property
    def avg_read_latency_ns(self) -> float:
        """Mean read latency in ns."""
        return self.avg_read_latency_cycles * self.tck_ps / 1000.0

    def to_dict(self) -> dict[str, object]:
        """JSON-ready figures (bandwidth in GB/s, latency in cycles and ns; None without reads)."""
        return {
            "cycles": self.cycles,
            "time_ns": self.time_ns,
            "n_requests": self.n_requests,
            "n_reads": self.n_reads,
            "n_writes": self.n_writes,
            "bandwidth_GBps": self.bandwidth_GBps,
            "read_bandwidth_GBps": self.read_bandwidth_GBps,
            "avg_read_latency_cycles": self.avg_read_latency_cycles if self.reads_issued else None,
            "avg_read_latency_ns": self.avg_read_latency_ns if self.reads_issued else None,
            "row_hits": self.row_hits,
            "row_misses": self.row_misses,
            "row_conflicts": self.row_conflicts,
            "refreshes": self.refreshes,
            "channel_bandwidth_GBps": list(self.channel_bandwidth_GBps),
        }


@dataclass(frozen=True)
class RequestBatchResult:
    """Per-request cycles (int64 arrays of shape (n,); -1 = never happened) and run totals.

    ``accept_cycle``: controller arrive (frontend iteration that enqueued the request);
    ``first_command_cycle``: its first DRAM command; ``row_class``: 0 hit, 1 miss, 2 conflict,
    -1 served from the write buffer; ``issue_cycle``: its RD/WR command; ``complete_cycle``: data
    returned (read) or WR issued (write). ``last_accept_cycle`` is the cycle the last request was
    accepted; ``refreshes_at_last_accept`` / ``refreshes`` count REFab per channel.
    """

    config: MemorySystemConfig
    is_write: np.ndarray
    channel: np.ndarray
    accept_cycle: np.ndarray
    first_command_cycle: np.ndarray
    row_class: np.ndarray
    issue_cycle: np.ndarray
    complete_cycle: np.ndarray
    last_accept_cycle: int
    refreshes_at_last_accept: np.ndarray = field(repr=False)
    refreshes: np.ndarray = field(repr=False)
    _counts: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def drained_cycle(self) -> int:
        """Cycle at which the last request completed."""
        return int(self.complete_cycle.max()) if self.complete_cycle.size else 0

    def stats(self, at: str = "last_accept") -> DramStats:
        """Figures counted until the last acceptance (``"last_accept"``, Ramulator's stopping
        point) or until every request completed (``"drained"``)."""
        if at == "last_accept":
            cyc = self.last_accept_cycle
            refreshes = int(self.refreshes_at_last_accept.sum())
        elif at == "drained":
            cyc = self.drained_cycle
            refreshes = int(self.refreshes.sum())
        else:
            raise ConfigError(f"'at' must be 'last_accept' or 'drained' (got {at!r})")
        if not self._counts:  # one pass for both stopping points
            counts = np.zeros((2, 6), np.int64)
            per_ch = np.zeros(self.config.channels, np.int64)
            _count(self.is_write, self.row_class, self.accept_cycle, self.first_command_cycle,
                   self.issue_cycle, self.complete_cycle, self.channel,
                   self.last_accept_cycle, self.drained_cycle, counts, per_ch)
            self._counts["last_accept"] = counts[0].tolist()
            self._counts["drained"] = counts[1].tolist()
            self._counts["per_channel"] = tuple(per_ch.tolist())
        (n_reads, lat, issued, hits, misses, conflicts) = self._counts[at]
        n = int(self.is_write.size)
        return DramStats(
            cycles=int(cyc), tck_ps=self.config.timing.tck_ps, n_requests=n,
            n_reads=n_reads, n_writes=n - n_reads,
            bytes_per_request=self.config.tx_bytes, read_latency_sum_cycles=lat,
            reads_issued=issued, row_hits=hits, row_misses=misses,
            row_conflicts=conflicts, refreshes=refreshes,
            requests_per_channel=self._counts["per_channel"])


@njit(cache=True)
def _count(is_write, row_class, accept, first, issue, complete, channel, cyc0, cyc1, out,
           per_channel):
    """One pass over the requests, for the stopping cycles ``cyc0`` and ``cyc1`` (rows 0 and 1
    of ``out``): reads; latency sum of the reads returned by the cycle (data returned -
    accepted); reads whose RD issued by it; hits / misses / conflicts of the requests whose first
    command issued by it (forwarded reads count in none). Also the requests per channel."""
    n_reads = 0
    lat0 = lat1 = iss0 = iss1 = 0
    cls0 = np.zeros(3, np.int64)
    cls1 = np.zeros(3, np.int64)
    for i in range(is_write.size):
        per_channel[channel[i]] += 1
        rc = row_class[i]
        if rc < 0:
            if not is_write[i]:
                n_reads += 1
            continue
        f = first[i]
        if 0 <= f:
            cls0[rc] += f <= cyc0
            cls1[rc] += f <= cyc1
        if not is_write[i]:
            n_reads += 1
            c = complete[i]
            if 0 <= c:
                d = c - accept[i]
                lat0 += d if c <= cyc0 else 0
                lat1 += d if c <= cyc1 else 0
            s = issue[i]
            if 0 <= s:
                iss0 += s <= cyc0
                iss1 += s <= cyc1
    out[0, 0] = n_reads
    out[0, 1] = lat0
    out[0, 2] = iss0
    out[1, 0] = n_reads
    out[1, 1] = lat1
    out[1, 2] = iss1
    for k in range(3):
        out[0, 3 + k] = cls0[k]
        out[1, 3 + k] = cls1[k]


@njit(cache=True)
def _non_negative_sorted(x):
    """True if ``x`` (shape (n,), n >= 1) is non-negative and non-decreasing (one pass)."""
    ok = x[0] >= 0
    for i in range(1, x.size):
        ok &= x[i] >= x[i - 1]
    return ok


def _stuck(status: int, config: MemorySystemConfig, where: str = "") -> SimulationError:
    if status == 3:
        c = config.controller
        return SimulationError(
            f"DDR5 model made no progress{where}: {K.STALL_REFRESHES} refresh intervals passed "
            "while requests waited and none was accepted or served (controller: "
            f"write_low_watermark {c.write_low_watermark}, write_high_watermark "
            f"{c.write_high_watermark}, queues {c.read_queue_entries} / "
            f"{c.write_queue_entries}, scheduler {c.scheduler})")
    return SimulationError(f"DDR5 model deadlocked{where}: a request could never be scheduled")


def _integers(values, name: str, dtype, kinds: str = "iu") -> np.ndarray:
    """``values`` as a contiguous array of ``dtype``; ConfigError naming ``name`` unless they are
    integers (numpy kinds ``kinds``) >= 0 - not floats, strings, objects or negatives."""
    a = np.asarray(values)
    if a.size and a.dtype.kind not in kinds:
        raise ConfigError(f"'{name}' must be an array of non-negative integers (got dtype "
                          f"{a.dtype})")
    if a.size and a.dtype.kind == "i" and a.min() < 0:
        raise ConfigError(f"'{name}' must be non-negative (got {int(a.min())})")
    if a.size and a.dtype.kind == "u" and dtype == np.int64 and a.max() > np.iinfo(np.int64).max:
        raise ConfigError(f"'{name}' must stay below 2**63 (got {int(a.max())})")
    return np.ascontiguousarray(a).astype(dtype, copy=False)


def _flags(values, name: str) -> np.ndarray:
    """``values`` as a contiguous bool array; ConfigError unless bools or integers 0 / 1."""
    a = np.asarray(values)
    if a.size and (a.dtype.kind not in "biu" or (a.dtype.kind != "b" and
                                                 ((a < 0) | (a > 1)).any())):
        raise ConfigError(f"'{name}' must be booleans (or 0 / 1) (got dtype {a.dtype})")
    return np.ascontiguousarray(a, dtype=np.bool_)


def _check_banks(config: MemorySystemConfig) -> None:
    if config.org.banks > K.MAX_BANKS:
        raise ConfigError(f"the DDR5 model supports at most {K.MAX_BANKS} banks per channel "
                          f"(got {config.org.banks})")


# parameter vectors of recently used configurations, by object identity (the entry holds the
# configuration, so its id stays unique while cached): building one costs more than a small run
_PARAMS_CACHE: dict[int, tuple[MemorySystemConfig, np.ndarray, np.ndarray]] = {}


def _params(config: MemorySystemConfig, chain: bool) -> np.ndarray:
    """The kernel's parameter vector (shared between calls: treat it as read-only)."""
    hit = _PARAMS_CACHE.get(id(config))
    if hit is None or hit[0] is not config:
        if len(_PARAMS_CACHE) >= 64:
            _PARAMS_CACHE.clear()
        base = _build_params(config, False)
        hit = (config, base, _build_params(config, True))
        _PARAMS_CACHE[id(config)] = hit
    return hit[2] if chain else hit[1]


def _build_params(config: MemorySystemConfig, chain: bool) -> np.ndarray:
    t = config.timing
    ctrl = config.controller
    p = np.zeros(K.P_COUNT, np.int64)
    for idx, val in (
        (K.P_NBL, t.nBL), (K.P_NCL, t.nCL), (K.P_NCWL, t.nCWL), (K.P_NRCD, t.nRCD),
        (K.P_NRP, t.nRP), (K.P_NRAS, t.nRAS), (K.P_NRC, t.nRC), (K.P_NWR, t.nWR),
        (K.P_NRTP, t.nRTP), (K.P_NPPD, t.nPPD), (K.P_NCCDS, t.nCCDS), (K.P_NCCDL, t.nCCDL),
        (K.P_NCCDS_WR, t.nCCDS_WR), (K.P_NCCDL_WR, t.nCCDL_WR), (K.P_NRRDS, t.nRRDS),
        (K.P_NRRDL, t.nRRDL), (K.P_NWTRS, t.nWTRS), (K.P_NWTRL, t.nWTRL), (K.P_NFAW, t.nFAW),
        (K.P_NRFC, t.nRFC), (K.P_NREFI, t.nREFI), (K.P_CHANNELS, config.channels),
        (K.P_BANKS, config.org.banks), (K.P_BANK_GROUPS, config.org.bank_groups),
        (K.P_RQ, ctrl.read_queue_entries), (K.P_WQ, ctrl.write_queue_entries),
        (K.P_W_ENTER, ctrl.write_enter_threshold), (K.P_W_LEAVE, ctrl.write_leave_threshold),
        (K.P_REFRESH, ctrl.refresh == "all_bank"), (K.P_CHAIN, chain),
        (K.P_ROW_HIT_FIRST, ctrl.scheduler == "row_hit_first"),
    ):
        p[idx] = int(val)
    return p


def _request_arrays(arrive_cycle, addr, is_write) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Requests as the kernel takes them - arrival cycles (int64), byte addresses (uint64),
    is-write flags (bool), each of shape (n,) - or a ConfigError naming what is wrong: a type,
    unequal shapes, arrivals negative, decreasing or not below ``MAX_CYCLE``."""
    arrive = _integers(arrive_cycle, "arrive_cycle", np.int64)
    is_w = _flags(is_write, "is_write")
    a = _integers(addr, "addr", np.uint64)
    n = arrive.size
    if a.shape != (n,) or is_w.shape != (n,) or arrive.ndim != 1:
        raise ConfigError(f"'arrive_cycle', 'addr' and 'is_write' must be 1-D arrays of one length "
                          f"(got shapes {arrive.shape}, {a.shape}, {is_w.shape})")
    if n and not _non_negative_sorted(arrive):
        raise ConfigError("'arrive_cycle' must be non-negative and non-decreasing")
    if n and arrive[-1] >= K.MAX_CYCLE:
        raise ConfigError(f"'arrive_cycle' must stay below 2**46 (got {int(arrive[-1])})")
    return arrive, a, is_w


def simulate_requests(config: MemorySystemConfig, arrive_cycle: np.ndarray, addr: np.ndarray,
                      is_write: np.ndarray, *, chain: bool = False) -> RequestBatchResult:
    """Run a batch of 64-B requests through the memory system.

    ``arrive_cycle`` (int64, shape (n,), non-decreasing): earliest DRAM cycle each request can be
    offered; ``addr`` (uint64 byte addresses, shape (n,)); ``is_write`` (bool, shape (n,)).
    Negative, float, string or object values raise :class:`ConfigError` naming the argument.
    Requests are offered in order, at most one per cycle, at ``max(arrive_cycle[i], accepted
    cycle of i-1 + 1)`` and retried every cycle while the target queue is full (Ramulator's
    frontend). With ``chain=True`` a request is offered only once the previous one completed (one
    request outstanding: unloaded latency).
    """
    arrive, a, is_w = _request_arrays(arrive_cycle, addr, is_write)
    n = arrive.size
    _check_banks(config)
    m = map_addresses(config, a)
    # the kernel writes every entry (-1 where an event never happens) unless it deadlocks;
    # the completion cycles must start at -1 (the chain frontend reads them)
    out = [np.empty(n, np.int64) for _ in range(4)] + [np.full(n, -1, np.int64)]
    acc, first, cls, fin, comp = out
    ref_stop = np.zeros(config.channels, np.int64)
    ref_total = np.zeros(config.channels, np.int64)
    if n:
        stop, status = K.simulate_kernel(_params(config, chain), arrive, m.channel, m.bank_group,
                                         m.bank, m.row, a.view(np.int64), is_w, acc, first, cls,
                                         fin, comp, ref_stop, ref_total)
        if status != 0:
            raise _stuck(status, config)
    else:
        stop = 0
    return RequestBatchResult(
        config=config, is_write=is_w, channel=m.channel, accept_cycle=acc,
        first_command_cycle=first, row_class=cls.astype(np.int8), issue_cycle=fin,
        complete_cycle=comp, last_accept_cycle=int(stop), refreshes_at_last_accept=ref_stop,
        refreshes=ref_total)


@dataclass(frozen=True)
class ControllersResult:
    """Per-request cycles of :func:`simulate_controllers` (int64 arrays of shape (n,), in the
    order of the input; -1 = never happened; cycles counted from each controller's own cycle 0)
    and per-controller totals: ``last_accept_cycle`` (G,), ``refreshes`` (G, channels)."""

    controller: np.ndarray
    accept_cycle: np.ndarray
    first_command_cycle: np.ndarray
    row_class: np.ndarray
    issue_cycle: np.ndarray
    complete_cycle: np.ndarray
    last_accept_cycle: np.ndarray
    refreshes: np.ndarray


def simulate_controllers(config: MemorySystemConfig, controller: np.ndarray,
                         arrive_cycle: np.ndarray, addr: np.ndarray, is_write: np.ndarray, *,
                         controllers: int | None = None) -> ControllersResult:
    """Run several **independent** instances of ``config`` in one call.

    ``controller`` (int, shape (n,)): which instance (0 .. G-1) serves each request. Every
    instance has its own frontend (one request offered per cycle, retried while its queue is
    full), queues, banks and refresh clock, all starting at cycle 0: a full queue of one instance
    never delays another. The requests of one instance are offered in their order of appearance
    in the arrays, at ``arrive_cycle`` (non-decreasing within an instance) at the earliest;
    ``addr`` is the byte address inside that instance. Results are as for
    :func:`simulate_requests` on each instance's requests alone (bit-identical), without its
    per-call overhead: one address mapping and one kernel call for all instances.

    To feed each 32-bit subchannel of a DDR5 DIMM channel independently, use a 1-channel
    ``config`` and one instance per subchannel.
    """
    ctrl = _integers(controller, "controller", np.int64)
    arrive = _integers(arrive_cycle, "arrive_cycle", np.int64)
    is_w = _flags(is_write, "is_write")
    a = _integers(addr, "addr", np.uint64)
    n = arrive.size
    if a.shape != (n,) or is_w.shape != (n,) or ctrl.shape != (n,) or arrive.ndim != 1:
        raise ConfigError(f"'controller', 'arrive_cycle', 'addr' and 'is_write' must be 1-D "
                          f"arrays of one length (got shapes {ctrl.shape}, {arrive.shape}, "
                          f"{a.shape}, {is_w.shape})")
    g = int(ctrl.max()) + 1 if n else 0
    if controllers is not None:
        if n and g > controllers:
            raise ConfigError(f"'controller' values must be < controllers = {controllers}")
        g = controllers
    if n and ctrl.min() < 0:
        raise ConfigError("'controller' values must be >= 0")
    # the kernel takes the requests grouped by instance: sort them unless they already are
    grouped = n < 2 or bool(np.all(ctrl[1:] >= ctrl[:-1]))
    order = None if grouped else np.argsort(ctrl, kind="stable")
    ctrl_s = ctrl if order is None else ctrl[order]
    start = np.searchsorted(ctrl_s, np.arange(g + 1)).astype(np.int64)
    arr_s = arrive if order is None else arrive[order]
    if n:
        first_of = np.zeros(n, np.bool_)
        first_of[start[:-1][start[:-1] < n]] = True
        bad = (np.diff(arr_s) < 0) & ~first_of[1:]
        if arr_s.min() < 0 or bad.any():
            raise ConfigError("'arrive_cycle' must be non-negative and non-decreasing within "
                              "each controller")
        if arr_s.max() >= K.MAX_CYCLE:
            raise ConfigError(f"'arrive_cycle' must stay below 2**46 (got {int(arr_s.max())})")
    a_s = a if order is None else a[order]
    _check_banks(config)
    m = map_addresses(config, a_s)
    out = [np.full(n, -1, np.int64) for _ in range(5)]
    ref_stop = np.zeros((g, config.channels), np.int64)
    ref_total = np.zeros((g, config.channels), np.int64)
    stop = np.zeros(g, np.int64)
    if n:
        bad_group, status = K.simulate_groups_kernel(
            _params(config, False), start, arr_s, m.channel, m.bank_group, m.bank, m.row,
            a_s.view(np.int64), is_w if order is None else is_w[order], out[0], out[1],
            out[2], out[3], out[4], ref_stop, ref_total, stop)
        if bad_group >= 0:
            raise _stuck(status, config, f" in controller {bad_group}")
    res = out
    if order is not None:                           # back to the caller's order
        res = []
        for arr in out:
            r = np.empty_like(arr)
            r[order] = arr
            res.append(r)
    acc, first, cls, fin, comp = res
    return ControllersResult(controller=ctrl, accept_cycle=acc, first_command_cycle=first,
                             row_class=cls.astype(np.int8), issue_cycle=fin,
                             complete_cycle=comp, last_accept_cycle=stop, refreshes=ref_total)


@njit(cache=True)
def _grouped_kernel(p, offset_bits, channel_bits, shift, mask, banks_per_group, bg_xor, start,
                    offer, addr, isw, comp, refresh_at_stop, refresh_total):
    """:func:`simulate_groups_kernel` with the address mapping folded in: each group's requests
    are mapped into scratch rows the size of the largest group (:func:`mapping._map_kernel`), so
    no per-request coordinate arrays are built for the whole batch, and only ``comp`` (shape
    (n,), must start at -1) is kept. Returns (group, status): status 4 if a group's ``offer`` is
    negative, decreasing or not below ``MAX_CYCLE``, else as :func:`simulate_kernel`; (-1, 0)
    when every group ran."""
    g_n = start.size - 1
    big = 0
    for g in range(g_n):
        big = max(big, start[g + 1] - start[g])
    coords = np.empty((5, big), np.int64)
    acc = np.empty(big, np.int64)
    first = np.empty(big, np.int64)
    cls = np.empty(big, np.int64)
    fin = np.empty(big, np.int64)
    addr_u = addr.view(np.uint64)
    for g in range(g_n):
        lo = start[g]
        hi = start[g + 1]
        if hi == lo:
            continue
        prev = np.int64(0)
        for i in range(lo, hi):
            if offer[i] < prev or offer[i] >= K.MAX_CYCLE:
                return g, 4
            prev = offer[i]
        m = hi - lo
        mapping._map_kernel(addr_u[lo:hi], offset_bits, channel_bits, shift, mask,
                            banks_per_group, bg_xor, coords)
        _, status = K.simulate_kernel(p, offer[lo:hi], coords[0, :m], coords[1, :m],
                                      coords[2, :m], coords[3, :m], addr[lo:hi], isw[lo:hi],
                                      acc[:m], first[:m], cls[:m], fin[:m], comp[lo:hi],
                                      refresh_at_stop[g], refresh_total[g])
        if status != 0:
            return g, status
    return -1, 0


def simulate_grouped(config: MemorySystemConfig, start: np.ndarray, arrive_cycle: np.ndarray,
                     addr: np.ndarray, is_write: np.ndarray) -> np.ndarray:
    """Completion cycles (int64, shape (n,)) of independent instances of ``config``, as
    :func:`simulate_controllers` computes them (bit-identical), for callers that already hold
    their requests grouped by instance: instance ``g`` is requests ``start[g]:start[g+1]``
    (``start``: int64, shape (G+1,), from 0 to n, non-decreasing), offered in array order at
    ``arrive_cycle`` (int64, non-decreasing within an instance, counted from each instance's
    cycle 0) to byte addresses ``addr`` (int64 or uint64) inside the instance. The address
    mapping runs inside the kernel, one instance at a time, so no per-request temporaries are
    built besides the result."""
    arrive = np.ascontiguousarray(arrive_cycle, dtype=np.int64)
    a = np.ascontiguousarray(addr)
    if a.dtype == np.uint64:
        a = a.view(np.int64)
    elif a.dtype != np.int64:
        raise ConfigError(f"'addr' must be int64 or uint64 byte addresses (got dtype {a.dtype})")
    is_w = _flags(is_write, "is_write")
    st = np.ascontiguousarray(start, dtype=np.int64)
    n = arrive.size
    if a.shape != (n,) or is_w.shape != (n,) or arrive.ndim != 1:
        raise ConfigError(f"'arrive_cycle', 'addr' and 'is_write' must be 1-D arrays of one "
                          f"length (got shapes {arrive.shape}, {a.shape}, {is_w.shape})")
    if st.ndim != 1 or st.size < 1 or st[0] != 0 or st[-1] != n or \
            (st.size > 1 and not _non_negative_sorted(st)):
        raise ConfigError(f"'start' must run non-decreasing from 0 to {n} (the request count)")
    _check_banks(config)
    comp = np.full(n, -1, np.int64)
    g = st.size - 1
    if n:
        _, offset_bits, channel_bits, shift, mask, bpg = mapping._layout(config)
        ref = np.zeros((g, config.channels), np.int64)
        bad, status = _grouped_kernel(_params(config, False), offset_bits, channel_bits, shift,
                                      mask, bpg, config.bank_group_xor, st, arrive, a, is_w,
                                      comp, ref, ref.copy())
        if status == 4:
            raise ConfigError(f"'arrive_cycle' must be non-negative, below 2**46 and "
                              f"non-decreasing within each instance (instance {bad})")
        if bad >= 0:
            raise _stuck(status, config, f" in instance {bad}")
    return comp


def kernels_compiled() -> bool:
    """True if the DDR5 model's Numba kernels are in the on-disk cache (``cache=True``): their
    first compilation, once per installation, takes 15-40 s on a 2-core machine; loading them
    afterwards a fraction of a second."""
    return cached_on_disk(K.simulate_kernel, K.run_kernel, K.simulate_groups_kernel,
                          mapping._map_kernel,
                          _count, _non_negative_sorted, _grouped_kernel)


def compile_kernels() -> None:
    """Compile the DDR5 model's kernels now (or load them from the on-disk cache): a one-request
    batch through :func:`simulate_requests` and :func:`simulate_controllers`, so a caller can say
    "compiling" before a long first run instead of showing a progress bar stuck at 0%."""
    config = MemorySystemConfig()
    one = (np.zeros(1, np.int64), np.zeros(1, np.uint64), np.zeros(1, np.bool_))
    simulate_requests(config, *one).stats()
    simulate_controllers(config, np.zeros(1, np.int64), *one)
    simulate_grouped(config, np.array([0, 1], np.int64), *one)
