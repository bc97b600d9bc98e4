"""The SimPy timing model: unit costs, scoreboard, multi-core scaling, DDR contention, outputs."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

from prodigy_sim.errors import ConfigError, ProgramError, SimulationError
from prodigy_sim.hardware import load_config, load_preset
from prodigy_sim.isa import CID, NCORES, ProgramBuilder, Reg, assemble
from prodigy_sim.timing import (
    ChromeTraceRecorder,
    batching_error,
    mma_cycles,
    roofline_bound,
    simulate,
)
from prodigy_sim.timing._ports import PortCalendar
from prodigy_sim.timing.programs import kloop_gemm_program

FP8 = "float8_e4m3fn"


@pytest.fixture(scope="module")
def chip():
    return load_preset("prodigy-t16128")


class Log:
    """A recorder that keeps every event as (name, start, end) per core."""

    def __init__(self):
        self.events = []

    def start(self, frequency_hz, ncores):
        pass

    def op(self, core, unit, name, start, end):
        self.events.append((core, name, start, end))

    def dma(self, h):
        self.events.append((h.core, "DMA.ST" if h.is_write else "DMA.LD", h.issue, h.done))


def _mma_program(m, n, k, count, *, w_fmt=FP8, same_acc=False):
    b = ProgramBuilder()
    a = b.tile("A", (m, k), "bfloat16" if w_fmt == "bfloat16" else FP8)
    w = b.tile("W", (n, k), w_fmt)
    accs = [b.acc(f"C{i}", (m, n)) for i in range(1 if same_acc else count)]
    for i in range(count):
        b.mma(accs[0 if same_acc else i], a, w)
    return b.build()


@pytest.mark.parametrize("w_fmt, expected", [(FP8, 3 * 2 * 6), ("tai4", 36), ("bfloat16", 288)])
def test_single_mma_occupancy_is_closed_form(chip, w_fmt, expected):
    res = simulate(_mma_program(48, 32, 96, 1, w_fmt=w_fmt), chip, cores=1)
    assert (res.cores[0].busy_cycles["matrix"], mma_cycles(48, 32, 96, w_fmt, chip)) == \
        (expected, expected)


def test_sparse_mma_runs_twice_as_fast(chip):
    b = ProgramBuilder()
    a = b.tile("A", (64, 64), FP8)
    w = b.tile("W", (64, 64), FP8, sparsity=(8, 4))
    c = b.acc("C", (64, 64))
    b.mma_sp(c, a, w)
    res = simulate(b.build(), chip, cores=1)
    assert res.cores[0].busy_cycles["matrix"] == 4 * 4 * 4 // 2


def test_independent_mmas_issue_back_to_back(chip):
    log = Log()
    occ = mma_cycles(64, 64, 256, FP8, chip)
    simulate(_mma_program(64, 64, 256, 5), chip, cores=1, recorder=log)
    starts = [s for _, name, s, _ in log.events if name == "MMA"]
    assert starts == [i * occ for i in range(5)]


def test_chained_mmas_hide_the_pipeline_latency(chip):
    occ = mma_cycles(64, 64, 256, FP8, chip)
    lat = chip.core.matrix_unit.latency_cycles
    res = simulate(_mma_program(64, 64, 256, 6, same_acc=True), chip, cores=1)
    assert res.cycles == 6 * occ + lat


def _split_work_program(total_mmas):
    b = ProgramBuilder()
    a = b.tile("A", (64, 256), FP8)
    w = b.tile("W", (64, 256), FP8)
    c = b.acc("C", (64, 64))
    b.li(Reg(1), total_mmas)
    b.div(Reg(1), Reg(1), NCORES)
    with b.loop(Reg(2), Reg(1), 1):
        b.mma(c, a, w)
    return b.build()


def test_compute_bound_work_split_over_cores_scales(chip):
    occ = mma_cycles(64, 64, 256, FP8, chip)
    p = _split_work_program(64)
    one, eight = (simulate(p, chip, cores=n).cycles for n in (1, 8))
    assert one - eight == (64 - 8) * occ


def test_double_buffering_overlaps_dma_with_compute(chip):
    def overlaps(double):
        log = Log()
        simulate(kloop_gemm_program(64, 64, 2048, 1, k_chunk=256, double_buffer=double), chip,
                 cores=1, recorder=log)
        dmas = [(s, e) for _, n, s, e in log.events if n == "DMA.LD"]
        mmas = [(s, e) for _, n, s, e in log.events if n == "MMA"]
        return any(ds < me and ms < de for ds, de in dmas for ms, me in mmas)

    assert (overlaps(True), overlaps(False)) == (True, False)


def test_double_buffering_is_faster(chip):
    single, double = (simulate(kloop_gemm_program(64, 64, 2048, 1, k_chunk=256,
                                                  double_buffer=d), chip, cores=1).cycles
                      for d in (False, True))
    assert double < single


def _channel_program(rows_per_core, spread):
    """Each core loads ``rows_per_core`` x 128 B; with ``spread`` False every line of every core
    maps to DDR controller 0 (rows 2048 B apart = 32 lines = one turn of the interleave), with
    ``spread`` True core c's lines map to controller c."""
    b = ProgramBuilder()
    ncols = 1024
    x = b.tensor("X", (rows_per_core * 8, ncols), "bfloat16")
    t = b.tile("T", (rows_per_core, 64), "bfloat16")
    b.li(Reg(1), rows_per_core)
    b.mul(Reg(1), CID, Reg(1))
    if spread:
        b.li(Reg(2), 64)
        b.mul(Reg(2), CID, Reg(2))
        b.dma_ld(t, x, Reg(1), Reg(2))
    else:
        b.dma_ld(t, x, Reg(1), 0)
    return b.build()


