"""The lowered kernels on the functional core equal their plain numpy emulation to the bit (issue
#6): ``functional.run(kernel.program, ...)`` vs :func:`prodigy_sim.lowering.emulate_kernel` for
every linear epilogue (dense and 8:4 sparse weights), both norms, rope_kv (RoPE on and off,
prefill and decode), attention prefill (causal and padded, ``-1e30`` and ``-inf`` masks) and
decode (one and several flash-decoding splits). Float tensors are compared as float32 bits,
quantized tensors by codes and scales."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prodigy_sim.errors import ConfigError
from prodigy_sim.functional import reference as sp
from prodigy_sim.functional import run
from prodigy_sim.functional.reference import _spec as sp_impl
from prodigy_sim.isa import disassemble
from prodigy_sim.lowering import (
    LinearMapping,
    attention_kernel,
    emulate_kernel,
    linear_kernel,
    norm_kernel,
    rope_kv_kernel,
)
from prodigy_sim.lowering._common import vt_shape
from prodigy_sim.numerics import QuantizedTensor, Storage

EPILOGUES = ("store", "quant", "residual", "bias", "bias_store", "bias_residual", "gelu", "gated")


def _assert_same(core, emu, name: str) -> None:
    if isinstance(core, QuantizedTensor):
        assert isinstance(emu, QuantizedTensor), name
        assert (emu.shape, emu.fmt.name, emu.block, emu.scale, emu.axis) == \
            (core.shape, core.fmt.name, core.block, core.scale, core.axis), name
        assert emu.codes.dtype == core.codes.dtype and emu.scales.dtype == core.scales.dtype
        assert np.array_equal(emu.codes, core.codes), f"{name}: codes differ"
        assert np.array_equal(emu.scales, core.scales), f"{name}: scales differ"
    else:
        assert isinstance(emu, np.ndarray) and emu.dtype == core.dtype == np.float32, name
        assert emu.shape == core.shape, name
        bad = emu.view(np.uint32) != core.view(np.uint32)
        assert not bad.any(), f"{name}: {bad.sum()} elements differ, e.g. {emu[bad][:3]} vs " \
                              f"{core[bad][:3]}"


def _check(kernel, ddr: dict, outputs: set[str]) -> dict:
    """Run both, compare every output; returns the core's outputs."""
    state = run(kernel.program, ddr=ddr, cores=kernel.cores)
    emu = emulate_kernel(kernel, ddr)
    assert set(emu) == outputs
    core = {}
    for name in outputs:
        core[name] = state.tensor(name)
        _assert_same(core[name], emu[name], name)
    return core


def _normal(rng, shape, scale=1.0) -> np.ndarray:
    return (rng.standard_normal(shape) * scale).astype(np.float32)


# ---- linear -----------------------------------------------------------------------------------

def _linear_ddr(rng, m: int, n: int, k: int, epilogue: str, x_scale=None) -> dict:
    x = _normal(rng, (m, k))
    if x_scale is not None:
        x *= x_scale
    ddr = {"X": x, "W": _normal(rng, (n, k), 0.1)}
    if epilogue == "gated":
        ddr["WU"] = _normal(rng, (n, k), 0.1)
    if epilogue in ("bias", "bias_store", "bias_residual", "gelu"):
        ddr["BIAS"] = _normal(rng, (1, n))
    if epilogue in ("residual", "bias_residual"):
        ddr["R"] = _normal(rng, (m, n), 4.0)
    return ddr


