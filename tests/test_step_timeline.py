"""The Perfetto timeline of a model step (``simulate --trace-out``): its structure on SmolLM2-135M
decode on all 128 cores - event counts per track, monotone timestamps, the report's total time,
reused layers and extrapolated loops marked."""

from __future__ import annotations

import json
from collections import defaultdict

import pytest

from prodigy_sim.hardware import load_preset
from prodigy_sim.models import Scenario
from prodigy_sim.reports import report_simulation
from prodigy_sim.simulation import simulate, step_timeline

CFG = load_preset("prodigy-t16128")
MAX_SLICES = 32


@pytest.fixture(scope="module")
def run():
    sc = Scenario(model="smollm2-135m", phase="decode", batch=1, context_length=512)
    traces: list = []
    sim = simulate(sc, CFG, trace=traces)
    tl = json.loads(json.dumps(step_timeline(sim, traces, CFG, max_slices=MAX_SLICES)))
    return sim, traces, report_simulation(sim, CFG), tl


def _tracks(tl):
    names = {(e["pid"], e["tid"]): e["args"]["name"] for e in tl["traceEvents"]
             if e["ph"] == "M" and e["name"] == "thread_name"}
    procs = {e["pid"]: e["args"]["name"] for e in tl["traceEvents"]
             if e["ph"] == "M" and e["name"] == "process_name"}
    slices, counters = defaultdict(list), defaultdict(list)
    for e in tl["traceEvents"]:
        if e["ph"] == "X":
            slices[(procs[e["pid"]], names[(e["pid"], e["tid"])])].append(e)
        elif e["ph"] == "C":
            counters[e["name"]].append(e)
    return procs, slices, counters


def test_tracks_and_event_counts(run):
    sim, traces, report, tl = run
    procs, slices, counters = _tracks(tl)
    cores = [p for p in procs.values() if p.startswith("core ")]
    assert len(cores) == 128 == report.cores
    # the model step: a slice per kernel of every layer and one per layer
    kernels = sum(len(s.ops) * s.repeat for s in sim.stages)
    assert len(slices[("model step", "kernels")]) == kernels == tl["otherData"]["kernels"]
    assert len(slices[("model step", "layers")]) == sum(s.repeat for s in sim.stages)
    # reused layers and extrapolated loops are marked as such
    method = [e["name"] for e in slices[("model step", "method (reused, extrapolated)")]]
    assert sum(n.startswith("reused") for n in method) == sum(s.repeat - 1 for s in sim.stages)
    extrapolated = [o for s in sim.stages for o in s.ops if o.method != "full"]
    assert sum(n.startswith("extrapolated") for n in method) == len(extrapolated)
    # every core has its units' tracks, each bounded per simulated kernel
    for unit in ("dma", "matrix", "vector"):
        busy = [slices[(c, unit)] for c in cores]
        assert sum(map(len, busy)) > 0, unit
        assert max(map(len, busy)) <= MAX_SLICES * len(traces)
    assert all(len(slices[(c, "dma")]) > 0 for c in cores)     # every core moves data
    # a DDR counter per channel
    assert sorted(counters) == sorted(f"channel {c}" for c in range(CFG.memory.channels))
    assert len({len(v) for v in counters.values()}) == 1


def test_timestamps_monotone_and_total_is_the_reports(run):
    _, _, report, tl = run
    _, slices, counters = _tracks(tl)
    for key, evs in slices.items():
        ts = [e["ts"] for e in evs]
        assert ts == sorted(ts), key
        if key[0].startswith("core") or key[0] == "model step":
            # slices of one track do not overlap (0.2 ns of rounding)
            for a, b in zip(evs, evs[1:], strict=False):
                assert a["ts"] + a["dur"] <= b["ts"] + 2e-4, key
    for name, evs in counters.items():
        ts = [e["ts"] for e in evs]
        assert ts == sorted(ts), name
        assert all(e["args"]["busy %"] >= 0 for e in evs)
    kern = slices[("model step", "kernels")]
    end = kern[-1]["ts"] + kern[-1]["dur"]
    assert end == pytest.approx(report.seconds * 1e6, rel=1e-6, abs=1e-3)
    assert tl["otherData"]["step_us"] == pytest.approx(report.seconds * 1e6, rel=1e-6)
    assert sum(e["dur"] for e in kern) == pytest.approx(report.seconds * 1e6, rel=1e-6)
    # the cores' activity lies inside the step
    last = max(e["ts"] + e["dur"] for k, v in slices.items() if k[0].startswith("core")
               for e in v)
    assert last <= end + 1e-3


