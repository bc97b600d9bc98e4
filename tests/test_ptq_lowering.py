"""PTQ work in the lowering (issue 12): the online Hadamard kernel (VHBF butterflies) against its
numpy emulation (to the bit) and the rotation it implements; its vector operations and bytes
against hand counts; the ops lower_model inserts; ptq_work's sites, fuse_outliers' stacking.
(SpQR's outlier kernel: tests/test_lowering_spqr.py.)"""

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
)
from prodigy_sim.models import Formats, Scenario
from prodigy_sim.numerics import Storage, quantize
from prodigy_sim.ptq import Outliers, random_hadamard
from prodigy_sim.realmodels import (
    LinearOutliers,
    LoweringExtras,
    OnlineHadamard,
    fuse_outliers,
    ptq_work,
)
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
                   outliers=(OutlierSite("qkv_proj", (500,)), OutlierSite("down_proj", (90,))))
    plain = lower_model(card, sc, cfg)
    lm = lower_model(card, sc, cfg, ptq=work)
    names = [op.name for op in lm.stages[0].ops]
    assert names == ["attn_norm", "spqr_qkv_proj", "qkv_proj", "rope_kv", "attention",
                     "o_proj", "mlp_norm", "gate_up", "hadamard_down_proj", "spqr_down_proj",
                     "down_proj"]
    ops = {op.name: op for op in lm.stages[0].ops}
    had, down = ops["hadamard_down_proj"], ops["down_proj"]
    assert dict(had.flow.reads) == {"X": "g"} and dict(had.flow.writes) == {"Y": "g_rot"}
    assert dict(down.flow.reads)["X"] == "g_rot"
    assert had.kernel.params.m == down.kernel.params.m
    assert had.vector_flops == 1536 * (11 + 7 + 1)            # one decode token
    # the outlier product reads the linear's (rotated) input, the linear its sums
    assert dict(ops["spqr_down_proj"].flow.reads) == {"X": "g_rot", "R": "h1"}
    assert dict(down.flow.reads) == {"X": "g_rot", "C": "down_proj_c"}
    assert ops["spqr_qkv_proj"].vector_flops == 2 * 500        # a multiply and an add each
    layers = card.num_layers
    assert lm.weight_bytes - plain.weight_bytes == layers * 6 * (500 + 90)
    with pytest.raises(ConfigError, match="up_proj"):
        lower_model(card, sc, cfg, ptq=PtqWork(online=(OnlineSite("up_proj", 576, 36, 16),)))


def test_ptq_work_maps_linears_to_lowered_ops_per_layer():
    had = OnlineHadamard("x", ("attn.q_proj", "attn.k_proj", "attn.v_proj"), 384, 12, 32, ())
    up = OnlineHadamard("y", ("mlp.up_proj",), 384, 12, 32, ())
    outl = (LinearOutliers("layers.0.mlp.up_proj", (1536, 384), 7),
            LinearOutliers("layers.1.mlp.up_proj", (1536, 384), 4),
            LinearOutliers("layers.1.attn.k_proj", (384, 384), 3),
            LinearOutliers("layers.1.attn.q_proj", (384, 384), 2),
            LinearOutliers("layers.1.mlp.gate_proj", (1536, 384), 0))
    ex = LoweringExtras(layers=2, online=(had, up), outliers=outl)
    bert = ptq_work(ex, "bert")
    assert bert.online == (OnlineSite("qkv_proj", 384, 12, 32), OnlineSite("up_proj", 384, 12, 32))
    assert bert.outliers == (OutlierSite("up_proj", (7,), layers=(0,)),
                             OutlierSite("qkv_proj", (5,), layers=(1,)),
                             OutlierSite("up_proj", (4,), layers=(1,)))
    llama = ptq_work(ex, "llama")
    assert llama.online[1].before == "gate_up"
    assert llama.outliers == (OutlierSite("gate_up", (0, 7), layers=(0,)),
                              OutlierSite("gate_up", (0, 4), layers=(1,)),
                              OutlierSite("qkv_proj", (5,), layers=(1,)))