def _lin(m, n, k, *, weight, cores, epilogue, nt, an, kt=None, mt=None, am=1, gm=1,
         gn=None, order="mn", multicast=False, stationary=False, stagger=1, first=None):
    """A linear kernel on an explicit mapping (by default: the whole M in one block row, column
    blocks over the cores)."""
    mt = mt or m // am
    gn = gn or min(cores // gm, n // (nt * an))
    mp = LinearMapping(mt, am, nt, an, kt or k, gm, gn, order, multicast, stationary, stagger)
    return linear_kernel("lin", m, n, k, weight=weight, cores=cores, mapping=mp,
                         epilogue=epilogue, first=first)


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "8:4"])
@pytest.mark.parametrize("epilogue", EPILOGUES)
def test_linear_epilogues(epilogue, sparse):
    """K = 320 in K tiles of 128 (two tiles and a 64 tail), two column blocks, 2 cores."""
    w = Storage.of("tai4", sparsity=(8, 4) if sparse else None)
    m, n, k = 16, 128, 320
    kern = _lin(m, n, k, weight=w, cores=2, epilogue=epilogue, nt=32, an=2,
                         kt=128)
    assert kern.params.kt == 128 and kern.params.epilogue == epilogue
    ddr = _linear_ddr(np.random.default_rng(EPILOGUES.index(epilogue) + 10 * sparse), m, n, k,
                      epilogue)
    _check(kern, ddr, {"Y"})


@settings(max_examples=6)
@given(epilogue=st.sampled_from(EPILOGUES), fmt=st.sampled_from(["float8_e4m3fn", "int8", "tai2"]),
       m=st.sampled_from([8, 24]), k=st.sampled_from([64, 192, 256]),
       seed=st.integers(0, 2**16))
def test_linear_hypothesis(epilogue, fmt, m, k, seed):
    """Random formats, row counts, K (one tile, a tile and a tail) and data."""
    rng = np.random.default_rng(seed)
    kern = _lin(m, 64, k, weight=Storage.of(fmt), cores=2, epilogue=epilogue,
                         nt=32, an=1)
    _check(kern, _linear_ddr(rng, m, 64, k, epilogue), {"Y"})


@pytest.mark.parametrize("grid, order, multicast", [
    ((2, 2), "mn", False), ((2, 2), "nm", False), ((2, 2), "mn", True), ((4, 1), "nm", True),
    ((1, 3), "mn", False)], ids=["2x2-mn", "2x2-nm", "2x2-multicast", "4x1-nm-multicast",
                                 "1x3-uneven"])
def test_linear_mappings(grid, order, multicast):
    """Core grids, both block orders, multicast loads (``DMA.LDM``) and a grid that does not
    divide the blocks give the emulation's bits: 4 row blocks x 4 column blocks of 8x32 tiles
    (2 accumulators per block), K in two tiles."""
    gm, gn = grid
    rng = np.random.default_rng(gm * 10 + gn + multicast)
    m, n, k = 32, 256, 256
    kern = _lin(m, n, k, weight=Storage.of("tai4"), cores=4, epilogue="quant", nt=32,
                an=2, mt=8, am=1, kt=128, gm=gm, gn=gn, order=order, multicast=multicast)
    assert kern.busy_cores == gm * gn and kern.mapping.startswith(f"grid {gm}x{gn}")
    assert ("DMA.LDM" in disassemble(kern.program)) == multicast
    _check(kern, _linear_ddr(rng, m, n, k, "quant"), {"Y"})


@pytest.mark.parametrize("kw", [
    dict(kt=128, gm=2, gn=2),                                   # nk = 3 (odd): block pairs
    dict(kt=256, gm=2, gn=2, order="nm"),                       # nk = 2 (even), a 64 tail
    dict(kt=448, gm=2, gn=1),                                   # nk = 1: a block a step
    dict(kt=128, gm=2, gn=2, stationary=True),                  # X kept, K tail
    dict(kt=256, gm=1, gn=3, order="nm", stationary=True),      # W kept, uneven grid
    dict(kt=128, gm=2, gn=2, multicast=True, stationary=True),
    dict(kt=128, gm=4, gn=1, multicast=True, stationary=True, stagger=2),
    dict(kt=448, gm=2, gn=2, order="nm", multicast=True, stagger=2),
    dict(kt=128, gm=3, gn=1, stagger=2, stationary=True),       # uneven grid, rotated
], ids=["odd-steps", "even-steps-tail", "one-step", "x-stationary", "w-stationary-uneven",
        "multicast-stationary", "multicast-stationary-stagger", "nm-multicast-stagger",
        "uneven-stagger"])
