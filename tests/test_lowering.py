"""Lowering: FLOP formulas, analytic counts against the ISA, validation of every card, and the
functional core on a small lowered linear layer."""

import dataclasses
import functools

import numpy as np
import pytest

from prodigy_sim.errors import ConfigError
from prodigy_sim.hardware import load_preset
from prodigy_sim.isa import expand, validate
from prodigy_sim.lowering import (
    LinearMapping,
    attention_flops,
    attention_kernel,
    linear_flops,
    linear_kernel,
    lower_model,
    norm_kernel,
    rope_kv_kernel,
)
from prodigy_sim.models import Scenario, card_names, load_card
from prodigy_sim.numerics import Storage
from prodigy_sim.timing import isa_params, roofline_bound

CFG = load_preset("prodigy-t16128")


def _flops(lm):
    return {(s.name, o.name): o for s in lm.stages for o in s.ops}


def test_formulas():
    assert linear_flops(3, 5, 7) == 2 * 3 * 5 * 7
    assert attention_flops(2, 3, 5, 7, 11) == 4 * 2 * 3 * 5 * 7 * 11


@pytest.mark.parametrize("model,phase,batch,length", [
    ("llama-2-7b", "decode", 4, 2048), ("llama-2-7b", "prefill", 2, 256),
    ("llama-3-8b", "decode", 2, 1024), ("llama-3-8b", "prefill", 1, 512),
    ("smollm2-135m", "decode", 3, 512), ("bert-base-uncased", "prefill", 8, 128),
])
def test_op_flops_are_the_standard_formulas(model, phase, batch, length):
    card = load_card(model)
    key = "context_length" if phase == "decode" else "sequence_length"
    sc = Scenario(model=model, phase=phase, batch=batch, **{key: length})
    lm = lower_model(card, sc, CFG)
    h, f, d = card.hidden_size, card.intermediate_size, card.head_size
    nh, kv = card.num_attention_heads, card.kv_heads
    t = batch * (1 if phase == "decode" else length)
    ops = {o.name: o for o in lm.stages[0].ops}
    assert ops["qkv_proj"].flops == 2 * t * (nh + 2 * kv) * d * h
    assert ops["o_proj"].flops == 2 * t * h * nh * d
    mlp = 3 if card.mlp == "gated" else 2
    assert sum(ops[n].flops for n in ops if n in ("gate_up", "up_proj", "down_proj")) \
        == mlp * 2 * t * h * f
    q = 1 if phase == "decode" else length
    assert ops["attention"].flops == 4 * batch * q * length * nh * d
    # what the programs execute: linear layers exactly the formula (no padding here)
    for name in ("qkv_proj", "o_proj", "down_proj"):
        assert ops[name].kernel.mma_flops == ops[name].flops
    att = ops["attention"].kernel.mma_flops
    if phase == "decode" or card.family == "bert":
        assert att == ops["attention"].flops
    else:                                   # causal: the block lower triangle only
        nb = length // 64
        assert att * 2 * nb == ops["attention"].flops * (nb + 1)
    total = sum(o.flops for o in ops.values()) * card.num_layers
    assert lm.flops == total + sum(o.flops for o in lm.stages[-1].ops) * (
        lm.stages[-1].name == "head")


def _mma_flops(program, cores):
    total = 0
    for cid in range(cores):
        for step in expand(program, cid, cores):
            ins = step.instruction
            if ins.opcode in ("MMA", "MMA.SP"):
                mm, nn = program.acc[ins.operands[0]].shape
                total += 2 * mm * nn * program.tile[ins.operands[1]].shape[1]
    return total


def _check_counts(k, cores):
    validate(k.program, isa_params(CFG))
    _, _, nbytes = roofline_bound(k.program, CFG, cores=cores)
    assert nbytes == k.dma_bytes
    assert _mma_flops(k.program, cores) == k.mma_flops


@pytest.mark.parametrize("epilogue", ["store", "quant", "residual", "bias", "bias_store",
                                      "bias_residual", "gelu", "gated"])
@pytest.mark.parametrize("shape", [
    (1, 512, 640, 8, None, LinearMapping(1, 1, 64, 1, 256, 1, 8)),
    (128, 256, 384, 4, (8, 4), LinearMapping(64, 2, 32, 2, 256, 1, 4)),
    (128, 256, 384, 4, (8, 4), LinearMapping(32, 2, 32, 2, 256, 2, 2, "nm")),
    (128, 512, 384, 4, None, LinearMapping(16, 2, 64, 1, 256, 2, 2, "mn", True)),
    (128, 192, 384, 6, None, LinearMapping(32, 1, 32, 2, 384, 2, 3, "nm", True)),
    (128, 512, 640, 4, None, LinearMapping(32, 1, 64, 2, 256, 2, 2, "mn", False, True)),
    (128, 256, 384, 3, (8, 4), LinearMapping(32, 1, 32, 2, 128, 1, 3, "nm", False, True)),
    (256, 256, 384, 4, None, LinearMapping(16, 2, 32, 2, 256, 4, 1, "mn", True, True, 2)),
    (128, 512, 384, 6, None, LinearMapping(32, 1, 32, 1, 128, 3, 2, "mn", False, False, 2))],
    ids=["decode", "prefill", "grid-nm", "multicast", "multicast-nm", "x-stationary",
         "w-stationary-uneven", "multicast-stationary-stagger", "stagger-uneven"])
