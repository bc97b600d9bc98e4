"""A bounded Chrome / Perfetto trace-event timeline of one simulated model step (a decode step or
a prefill), from the :class:`~prodigy_sim.simulation.OpTrace` records a
:func:`~prodigy_sim.simulation.simulate` run with ``trace=[]`` collects.

Tracks (``pid`` / ``tid``), times in microseconds from the start of the step:

- ``model step``: ``layers`` (a slice per layer), ``kernels`` (a slice per kernel of every layer;
  their durations are the report's op times, so the last one ends at the report's total) and
  ``method`` (what was not simulated cycle by cycle: *reused* layers - identical to the
  simulated first layer of their stage - and the *extrapolated* tail of a long unit loop,
  steady state).
- ``DDR``: a counter per channel, ``busy %`` = bytes the channel moved / (its peak bandwidth x
  the interval), over the simulated part of each kernel; over an extrapolated tail and over a
  reused layer's kernels it holds the simulated run's mean.
- ``core N`` (one process per core): ``dma``, ``matrix`` and ``vector`` threads; busy slices of
  the simulated runs (first layer of each stage). Consecutive instructions (DMA transfers) are
  merged into one slice when the gap between them is below a threshold, which grows per track
  and kernel until at most ``max_slices`` remain (``args.n``: instructions or transfers merged,
  ``args.bytes``: DMA bytes).

Size: at most ``max(max_events, kernels x cores x 3 x 4)`` busy slices (``max_slices`` per
track and kernel, fewer when needed) plus ``kernels x channels x ddr_points`` counters and a few
per kernel and layer (LLaMA-2-7B decode on 128 cores: measured in docs/lowering.md).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from prodigy_sim.hardware import ChipConfig
from prodigy_sim.simulation._driver import ModelSimulation, OpTrace

__all__ = ["step_timeline", "write_step_timeline"]

_UNITS = ("dma", "matrix", "vector")
_MODEL_PID = 0
_DDR_PID = 1
_CORE_PID0 = 2


def _r(us: float) -> float:
    return round(us, 4)


def _d(start: float, end: float) -> float:
    """A duration whose end, added to the rounded start, is the rounded end (no drift)."""
    return round(_r(end) - _r(start), 4)


def _merge(iv: list[tuple[int, int, int]], max_slices: int) -> list[tuple[int, int, int, int]]:
    """Busy intervals ``(start, end, bytes)`` -> at most ``max_slices`` slices ``(start, end, n,
    bytes)``: overlapping or touching intervals merged, then gaps below a growing threshold."""
    iv = sorted(iv)
    gap = 0
    while True:
        out: list[list[int]] = []
        for s, e, b in iv:
            if out and s - out[-1][1] <= gap:
                last = out[-1]
                last[1] = max(last[1], e)
                last[2] += 1
                last[3] += b
            else:
                out.append([s, e, 1, b])
        if len(out) <= max_slices:
            return [tuple(x) for x in out]  # type: ignore[misc]
        gap = max(64, gap * 4)


def _ddr_series(bins: np.ndarray, bin_cycles: int, cycles: int, points: int
                ) -> tuple[int, np.ndarray]:
    """Per channel bytes per bin -> (cycles per point, bytes per point) with at most ``points``
    points over ``cycles``."""
    nb = max(1, -(-cycles // bin_cycles))
    if bins.shape[1] < nb:
        bins = np.pad(bins, ((0, 0), (0, nb - bins.shape[1])))
    bins = bins[:, :nb]
    group = max(1, -(-nb // points))
    pad = (-nb) % group
    if pad:
        bins = np.pad(bins, ((0, 0), (0, pad)))
    return group * bin_cycles, bins.reshape(bins.shape[0], -1, group).sum(axis=2)


def step_timeline(sim: ModelSimulation, traces: list[OpTrace], config: ChipConfig, *,
                  max_slices: int = 256, max_events: int = 300_000, ddr_points: int = 64
                  ) -> dict:
    """The Chrome trace-event JSON object of one model step (see the module docstring).

    ``traces``: the records of ``sim``'s run, in order (one per simulated kernel). Busy slices
    per track and kernel: at most ``max_slices``, fewer if needed to keep all of them within
    ``max_events`` (but at least 4)."""
    tracks = sum(len(t.recorder.intervals) for t in traces)
    max_slices = max(4, min(max_slices, max_events // max(tracks, 1)))
    f = config.frequency_hz
    us_per_cycle = 1e6 / f
    channels = config.memory.channels
    chan_bw = config.peak_ddr_bandwidth_bytes_per_s / channels
    ncores = sim.lowered.cores
    events: list[dict] = []
    counters: list[dict] = []
    per_stage: dict[str, list[OpTrace]] = {}
    for rec0 in traces:
        per_stage.setdefault(rec0.stage, []).append(rec0)
    t = 0.0
    nkern = 0
    for st in sim.stages:
        recs = per_stage.get(st.name, [])
        nops = len(st.ops)
        labels: list[int | None] = list(st.layers) or [None] * st.repeat
        for layer_i, layer in enumerate(labels):
            simulated = layer_i < st.simulated_layers
            layer_start = t
            for j, op in enumerate(st.ops):
                dur = op.seconds * 1e6
                # a simulated layer's own run; a reused layer's: its stage's first layer's
                k = (layer_i if simulated else 0) * nops + j
                tr: OpTrace | None = recs[k] if k < len(recs) else None
                args = {"stage": st.name, "layer": layer, "kind": op.kind, "method": op.method,
                        "flops": op.flops, "ddr_bytes": op.ddr_bytes}
                events.append({"name": op.name, "ph": "X", "ts": _r(t), "dur": _d(t, t + dur),
                               "pid": _MODEL_PID, "tid": 1, "args": args})
                nkern += 1
                sim_us = dur
                mean = None
                if tr is not None:
                    rec = tr.recorder
                    # the simulated part; the rest of an extrapolated loop is marked below
                    sim_us = dur if op.method == "full" else min(dur,
                                                                  tr.cycles * us_per_cycle)
                    bins = rec.ddr_bins if rec.ddr_bins.size else np.zeros((channels, 1),
                                                                            np.int64)
                    if bins.shape[0] < channels:
                        bins = np.pad(bins, ((0, channels - bins.shape[0]), (0, 0)))
                    mean = bins.sum(axis=1) / max(tr.cycles / f, 1e-30) / chan_bw * 100
                    if simulated:
                        step, series = _ddr_series(bins, rec.bin_cycles, max(tr.cycles, 1),
                                                   ddr_points)
                        for k in range(series.shape[1]):
                            ts = t + k * step * us_per_cycle
                            if ts >= t + sim_us:
                                break
                            width = min(step, tr.cycles - k * step) / f
                            for c in range(channels):
                                counters.append({
                                    "name": f"channel {c}", "ph": "C", "ts": _r(ts),
                                    "pid": _DDR_PID,
                                    "args": {"busy %": round(float(series[c, k]) / width
                                                             / chan_bw * 100, 2)}})
                        for (core, unit), iv in rec.intervals.items():
                            for s, e, n, b in _merge(iv, max_slices):
                                a = {"n": n, "bytes": b} if unit == "dma" else {"n": n}
                                events.append({
                                    "name": "DMA" if unit == "dma" else f"{unit} busy",
                                    "ph": "X", "ts": _r(t + s * us_per_cycle),
                                    "dur": _r((e - s) * us_per_cycle),
                                    "pid": _CORE_PID0 + core, "tid": _UNITS.index(unit),
                                    "args": a})
                if mean is not None and (not simulated or sim_us < dur):
                    ts = t + (sim_us if simulated else 0.0)
                    for c in range(channels):
                        counters.append({"name": f"channel {c}", "ph": "C", "ts": _r(ts),
                                         "pid": _DDR_PID,
                                         "args": {"busy %": round(float(mean[c]), 2)}})
                if simulated and sim_us < dur:
                    events.append({"name": f"extrapolated ({op.method})", "ph": "X",
                                   "ts": _r(t + sim_us), "dur": _r(dur - sim_us),
                                   "pid": _MODEL_PID, "tid": 2,
                                   "args": {"simulated_us": _r(sim_us), "op": op.name}})
                t += dur
            name = f"layer {layer}" if layer is not None else st.name
            if not simulated:
                events.append({"name": f"reused: {name} = layer {labels[0]} ({st.name})",
                               "ph": "X", "ts": _r(layer_start), "dur": _d(layer_start, t),
                               "pid": _MODEL_PID, "tid": 2,
                               "args": {"exact": True, "stage": st.name}})
            events.append({"name": name, "ph": "X", "ts": _r(layer_start),
                           "dur": _d(layer_start, t), "pid": _MODEL_PID, "tid": 0,
                           "args": {"stage": st.name, "simulated": simulated}})
    for c in range(channels):
        counters.append({"name": f"channel {c}", "ph": "C", "ts": _r(t), "pid": _DDR_PID,
                         "args": {"busy %": 0.0}})
    meta = [_meta("process_name", _MODEL_PID, 0, "model step"),
            _meta("thread_name", _MODEL_PID, 0, "layers"),
            _meta("thread_name", _MODEL_PID, 1, "kernels"),
            _meta("thread_name", _MODEL_PID, 2, "method (reused, extrapolated)"),
            _meta("process_name", _DDR_PID, 0, f"DDR ({channels} channels)")]
    for core in range(ncores):
        meta.append(_meta("process_name", _CORE_PID0 + core, 0, f"core {core}"))
        meta.append({"name": "process_sort_index", "ph": "M", "pid": _CORE_PID0 + core,
                     "tid": 0, "args": {"sort_index": _CORE_PID0 + core}})
        for tid, unit in enumerate(_UNITS):
            meta.append(_meta("thread_name", _CORE_PID0 + core, tid, unit))
    body = sorted(events + counters, key=lambda e: e["ts"])
    sc = sim.lowered.scenario
    return {"traceEvents": meta + body, "displayTimeUnit": "ns",
            "otherData": {"model": sc.model, "phase": sc.phase, "batch": sc.batch,
                          "hardware": config.name, "cores": ncores, "channels": channels,
                          "step_us": _r(t), "kernels": nkern,
                          "method": sim.method.describe(), "max_slices": max_slices,
                          "ddr_points": ddr_points}}


def _meta(kind: str, pid: int, tid: int, name: str) -> dict:
    return {"name": kind, "ph": "M", "pid": pid, "tid": tid, "args": {"name": name}}


def write_step_timeline(path: str | Path, sim: ModelSimulation, traces: list[OpTrace],
                        config: ChipConfig, **kw: int) -> int:
    """Write :func:`step_timeline` as JSON to ``path``; returns its size in bytes."""
    text = json.dumps(step_timeline(sim, traces, config, **kw), separators=(",", ":"))
    Path(path).write_text(text)
    return len(text)