def test_cores_sharing_one_ddr_channel_slow_down(chip):
    one = simulate(_channel_program(2048, False), chip, cores=1)
    shared = simulate(_channel_program(2048, False), chip, cores=4)
    spread = simulate(_channel_program(2048, True), chip, cores=4)
    assert shared.channel_bytes[0] == 4 * one.channel_bytes[0] == 4 * 2048 * 128
    # bandwidth-bound: four cores on one channel take about four times one core's time,
    # four cores on four channels about one core's time
    assert (round(shared.cycles / one.cycles), round(spread.cycles / one.cycles)) == (4, 1)


def test_one_channel_bandwidth_is_below_its_peak(chip):
    res = simulate(_channel_program(4096, False), chip, cores=4)
    peak = chip.memory.peak_bandwidth_bytes_per_s / chip.memory.channels
    frac = res.channel_bandwidth_bytes_per_s[0] / peak
    assert 0.5 < frac < 1.0


def test_batched_ddr_matches_one_batch(chip):
    err = batching_error(kloop_gemm_program(256, 64, 1024, 4, k_chunk=128), chip, cores=4)
    assert err["drain_rel_diff_max"] < 0.05
    # what the seam cost is reported beside it: waits are never negative (a request is never
    # offered before it arrives) and the reads spend time in the DDR5 model itself
    assert err["seam_wait_read"] >= 0 and err["seam_wait_write"] >= 0
    assert err["model_latency_read"] > 0


def test_simulated_time_is_not_below_the_roofline(chip):
    p = kloop_gemm_program(128, 64, 512, 2, k_chunk=128)
    res = simulate(p, chip, cores=2)
    assert res.seconds >= roofline_bound(p, chip, cores=2)[0]


def test_same_program_same_cycles(chip):
    p = kloop_gemm_program(256, 64, 1024, 4, k_chunk=128)
    a, b = (simulate(p, chip, cores=4).to_dict() for _ in range(2))
    assert a == b


def test_tile_larger_than_on_chip_memory_is_refused(chip):
    b = ProgramBuilder()
    b.tile("BIG", (2048, 1024), FP8)
    with pytest.raises(ProgramError, match=r"BIG.*'core\.on_chip_memory\.l2_bytes'"):
        simulate(b.build(), chip, cores=1)


def test_zero_channels_is_refused():
    with pytest.raises(ConfigError, match=r"'memory\.channels'"):
        simulate(_mma_program(16, 16, 32, 1), load_config(overrides={"memory.channels": 0}))