def test_linear_counts_match_the_isa(epilogue, shape):
    """The kernel's analytic DDR bytes and MMA FLOPs equal the ISA-level counts of its program
    (a multicast load reads DDR once for its group) over every kind of mapping."""
    m, n, k, p, sp, mapping = shape
    kern = linear_kernel("t", m, n, k, weight=Storage.of("tai2", sparsity=sp), cores=p,
                         epilogue=epilogue, mapping=mapping)
    _check_counts(kern, p)
    assert kern.mma_flops == 2 * m * n * k * (2 if epilogue == "gated" else 1)


@pytest.mark.parametrize("kw", [
    dict(batch=2, heads=4, kv_heads=2, head_dim=128, queries=1, context=200, causal=True),
    dict(batch=1, heads=4, kv_heads=2, head_dim=64, queries=320, context=320, causal=True),
    dict(batch=1, heads=2, kv_heads=2, head_dim=64, queries=256, context=256, causal=True),
    dict(batch=2, heads=2, kv_heads=2, head_dim=32, queries=128, context=128, causal=False),
])
def test_attention_counts_match_the_isa(kw):
    _check_counts(attention_kernel("a", cores=4, **kw), 4)


def test_vector_counts_match_the_isa():
    for k in (norm_kernel("n", 8, 576, kind="rmsnorm", eps=1e-5, cores=4),
              norm_kernel("n", 128, 768, kind="layernorm", eps=1e-12, cores=4),
              rope_kv_kernel("r", batch=2, tokens=1, heads=4, kv_heads=2, head_dim=128,
                             position=199, context=200, rope=True, cores=4),
              rope_kv_kernel("r", batch=1, tokens=128, heads=4, kv_heads=2, head_dim=64,
                             position=0, context=128, rope=False, cores=4)):
        _check_counts(k, 4)


def _default(card):
    if card.is_decoder:
        return Scenario(model=card.name, phase="decode", batch=1, context_length=2048)
    return Scenario(model=card.name, phase="prefill", batch=8, sequence_length=128)


@pytest.mark.parametrize("name", card_names())
def test_every_program_of_every_card_validates(name):
    card = load_card(name)
    lm = lower_model(card, _default(card), CFG)
    params = isa_params(CFG)
    kinds = set()
    for stage in lm.stages:
        for op in stage.ops:
            validate(op.kernel.program, params)
            kinds.add(op.name)
            assert len(op.kernel.program.instructions) < 400      # loops, not unrolled tiles
    mlp = {"router", "route", "dispatch", "experts_down", "combine"} if card.num_experts else {
        "down_proj"}
    assert {"qkv_proj", "attention", "o_proj"} | mlp <= kinds
    # decode of an encoder-decoder runs the decoder only (the encoder ran at prefill)
    assert sum(s.repeat for s in lm.stages if s.name != "head") == card.decoder_layers or (
        card.family != "switch" and sum(s.repeat for s in lm.stages if s.name != "head")
        == card.num_layers)


def test_prefill_of_a_decoder_validates_too():
    card = load_card("llama-2-70b")
    sc = Scenario(model=card.name, phase="prefill", batch=1, sequence_length=2048,
                  sparsity="8:4", formats={"weights": "tai2"})
    lm = lower_model(card, sc, CFG)
    for stage in lm.stages:
        for op in stage.ops:
            validate(op.kernel.program, isa_params(CFG))


def test_bad_formats_are_refused():
    llama = load_card("smollm2-135m")
    sc = Scenario(model=llama.name, phase="decode", context_length=64,
                  formats={"kv_cache": "bfloat16"})
    with pytest.raises(ConfigError, match="kv_cache"):
        lower_model(llama, sc, CFG)
    sc = Scenario(model=llama.name, phase="decode", context_length=64,
                  formats={"weights": "float32"})
    with pytest.raises(ConfigError, match="matrix unit"):
        lower_model(llama, sc, CFG)


def test_lowered_linear_runs_bit_exactly_on_the_functional_core():
    functional = pytest.importorskip("prodigy_sim.functional")
    from prodigy_sim.functional import quantize_decl

    rng = np.random.default_rng(7)
    m, n, k, cores = 2, 128, 384, 2
    kern = linear_kernel("t", m, n, k, weight=Storage.of("tai4"), cores=cores,
                         mapping=LinearMapping(2, 1, 32, 1, 128, 1, 2), epilogue="store")
    x = rng.standard_normal((m, k)).astype(np.float32)
    w = rng.standard_normal((n, k)).astype(np.float32) * 0.1
    state = functional.run(kern.program, ddr={"X": x, "W": w}, cores=cores)
    y = np.asarray(state.tensor("Y"))
    qx = quantize_decl(x, kern.program.tensor["X"])
    qw = quantize_decl(w, kern.program.tensor["W"])
    ref = functional.matmul(qx, qw)
    expect = functional.from_bf16(functional.to_bf16(ref))
    assert np.array_equal(y.view(np.uint32), expect.astype(np.float32).view(np.uint32))
    # and numpy on the dequantized operands, within the FP32/BF16 rounding
    approx = qx.dequantize() @ qw.dequantize().T
    assert np.allclose(y, approx, rtol=1e-2, atol=1e-2)


