"""A DDR5 run fed in pieces: :class:`DramStream`.

:func:`~prodigy_sim.dram.simulate_requests` needs every request before it starts. A caller that
produces requests as it goes - a core model that issues the next load only once an earlier one
has completed - instead adds them in arrival order and advances the model to a cycle: every
controller event before that cycle happens, the queues, banks and refresh clock stay as they
are, and the next requests join them. The run is the same as one call with every request (per
request, bit for bit: ``tests/test_dram_stream.py``), so no approximation is made at the seams.

A request's completion is final as soon as it is known (``completion() >= 0``): the model
fixes it when the request's column command issues, and nothing that arrives later moves it.
:meth:`DramStream.compact` drops the requests done so far (a long run keeps only those in
flight); :meth:`DramStream.fork` copies the run, e.g. to see when the requests in flight would
complete if nothing else arrived (run the copy to its end) while the original waits for more.
"""

from __future__ import annotations

import numpy as np

from prodigy_sim.dram import _kernel as K
from prodigy_sim.dram.config import MemorySystemConfig
from prodigy_sim.dram.mapping import map_addresses
from prodigy_sim.dram.model import (
    RequestBatchResult,
    _check_banks,
    _params,
    _request_arrays,
    _stuck,
)
from prodigy_sim.errors import ConfigError

__all__ = ["DramStream"]

_FIELDS = ("offer", "chn", "bgi", "bki", "row", "addr", "acc", "first", "cls", "fin", "comp")


