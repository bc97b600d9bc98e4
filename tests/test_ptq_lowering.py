"""PTQ work in the lowering (issue 12): the online Hadamard kernel (VHBF butterflies) against its
numpy emulation (to the bit) and the rotation it implements; its vector operations and bytes and
those of the SpQR kernel against hand counts; the ops lower_model inserts; ptq_work's sites."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

from prodigy_sim.errors import ConfigError
from prodigy_sim.functional import run
from prodigy_sim.hardware import DEFAULT_PRESET, load_preset
from prodigy_sim.isa import expand, validate
from prodigy_sim.lowering import (
    OnlineSite,
    OutlierSite,
    PtqWork,
    emulate_hadamard,
    hadamard_kernel,
    hadamard_vector_ops,
    lower_model,
    spqr_kernel,
    spqr_vector_ops,
)
from prodigy_sim.models import Formats, Scenario
from prodigy_sim.numerics import Storage, quantize
from prodigy_sim.ptq import random_hadamard
from prodigy_sim.realmodels import LinearOutliers, LoweringExtras, OnlineHadamard, ptq_work
from prodigy_sim.timing import roofline_bound

ACT = Storage.of("float8_e4m3fn")


def _elements(kernel) -> tuple[Counter, int]:
    """Executed vector elements per opcode over all cores, and the DMA steps' count."""
    prog = kernel.program
    validate(prog)
    counts: Counter = Counter()
    dmas = 0
    for cid in range(kernel.cores):
        for step in expand(prog, cid, kernel.cores):
            ins = step.instruction
            if step.unit == "vector":
                counts[ins.opcode] += max(
                    math.prod(prog.tile[o].shape) for o in ins.operands
                    if isinstance(o, str) and o in prog.tile)
            elif step.unit == "dma":
                dmas += 1
    return counts, dmas


@pytest.mark.parametrize("m,n,p,mm,cores", [(4, 384, 12, 32, 2), (3, 1536, 12, 128, 2),
                                            (2, 256, 1, 256, 1)])
def test_hadamard_kernel_equals_its_emulation_and_the_rotation(m, n, p, mm, cores):
    kern = hadamard_kernel("h", m, n, p, mm, cores=cores)
    rot = random_hadamard(n, seed=5)
    assert (rot.p, rot.m) == (p, mm)
    rng = np.random.default_rng(n)
    x = quantize(rng.standard_normal((m, n)).astype(np.float32) * 3, ACT)
    ddr = {"X": x, "S": rot.signs.astype(np.float32).reshape(1, n)}
    y = run(kern.program, ddr=ddr, cores=cores).tensor("Y")
    emu = emulate_hadamard(kern, x, rot.signs)
    assert np.array_equal(y.codes, emu.codes) and np.array_equal(y.scales, emu.scales)
    # the transform is x Q of the rotation (float64): the same FP8 codes as quantizing the
    # float64 result, but for float32 rounding near a rounding boundary
    want = quantize(rot.apply(x.dequantize()).astype(np.float32), ACT)
    assert np.array_equal(y.scales, want.scales)
    assert np.mean(y.codes == want.codes) >= 0.99


