"""Weights stored in tiles (``tile=HxW``) on the timing model: a DMA of a tiled window is one
contiguous DDR run, and the DDR model serves a stream of such windows with fewer row
activations and in less time than the same windows stored row-major (``isa/README.md``)."""

from __future__ import annotations

import numpy as np
import pytest

from prodigy_sim.dram import simulate_requests
from prodigy_sim.hardware import load_preset
from prodigy_sim.isa import CID, ProgramBuilder, Reg, expand, validate
from prodigy_sim.timing import simulate

R, C, H, W = 512, 4096, 64, 512


@pytest.fixture(scope="module")
def chip():
    return load_preset("prodigy-t16128")


def _weights_stream(tiled: bool):
    """Core c streams the (64, 512) tai4 windows of weight rows 64c.. along K, double
    buffered."""
    b = ProgramBuilder()
    w = b.tensor("W", (R, C), "tai4", tile=(H, W) if tiled else None)
    tiles = [b.tile(f"T{i}", (H, W), "tai4") for i in range(2)]
    b.muli(Reg(1), CID, H)
    for j, k in enumerate(range(0, C, W)):
        b.dma_ld(tiles[j % 2], w, Reg(1), k)
    return b.build()


def _lines(program, cores: int) -> np.ndarray:
    """The 64-B DDR lines of every core's DMAs, the cores' k-th DMAs side by side."""
    lay = validate(program)
    per_core = [[s.ddr for s in expand(program, c, cores, layout=lay)] for c in range(cores)]
    out = []
    for dmas in zip(*per_core, strict=True):
        for segs in dmas:
            for s in segs:
                for run in range(s.count):
                    a = s.address + run * s.stride
                    out += range(a // 64 * 64, a + s.length, 64)
    return np.array(out, dtype=np.uint64)


def test_a_tiled_window_is_one_segment_of_the_same_bytes():
    flat, packed = _weights_stream(False), _weights_stream(True)
    steps = [list(expand(p, 1, 4, layout=validate(p))) for p in (flat, packed)]
    for a, b in zip(*steps, strict=True):
        if a.instruction.opcode == "DMA.LD":
            assert len(a.ddr) == 2 and len(b.ddr) == 1        # codes + scales vs one tile
            assert b.ddr[0].count == 1 and b.ddr[0].length == sum(s.nbytes for s in a.ddr)


def test_tiled_weights_need_fewer_row_activations_and_less_time(chip):
    """The lines of four cores' windows through one DDR channel's model (all offered at once),
    and the program on four cores of the chip."""
    stats = {}
    for tiled in (False, True):
        p = _weights_stream(tiled)
        lines = _lines(p, 4)
        dram = simulate_requests(chip.memory.dram, np.zeros(lines.size, np.int64), lines,
                                 np.zeros(lines.size, bool)).stats()
        stats[tiled] = (dram.row_misses + dram.row_conflicts, simulate(p, chip, cores=4))
    (act_flat, flat), (act_tiled, tiled) = stats[False], stats[True]
    assert sum(tiled.channel_bytes) == sum(flat.channel_bytes)
    assert act_tiled < act_flat
    assert tiled.cycles < 0.8 * flat.cycles
    # the figures isa/README.md cites (Tiled tensors)
    assert (flat.cycles, tiled.cycles, act_flat, act_tiled) == (10053, 4998, 1208, 710)
