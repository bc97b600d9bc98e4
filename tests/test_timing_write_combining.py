"""Write combining (timing/_memory.py): a store that writes part of a cache line merges its
bytes into the line in its home L2 slice, and the line goes to DDR once, when its last byte is
written (or when the kernel ends). Checked against byte-by-byte coverage written here, on
programs whose DDR write bytes are known, and on a lowered GEMM with FP8 output (codes and
E8M0 scales: 2 scale bytes per 64-column tile row) against its compulsory bytes."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prodigy_sim.hardware import load_preset
from prodigy_sim.isa import CID, ProgramBuilder, Reg, Segment
from prodigy_sim.lowering import linear_op
from prodigy_sim.numerics import Storage
from prodigy_sim.simulation import simulate_op
from prodigy_sim.timing import simulate
from prodigy_sim.timing._memory import LineMap

LINE = 64


def _coverage(segments, line):
    """Line -> mask of the bytes the segments write (bit b = byte b of the line)."""
    cov: dict[int, int] = {}
    for s in segments:
        for r in range(s.count):
            a = s.address + r * s.stride
            for b in range(a, a + s.length):
                cov[b // line] = cov.get(b // line, 0) | (1 << (b % line))
    return cov


segments = st.lists(st.builds(Segment, st.integers(0, 3000), st.integers(1, 300),
                              st.integers(1, 400), st.integers(1, 6)), min_size=1, max_size=3)


@settings(max_examples=400, deadline=None)
@given(segments, st.sampled_from([16, 64, 128]))
def test_of_write_splits_whole_and_part_lines_as_byte_coverage_does(segs, line):
    segs = tuple(segs)
    lm = LineMap(line)
    cov = _coverage(segs, line)
    full = (1 << line) - 1
    whole, part, masks = lm.of_write(segs)
    assert whole.tolist() == sorted(ln for ln, m in cov.items() if m == full)
    assert part.tolist() == sorted(ln for ln, m in cov.items() if m != full)
    assert list(masks) == [cov[ln] for ln in part.tolist()]
    assert sorted(whole.tolist() + part.tolist()) == lm.of(segs).tolist()   # same lines
    assert lm.of_write(segs)[0].tolist() == whole.tolist()          # cached pattern, same


@pytest.fixture(scope="module")
def chip():
    return load_preset("prodigy-t16128")


def _halves_program(cols, *, by_core=False):
    """Stores into a BF16 tensor Y (8 x 32: each row one 64-B line) of an 8 x 16 tile (half of
    each row's line) at each column of ``cols`` (or, ``by_core``, at column 16 x core id)."""
    b = ProgramBuilder()
    y = b.tensor("Y", (8, 32), "bfloat16")
    t = b.tile("T", (8, 16), "bfloat16")
    col = Reg(1)
    b.muli(col, CID, 16)
    for c in cols:
        b.dma_st(y, 0, col if by_core else c, t)
    b.dma_wait()
    return b.build()


def test_two_halves_of_a_line_reach_ddr_once(chip):
    r = simulate(_halves_program([0, 16]), chip, cores=1)
    assert sum(r.channel_bytes) == 8 * LINE                # not 16 half-line writes of 64 B
    assert r.dram_requests == 8


def test_halves_stored_by_two_cores_merge_too(chip):
    r = simulate(_halves_program([0], by_core=True), chip, cores=2)
    assert sum(r.channel_bytes) == 8 * LINE


def test_a_line_never_completed_is_written_back_when_the_kernel_ends(chip):
    half = simulate(_halves_program([0]), chip, cores=1)
    assert sum(half.channel_bytes) == 8 * LINE             # the 8 half lines, written back
    assert half.cycles > max(c.end_cycle for c in half.cores)   # the write-back ends it
    assert half == simulate(_halves_program([0]), chip, cores=1)   # deterministic


def test_resident_lines_written_in_part_stay_on_chip(chip):
    r = simulate(_halves_program([0]), chip, cores=1, resident=("Y",))
    assert sum(r.channel_bytes) == 0


def test_fp8_output_with_scales_moves_its_compulsory_bytes(chip):
    # Y's E8M0 scales: one byte per 32 outputs, row-major after the codes, so every 64-column
    # tile row writes a 2-byte piece of a scale line: merged, DDR moves each byte once
    w = Storage.of("tai4", block=32, scale="e8m0")
    op = linear_op("q", 256, 2048, 1024, w, chip, cores=16, epilogue="quant")
    rep = simulate_op(op, chip)
    assert rep.ddr_bytes == rep.compulsory_bytes
    assert rep.seconds >= rep.roofline_seconds


def _loads_program():
    """Every core loads the same 16 x 64 FP8 tile of A (16 code lines and the 32 B of their
    block scales: 17 lines) and its own row block of B (16 code lines at row 16 x core id and a
    32-B piece of a scale line, two cores per line), and stores its tile of Y (8 whole
    lines)."""
    b = ProgramBuilder()
    a = b.tensor("A", (16, 64), "float8_e4m3fn")
    bb = b.tensor("B", (64, 64), "float8_e4m3fn")
    y = b.tensor("Y", (32, 32), "bfloat16")
    ta = b.tile("TA", (16, 64), "float8_e4m3fn")
    tb = b.tile("TB", (16, 64), "float8_e4m3fn")
    ty = b.tile("TY", (8, 32), "bfloat16")
    row = Reg(1)
    b.muli(row, CID, 16)
    b.dma_ld(ta, a, 0, 0)
    b.dma_ld(tb, bb, row, 0)
    b.dma_wait()
    b.muli(row, CID, 8)
    b.dma_st(y, row, 0, ty)
    b.dma_wait()
    return b.build()


@pytest.mark.parametrize("l3_bytes", [0, None])
def test_the_ddr_log_names_each_request_s_line(chip, l3_bytes):
    """The DDR log's line indices fall in the tensors' ranges: with the L3 off every core reads
    A from DDR (4 reads of each of its 17 lines) and B's two scale lines twice (two cores
    each), with it on every line once; Y's 32 lines are written once."""
    from prodigy_sim.isa import validate
    from prodigy_sim.timing._simulate import _run, isa_params

    prog = _loads_program()
    _, memory = _run(prog, chip, 4, None, 8, log=True, l3_bytes=l3_bytes)
    lines = np.concatenate(memory.log.line)
    writes = np.concatenate(memory.log.is_write)
    reads, written = {}, {}
    for name, pl in validate(prog, isa_params(chip)).tensors.items():
        inside = (lines >= pl.base // LINE) & (lines < -(-(pl.base + pl.nbytes) // LINE))
        reads[name], written[name] = int((inside & ~writes).sum()), int((inside & writes).sum())
    off = l3_bytes == 0
    assert reads == {"A": 17 * (4 if off else 1), "B": 64 + 2 * (2 if off else 1), "Y": 0}
    assert written == {"A": 0, "B": 0, "Y": 32}
    assert lines.size == sum(reads.values()) + sum(written.values())