class DramStream:
    """One DDR5 memory system (``config``) run in pieces: :meth:`add` requests (DRAM cycles,
    non-decreasing, none before the cycle :meth:`advance` reached), :meth:`advance` to a cycle,
    read :meth:`completion`; :meth:`finish` runs the requests added so far to their end."""

    def __init__(self, config: MemorySystemConfig) -> None:
        _check_banks(config)
        self.config = config
        self._p = _params(config, False)
        self._state = K.kernel_state(self._p)
        self._n = 0
        self._now = 0                       # every event before this iteration has happened
        self._last = 0                      # the last request's arrival
        self._arr = {f: np.empty(0, np.int64) for f in _FIELDS}
        self._isw = np.empty(0, np.bool_)
        self._ref_stop = np.zeros(config.channels, np.int64)
        self._ref_total = np.zeros(config.channels, np.int64)
        self._stop = 0
        self._base = 0                      # requests dropped by compact()

    @property
    def requests(self) -> int:
        """Requests added so far."""
        return self._base + self._n

    @property
    def base(self) -> int:
        """Requests dropped by :meth:`compact`: the index of the first one :meth:`completion`
        and :meth:`result` still hold."""
        return self._base

    @property
    def now(self) -> int:
        """The DRAM cycle the run has reached: every event before it has happened."""
        return self._now

    def add(self, arrive_cycle: np.ndarray, addr: np.ndarray, is_write: np.ndarray
            ) -> np.ndarray:
        """Add requests (shape (m,) each: arrival DRAM cycle, int64, non-decreasing and not
        before :attr:`now` nor the previous request's; uint64 byte address; bool) after the
        earlier ones. Returns their indices (int64, shape (m,)) counted from the first request
        ever added (subtract :attr:`base` to index :meth:`completion`)."""
        arrive, a, is_w = _request_arrays(arrive_cycle, addr, is_write)
        m = arrive.size
        if not m:
            return np.empty(0, np.int64)
        first = int(arrive[0])
        if first < max(self._now, self._last):
            raise ConfigError(f"'arrive_cycle' {first} is before cycle "
                              f"{max(self._now, self._last)} the stream has reached (requests "
                              f"join in arrival order, after what already happened)")
        self._reserve(self._n + m)
        mp = map_addresses(self.config, a)
        lo, hi = self._n, self._n + m
        arr = self._arr
        arr["offer"][lo:hi] = arrive
        arr["chn"][lo:hi] = mp.channel
        arr["bgi"][lo:hi] = mp.bank_group
        arr["bki"][lo:hi] = mp.bank
        arr["row"][lo:hi] = mp.row
        arr["addr"][lo:hi] = a.view(np.int64)
        arr["comp"][lo:hi] = -1
        self._isw[lo:hi] = is_w
        self._n = hi
        self._last = int(arrive[-1])
        return np.arange(self._base + lo, self._base + hi, dtype=np.int64)

    def _reserve(self, n: int) -> None:
        cap = self._isw.size
        if n <= cap:
            return
        cap = max(n, 2 * cap, 1024)
        for f, old in self._arr.items():
            new = np.empty(cap, np.int64)
            new[:self._n] = old[:self._n]
            self._arr[f] = new
        isw = np.zeros(cap, np.bool_)
        isw[:self._n] = self._isw[:self._n]
        self._isw = isw

    def advance(self, until: int) -> None:
        """Run every controller event before DRAM cycle ``until`` (not before :attr:`now`)."""
        if until < self._now:
            raise ConfigError(f"cannot advance to cycle {until}: the stream is at {self._now}")
        self._run(min(int(until), K.INF))
        self._now = int(until)

    def finish(self) -> None:
        """Run the requests added so far to their completion (later ones may still be added,
        arriving after the last event)."""
        self._run(K.INF)

    def _run(self, until: int) -> None:
        if not self._n:
            return
        a = self._arr
        S, E, nz, st = self._state
        stop, status = K.run_kernel(self._p, a["offer"], a["chn"], a["bgi"], a["bki"], a["row"],
                                    a["addr"], self._isw, a["acc"], a["first"], a["cls"],
                                    a["fin"], a["comp"], self._ref_stop, self._ref_total,
                                    self._n, S, E, nz, st, until)
        if status != 0:
            raise _stuck(status, self.config)
        self._stop = int(stop)

    def completion(self) -> np.ndarray:
        """Completion DRAM cycle of every request held (those from :attr:`base` on; int64;
        -1: not known yet). A value once known does not change."""
        return self._arr["comp"][:self._n].copy()

    def compact(self) -> int:
        """Drop the leading requests that are done (their results are no longer held; the run
        goes on unchanged). Returns how many were dropped."""
        n = self._n
        pending = np.flatnonzero(self._arr["comp"][:n] < 0)
        w0 = int(pending[0]) if pending.size else n
        if w0 == 0:
            return 0
        S, E, _, st = self._state
        K.shift_request_indices(S, E, st, self.config.channels, w0)
        for arr in self._arr.values():
            arr[:n - w0] = arr[w0:n]
        self._isw[:n - w0] = self._isw[w0:n]
        self._n = n - w0
        self._base += w0
        return w0

    def fork(self) -> DramStream:
        """An independent copy of the run (state and the requests held)."""
        twin = object.__new__(DramStream)
        twin.__dict__.update(self.__dict__)
        twin._state = tuple(a.copy() for a in self._state)
        twin._arr = {f: a.copy() for f, a in self._arr.items()}
        twin._isw = self._isw.copy()
        twin._ref_stop = self._ref_stop.copy()
        twin._ref_total = self._ref_total.copy()
        return twin

    def result(self) -> RequestBatchResult:
        """Every held request's cycles once all are done (after :meth:`finish`), as
        :func:`~prodigy_sim.dram.simulate_requests` returns them for the same requests (those
        from :attr:`base` on)."""
        n = self._n
        a = self._arr
        if n and int(a["comp"][:n].min()) < 0:
            raise ConfigError("requests are still in flight: call finish() first")
        return RequestBatchResult(
            config=self.config, is_write=self._isw[:n].copy(), channel=a["chn"][:n].copy(),
            accept_cycle=a["acc"][:n].copy(), first_command_cycle=a["first"][:n].copy(),
            row_class=a["cls"][:n].astype(np.int8), issue_cycle=a["fin"][:n].copy(),
            complete_cycle=a["comp"][:n].copy(), last_accept_cycle=self._stop,
            refreshes_at_last_accept=self._ref_stop.copy(), refreshes=self._ref_total.copy())