def test_linear_pipelined_mappings(kw):
    """The software pipeline across blocks (odd and even K steps per block, a K tail, one step
    per block), a stationary X or W (loaded by the first block of each outer index only),
    rotated block orders (stagger) and multicast loads with them give the emulation's bits:
    4 row blocks x 4 column blocks of 8x32 tiles (2 accumulators), K = 448, 4 cores. The
    residual epilogue checks that residual tiles prefetched a block ahead reach the right
    block."""
    rng = np.random.default_rng(sum(map(ord, repr(sorted(kw.items())))))
    m, n, k = 32, 256, 448
    kern = _lin(m, n, k, weight=Storage.of("tai4"), cores=4, epilogue="bias_residual", nt=32,
                an=2, mt=8, am=1, **kw)
    assert ("DMA.LDM" in disassemble(kern.program)) == kw.get("multicast", False)
    _check(kern, _linear_ddr(rng, m, n, k, "bias_residual"), {"Y"})


@pytest.mark.parametrize("kw", [
    dict(kt=128, gm=2, gn=2, stationary=True),                  # X kept: loaded behind a branch
    dict(kt=128, gm=4, gn=1, multicast=True, stationary=True, stagger=2),
    dict(kt=256, gm=1, gn=3, order="nm", stationary=True),      # W kept, X first
    dict(kt=448, gm=2, gn=2, order="nm", multicast=True, stagger=2),
], ids=["x-stationary", "multicast-stationary-stagger", "w-stationary", "nm-multicast"])
def test_linear_load_order_moves_loads_not_bits(kw):
    """A K step that issues the other operand's loads first (``first``) loads the same tiles
    (the program's DMAs differ only in order) and gives the same bits - also when the operand
    it now issues second is a stationary one, loaded behind a branch."""
    rng = np.random.default_rng(sum(map(ord, repr(sorted(kw.items())))) + 1)
    m, n, k = 32, 256, 448
    ddr = _linear_ddr(rng, m, n, k, "bias_residual")
    flipped = "X" if kw.get("order", "mn") == "nm" else "W"
    kerns = [_lin(m, n, k, weight=Storage.of("tai4"), cores=4, epilogue="bias_residual",
                  nt=32, an=2, mt=8, am=1, first=first, **kw) for first in (None, flipped)]
    dmas = [[line.split(",")[1].strip() for line in disassemble(kn.program).splitlines()
             if line.strip().startswith("DMA.LD")] for kn in kerns]
    assert dmas[0] != dmas[1] and sorted(dmas[0]) == sorted(dmas[1])
    # the first load of the program (the first K step) comes from the operand issued first
    assert dmas[0][0].startswith("X" if flipped == "W" else "W")
    assert dmas[1][0].startswith(flipped)
    outs = [_check(kn, ddr, {"Y"})["Y"] for kn in kerns]
    assert outs[0].tobytes() == outs[1].tobytes()
    with pytest.raises(ConfigError, match="'first' must be 'X' or 'W'"):
        _lin(m, n, k, weight=Storage.of("tai4"), cores=4, epilogue="store", nt=32, an=2, mt=8,
             first="Y", **kw)


def test_linear_k_tiles_are_whole_chunks_so_the_mapping_never_changes_the_bits():
    """K tiles are K or multiples of the 128-element chunk, so every chunk of the numeric
    specification starts at a multiple of 128 of the whole K whatever the mapping: the same
    inputs give the same bits for kt = 128, 256 and K (= 288, one tile with a 32 tail) and for
    different grids. Rows with ``+B`` in K [0, 32), small values in [96, 128) and ``-B`` in
    [128, 160) would expose a tile boundary inside a chunk (``kt = 96`` is refused)."""
    rng = np.random.default_rng(6)
    m, n, k = 16, 64, 288
    ddr = _linear_ddr(rng, m, n, k, "store")
    ddr["W"][:4] = 1.0
    ddr["X"][:4] = 0.0
    ddr["X"][:4, :32] = 4096.0
    ddr["X"][:4, 96:128] = np.abs(_normal(rng, (4, 32), 2.0**-14))
    ddr["X"][:4, 128:160] = -4096.0
    w = Storage.of("float8_e4m3fn")
    outs = [_check(_lin(m, n, k, weight=w, cores=2, epilogue="store", nt=32, an=1, kt=kt,
                        mt=mt, gm=gm, gn=gn), ddr, {"Y"})["Y"]
            for kt, mt, gm, gn in ((128, None, 1, 2), (256, 8, 2, 1), (None, 8, 1, 2))]
    for y in outs[1:]:
        assert np.array_equal(y.view(np.uint32), outs[0].view(np.uint32))
    with pytest.raises(ConfigError, match="kt must be K or a multiple of 128"):
        _lin(m, n, k, weight=w, cores=2, epilogue="store", nt=32, an=1, kt=96)