def test_unknown_preset_is_refused():
    with pytest.raises(ConfigError, match="unknown preset 'prodigy-x'"):
        simulate(_mma_program(16, 16, 32, 1), load_preset("prodigy-x"))


def test_more_cores_than_the_chip_is_refused(chip):
    with pytest.raises(ConfigError, match="'cores'"):
        simulate(_mma_program(16, 16, 32, 1), chip, cores=129)


def test_barrier_that_a_core_skips_is_a_deadlock(chip):
    p = assemble("BNE cid, r0, skip\nBARRIER\nskip:\nHALT\n")
    with pytest.raises(SimulationError, match=r"deadlock: cores \[0\]"):
        simulate(p, chip, cores=2)


def test_barrier_waits_for_the_slowest_core(chip):
    occ = mma_cycles(64, 64, 256, FP8, chip)
    b = ProgramBuilder()
    a = b.tile("A", (64, 256), FP8)
    w = b.tile("W", (64, 256), FP8)
    c = b.acc("C", (64, 64))
    b.li(Reg(1), 1)
    b.add(Reg(1), Reg(1), CID)          # core i does i + 1 MMAs
    with b.loop(Reg(2), Reg(1), 1):
        b.mma(c, a, w)
    b.barrier()
    res = simulate(b.build(), chip, cores=3)
    # the barrier waits only for DMAs, so cores 0 and 1 arrive after issuing their last MMA
    assert [r.stall_cycles["barrier"] for r in res.cores] == [2 * occ, occ, 0]


def test_chrome_trace_is_valid_and_bounded(chip, tmp_path):
    rec = ChromeTraceRecorder(first_per_track=4, sample_every=8, max_events=30)
    simulate(kloop_gemm_program(256, 64, 2048, 4, k_chunk=64), chip, cores=4, recorder=rec)
    path = tmp_path / "trace.json"
    rec.write(path)
    events = [e for e in json.loads(path.read_text())["traceEvents"] if e["ph"] == "X"]
    assert len(events) == 30 and all({"ph", "ts", "dur", "pid", "tid"} <= set(e)
                                     for e in events)


def test_recorder_gets_every_core_part_of_a_multicast(chip):
    """A multicast load (``DMA.LDM``) reaches the recorder once per member, each part with its
    own core and a completion (the group's transfer itself is not a core's DMA): the step
    timeline of a model whose linears multicast (LLaMA-2-7B decode) needs every interval
    closed."""
    from prodigy_sim.isa import disassemble
    from prodigy_sim.lowering import LinearMapping, linear_kernel
    from prodigy_sim.numerics import Storage

    mp = LinearMapping(1, 1, 32, 1, 512, 1, 8, multicast=True)
    kern = linear_kernel("mc", 1, 256, 1024, weight=Storage.of("tai4"), cores=8, mapping=mp)
    assert "DMA.LDM" in disassemble(kern.program)
    log = Log()
    res = simulate(kern.program, chip, cores=8, recorder=log)
    loads = [e for e in log.events if e[1] == "DMA.LD"]
    assert all(end is not None and end > start for _, _, start, end in loads)
    # every core loads its W tiles and its part of the X tiles: 2 K steps each
    assert sorted({c for c, *_ in loads}) == list(range(8))
    assert len(loads) == sum(r.instructions.get("DMA.LDM", 0) + r.instructions.get("DMA.LD", 0)
                             for r in res.cores)


def test_result_to_dict_is_json(chip):
    res = simulate(kloop_gemm_program(64, 64, 256, 1, k_chunk=64), chip, cores=1)
    d = json.loads(json.dumps(res.to_dict()))
    assert (d["cycles"], d["instructions"]["MMA"], len(d["channel_bytes"])) == \
        (res.cycles, 4, chip.memory.channels)


