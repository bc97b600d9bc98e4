"""Tensors stored in tiles (``.tensor ... tile=HxW``, pre-packed weights): the text, binary and
builder front ends, the static and run-time checks, the layout (one contiguous DDR run per
DMA) and its byte order."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest

from prodigy_sim.errors import AssemblyError, ProgramError
from prodigy_sim.isa import (
    ProgramBuilder,
    Segment,
    assemble,
    decode,
    disassemble,
    encode,
    expand,
    validate,
)
from prodigy_sim.isa._binary import _HEAD, _STORAGE

_SRC = """\
.tensor W shape=(8,128) fmt=tai4 sparsity=8:4 tile=4x64
.tensor V shape=(8,128) fmt=tai4 sparsity=8:4
.tensor S shape=(8,64) fmt=int8 block=0 scale=fp32 tile=4x32
.tile A shape=(4,64) fmt=tai4 sparsity=8:4
.tile B shape=(4,32) fmt=int8 block=0 scale=fp32

    DMA.LD A, W, 4, 64
    DMA.LD A, V, 4, 64
    DMA.LD B, S, 4, 32
    DMA.ST S, 0, 0, B
"""


def test_tile_attribute_round_trips_through_text_binary_and_builder():
    program = assemble(_SRC)
    assert program.tensor["W"].tile == (4, 64) and program.tensor["V"].tile is None
    assert disassemble(program) == _SRC
    assert decode(encode(program)) == program
    b = ProgramBuilder()
    b.tensor("W", (8, 128), "tai4", sparsity=(8, 4), tile=(4, 64))
    assert b._tensors[0] == program.tensor["W"]
    assert "tile=4x64" in disassemble(assemble(".tensor W shape=(8,128) fmt=tai4 "
                                               "tile=4 x 64\n"))


def test_untiled_records_keep_the_spare_fields_zero():
    """An image without tiles is byte for byte what it was before the attribute existed, so old
    images decode as untiled."""
    program = assemble(_SRC.replace(" tile=4x64", "").replace(" tile=4x32", ""))
    blob = encode(program)
    n_str = _HEAD.unpack_from(blob)[3]
    pos = _HEAD.size
    for _ in range(n_str):
        pos += 2 + int.from_bytes(blob[pos:pos + 2], "little")
    pos += -pos % 8
    for i in range(len(program.tensors) + len(program.tiles)):
        rec = _STORAGE.unpack_from(blob, pos + i * _STORAGE.size)
        assert rec[9:11] == (0, 0)
    assert all(t.tile is None for t in decode(blob).tensors)


@pytest.mark.parametrize("text, message", [
    (".tensor W shape=(8,128) fmt=tai4 tile=3x64", "tile 3x64 must divide the shape (8,128)"),
    (".tensor W shape=(8,128) fmt=tai4 tile=4x48", "must divide the shape"),
    (".tensor W shape=(8,128) fmt=tai4 block=64 tile=4x32",
     "tile width 32 must be a multiple of the block size 64"),
    (".tensor W shape=(8,128) fmt=tai4 scale=none sparsity=16:4 tile=4x8",
     "tile width 8 must be a multiple of the sparsity group 16"),
    (".tensor W shape=(8,128) fmt=tai2 scale=none tile=4x2",
     "tile width 2 must hold whole bytes of codes"),
    (".tensor W shape=(8,128) fmt=tai4 tile=0 x 64", "tile must be two integers in 1..65535"),
    (".tensor W shape=(8,65536) fmt=int8 scale=none tile=8x65536",
     "tile must be two integers in 1..65535"),
    (".tile W shape=(8,128) fmt=tai4 tile=4x64", "expected an attribute of .tile"),
    (".tensor W shape=(8,128) fmt=tai4 tile=4", "expected 'x' and the tile width"),
    (".tensor W shape=(8,128) fmt=tai4 tile=4y64", "expected 'x' and the tile width"),
])
def test_bad_tile_attributes_are_located_assembly_errors(text: str, message: str):
    with pytest.raises(AssemblyError, match=re.escape(message)) as info:
        assemble(text + "\n", file="t.s")
    assert info.value.line == 1 and info.value.column >= 1


def test_tile_shape_on_a_tile_record_or_half_a_shape_is_a_malformed_binary():
    blob = bytearray(encode(assemble(_SRC)))
    n_str = _HEAD.unpack_from(blob)[3]
    pos = _HEAD.size
    for _ in range(n_str):
        pos += 2 + int.from_bytes(blob[pos:pos + 2], "little")
    pos += -pos % 8
    tile_rec = pos + 3 * _STORAGE.size          # tile A
    bad = bytearray(blob)
    bad[tile_rec + 28:tile_rec + 32] = (4 << 16 | 64).to_bytes(4, "little")
    with pytest.raises(AssemblyError, match="tile shape 4x64"):
        decode(bytes(bad))
    bad = bytearray(blob)
    bad[pos + 28:pos + 32] = (64).to_bytes(4, "little")   # tensor W: width without height
    with pytest.raises(AssemblyError, match="malformed declaration record"):
        decode(bytes(bad))


def test_dma_window_other_than_the_tile_shape_is_a_static_error():
    text = _SRC.replace(".tile A shape=(4,64)", ".tile A shape=(8,64)")
    with pytest.raises(ProgramError, match=r"tensor W is stored in tiles of 4x64; the window of "
                                           r"tile A is 8x64"):
        validate(assemble(text))


@pytest.mark.parametrize("row, col", [(2, 0), (0, 32), (2, 32)])
def test_misaligned_window_of_a_tiled_tensor_is_a_run_time_error(row: int, col: int):
    text = _SRC.replace("DMA.LD A, W, 4, 64", f"DMA.LD A, W, {row}, {col}")
    program = assemble(text)
    lay = validate(program)
    for with_layout in (lay, None):
        with pytest.raises(ProgramError, match=rf"the 4x64 window at \({row},{col}\) of tensor W "
                                               r"is not one of its 4x64 tiles"):
            list(expand(program, layout=with_layout))


def test_a_dma_of_a_tiled_tensor_is_one_contiguous_segment():
    program = assemble(_SRC)
    lay = validate(program)
    w, s = lay.tensors["W"], lay.tensors["S"]
    tile_w = 4 * (32 + 4 + 16) // 2         # 4 rows of 64 of the 128 columns' bytes
    assert w.nbytes == lay.tensors["V"].nbytes == 4 * tile_w
    steps = list(expand(program, layout=lay))
    assert steps[0].ddr == (Segment(w.base + 3 * tile_w, tile_w, tile_w, 1),)
    assert len(steps[1].ddr) == 3            # the untiled V: codes, scales, masks
    # int8 with one scale per tensor: the tile, then the tensor's scale after every tile
    assert steps[2].ddr == (Segment(s.base + 3 * 128, 128, 128, 1),
                            Segment(s.base + 4 * 128, 4, 0, 1))
    assert steps[3].ddr == (Segment(s.base, 128, 128, 1), Segment(s.base + 4 * 128, 4, 0, 1))
    for step in steps:
        ins = step.instruction
        ten, tile = (ins.name(0), ins.name(3)) if ins.opcode == "DMA.ST" else \
            (ins.name(1), ins.name(0))
        assert step.ddr == lay.window(program.tensor[ten], program.tile[tile], *step.args[:2])


def test_tiled_order_is_the_tiles_of_the_row_major_bytes():
    """Byte k of the tiled storage is byte order[k] of the row-major one: each tile holds the
    codes of its rows' columns, then their scales, then their masks."""
    program = assemble(_SRC)
    lay = validate(program)
    w = lay.tensors["W"]
    order = w.tiled_order()
    assert sorted(order.tolist()) == list(range(w.nbytes))
    row_major = dataclasses.replace(w, tile=None)
    # tile (1, 0): rows 4..7, columns 0..63 - codes 32 bytes per row, 16 of them per tile row
    first = order[2 * 104: 3 * 104]
    codes = [row_major.code_base() - w.base + r * 32 + c for r in range(4, 8) for c in range(16)]
    scales = [row_major.scale_base() - w.base + r * 4 + c for r in range(4, 8) for c in range(2)]
    masks = [row_major.meta_base() - w.base + r * 16 + c for r in range(4, 8) for c in range(8)]
    assert first.tolist() == codes + scales + masks
    s = lay.tensors["S"]
    assert s.tiled_order()[-4:].tolist() == list(range(512, 516))   # the per-tensor scale
    assert np.array_equal(np.sort(s.tiled_order()), np.arange(s.nbytes))