def test_linear_stores_a_block_s_output_tiles_together():
    """The previous block's output tiles are stored one after another (no MMA between them), so
    the DDR's write queue sees the block's rows as runs of its whole width; and the program
    still computes the product bit-exactly."""
    functional = pytest.importorskip("prodigy_sim.functional")
    from prodigy_sim.functional import quantize_decl

    m, n, k, cores = 128, 512, 1024, 2
    mp = LinearMapping(64, 1, 64, 4, 128, 1, 2)        # 4 output tiles a block, 8 K steps
    kern = linear_kernel("t", m, n, k, weight=Storage.of("tai4"), cores=cores, mapping=mp,
                         epilogue="store")
    ins = kern.program.instructions
    stores = [i for i, x in enumerate(ins) if x.opcode == "DMA.ST" and x.operands[0] == "Y"]
    groups, start = [], stores[0]
    for a, b in zip(stores, [*stores[1:], None], strict=True):
        if b is None or any(x.opcode.startswith("MMA") for x in ins[a:b]):
            groups.append(ins[start:a + 1])
            start = b
    assert groups and all(sum(x.opcode == "DMA.ST" for x in g) == mp.am * mp.an for g in groups)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((m, k)).astype(np.float32)
    w = rng.standard_normal((n, k)).astype(np.float32) * 0.1
    y = np.asarray(functional.run(kern.program, ddr={"X": x, "W": w}, cores=cores).tensor("Y"))
    ref = functional.matmul(quantize_decl(x, kern.program.tensor["X"]),
                            quantize_decl(w, kern.program.tensor["W"]))
    expect = functional.from_bf16(functional.to_bf16(ref))
    assert np.array_equal(y.view(np.uint32), expect.astype(np.float32).view(np.uint32))


@pytest.mark.parametrize("k, kt, packed", [(1024, 128, True), (1024, 1024, True),
                                           (1152, 256, False)])
def test_linear_weights_are_pre_packed_when_k_is_cut_in_whole_steps(k, kt, packed):
    """W and WU are stored in tiles of the W window (nt, kt) when K is cut in whole steps, one
    (whole-row windows, kt = K) or more: one DDR run per weight DMA, codes, scales and sparsity
    metadata together; K tails stay row-major."""
    mp = LinearMapping(64, 1, 32, 2, kt, 1, 2)
    kern = linear_kernel("t", 64, 256, k, weight=Storage.of("tai4"), cores=2, mapping=mp,
                         epilogue="gated")
    tiles = {kern.program.tensor[t].tile for t in ("W", "WU")}
    assert tiles == ({(mp.nt, kt)} if packed else {None})
    assert kern.program.tensor["X"].tile is None and kern.program.tensor["Y"].tile is None


@pytest.mark.parametrize("kw", [
    dict(batch=1, heads=4, kv_heads=2, head_dim=128, queries=1, context=2048, causal=True),
    dict(batch=2, heads=4, kv_heads=4, head_dim=64, queries=1, context=300, causal=True,
         splits=3),
    dict(batch=1, heads=8, kv_heads=2, head_dim=64, queries=1, context=250, causal=True,
         splits=4),
])
def test_flash_decoding_counts_match_the_isa(kw):
    k = attention_kernel("a", cores=8, **kw)
    assert k.units > kw["batch"] * kw["kv_heads"]           # split across the context
    _check_counts(k, 8)


def test_decode_splits_give_every_core_work():
    from prodigy_sim.lowering import decode_splits

    assert decode_splits(1, 32, 2048, 128) == 4              # LLaMA-2-7B: 32 KV heads
    assert decode_splits(1, 8, 2048, 128) == 16              # LLaMA-2-70B: 8 KV heads
    assert decode_splits(8, 32, 2048, 128) == 1              # enough (sequence, head) units
    assert decode_splits(1, 2, 100, 128) == 2                # at most one slice per chunk
    assert attention_kernel("a", batch=1, heads=32, kv_heads=32, head_dim=128, queries=1,
                            context=2048, causal=True, cores=128).units == 128