def test_cli_run_prints_json(chip, tmp_path, capsys):
    from prodigy_sim.cli import _run

    src = tmp_path / "p.s"
    src.write_text(".tile A shape=(64,256) fmt=float8_e4m3fn\n"
                   ".tile W shape=(64,256) fmt=float8_e4m3fn\n.acc C shape=(64,64)\n"
                   "    MMA C, A, W\n")
    parser = argparse.ArgumentParser()
    sub = _run.add_parser(parser.add_subparsers())
    trace = tmp_path / "t.json"
    args = sub.parse_args([str(src), "--cores", "2", "--json", "--trace-out", str(trace)])
    assert _run.run(args) == 0
    out = json.loads(capsys.readouterr().out)
    occ = mma_cycles(64, 64, 256, FP8, chip)
    assert (out["cycles"], json.loads(trace.read_text())["traceEvents"][-1]["dur"] > 0) == \
        (occ + chip.core.matrix_unit.latency_cycles, True)


def test_a_port_streams_lines_of_several_dmas_as_they_become_ready():
    # one port at 32 B/cycle (2 cycles per 64-B line): DMA A's lines are ready at 0, 1 and 50,
    # DMA B's at 2 and 3. B's lines cross between A's instead of waiting for A's last line.
    ready = np.array([0, 1, 50, 2, 3], np.int64)
    dep = PortCalendar(1, 32, 64).serve(np.zeros(5, np.int64), ready, 0)
    assert dep.tolist() == [2, 4, 52, 6, 8]


def test_port_closed_form_matches_the_line_by_line_queue():
    rng = np.random.default_rng(0)
    port = rng.integers(0, 4, 300)
    ready = rng.integers(0, 400, 300)
    bw = 24                                   # 64 / 24 is not a whole number of cycles
    dep = PortCalendar(4, bw, 64).serve(port, ready, 0)
    ref = np.empty_like(dep)
    for p in range(4):
        busy = 0                              # in byte units, as the port's calendar
        for i in sorted(np.flatnonzero(port == p), key=lambda i: (ready[i], i)):
            busy = max(busy, int(ready[i]) * bw) + 64
            ref[i] = -(-busy // bw)
    assert dep.tolist() == ref.tolist()


def _reload_program(rows):
    """One 16 KiB tile (4 rows of 4 KiB) loaded from each of ``rows`` in turn, waiting each."""
    b = ProgramBuilder()
    x = b.tensor("X", (64, 2048), "bfloat16")
    t = b.tile("T", (4, 2048), "bfloat16")
    for r in rows:
        b.dma_ld(t, x, r, 0)
        b.dma_wait()
    return b.build()


def test_a_tile_read_by_two_cores_costs_one_ddr_read(chip):
    # both cores load the same 16 KiB at once: the second core's lines wait for the first
    # core's fill in the L3 instead of going to DDR again
    p = _reload_program([0])
    shared = simulate(p, chip, cores=2)                    # the L3 is on by default
    no_l3 = simulate(p, chip, cores=2, l3_bytes=0)
    assert (sum(shared.channel_bytes), sum(no_l3.channel_bytes)) == (16384, 2 * 16384)
    assert shared == simulate(p, chip, cores=2, l3_bytes=None)     # deterministic


def test_a_reload_hits_the_l3_and_is_faster(chip):
    once, twice = (simulate(_reload_program(rows), chip, cores=1, l3_bytes=None)
                   for rows in ([0], [0, 0]))
    cold = simulate(_reload_program([0, 0]), chip, cores=1, l3_bytes=0)
    assert (sum(twice.channel_bytes), sum(cold.channel_bytes)) == (16384, 2 * 16384)
    assert twice.cycles - once.cycles < cold.cycles - once.cycles


def test_l3_capacity_evicts_the_least_recently_used_blocks(chip):
    p = _reload_program([0, 8, 0])             # A, B, A: 16 KiB tiles, 4 KiB-aligned rows
    small = simulate(p, chip, cores=1, l3_bytes=16384)     # B evicts A
    large = simulate(p, chip, cores=1, l3_bytes=32768)     # both fit
    assert (sum(small.channel_bytes), sum(large.channel_bytes)) == (3 * 16384, 2 * 16384)


def test_negative_l3_capacity_is_refused(chip):
    with pytest.raises(ConfigError, match="l3_bytes"):
        simulate(_reload_program([0]), chip, cores=1, l3_bytes=-1)