@pytest.mark.parametrize("m,n,p,mm,cores", [(4, 384, 12, 32, 2), (5, 256, 1, 256, 3)])
def test_hadamard_kernel_vector_ops_and_bytes_are_the_hand_count(m, n, p, mm, cores):
    kern = hadamard_kernel("h", m, n, p, mm, cores=cores)
    counts, _ = _elements(kern)
    hand = hadamard_vector_ops(m, n, p, mm)
    assert counts["VHBF"] == hand["butterfly"] == m * n * int(math.log2(mm))
    assert counts["VADD"] + counts["VSUB"] == hand["pxp_add"] == m * n * (p - 1)
    assert counts["VMUL"] == hand["sign_mul"] == m * n
    assert counts["VMULI"] == hand["scale"] == m * n
    assert counts["VDEQUANT"] == counts["VQUANT"] == m * n
    assert set(counts) <= {"VHBF", "VADD", "VSUB", "VMUL", "VMULI", "VDEQUANT", "VQUANT"}
    # bytes: X read and Y written once (FP8 codes + E8M0 scales), the signs once per busy core
    busy = min(cores, kern.units)
    want = 2 * m * (n + n // 32) + busy * 4 * n
    assert kern.dma_bytes == want
    _, _, nbytes = roofline_bound(kern.program, load_preset(DEFAULT_PRESET), cores=cores)
    assert nbytes == want


def test_hadamard_kernel_rejects_sizes_it_cannot_tile():
    with pytest.raises(ConfigError, match="multiple of the MX block"):
        hadamard_kernel("h", 2, 576, 36, 16, cores=1)
    with pytest.raises(ConfigError, match="power of two"):
        hadamard_kernel("h", 2, 384, 12, 33, cores=1)


@pytest.mark.parametrize("tokens,count,groups,cores", [(1, 3000, 50000, 4), (7, 100, 0, 2),
                                                       (1, 0, 1000, 3)])
def test_spqr_kernel_vector_ops_and_bytes_are_the_hand_count(tokens, count, groups, cores):
    vbytes, ibytes, sbytes = 2 * count, 2 * count + 4 * 577, 3 * groups // 8
    kern = spqr_kernel("s", tokens, count, vbytes, ibytes, groups, sbytes, cores=cores)
    counts, _ = _elements(kern)
    c, g = kern.params.c, kern.params.g
    cu, gu = math.ceil(count / c), math.ceil(groups / g)
    hand = spqr_vector_ops(tokens, count, groups)
    # one FMA per outlier and token (chunks of c, the last padded) + one per scale group
    assert counts["VFMA"] == tokens * cu * c + gu * g
    assert hand["outlier_fma"] <= tokens * cu * c < hand["outlier_fma"] + tokens * c
    assert hand["scale_fma"] <= gu * g < hand["scale_fma"] + g
    assert counts["VDEQUANT"] == tokens * cu * c
    ci = max(1, math.ceil(c * ibytes / max(count, 1) / 2))
    gi = max(1, math.ceil(g * sbytes / max(groups, 1) / 2))
    busy = min(cores, cu)
    want = (cu * (2 * c + 2 * ci + tokens * (c + c // 32)) + busy * 2 * tokens * c
            + gu * 2 * gi)
    assert kern.dma_bytes == want
    _, _, nbytes = roofline_bound(kern.program, load_preset(DEFAULT_PRESET), cores=cores)
    assert nbytes == want


def _scenario(model: str) -> Scenario:
    scen = {"all-minilm-l6-v2": dict(phase="prefill", batch=1, sequence_length=128),
            "smollm2-135m": dict(phase="decode", batch=1, context_length=512)}[model]
    return Scenario(model=model, formats=Formats(weights=Storage.of("tai4")),
                    hardware=DEFAULT_PRESET, **scen)


def test_lower_model_inserts_the_ptq_ops_where_the_sites_are():
    cfg = load_preset(DEFAULT_PRESET)
    sc = _scenario("smollm2-135m")
    card = sc.card()
    work = PtqWork(online=(OnlineSite("down_proj", 1536, 12, 128),),
                   outliers=(OutlierSite("qkv_proj", 500, 1000, 3304, 3000, 10),))
    plain = lower_model(card, sc, cfg)
    lm = lower_model(card, sc, cfg, ptq=work)
    names = [op.name for op in lm.stages[0].ops]
    assert names == ["attn_norm", "qkv_proj", "spqr_qkv_proj", "rope_kv", "attention", "o_proj",
                     "mlp_norm", "gate_up", "hadamard_down_proj", "down_proj"]
    ops = {op.name: op for op in lm.stages[0].ops}
    had, down = ops["hadamard_down_proj"], ops["down_proj"]
    assert dict(had.flow.reads) == {"X": "g"} and dict(had.flow.writes) == {"Y": "g_rot"}
    assert dict(down.flow.reads)["X"] == "g_rot"
    assert had.kernel.params.m == down.kernel.params.m
    assert had.vector_flops == 1536 * (11 + 7 + 1)            # one decode token
    assert ops["spqr_qkv_proj"].vector_flops == 2 * 500 + 2 * 3000
    layers = card.num_layers
    assert lm.weight_bytes - plain.weight_bytes == layers * (1000 + 3304 + 10)
    with pytest.raises(ConfigError, match="up_proj"):
        lower_model(card, sc, cfg, ptq=PtqWork(online=(OnlineSite("up_proj", 576, 36, 16),)))


def test_ptq_work_maps_linears_to_lowered_ops_per_layer():
    had = OnlineHadamard("x", ("attn.q_proj", "attn.k_proj", "attn.v_proj"), 384, 12, 32, ())
    up = OnlineHadamard("y", ("mlp.up_proj",), 384, 12, 32, ())
    outl = (LinearOutliers("layers.0.mlp.up_proj", (1536, 384), 7, 14, 20, 100, 3),
            LinearOutliers("layers.1.mlp.up_proj", (1536, 384), 4, 8, 16, 100, 0),
            LinearOutliers("layers.1.attn.k_proj", (384, 384), 3, 6, 8, 50, 1))
    ex = LoweringExtras(layers=2, online=(had, up), outliers=outl)
    bert = ptq_work(ex, "bert")
    assert bert.online == (OnlineSite("qkv_proj", 384, 12, 32), OnlineSite("up_proj", 384, 12, 32))
    assert bert.outliers == (OutlierSite("up_proj", 6, 11, 18, 100, 2),
                             OutlierSite("qkv_proj", 2, 3, 4, 25, 1))
    llama = ptq_work(ex, "llama")
    assert llama.online[1].before == "gate_up" and llama.outliers[0].after == "gate_up"
