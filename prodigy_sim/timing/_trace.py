"""Timeline recording in the Chrome trace-event format (opens in Perfetto / chrome://tracing).

A recorder is handed to :func:`~prodigy_sim.timing.simulate`; without one the simulator does one
``is None`` test per instruction and nothing else. :class:`ChromeTraceRecorder` writes complete
events (``"ph": "X"``) with ``ts`` and ``dur`` in microseconds, ``pid`` = core, ``tid`` = unit
(``dma``, ``matrix``, ``vector``); DMA events carry their bytes.

Bounded size: per core and unit the first ``first_per_track`` events are kept, then one in every
``sample_every`` (the sampled ones say so in ``args.sampled``); the whole trace never exceeds
``max_events`` (later events are counted in ``dropped`` and left out).

:class:`BusyRecorder` keeps the raw busy intervals per core and unit and the bytes per DDR
channel over time, for :mod:`prodigy_sim.simulation` to compose a timeline of a model step.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

__all__ = ["BusyRecorder", "ChromeTraceRecorder"]

_TIDS = {"dma": 0, "matrix": 1, "vector": 2}


class ChromeTraceRecorder:
    """Collects a bounded timeline of unit activity."""

    def __init__(self, *, first_per_track: int = 500, sample_every: int = 64,
                 max_events: int = 200_000) -> None:
        self.first_per_track = first_per_track
        self.sample_every = max(1, sample_every)
        self.max_events = max_events
        self.events: list[dict] = []
        self.seen: dict[tuple[int, str], int] = {}
        self.dropped = 0
        self._us_per_cycle = 1.0
        self._cores = 0

    def start(self, frequency_hz: float, ncores: int) -> None:
        """Called by the simulator before the run."""
        self._us_per_cycle = 1e6 / frequency_hz
        self._cores = ncores

    def _add(self, core: int, unit: str, name: str, start: int, end: int, args: dict) -> None:
        key = (core, unit)
        n = self.seen.get(key, 0)
        self.seen[key] = n + 1
        if n >= self.first_per_track:
            if (n - self.first_per_track) % self.sample_every:
                return
            args = {**args, "sampled": self.sample_every}
        if len(self.events) >= self.max_events:
            self.dropped += 1
            return
        us = self._us_per_cycle
        self.events.append({"name": name, "ph": "X", "ts": start * us,
                            "dur": max(end - start, 0) * us, "pid": core, "tid": _TIDS[unit],
                            "args": {"start_cycle": start, "end_cycle": end, **args}})

    def op(self, core: int, unit: str, name: str, start: int, end: int) -> None:
        """A compute instruction occupying ``unit`` from ``start`` to ``end`` (cycles)."""
        self._add(core, unit, name, start, end, {})

    def dma(self, handle) -> None:
        """A DMA transfer from issue to completion."""
        self._add(handle.core, "dma", "DMA.ST" if handle.is_write else "DMA.LD", handle.issue,
                  handle.done, {"bytes": handle.nbytes})

    def to_json(self) -> dict:
        """The trace as a JSON-ready object (``traceEvents`` plus metadata)."""
        meta = []
        for core in range(self._cores):
            meta.append({"name": "process_name", "ph": "M", "pid": core, "tid": 0,
                         "args": {"name": f"core {core}"}})
            for unit, tid in _TIDS.items():
                meta.append({"name": "thread_name", "ph": "M", "pid": core, "tid": tid,
                             "args": {"name": unit}})
        return {"traceEvents": meta + self.events, "displayTimeUnit": "ns",
                "otherData": {"dropped_events": self.dropped,
                              "first_per_track": self.first_per_track,
                              "sample_every": self.sample_every}}

    def write(self, path: str | Path) -> None:
        """Write the trace JSON to ``path``."""
        Path(path).write_text(json.dumps(self.to_json()))


class BusyRecorder:
    """Collects, per core and unit, the busy intervals (cycles) of one run, and per DDR channel
    the bytes it moved per ``bin_cycles`` - the raw material of a bounded timeline of a model
    step (:mod:`prodigy_sim.simulation` composes them). Same interface as
    :class:`ChromeTraceRecorder` plus :meth:`ddr_lines`, which the memory system calls with every
    DDR line it completes.

    Memory: one tuple per instruction or DMA, and ``channels x (last cycle / bin_cycles)``
    counters.
    """

    def __init__(self, *, bin_cycles: int = 1024) -> None:
        self.bin_cycles = bin_cycles
        self.intervals: dict[tuple[int, str], list[tuple[int, int, int]]] = {}
        self.ddr_bins: np.ndarray = np.zeros((0, 0), np.int64)
        self.line_bytes = 64
        self.frequency_hz = 1.0
        self.ncores = 0

    def start(self, frequency_hz: float, ncores: int) -> None:
        """Called by the simulator before the run."""
        self.frequency_hz = frequency_hz
        self.ncores = ncores

    def op(self, core: int, unit: str, name: str, start: int, end: int) -> None:
        """A compute instruction occupying ``unit`` from ``start`` to ``end`` (cycles)."""
        self.intervals.setdefault((core, unit), []).append((start, end, 0))

    def dma(self, handle) -> None:
        """A DMA transfer from issue to completion (its bytes kept)."""
        self.intervals.setdefault((handle.core, "dma"), []).append(
            (handle.issue, handle.done, handle.nbytes))

    def ddr_lines(self, channel: np.ndarray, done: np.ndarray, line_bytes: int,
                  channels: int) -> None:
        """DDR lines (``line_bytes`` each) completed on ``channel`` at core cycles ``done``."""
        if not done.size:
            return
        self.line_bytes = line_bytes
        b = done // self.bin_cycles
        nbins = int(b.max()) + 1
        if self.ddr_bins.shape[0] != channels or self.ddr_bins.shape[1] < nbins:
            grown = np.zeros((channels, max(nbins, 2 * self.ddr_bins.shape[1])), np.int64)
            grown[:self.ddr_bins.shape[0], :self.ddr_bins.shape[1]] = self.ddr_bins
            self.ddr_bins = grown
        np.add.at(self.ddr_bins, (channel, b), line_bytes)