def _attention_reference(q, k, v, batch, heads, kv_heads, context):
    """float64 softmax(q k^T / sqrt(d)) v per (sequence, head) over the first ``context``
    keys; q (B*heads, d), k and v (B*kv*cp, d)."""
    d = q.shape[1]
    g = heads // kv_heads
    cp = k.shape[0] // (batch * kv_heads)
    out = np.zeros_like(q, dtype=np.float64)
    for b in range(batch):
        for h in range(heads):
            base = (b * kv_heads + h // g) * cp
            kk, vv = k[base:base + context], v[base:base + context]
            s = kk @ q[b * heads + h] / np.sqrt(d)
            p = np.exp(s - s.max())
            out[b * heads + h] = p @ vv / p.sum()
    return out


@pytest.mark.parametrize("splits", [1, 3, 4])
def test_flash_decoding_matches_numpy_attention_on_the_functional_core(splits):
    """Decode attention split over the context (log-sum-exp combine) against float64 numpy on
    the dequantized FP8 operands. The kernel's O is FP8 (E4M3, MX blocks of 32), so the reference
    is quantized the same way and compared: at least 90% of the elements equal, the others at
    most one FP8 step apart (``2^-3`` of the value, plus ``2^-9 max|ref|`` for subnormals) - the
    softmax in FP32 and BF16 probabilities move values across a rounding boundary, nothing more.
    Every split count gives an O that agrees with the unsplit kernel the same way."""
    functional = pytest.importorskip("prodigy_sim.functional")
    from prodigy_sim.functional import quantize_decl

    batch, heads, kv_heads, d, context, cores = 1, 4, 2, 64, 250, 4

    def close(a, b, scale):
        one_step = 2.0**-3 * np.maximum(np.abs(a), np.abs(b)) + 2.0**-9 * scale
        return np.mean(a == b) >= 0.9 and np.all(np.abs(a - b) <= one_step)

    runs = {}
    for ns in sorted({1, splits}):
        kern = attention_kernel("a", batch=batch, heads=heads, kv_heads=kv_heads, head_dim=d,
                                queries=1, context=context, causal=True, cores=cores,
                                splits=ns)
        prog = kern.program
        cp = prog.tensor["KC"].shape[0] // (batch * kv_heads)
        rng = np.random.default_rng(11)
        q = rng.standard_normal((batch * heads, d)).astype(np.float32)
        k = rng.standard_normal((batch * kv_heads * cp, d)).astype(np.float32)
        v = rng.standard_normal((batch * kv_heads * cp, d)).astype(np.float32)
        qr, ck = prog.tile["MK"].shape
        pad = np.where(np.arange(cp - ck, cp) < context, 0.0, -1.0e30).astype(np.float32)
        mask = np.tile(pad, (qr, 1))
        if ns > 1:
            mask = np.concatenate([np.zeros_like(mask), mask])
        state = functional.run(prog, ddr={"Q": q, "KC": k, "VC": v, "MASK": mask},
                               cores=cores)
        out = state.tensor("O").dequantize()
        qq, kq, vq = (quantize_decl(x, prog.tensor[n]).dequantize()
                      for x, n in ((q, "Q"), (k, "KC"), (v, "VC")))
        ref = _attention_reference(qq, kq, vq, batch, heads, kv_heads, context)
        ref_q = quantize_decl(ref.astype(np.float32), prog.tensor["O"]).dequantize()
        assert close(out, ref_q, np.abs(ref).max())
        runs[ns] = out
    assert close(runs[splits], runs[1], np.abs(runs[1]).max())


def test_vector_flops_are_the_stated_formulas():
    card = load_card("llama-2-7b")
    sc = Scenario(model=card.name, phase="decode", batch=2, context_length=1024)
    ops = {o.name: o for o in lower_model(card, sc, CFG).stages[0].ops}
    h, f, d, nh, kv, t = card.hidden_size, card.intermediate_size, card.head_size, 32, 32, 2
    assert ops["attn_norm"].vector_flops == t * (4 * h + 3)
    assert ops["rope_kv"].vector_flops == 3 * t * (nh + kv) * d
    assert ops["attention"].vector_flops == 2 * nh * (5 * 1024 + d)
    assert ops["gate_up"].vector_flops == 5 * t * f
    assert ops["o_proj"].vector_flops == ops["down_proj"].vector_flops == t * h
    assert ops["qkv_proj"].vector_flops == 0
    bert = load_card("bert-base-uncased")
    sc = Scenario(model=bert.name, phase="prefill", batch=2, sequence_length=128)
    ops = {o.name: o for o in lower_model(bert, sc, CFG).stages[0].ops}
    t, h = 256, bert.hidden_size
    assert ops["attn_norm"].vector_flops == t * (7 * h + 4)
    assert ops["up_proj"].vector_flops == 6 * t * bert.intermediate_size


def test_mapper_ddr_efficiency_follows_the_ddr_model() -> None:
    """The mapper's DDR efficiency for short contiguous runs (``ddr_efficiency``) follows what
    the DDR5 model gives 128 cores reading tiles of 64 tai4 rows in runs of 128-512 B, within
    0.2 of the long-run share; long runs reach ``DDR_EFFICIENCY`` within 0.05. (With the old
    half-efficiency run of 1024 B, 256-B runs were costed at 0.20 against 0.68 simulated.)"""
    from prodigy_sim.lowering import DDR_EFFICIENCY, ddr_efficiency
    from prodigy_sim.timing import simulate
    from prodigy_sim.timing.programs import gemv_program

    chip = load_preset("prodigy-t16128")

    def share(k_chunk: int) -> float:
        r = simulate(gemv_program(8192, 4096, 128, k_chunk=k_chunk), chip, cores=128,
                     l3_bytes=0)
        return r.dram_bandwidth_bytes_per_s / chip.peak_ddr_bandwidth_bytes_per_s

    long_run = share(4096)
    assert abs(long_run - DDR_EFFICIENCY) <= 0.05
    for k_chunk in (256, 512, 1024):
        run = Storage.of("tai4").nbytes(1, k_chunk)
        assert abs(ddr_efficiency(run) / DDR_EFFICIENCY - share(k_chunk) / long_run) <= 0.2, run


def test_mapper_multicasts_exactly_where_every_core_computes_one_block() -> None:
    """A multicast and its L3 twin cost the same; the mapper multicasts when every core of the
    grid computes a single block (``prefers_multicast``), and there the multicast simulates
    faster than its twin (the rule's premise: members that start together stay in step, and
    the L3's store and forward is saved); with many blocks per core it takes the L3."""
    import dataclasses
    import functools

    from prodigy_sim.lowering import Budgets, linear_kernel, linear_op, map_linear
    from prodigy_sim.lowering._common import ACT
    from prodigy_sim.lowering._mapper import prefers_multicast, scored_candidates
    from prodigy_sim.simulation import SimMethod, simulate_op

    chip = load_preset("prodigy-t16128")
    w = Storage.of("tai4")
    bud = Budgets.of(isa_params(chip))
    for key, _, mp in scored_candidates(512, 1024, 1024, w, ACT, "store", chip, 128, bud):
        assert key[-1] == (mp.multicast != prefers_multicast(512, 1024, mp))
    op = linear_op("gemm", 512, 1024, 1024, w, chip)
    mp = map_linear(512, 1024, 1024, w, ACT, "store", chip, 128, bud)
    assert op.kernel.mapping == mp.describe()
    assert mp.multicast and prefers_multicast(512, 1024, mp)
    seconds = {}
    for v in (mp, dataclasses.replace(mp, multicast=False)):
        build = functools.partial(linear_kernel, "gemm", 512, 1024, 1024, weight=w, cores=128,
                                  mapping=v, epilogue="store", act=ACT, budgets=bud)
        alt = dataclasses.replace(op, kernel=build(), rebuild=lambda cap, b=build: b(unit_cap=cap))
        seconds[v.multicast] = simulate_op(alt, chip, method=SimMethod(steady_units=None)).seconds
    assert seconds[True] < seconds[False]
    big = map_linear(8192, 8192, 8192, w, ACT, "store", chip, 128, bud)
    assert not big.multicast and not prefers_multicast(8192, 8192, big)


def test_multicast_groups_over_many_blocks_stay_within_a_mesh_line() -> None:
    """A multicast over many blocks per core ties each member to the slowest of its group at
    every K step; the mapper offers such grids only with groups no longer than a mesh line
    (16 cores on the T16128's 8x16 mesh), also when it maps for kept activations
    (``multicast_only``). Single-block grids (in step) may be wider."""
    from prodigy_sim.lowering import Budgets
    from prodigy_sim.lowering._common import ACT
    from prodigy_sim.lowering._mapper import blocks_per_core, scored_candidates

    chip = load_preset("prodigy-t16128")
    assert max(chip.noc.shape(chip.cores)) == 16
    bud = Budgets.of(isa_params(chip))
    w = Storage.of("tai4")
    m, n, k = 16384, 14336, 4096            # LLaMA-3-8B's gate_up, 8 x 2048 tokens
    groups = set()
    for _, _, mp in scored_candidates(m, n, k, w, ACT, "gated", chip, 128, bud,
                                      multicast_only=True):
        assert mp.multicast and blocks_per_core(m, n, mp) > 1
        assert max(mp.gm, mp.gn) <= 16, mp.describe()
        groups.add(max(mp.gm, mp.gn))
    assert 16 in groups
    wide = [mp for _, _, mp in scored_candidates(512, 1024, 1024, w, ACT, "store", chip, 128,
                                                 bud)
            if mp.multicast and max(mp.gm, mp.gn) > 16]
    assert wide and all(blocks_per_core(512, 1024, mp) == 1 for mp in wide)


def test_costs_count_the_k_steps_the_dma_slots_keep_in_flight(monkeypatch) -> None:
    """A K step issues one DMA per X tile and per W tile (``am + nw an``); a core keeps
    ``DEFAULT_DMA_OUTSTANDING`` in flight, so a 128x128 gated block (6 DMAs a step) streams
    1.33 steps at a time, not the double buffers' 2: its port term is larger than with twice
    the slots, and a block of 4 DMAs a step is not affected."""
    from prodigy_sim.lowering import LinearMapping, _mapper
    from prodigy_sim.lowering._common import ACT

    chip = load_preset("prodigy-t16128")
    w = Storage.of("tai4")
    m, n, k = 2048, 28672, 8192            # LLaMA-2-70B's gate_up
    six = LinearMapping(64, 2, 64, 2, 256, 16, 8, "mn", True)
    four = LinearMapping(64, 2, 64, 1, 256, 16, 8, "mn", True)

    def port(mp):
        return _mapper.linear_terms(m, n, k, w, ACT, "gated", mp, chip, 1 << 26)[1]

    base = {mp: port(mp) for mp in (six, four)}
    monkeypatch.setattr(_mapper, "DEFAULT_DMA_OUTSTANDING", 16)
    assert port(six) < base[six]
    assert port(four) == base[four]


def test_mapper_counts_the_l3_that_kept_activations_take() -> None:
    """A linear op whose input stays on chip is mapped knowing the bytes the kept activations
    take from the L3 (``l3_reserved``); a mapping whose scratchpads leave them less room is not
    a candidate, and reserving more than any leaves is refused."""
    from prodigy_sim.lowering import Budgets, map_linear
    from prodigy_sim.lowering._linear import linear_tile_bytes
    from prodigy_sim.lowering._mapper import beside_scratchpads, most_room

    chip = load_preset("prodigy-t16128")
    sc = Scenario(model="llama-2-70b", phase="prefill", batch=1, sequence_length=2048)
    lm = lower_model(load_card(sc.model), sc, chip)
    params = isa_params(chip)
    checked = 0
    for op in lm.stages[0].ops:
        if op.kernel.kind != "linear" or not (op.residency.resident or op.residency.held_bytes):
            continue
        sizes = {t: p.nbytes for t, p in validate(op.kernel.program, params).tensors.items()}
        assert op.rebuild.keywords["l3_reserved"] == op.residency.onchip_bytes(sizes) > 0
        checked += 1
    assert checked >= 3                 # qkv_proj, o_proj, gate_up read a kept activation
    bud = Budgets.of(params)
    w = Storage.of("tai4")
    args = (2048, 8192, 8192, w, Storage.of("float8_e4m3fn"), "quant", chip, 128, bud)
    act = Storage.of("float8_e4m3fn")
    room = most_room(*args)
    tight = map_linear(*args, True, room)
    assert beside_scratchpads(bud, linear_tile_bytes(tight, 8192, w, act, "quant"), chip) == room
    assert room > beside_scratchpads(bud, linear_tile_bytes(map_linear(*args, True), 8192, w,
                                                             act, "quant"), chip)
    with pytest.raises(ConfigError, match="leaves .* bytes beside the scratchpads"):
        map_linear(*args, True, room + 1)
    assert map_linear(*args, True) != map_linear(*args, False)
    for op in lm.stages[0].ops:    # ... and never counts on a tensor the plan does not keep
        if op.kernel.kind == "linear" and op.residency.resident:
            assert op.rebuild.keywords["resident"] <= op.residency.resident


def test_mapper_charges_no_ddr_for_tensors_kept_on_chip() -> None:
    """A memory-bound layer whose X and Y stay on chip: the costs drop by at least the DDR time
    of X and Y at the peak bandwidth, and never below the weights' own DDR time."""
    from prodigy_sim.lowering import Budgets, linear_cost, map_linear

    chip = load_preset("prodigy-t16128")
    bud = Budgets.of(isa_params(chip))
    w, act = Storage.of("tai4"), Storage.of("float8_e4m3fn")
    m, n, k = 1024, 768, 3072                          # BERT-base b8 s128's down_proj
    mp = map_linear(m, n, k, w, act, "residual", chip, 128, bud)
    peak = chip.peak_ddr_bandwidth_bytes_per_s / chip.frequency_hz      # bytes per cycle
    l3 = 64 << 20
    off = linear_cost(m, n, k, w, act, "residual", mp, chip, l3)
    on = linear_cost(m, n, k, w, act, "residual", mp, chip, l3, frozenset({"X", "Y"}))
    xy = (act.nbytes(m, k) + 2 * m * n) / peak          # X in FP8, Y in BF16, at the peak
    assert off - on >= xy
    assert on >= w.nbytes(n, k) / peak


def test_mapper_that_knows_the_kept_tensors_maps_bert_faster() -> None:
    """BERT-base b8 s128 (its activations kept on chip): its layers mapped as the mapper
    chooses knowing that simulate faster in total than mapped as if X and Y came from DDR.
    (Not every layer: ``qkv_proj`` gets 64x384 blocks on 96 cores, 24% slower than 64x192 on
    128 cores, which the costs rank the other way - one block per core against two.)"""
    from prodigy_sim.lowering import map_linear
    from prodigy_sim.timing import simulate

    chip = load_preset("prodigy-t16128")
    sc = Scenario(model="bert-base-uncased", phase="prefill", batch=8, sequence_length=128)
    lm = lower_model(load_card(sc.model), sc, chip)
    new = old = 0
    for op in lm.stages[0].ops:
        if op.kernel.kind != "linear" or not op.residency.resident:
            continue
        name, m, n, k, w, cores, epi, config, bud = op.rebuild.args[:9]
        blind = map_linear(m, n, k, w, Storage.of("float8_e4m3fn"), epi, config, cores, bud,
                           True, op.rebuild.keywords["l3_reserved"])
        kern = linear_kernel(name, m, n, k, weight=w, cores=cores, mapping=blind,
                             epilogue=epi, act=Storage.of("float8_e4m3fn"), budgets=bud)
        on = op.residency
        t_new = simulate(op.kernel.program, chip, cores=op.kernel.cores, resident=on.resident,
                         held_bytes=on.held_bytes, aliased=on.aliased).cycles
        t_old = simulate(kern.program, chip, cores=cores, resident=on.resident,
                         held_bytes=on.held_bytes, aliased=on.aliased).cycles
        new, old = new + t_new, old + t_old
    assert new < 0.95 * old                             # measured: 54,452 against 64,079


def test_mapping_and_residency_are_chosen_together() -> None:
    """BERT-base prefill FP8 on 256 cores: the costs alone give ``qkv_proj`` K steps of 768,
    whose scratchpad leaves its input and output no room on chip (they would go to DDR and
    back). The lowering takes a mapping with a smaller scratchpad instead, because the plan
    then keeps both and saves more DDR time than the costs add (since the plan goes beyond the
    share, a multicast mapping for the kept tensors). (Until the mapper's ties took the port
    term, the case was ``o_proj`` with a matrix unit twice as fast.)"""
    from prodigy_sim.hardware import resolve_hardware
    from prodigy_sim.lowering import Budgets, map_linear
    from prodigy_sim.lowering._linear import linear_tile_bytes
    from prodigy_sim.lowering._lower import mapper_call
    from prodigy_sim.lowering._mapper import beside_scratchpads
    from prodigy_sim.models import load_scenario

    chip, _ = resolve_hardware("prodigy-t16128", ["cores=256"])
    sc = load_scenario("bert-base-prefill-fp8")
    lm = lower_model(sc.card(), sc, chip)
    op = next(o for o in lm.stages[0].ops if o.name == "qkv_proj")
    assert {"X", "Y"} <= op.residency.resident
    fn = op.rebuild
    args, kw = mapper_call(fn)
    m, n, k, w, act, epi, config, cores, bud = args
    by_costs = map_linear(*args)                    # the mapper alone: nothing kept on chip
    chosen = fn.keywords.get("mapping") or map_linear(*args, **kw)
    assert chosen.describe() == op.kernel.mapping != by_costs.describe()
    assert (linear_tile_bytes(chosen, k, w, act, epi)
            < linear_tile_bytes(by_costs, k, w, act, epi))
    assert isinstance(bud, Budgets)
    sizes = validate(op.kernel.program, isa_params(chip)).tensors
    kept = sizes["X"].nbytes + sizes["Y"].nbytes
    assert beside_scratchpads(bud, linear_tile_bytes(by_costs, k, w, act, epi), chip) < kept
    for st in lm.stages:               # no mapping counts on a tensor the plan does not keep
        for o in st.ops:
            if o.kernel.kind == "linear":
                assert o.rebuild.keywords.get("resident", frozenset()) <= o.residency.resident


def test_costs_within_the_tie_go_to_larger_k_steps() -> None:
    """LLaMA-2-7B decode (tai4) on 32 DDR5 channels: ``gate_up``'s K steps of 1024 cost a little
    less than steps of 2048 on the same grid and blocks (the same cores, port term and block
    area); within :data:`TIE` the mapper takes the larger K step. (The case used to be
    LLaMA-3-8B's prefill ``gate_up``, whose K steps of 128 the costs ranked first until they
    counted the K steps a core's DMA slots keep in flight.)"""
    from prodigy_sim.hardware import resolve_hardware
    from prodigy_sim.lowering._mapper import TIE, map_linear, scored_candidates
    from prodigy_sim.models import load_scenario

    chip, _ = resolve_hardware("prodigy-t16128", ["memory.channels=32"])
    sc = load_scenario("llama-2-7b-decode-tai4")
    op = next(o for o in lower_model(sc.card(), sc, chip).stages[0].ops if o.name == "gate_up")
    from prodigy_sim.lowering._lower import mapper_call

    args, kw = mapper_call(op.rebuild)
    scored = list(scored_candidates(*args, **kw))
    chosen = map_linear(*args, **kw)
    key, cost = next((key, c) for key, c, mp in scored if mp == chosen)
    rivals = [(c, mp) for k2, c, mp in scored if k2[1:4] == key[1:4] and c <= cost]
    cheapest, fastest_kt = min(rivals, key=lambda r: r[0])
    assert fastest_kt.kt < chosen.kt
    assert cost <= min(c for _, c, _ in scored) * (1 + TIE)
    assert (fastest_kt.gm, fastest_kt.gn, fastest_kt.block_m, fastest_kt.block_n) == \
        (chosen.gm, chosen.gn, chosen.block_m, chosen.block_n)
    assert op.kernel.mapping == chosen.describe()


def test_ties_go_to_more_cores_then_the_lighter_port() -> None:
    """LLaMA-2-70B prefill's ``gate_up``: 128x128 and 256x64 blocks cost the same (a DDR-bound
    cost); among the candidates within :data:`TIE` of the cheapest the mapper takes
    one on the most cores and, among those, with the lightest port term - and the ranking
    (:func:`ranked_mappings`) lists the choice first."""
    from prodigy_sim.lowering import ranked_mappings
    from prodigy_sim.lowering._linear import linear_tile_bytes
    from prodigy_sim.lowering._mapper import TIE, linear_terms, map_linear

    chip = load_preset("prodigy-t16128")
    sc = Scenario(model="llama-2-70b", phase="prefill", batch=1, sequence_length=2048)
    lowered = next(o for o in lower_model(sc.card(), sc, chip).stages[0].ops
                   if o.name == "gate_up")
    x_bytes = validate(lowered.kernel.program, isa_params(chip)).tensors["X"].nbytes
    # mapped as the plan's first pass maps it: its input kept on chip, its output in DDR
    fn = functools.partial(lowered.rebuild.func, *lowered.rebuild.args, l3=True,
                           l3_reserved=x_bytes, resident=frozenset({"X"}))
    op = dataclasses.replace(lowered, kernel=fn(None), rebuild=fn)
    name, m, n, k, w, cores, epi, config, bud = fn.args[:9]
    kw = {key: fn.keywords[key] for key in ("l3", "l3_reserved", "resident")
          if key in fn.keywords}
    act = Storage.of("float8_e4m3fn")
    chosen = map_linear(m, n, k, w, act, epi, config, cores, bud, **kw)
    ranked = ranked_mappings(op)
    assert ranked[0][2] == chosen and chosen.describe() == op.kernel.mapping
    least = min(c for _, c, _ in ranked)
    tied = [(key, mp) for key, c, mp in ranked if c <= least * (1 + TIE)]
    most = max(mp.cores for _, mp in tied)
    ports = {round(key[2]) for key, mp in tied if mp.cores == most}
    assert len(ports) > 1                               # the port term does break the tie
    assert ranked[0][0][2] == min(ports)
    assert {(mp.block_m, mp.block_n) for _, mp in tied} >= {(128, 128), (256, 64)}
    assert (chosen.block_m, chosen.block_n) == (128, 128)
    # the key's port is linear_terms' port term (with the L3 the candidate's scratchpad leaves)
    tiles = linear_tile_bytes(chosen, k, w, act, epi)
    l3_bytes = max(0, (bud.onchip_bytes - tiles) * config.cores - kw.get("l3_reserved", 0))
    assert round(linear_terms(m, n, k, w, act, epi, chosen, config, l3_bytes,
                              kw.get("resident", frozenset()))[1]) == ranked[0][0][2]


@pytest.mark.slow
def test_packed_weight_runs_move_70b_down_proj_off_64x64_blocks() -> None:
    """The costs count a packed weight tile ``(nt, kt)`` as one DDR run (they counted one row of
    ``kt`` codes): LLaMA-2-70B prefill's ``down_proj`` then takes 128x128 blocks instead of the
    64x64 ones whose port term was the cheapest, and simulates faster (measured: 466.2 against
    662.0 us). Both with only the input kept on chip: the 64x64 blocks' scratchpads leave no
    room for the residual stream the plan now also keeps (its output ``Y``)."""
    from prodigy_sim.lowering import Residency, with_mapping, with_residency
    from prodigy_sim.lowering._linear import LinearMapping
    from prodigy_sim.simulation import SimMethod, simulate_op

    chip = load_preset("prodigy-t16128")
    sc = Scenario(model="llama-2-70b", phase="prefill", batch=1, sequence_length=2048)
    op = next(o for o in lower_model(sc.card(), sc, chip).stages[0].ops
              if o.name == "down_proj")
    op = with_residency(op, Residency(frozenset({"X"})))
    old = with_residency(with_mapping(op, LinearMapping(64, 1, 64, 1, 2048, 16, 8, "mn")),
                         Residency(frozenset({"X"})))
    assert "blocks 64x64" not in op.kernel.mapping
    method = SimMethod(steady_units=2)
    new_s = simulate_op(op, chip, method=method).seconds
    old_s = simulate_op(old, chip, method=method).seconds
    assert new_s < 0.8 * old_s


def test_mapper_size_cache_gives_the_uncached_costs() -> None:
    """map_linear shares one size cache between the candidates of a shape: each candidate's
    cost with the shared cache equals its cost computed alone (the cache is keyed by storage
    and row length: an activation row and a weight row of the same length differ)."""
    from prodigy_sim.lowering._common import Budgets
    from prodigy_sim.lowering._mapper import _candidates, _Sizes, linear_cost

    chip = load_preset("prodigy-t16128")
    bud = Budgets.of(isa_params(chip))
    act = Storage.of("float8_e4m3fn")
    w = Storage.of("tai2", sparsity="8:4")
    shared = _Sizes()
    n = 0
    for mp in _candidates(64, 1024, 2048, w, act, "gated", 32, bud, bud.onchip_bytes):
        assert linear_cost(64, 1024, 2048, w, act, "gated", mp, chip, 1 << 24, frozenset(),
                           shared) == linear_cost(64, 1024, 2048, w, act, "gated", mp, chip,
                                                  1 << 24)
        n += 1
    assert n > 50


@pytest.mark.parametrize("heads, kv_heads, d, tokens", [(4, 2, 128, 256), (8, 8, 64, 192),
                                                        (2, 1, 32, 64)])
def test_prefill_q_and_vt_blocks_are_whole_rows(heads, kv_heads, d, tokens):
    """Every block prefill's ``rope_kv`` stores into ``Q`` / ``VT`` and its attention loads
    from them is whole rows of the tensor (a tile as wide as the tensor, at column 0), so one
    contiguous DDR run: ``Q`` head-major, ``VT`` chunk-major (docs/lowering.md, *KV cache
    layout*). With ``Q`` as ``(B C, heads d)`` and ``VT`` as ``(B kv d, C)`` each block was
    64 / ``d`` runs of 128 / 64 bytes."""
    rope = rope_kv_kernel("rope", batch=2, tokens=tokens, heads=heads, kv_heads=kv_heads,
                          head_dim=d, position=0, context=tokens, rope=True, cores=8)
    att = attention_kernel("att", batch=2, heads=heads, kv_heads=kv_heads, head_dim=d,
                           queries=tokens, context=tokens, causal=True, cores=8)
    seen = set()
    for kern, op in ((rope, "DMA.ST"), (att, "DMA.LD")):
        prog = kern.program
        for ins in prog.instructions:
            if ins.opcode != op:
                continue
            if op == "DMA.LD":
                tile, tensor, _, col = ins.operands
            else:
                tensor, _, col, tile = ins.operands
            if tensor not in ("Q", "VT"):
                continue
            seen.add((kern.name, tensor))
            assert prog.tile[tile].shape[1] == prog.tensor[tensor].shape[1], (kern.name, tensor)
            assert col.reg is None and col.offset == 0, (kern.name, tensor, col)
    assert seen == {("rope", "Q"), ("rope", "VT"), ("att", "Q"), ("att", "VT")}