def test_linear_bf16_weights():
    """BFLOAT16 MMA (bfloat16 activations and weights)."""
    rng = np.random.default_rng(5)
    kern = _lin(8, 64, 256, weight=Storage.of("bfloat16"), cores=2,
                         epilogue="residual", nt=32, an=1)
    assert kern.params.act.fmt.name == "bfloat16"
    _check(kern, _linear_ddr(rng, 8, 64, 256, "residual"), {"Y"})


def test_linear_chunk_sums_beyond_float64(monkeypatch):
    """Rows whose 128-element chunks mix magnitudes 2^80 apart: float64 GEMM sums are not exact,
    the integer superaccumulator takes them (and must be used here)."""
    rng = np.random.default_rng(7)
    m, n, k = 16, 64, 256
    scale = np.exp2(rng.integers(-40, 40, (m, k // 32))).astype(np.float32)
    ddr = _linear_ddr(rng, m, n, k, "quant", np.repeat(scale, 32, axis=1))
    used = []
    orig = sp_impl._superacc_rne32
    monkeypatch.setattr(sp_impl, "_superacc_rne32", lambda t: used.append(t.shape[0]) or orig(t))
    kern = _lin(m, n, k, weight=Storage.of("float8_e4m3fn"), cores=2,
                         epilogue="quant", nt=32, an=2, kt=128)
    _check(kern, ddr, {"Y"})
    assert sum(used) > m * n // 4


def test_linear_nan_and_inf():
    """NaN / Inf activations (NaN block scales), an Inf residual, NaN bias: canonical NaNs."""
    rng = np.random.default_rng(8)
    m, n, k = 8, 64, 128
    for epilogue in ("bias_residual", "gelu"):
        ddr = _linear_ddr(rng, m, n, k, epilogue)
        ddr["X"][1, 3] = np.nan
        ddr["X"][2, 40] = np.inf
        ddr["BIAS"][0, 5] = np.nan
        if "R" in ddr:
            ddr["R"][4, 7] = -np.inf
        kern = _lin(m, n, k, weight=Storage.of("tai4"), cores=2,
                             epilogue=epilogue, nt=32, an=1)
        _check(kern, ddr, {"Y"})


# ---- norms ------------------------------------------------------------------------------------

@settings(max_examples=8)
@given(kind=st.sampled_from(["rmsnorm", "layernorm"]), m=st.integers(1, 40),
       h=st.sampled_from([32, 96, 384]), eps=st.sampled_from([1e-5, 1e-6, 1e-12]),
       scale=st.sampled_from([1e-3, 1.0, 300.0]), seed=st.integers(0, 2**16))
def test_norms(kind, m, h, eps, scale, seed):
    """RMSNorm and LayerNorm over random rows."""
    rng = np.random.default_rng(seed)
    kern = norm_kernel("norm", m, h, kind=kind, eps=eps, cores=3)
    ddr = {"X": _normal(rng, (m, h), scale) + np.float32(scale), "G": _normal(rng, (1, h))}
    if kind == "layernorm":
        ddr["B"] = _normal(rng, (1, h))
    _check(kern, ddr, {"Y", "YS"} if kind == "layernorm" else {"Y"})


# ---- rope_kv ----------------------------------------------------------------------------------

def _tables(n: int, d: int) -> tuple[np.ndarray, np.ndarray]:
    inv = 10000.0 ** (-np.arange(d // 2) / (d // 2))
    ang = np.arange(n)[:, None] * inv[None, :]
    ang = np.concatenate([ang, ang], axis=1)
    return np.cos(ang).astype(np.float32), np.sin(ang).astype(np.float32)


@pytest.mark.parametrize("rope", [True, False], ids=["rope", "qkv_cache"])
@pytest.mark.parametrize("tokens,position,context", [(64, 0, 64), (32, 0, 32), (1, 37, 50)],
                         ids=["prefill64", "prefill32", "decode"])
def test_rope_kv(rope, tokens, position, context):
    """Q, K and V cache rows, and prefill's VT; decode keeps the cache rows it does not write."""
    rng = np.random.default_rng(tokens + rope)
    bsz, nh, nkv, d = 2, 4, 2, 64
    kern = rope_kv_kernel("rkv", batch=bsz, tokens=tokens, heads=nh, kv_heads=nkv, head_dim=d,
                          position=position, context=context, rope=rope, cores=3)
    ddr = {"QKV": _normal(rng, (bsz * tokens, (nh + 2 * nkv) * d), 2.0)}
    if rope:
        ddr["COS"], ddr["SIN"] = _tables(max(context, tokens), d)
    cp = kern.params.cp
    if tokens == 1:
        ddr["KC"] = _normal(rng, (bsz * nkv * cp, d))
        ddr["VC"] = _normal(rng, (bsz * nkv * cp, d))
    out = _check(kern, ddr, {"Q", "KC", "VC"} | ({"VT"} if tokens > 1 else set()))
    if tokens == 1:                                   # the untouched rows are the input's
        old = emulate_kernel(kern, {"KC": ddr["KC"]})["KC"]
        kept = np.ones(bsz * nkv * cp, dtype=bool)
        kept[np.arange(bsz * nkv) * cp + position] = False
        assert np.array_equal(out["KC"].codes[kept], old.codes[kept])


# ---- attention --------------------------------------------------------------------------------

def _prefill(causal: bool, ctx: int, real: int, neg: float, heads=2, kv_heads=1, d=32,
             batch=1, seed=0) -> None:
    rng = np.random.default_rng(seed)
    kern = attention_kernel("att", batch=batch, heads=heads, kv_heads=kv_heads, head_dim=d,
                            queries=ctx, context=ctx, causal=causal, cores=2)
    cp, ck = kern.params.cp, kern.params.ck
    if causal:
        mask = np.where(np.arange(ck)[None, :] > np.arange(ck)[:, None], neg, 0.0)
    else:
        mask = np.tile(np.where(np.arange(cp - ck, cp) < real, 0.0, neg), (ck, 1))
    ddr = {"Q": _normal(rng, (batch * heads * cp, d), 2.0),
           "KC": _normal(rng, (batch * kv_heads * cp, d), 2.0),
           "VT": _normal(rng, vt_shape(batch, kv_heads, d, cp, ck)),
           "MASK": mask.astype(np.float32)}
    _check(kern, ddr, {"O"})


@pytest.mark.parametrize("neg", [-1.0e30, -np.inf], ids=["-1e30", "-inf"])
@pytest.mark.parametrize("causal,ctx,real", [(True, 192, 192), (False, 128, 100),
                                             (False, 64, 40)],
                         ids=["causal-3-chunks", "padded-2-chunks", "padded-1-chunk"])
def test_attention_prefill(causal, ctx, real, neg):
    _prefill(causal, ctx, real, neg)


@pytest.mark.parametrize("causal,ctx,real", [(True, 576, 576), (False, 192, 150),
                                             (False, 320, 320), (False, 448, 400)],
                         ids=["causal-1-to-9-chunks", "3-chunks", "5-chunks", "7-chunks"])
def test_attention_software_pipeline_over_chunk_counts(causal, ctx, real):
    """The chunk loop's software pipeline (K/V three chunks ahead in a ring of four, scores one
    chunk ahead of the softmax, a loop of four steps whose steps past the last chunk are
    skipped) gives the emulation's bits for every chunk count: a causal prefill of 9 chunks
    pairs query blocks with 1 .. 9 chunks (counts known only at run time), the others have 3,
    5 and 7 chunks (known when lowered)."""
    _prefill(causal, ctx, real, -np.inf, heads=1, kv_heads=1, seed=ctx)


def test_a_fully_masked_row_does_not_poison_later_blocks():
    """A query row whose keys are all masked with -inf has L = 0 and a NaN output row; the next
    block on the same core resets its state by multiplying by 0, which must not meet 1/L = Inf
    (regression: the kernel used to leave 1/L in L)."""
    from prodigy_sim.functional import run

    rng = np.random.default_rng(5)
    kern = attention_kernel("att", batch=1, heads=1, kv_heads=1, head_dim=32, queries=192,
                            context=192, causal=True, cores=1)
    ck = kern.params.ck
    mask = np.where(np.arange(ck)[None, :] > np.arange(ck)[:, None], -np.inf, 0.0)
    mask[5] = -np.inf
    ddr = {"Q": _normal(rng, (192, 32), 2.0), "KC": _normal(rng, (192, 32), 2.0),
           "VT": _normal(rng, vt_shape(1, 1, 32, 192, ck)), "MASK": mask.astype(np.float32)}
    o = run(kern.program, ddr=ddr, cores=1).tensor("O").dequantize()
    bad = sorted(set(np.nonzero(np.isnan(o).any(axis=1))[0].tolist()))
    assert bad == [5], bad             # before the fix: [5, ck + 5, 2 ck + 5]
    _check(kern, ddr, {"O"})


def test_attention_prefill_gqa_head64():
    """GQA (4 heads on 2 KV heads), head_dim 64, two sequences, causal."""
    _prefill(True, 128, 128, -np.inf, heads=4, kv_heads=2, d=64, batch=2, seed=3)


@pytest.mark.parametrize("splits", [1, 2, 4])
def test_attention_decode(splits):
    """Decode over 500 keys (padding masked with -1e30), unsplit and flash decoding. Scores
    rise along the keys (a ramp in one dimension), so that the running max changes at every chunk
    and the rescaling (``cr < 1``) is exercised; the slices' FP32 ``OA``, ``M``, ``L`` are
    compared too."""
    rng = np.random.default_rng(splits)
    bsz, nh, nkv, d, ctx = 1, 8, 2, 64, 500
    kern = attention_kernel("att", batch=bsz, heads=nh, kv_heads=nkv, head_dim=d, queries=1,
                            context=ctx, causal=True, cores=4, splits=splits)
    cp, ck, qr = kern.params.cp, kern.params.ck, nh // nkv
    pad = np.tile(np.where(np.arange(cp - ck, cp) < ctx, 0.0, -1.0e30), (qr, 1))
    mask = np.concatenate([np.zeros_like(pad), pad]) if splits > 1 else pad
    ddr = {"Q": _normal(rng, (bsz * nh, d), 2.0), "KC": _normal(rng, (bsz * nkv * cp, d), 2.0),
           "VC": _normal(rng, (bsz * nkv * cp, d)), "MASK": mask.astype(np.float32)}
    ddr["Q"][:, 0] = 8.0
    ddr["KC"][:, 0] = np.tile(np.linspace(-4.0, 4.0, cp), bsz * nkv)
    _check(kern, ddr, {"O"} | ({"OP", "MP", "LP"} if splits > 1 else set()))


def test_rope_kv_then_attention():
    """The prefill chain through DDR: rope_kv's Q, KC, VT feed attention (both backends agree on
    each kernel given the same inputs)."""
    rng = np.random.default_rng(4)
    nh, d, tokens = 2, 64, 64
    rkv = rope_kv_kernel("rkv", batch=1, tokens=tokens, heads=nh, kv_heads=nh, head_dim=d,
                         position=0, context=tokens, rope=True, cores=2)
    cos, sin = _tables(tokens, d)
    mid = _check(rkv, {"QKV": _normal(rng, (tokens, 3 * nh * d), 2.0), "COS": cos, "SIN": sin},
                 {"Q", "KC", "VC", "VT"})
    att = attention_kernel("att", batch=1, heads=nh, kv_heads=nh, head_dim=d, queries=tokens,
                           context=tokens, causal=True, cores=2)
    ck = att.params.ck
    mask = np.where(np.arange(ck)[None, :] > np.arange(ck)[:, None], -np.inf, 0.0)
    _check(att, {"Q": mid["Q"], "KC": mid["KC"], "VT": mid["VT"],
                 "MASK": mask.astype(np.float32)}, {"O"})


# ---- parameters and primitives ----------------------------------------------------------------

def test_kernel_params_are_recorded():
    kern = norm_kernel("n", 8, 64, kind="rmsnorm", eps=1e-6, cores=2)
    assert kern.params.eps == 1e-6 and kern.params.norm == "rmsnorm"
    assert kern.params == norm_kernel("n", 8, 64, kind="rmsnorm", eps=1e-6, cores=2).params
    hash(kern.params)
    capped = norm_kernel("n", 8, 64, kind="rmsnorm", eps=1e-6, cores=2, unit_cap=1)
    with pytest.raises(ConfigError, match="unit_cap"):
        emulate_kernel(capped, {})
    with pytest.raises(ConfigError, match="no tensor"):
        emulate_kernel(kern, {"XX": np.zeros((8, 64), np.float32)})


def test_superaccumulator_against_fractions():
    """The exact fallback rounds the exact rational sum once to float32 (ties to even, signed
    results, cancellation to +0, terms 2^-300 .. 2^300 apart)."""
    rng = np.random.default_rng(9)
    n, t = 400, 9
    mant = rng.integers(-(2**16), 2**16, (n, t)).astype(np.float64)
    terms = np.ldexp(mant, rng.integers(-320, 300, (n, t)))
    terms[:50, 1:] = np.ldexp(mant[:50, 1:], rng.integers(-20, 20, (50, t - 1)))
    terms[50:60] = 0.0
    terms[60, :2] = [1.0, -1.0]
    terms[61, :3] = [1.0, 2.0**-24, 0.0]                           # a tie: to even (1.0)
    terms[62, :3] = [1.0, 2.0**-24, 2.0**-300]                     # above the tie
    got = sp_impl._superacc_rne32(terms)
    for i in range(n):
        exact = sum((Fraction(x) for x in terms[i]), Fraction(0))
        want = _round_f32(exact)
        assert got[i].view(np.uint32) == want.view(np.uint32), (i, exact)


def _round_f32(x: Fraction) -> np.float32:
    """RNE of a rational to float32 (exact zero -> +0), by round-to-odd at 53 bits."""
    if x == 0:
        return np.float32(0.0)
    try:
        d = float(x)                                   # correctly rounded to float64
    except OverflowError:
        return np.float32(np.inf if x > 0 else -np.inf)
    if Fraction(d) != x and (np.float64(d).view(np.uint64) & np.uint64(1)) == 0:
        d = float(np.nextafter(d, np.inf if x > Fraction(d) else -np.inf))
    with np.errstate(over="ignore"):
        return np.float32(d)


def test_vector_primitives_match_the_functional_core():
    """EXP / SiLU / GELU / FMA / row reductions on special and random values."""
    from prodigy_sim.functional import _vector as fv

    rng = np.random.default_rng(2)
    special = np.array([np.inf, -np.inf, np.nan, 0.0, -0.0, 88.9, 89.0, -103.9, -104.0, -20.0,
                        -20.001, 15.5, -15.5, 15.49, 1e-40, -1e-40], dtype=np.float32)
    x = np.concatenate([special, _normal(rng, 20000, 20.0)])
    for mine, theirs in ((sp.exp32, fv.vexp), (sp.silu32, fv.vsilu), (sp.gelu32, fv.vgelu)):
        assert np.array_equal(mine(x).view(np.uint32), theirs(x).view(np.uint32)), mine
    y, z = _normal(rng, x.size), _normal(rng, x.size, 1e-3)
    z[:16] = -0.0
    assert np.array_equal(sp.vfma(x, y, z).view(np.uint32), fv.vfma(x, y, z).view(np.uint32))
    a = x[:19200].reshape(100, 192)
    assert np.array_equal(sp.vrsum(a).view(np.uint32), fv.vrsum(a).view(np.uint32))
    assert np.array_equal(sp.vrmax(a).view(np.uint32), fv.vrmax(a).view(np.uint32))