def _outl(n: int, k: int, rows: list[int], cols: list[int]) -> Outliers:
    counts = np.bincount(rows, minlength=n)
    return Outliers(row_ptr=np.concatenate([[0], np.cumsum(counts)]).astype(np.int32),
                    cols=np.array(cols, np.uint16), values=np.arange(1, len(cols) + 1,
                                                                    dtype=np.float16),
                    dtype="float16", shape=(n, k))


def test_fuse_outliers_stacks_q_k_v_and_keeps_gate_and_up_apart():
    q, k_, v = _outl(4, 8, [0, 3], [1, 7]), _outl(2, 8, [], []), _outl(2, 8, [1, 1], [0, 2])
    fused = fuse_outliers({"layers.0.attn.q_proj": q, "layers.0.attn.k_proj": k_,
                           "layers.0.attn.v_proj": v}, "bert")
    (qkv,) = fused["layers.0.qkv_proj"]
    assert qkv.shape == (8, 8) and qkv.count == 4
    assert np.array_equal(qkv.dense(), np.vstack([q.dense(), k_.dense(), v.dense()]))
    g, u = _outl(3, 8, [2], [5]), _outl(3, 8, [0], [0])
    fused = fuse_outliers({"layers.3.mlp.gate_proj": g, "layers.3.mlp.up_proj": u}, "llama")
    assert fused["layers.3.gate_up"] == (g, u)
    with pytest.raises(ConfigError, match="q, k and v needed"):
        fuse_outliers({"layers.0.attn.q_proj": q}, "bert")


def test_throughput_and_end_to_end_find_the_same_outlier_sites():
    """The throughput rows' sites (``outlier_sites``, from per-linear counts) equal the end-to-end
    ones (``op_sites`` of ``fuse_outliers``, from the outliers) - one grouping (``op_groups``),
    mixed value storages in one op going to float32 on both paths."""
    from prodigy_sim.realmodels import outlier_sites
    from prodigy_sim.realmodels._overheads import op_sites

    f16 = _outl(4, 8, [0, 3], [1, 7])
    f32 = Outliers(f16.row_ptr, f16.cols, f16.float_values(), "float32", f16.shape)
    none = _outl(4, 8, [], [])
    outl = {"layers.0.attn.q_proj": f16, "layers.0.attn.k_proj": none,
            "layers.0.attn.v_proj": f16, "layers.0.mlp.gate_proj": f16,
            "layers.0.mlp.up_proj": f32, "layers.0.mlp.down_proj": none,
            "layers.2.attn.o_proj": f32}
    counts = [LinearOutliers(n, o.shape, o.count, o.dtype) for n, o in outl.items()]
    sites = outlier_sites(counts, "llama")
    assert sites == op_sites(fuse_outliers(outl, "llama"))
    assert sites == (OutlierSite("gate_up", (2, 2), "float32", (0,)),
                     OutlierSite("qkv_proj", (4,), "float16", (0,)),
                     OutlierSite("o_proj", (2,), "float32", (2,)))


def test_outliers_become_terms_added_to_a_dense_part_without_zero():
    """tai2 has no zero: the dense value under an outlier is not 0, so the lowered outlier is
    the difference (float32); with a zero code (tai4) the outliers are added as stored."""
    from prodigy_sim.functional.reference import scaled_f64
    from prodigy_sim.realmodels._overheads import additive_outliers, lowered_values

    rng = np.random.default_rng(1)
    w = rng.standard_normal((4, 32)).astype(np.float32)
    o = _outl(4, 32, [0, 0, 2], [3, 9, 31])
    t2 = quantize(w, Storage.of("tai2", block=16, scale="fp32"))
    add = additive_outliers(o, t2)
    assert add.dtype == "float32" and lowered_values("float16", t2.fmt) == "float32"
    total = scaled_f64(t2) + add.dense()
    pos = o.dense() != 0
    np.testing.assert_allclose(total[pos], o.dense()[pos], rtol=2.0**-23)
    t4 = quantize(w, Storage.of("tai4", block=16, scale="fp32"))
    assert additive_outliers(o, t4) is o
    fused = fuse_outliers({"layers.0.mlp.down_proj": o}, "llama",
                          dense={"layers.0.down_proj": t2})
    assert fused["layers.0.down_proj"][0].dtype == "float32"