def test_ddr_counters_carry_the_simulated_bytes(run):
    """Over the simulated runs the counters' bytes (busy % x peak x interval) add up to the DDR
    bytes the recorders saw."""
    _, traces, _, tl = run
    recorded = sum(int(t.recorder.ddr_bins.sum()) for t in traces)
    assert recorded > 0
    # the first simulated kernel that moved DDR bytes has a non-zero counter
    _, _, counters = _tracks(tl)
    assert max(e["args"]["busy %"] for v in counters.values() for e in v) > 1


def test_extrapolated_loop_is_marked():
    """A GEMM whose cores run many blocks (extrapolated from a steady window) in a two-layer
    stage: its tail is an 'extrapolated' slice, the second layer a 'reused' one, the cores'
    activity stops where the simulated window ends, and the step ends at the report's time."""
    from dataclasses import replace

    from prodigy_sim.lowering import LoweredStage, linear_op, lower_model
    from prodigy_sim.numerics import Storage

    sc = Scenario(model="smollm2-135m", phase="decode", batch=1, context_length=64)
    base = lower_model(sc.card(), sc, CFG, cores=2)
    op = linear_op("gemm", 8192, 4096, 1024, Storage.of("tai4"), CFG, cores=2)
    lowered = replace(base, stages=(LoweredStage("gemms", (0, 1), (op,)),))
    traces: list = []
    sim = simulate(lowered, CFG, trace=traces)
    (res,) = sim.stages[0].ops
    assert "steady" in res.method and len(traces) == 1
    tl = step_timeline(sim, traces, CFG)
    _, slices, counters = _tracks(tl)
    method = slices[("model step", "method (reused, extrapolated)")]
    ext = [e for e in method if e["name"].startswith("extrapolated")]
    reused = [e for e in method if e["name"].startswith("reused")]
    assert len(ext) == 1 and len(reused) == 1
    sim_end = traces[0].cycles / CFG.frequency_hz * 1e6
    assert ext[0]["ts"] == pytest.approx(sim_end, abs=1e-3)
    assert ext[0]["ts"] + ext[0]["dur"] == pytest.approx(res.seconds * 1e6, abs=1e-3)
    assert reused[0]["ts"] == pytest.approx(res.seconds * 1e6, abs=1e-3)
    core_end = max(e["ts"] + e["dur"] for k, v in slices.items() if k[0].startswith("core")
                   for e in v)
    assert core_end <= sim_end + 1e-3
    kern = slices[("model step", "kernels")]
    assert kern[-1]["ts"] + kern[-1]["dur"] == pytest.approx(sim.seconds * 1e6, rel=1e-6)
    # over the extrapolated tail the DDR counters hold the simulated run's mean, not zero
    at_tail = [e for v in counters.values() for e in v if e["ts"] == ext[0]["ts"]]
    assert len(at_tail) == CFG.memory.channels and max(e["args"]["busy %"] for e in at_tail) > 0


def test_cli_trace_out(tmp_path, capsys):
    from tests.test_reports import _main

    path = tmp_path / "step.json"
    assert _main(["simulate", "--model", "smollm2", "--context", "128", "--cores", "16",
                  "--quiet", "--json", "--trace-out", str(path)]) == 0
    rep = json.loads(capsys.readouterr().out)
    tl = json.loads(path.read_text())
    assert tl["otherData"]["step_us"] == pytest.approx(rep["seconds"] * 1e6, rel=1e-6)
    assert tl["otherData"]["cores"] == 16


def test_event_budget_bounds_the_busy_slices(run):
    sim, traces, _, _ = run
    tracks = sum(len(t.recorder.intervals) for t in traces)
    budget = 4 * tracks + 100
    tl = step_timeline(sim, traces, CFG, max_events=budget)
    _, slices, _ = _tracks(tl)
    busy = sum(len(v) for k, v in slices.items() if k[0].startswith("core"))
    assert 0 < busy <= budget
    raw = sum(len(v) for t in traces for v in t.recorder.intervals.values())
    assert raw > budget          # the budget did bind


@pytest.mark.slow
def test_llama2_7b_decode_timeline_is_bounded_and_complete(tmp_path):
    """The documented case (docs/lowering.md): one LLaMA-2-7B decode step on all 128 cores and
    16 channels is well under 50 MB, every core and channel has a track, and the step is the
    report's."""
    from prodigy_sim.simulation import write_step_timeline

    sc = Scenario(model="llama-2-7b", phase="decode", batch=1, context_length=2048)
    traces: list = []
    sim = simulate(sc, CFG, trace=traces)
    tl = step_timeline(sim, traces, CFG)
    procs, slices, counters = _tracks(tl)
    assert sum(1 for k in slices if k[0].startswith("core ") and k[1] == "dma") == 128
    assert len(counters) == 16
    assert tl["otherData"]["step_us"] == pytest.approx(sim.seconds * 1e6, rel=1e-6)
    size = len(json.dumps(tl, separators=(",", ":")))
    assert size < 50e6
    assert write_step_timeline(tmp_path / "s.json", sim, traces, CFG) == size
