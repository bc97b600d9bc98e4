"""A program over a tensor stored in tiles (``tile=HxW``) computes the same bits as over the
same tensor stored row-major, on the functional core and against the independent reference
(which works on element values, so it does not see the layout): host writes and reads, DMA
loads into scratchpad tiles, DMA stores into a tiled tensor, MMA / MMA.SP and a whole lowered
linear kernel with its weights pre-packed."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prodigy_sim.functional import ddr_image, run
from prodigy_sim.functional import reference as sp
from prodigy_sim.isa import Program, ProgramBuilder, validate
from prodigy_sim.lowering import LinearMapping, emulate_kernel, linear_kernel
from prodigy_sim.numerics import QuantizedTensor, Storage

STORAGES = {
    "fp8": ("float8_e4m3fn", 32, None, None),
    "tai4": ("tai4", 32, "e8m0", None),
    "tai2": ("tai2", 32, None, None),
    "tai4_8:4": ("tai4", 32, None, (8, 4)),
    "int8": ("int8", 32, None, None),
    "int8_per_tensor": ("int8", 0, "fp32", None),
    "bf16": ("bfloat16", None, None, None),
    "float32": ("float32", None, None, None),
}
M, N, K = 8, 16, 128


def _program(storage: tuple, tile: tuple[int, int], tiled: bool) -> Program:
    """Y = X W^T over (tile-shaped) K steps (not for float32 weights: MMA does not take them),
    plus every W tile copied to ``WC`` (row-major) and to ``WT`` (stored like W) by DMA.ST."""
    fmt, block, scale, sparsity = storage
    h, w = tile
    wide = fmt in ("bfloat16", "float32")
    act = "bfloat16" if wide else "float8_e4m3fn"
    b = ProgramBuilder()
    kw = {"block": block, "scale": scale, "sparsity": sparsity}
    pack = tile if tiled else None
    b.tensor("X", (M, K), act)
    wt = b.tensor("W", (N, K), fmt, tile=pack, **kw)
    b.tensor("WC", (N, K), fmt, **kw)
    b.tensor("WT", (N, K), fmt, tile=pack, **kw)
    b.tensor("Y", (M, N), "float32")
    xa = b.tile("XA", (M, w), act)
    wa = b.tile("WA", (h, w), fmt, **kw)
    ya = b.tile("YA", (M, h), "float32")
    acc = b.acc("C", (M, h))
    for n in range(0, N, h):
        b.acc_zero(acc)
        for k in range(0, K, w):
            b.dma_ld(xa, "X", 0, k)
            b.dma_ld(wa, wt, n, k)
            if fmt != "float32":
                (b.mma_sp if sparsity else b.mma)(acc, xa, wa)
            b.dma_st("WC", n, k, wa)
            b.dma_st("WT", n, k, wa)
        b.acc_st(ya, acc)
        b.dma_st("Y", 0, n, ya)
    return b.build()


def _values(seed: int, shape: tuple[int, int], spread: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape) * np.exp2(rng.integers(-4, 5, shape) * spread)
            ).astype(np.float32)


def _same(a, b) -> bool:
    if isinstance(a, QuantizedTensor):
        return (np.array_equal(a.codes, b.codes) and np.array_equal(a.scales, b.scales)
                and (a.mask_bits is None) == (b.mask_bits is None)
                and (a.mask_bits is None or np.array_equal(a.mask_bits, b.mask_bits)))
    return np.array_equal(np.asarray(a).view(np.uint32), np.asarray(b).view(np.uint32))


def _check(name: str, tile: tuple[int, int], seed: int, spread: float = 1.0) -> None:
    storage = STORAGES[name]
    x, wv = _values(seed, (M, K), spread), _values(seed + 1, (N, K), spread)
    states = {}
    for tiled in (False, True):
        program = _program(storage, tile, tiled)
        states[tiled] = run(program, ddr={"X": x, "W": wv})
    flat, packed = states[False], states[True]
    w_flat = flat.tensor("W")
    # the host writes and reads the tiled tensor as the row-major one (different bytes)
    assert _same(packed.tensor("W"), w_flat)
    lay = validate(_program(storage, tile, True))
    image = ddr_image(_program(storage, tile, True), {"W": wv}, lay)
    p = lay.tensors["W"]
    flat_lay = validate(_program(storage, tile, False))
    flat_image = ddr_image(_program(storage, tile, False), {"W": wv}, flat_lay)
    q = flat_lay.tensors["W"]
    assert np.array_equal(image[p.base:p.base + p.nbytes],
                          flat_image[q.base:q.base + q.nbytes][p.tiled_order()])
    # DMA loads land in the scratchpad tile's own layout: stored back row-major and tiled
    for state in (flat, packed):
        assert _same(state.tensor("WC"), w_flat)
        assert _same(state.tensor("WT"), w_flat)
    assert _same(packed.tensor("Y"), flat.tensor("Y"))
    if storage[0] == "float32" or storage[2] == "fp32":
        return          # (the reference's exact sums take products of <= 32 significant bits)
    # the reference, on element values
    xq = flat.tensor("X")
    want = sp.mma(np.zeros((M, N), np.float32), sp.scaled_f64(xq), sp.scaled_f64(w_flat),
                  bounds=tuple(range(0, K, tile[1])))
    assert _same(packed.tensor("Y"), want)


@pytest.mark.parametrize("name", list(STORAGES))
@pytest.mark.parametrize("tile", [(8, 64), (4, 32), (16, 128)])
def test_tiled_weights_give_the_bits_of_row_major_weights(name: str, tile: tuple[int, int]):
    if name == "tai4_8:4" and tile[1] < 64:
        tile = (tile[0], 64)
    _check(name, tile, seed=7)


@settings(max_examples=25, deadline=None)
@given(name=st.sampled_from(list(STORAGES)), h=st.sampled_from([1, 2, 4, 8, 16]),
       w=st.sampled_from([32, 64, 128]), seed=st.integers(0, 2**31), spread=st.sampled_from(
           [0.0, 1.0, 4.0]))
def test_tiled_weights_property(name: str, h: int, w: int, seed: int, spread: float):
    _check(name, (h, w), seed, spread)


@pytest.mark.parametrize("weight, epilogue, multicast", [
    (Storage.of("tai4", 32), "store", False),
    (Storage.of("tai4", 32), "store", True),
    (Storage.of("float8_e4m3fn", 32), "gated", True),
    (Storage.of("tai4", 32, sparsity="8:4"), "residual", False),
    (Storage.of("int8", 32), "bias", False),
])
def test_linear_kernel_with_prepacked_weights_matches_the_reference(weight: Storage,
                                                                    epilogue: str,
                                                                    multicast: bool):
    """The lowered linear kernel with W (and WU) re-declared in tiles of its W DMA window
    (DMA.LD, or DMA.LDM with multicast): the functional core equals the plain numpy emulation
    and the row-major run."""
    m, n, k = 32, 64, 256
    mapping = LinearMapping(gm=2, gn=2, mt=16, am=1, nt=32, an=1, kt=128, multicast=multicast)
    kernel = linear_kernel("lin", m, n, k, weight=weight, cores=4, mapping=mapping,
                           epilogue=epilogue)
    tile = (mapping.nt, mapping.kt)
    tensors = tuple(dataclasses.replace(t, tile=tile) if t.name in ("W", "WU") else t
                    for t in kernel.program.tensors)
    packed = dataclasses.replace(kernel, program=dataclasses.replace(kernel.program,
                                                                     tensors=tensors))
    rng = np.random.default_rng(3)
    ddr = {"X": rng.standard_normal((m, k)).astype(np.float32),
           "W": rng.standard_normal((n, k)).astype(np.float32)}
    names = {t.name for t in tensors}
    if "WU" in names:
        ddr["WU"] = rng.standard_normal((n, k)).astype(np.float32)
    if "R" in names:
        ddr["R"] = rng.standard_normal((m, n)).astype(np.float32)
    if "BIAS" in names:
        ddr["BIAS"] = rng.standard_normal((1, n)).astype(np.float32)
    flat = run(kernel.program, ddr=ddr, cores=kernel.cores).tensor("Y")
    got = run(packed.program, ddr=ddr, cores=packed.cores).tensor("Y")
    emu = emulate_kernel(packed, ddr)["Y"]
    assert _same(got, flat) and _same(got, emu)
