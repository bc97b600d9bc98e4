"""SpQR's outlier kernel (``lowering._spqr``) and the linears that start from it: the functional
core equals the numpy emulation bit for bit (one and two weights, residual, outlier groups with
their partial-sum phase, rows without outliers, repeated rows and columns, no outliers at all);
the pair ``spqr_<op>`` + linear equals a float64 ``X (W_dense + O)^T`` to within its rounding,
for every epilogue; vector elements and DMA bytes are the hand count; the simulated time stays
above the roofline; lower_model puts the ops where the per-layer sites say."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

from prodigy_sim.errors import ConfigError
from prodigy_sim.functional import reference as sp
from prodigy_sim.functional import run
from prodigy_sim.hardware import DEFAULT_PRESET, load_preset
from prodigy_sim.isa import expand, validate
from prodigy_sim.lowering import (
    LinearMapping,
    OutlierSite,
    PtqWork,
    emulate_kernel,
    linear_kernel,
    lower_model,
    spqr_inputs,
    spqr_kernel,
    spqr_vector_ops,
)
from prodigy_sim.models import Formats, Scenario
from prodigy_sim.numerics import Storage, quantize
from prodigy_sim.ptq import Outliers
from prodigy_sim.timing import roofline_bound, simulate, vector_elements

ACT = Storage.of("float8_e4m3fn")
DENSE = Storage.of("tai4", block=16, scale="fp32")      # SpQR's dense part
CFG = load_preset(DEFAULT_PRESET)


def _bits(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)


def _outliers(rng, n: int, k: int, count: int, dtype: str = "float16",
              scale: float = 4.0) -> Outliers:
    """``count`` outliers in CSR order, on the first ``n // 2`` rows only (the others have none)
    and on few columns (rows and columns repeat)."""
    rows = np.arange(max(1, n // 2))
    cols = rng.choice(k, size=max(1, min(k, count // 3 + 1)), replace=False)
    pos = np.array(sorted({(int(r), int(c)) for r in rows for c in cols}))
    pos = pos[np.sort(rng.choice(len(pos), size=min(count, len(pos)), replace=False))] \
        if count else np.zeros((0, 2), np.int64)
    assert len(pos) == count
    vals = rng.standard_normal(count) * scale
    if dtype == "bfloat16":
        stored = (vals.astype(np.float32).view(np.uint32) >> 16).astype(np.uint16)
    else:
        stored = vals.astype(dtype)
    counts = np.bincount(pos[:, 0], minlength=n) if count else np.zeros(n, np.int64)
    return Outliers(row_ptr=np.concatenate([[0], np.cumsum(counts)]).astype(np.int32),
                    cols=pos[:, 1].astype(np.uint16), values=stored, dtype=dtype, shape=(n, k))


def _run_both(kern, ddr: dict) -> tuple[dict, dict]:
    state = run(kern.program, ddr=ddr, cores=kern.cores)
    emu = emulate_kernel(kern, ddr)
    return {n: state.tensor(n) for n in emu}, emu


# (m, n, k, counts, residual, values, cores, groups > 1)
CASES = [
    (4, 64, 96, (37,), False, "float16", 2, False),
    (8, 96, 64, (200,), True, "float16", 16, False),
    (3, 32, 64, (5, 70), False, "float32", 4, False),
    (2, 64, 64, (0,), True, "float16", 4, False),          # no outliers: C = the residual
    (1, 64, 64, (1500,), False, "bfloat16", 16, True),
    (2, 64, 128, (2000,), True, "float16", 16, True),
    (1, 64, 96, (1200, 0), False, "float16", 32, True),     # gated, the up weight has none
    (2, 16, 1024, (4000,), True, "float16", 32, True),      # a row's terms in several groups
]


@pytest.mark.parametrize("case", CASES)
def test_spqr_kernel_on_the_core_equals_its_emulation(case):
    m, n, k, counts, residual, values, cores, grouped = case
    rng = np.random.default_rng(m * 1000 + n + k)
    kern = spqr_kernel("s", m, n, k, counts, cores=cores, residual=residual,
                       values=Storage.of(values))
    assert (kern.params.groups > 1) == grouped
    outs = [_outliers(rng, n, k, c, values) for c in counts]
    x = quantize(rng.standard_normal((m, k)).astype(np.float32) * 2, ACT)
    ddr = {"X": x, **spqr_inputs(kern, outs)}
    if residual:
        ddr["R"] = rng.standard_normal((m, n)).astype(np.float32)
    core, emu = _run_both(kern, ddr)
    assert set(emu) == ({"C", "CU"} if len(counts) == 2 else {"C"}) | \
        ({"CP", "CPU"} if grouped and len(counts) == 2 else {"CP"} if grouped else set())
    for name in emu:
        assert np.array_equal(_bits(core[name]), _bits(emu[name])), name
    # the product itself: X O^T (+ R) in float64, to float32 rounding of its terms
    xf = x.dequantize().astype(np.float64)
    for w, name in enumerate(("C", "CU")[:len(counts)]):
        want = xf @ outs[w].dense().astype(np.float64).T
        if residual:
            want += sp.bf16(ddr["R"])
        bound = 2.0**-20 * (np.abs(xf) @ np.abs(outs[w].dense()).T + 1)
        assert np.all(np.abs(core[name] - want) <= bound), name


def _linear_case(epilogue: str, seed: int = 3):
    m, n, k = 32, 64, 256
    rng = np.random.default_rng(seed)
    gated = epilogue == "gated"
    wd = [quantize(rng.standard_normal((n, k)).astype(np.float32) * 0.1, DENSE)
          for _ in range(2 if gated else 1)]
    outs = [_outliers(rng, n, k, c, scale=2.0) for c in ((300, 150) if gated else (300,))]
    x = quantize(rng.standard_normal((m, k)).astype(np.float32), ACT)
    res = rng.standard_normal((m, n)).astype(np.float32)
    bias = rng.standard_normal((1, n)).astype(np.float32)
    return m, n, k, wd, outs, x, res, bias


@pytest.mark.parametrize("epilogue", ["store", "residual", "bias_store", "bias_residual",
                                      "quant", "bias", "gelu", "gated"])
def test_outlier_products_then_the_linear_equal_the_float64_product(epilogue):
    m, n, k, wd, outs, x, res, bias = _linear_case(epilogue)
    residual = epilogue in ("residual", "bias_residual")
    spq = spqr_kernel("spqr", m, n, k, [o.count for o in outs], cores=4, residual=residual)
    ddr = {"X": x, **spqr_inputs(spq, outs), **({"R": res} if residual else {})}
    c_core, c_emu = _run_both(spq, ddr)
    mp = LinearMapping.simple(m, n, k, 4)
    lin = linear_kernel("lin", m, n, k, weight=DENSE, cores=4, mapping=mp, epilogue=epilogue,
                        init=True)
    assert lin.params.init and "R" not in lin.program.tensor
    ddr = {"X": x, "W": wd[0], "C": c_core["C"], "BIAS": bias}
    if epilogue == "gated":
        ddr.update(WU=wd[1], CU=c_core["CU"])
    ddr = {t: v for t, v in ddr.items() if t in lin.program.tensor}
    y_core, y_emu = _run_both(lin, ddr)
    y = y_core["Y"]
    if hasattr(y, "codes"):
        assert np.array_equal(y.codes, y_emu["Y"].codes)
        assert np.array_equal(y.scales, y_emu["Y"].scales)
        y = y.dequantize()
    else:
        assert np.array_equal(_bits(y), _bits(y_emu["Y"]))
    xf = x.dequantize().astype(np.float64)

    def product(w: int) -> np.ndarray:
        return xf @ (wd[w].dequantize().astype(np.float64) + outs[w].dense()).T

    want = product(0)
    if residual:
        want += sp.bf16(res)
    if "bias" in epilogue or epilogue == "gelu":
        want += bias
    if epilogue == "gelu":
        want = np.asarray(sp.gelu32(want.astype(np.float32)), np.float64)
    if epilogue == "gated":
        g = want.astype(np.float32)
        want = np.asarray(sp.silu32(g), np.float64) * product(1)
    if epilogue in ("store", "residual", "bias_store", "bias_residual"):
        # float32 sums, then one bfloat16 rounding (half an ulp of 8 significant bits)
        mag = np.abs(xf) @ (np.abs(wd[0].dequantize()) + np.abs(outs[0].dense())).T + 1
        assert np.all(np.abs(y - want) <= 2.0**-8 * np.abs(want) + 2.0**-18 * mag)
    else:
        # FP8 E4M3 with a scale per 32 outputs: a relative error of about 2^-4
        assert np.linalg.norm(y - want) <= 0.05 * np.linalg.norm(want)
    # without the outliers the result is far from it (they matter in this test)
    plain = xf @ wd[0].dequantize().astype(np.float64).T
    assert np.linalg.norm(plain - product(0)) > 0.3 * np.linalg.norm(product(0))


@pytest.mark.parametrize("case", CASES)
def test_vector_elements_and_bytes_are_the_hand_count(case):
    m, n, k, counts, residual, values, cores, _ = case
    kern = spqr_kernel("s", m, n, k, counts, cores=cores, residual=residual,
                       values=Storage.of(values))
    prog = kern.program
    validate(prog)
    seen: Counter = Counter()
    for cid in range(cores):
        for step in expand(prog, cid, cores):
            if step.unit == "vector":
                seen[step.instruction.opcode] += vector_elements(step.instruction, prog)
    hand = {op: v for op, v in spqr_vector_ops(kern.params).items() if v}
    assert dict(seen) == hand
    p = kern.params
    assert all(pw >= c for pw, c in zip(p.padded, counts, strict=True))
    assert sum(p.padded) - sum(counts) < 32 * p.groups * max(1, sum(p.chunks))
    # bytes: per unit of a row block and group, X rows, the group's chunks and the (rt, N)
    # store (the residual rows when it starts C); with groups, per (row block, slice) the
    # partials, the residual and the store
    entry = Storage.of(values).nbytes(1, 1) + 2 + 2
    ws, g, rt = p.ws, p.groups, p.rt
    per1 = rt * (k + k // 32) + len(counts) * rt * n * 4 \
        + (rt * n * 2 if residual and g == 1 else 0) \
        + sum(gc * c * entry for gc, c in zip(p.chunks, p.widths, strict=True))
    per2 = len(counts) * ((g + 1) * rt * ws * 4 + (rt * ws * 2 if residual else 0))
    want = (m // rt) * g * per1 + ((m // rt) * (n // ws) * per2 if g > 1 else 0)
    assert kern.dma_bytes == want
    _, _, nbytes = roofline_bound(prog, CFG, cores=cores)
    assert nbytes == want


@pytest.mark.parametrize("shape", [(1, 1536, 576, (24000, 25000), False),
                                   (1, 576, 1536, (23000,), True),
                                   (32, 1152, 384, (6000,), False)])
def test_simulated_time_stays_above_the_roofline(shape):
    m, n, k, counts, residual = shape
    kern = spqr_kernel("s", m, n, k, counts, cores=CFG.cores, residual=residual)
    t = simulate(kern.program, CFG, cores=CFG.cores).seconds
    bound, _, _ = roofline_bound(kern.program, CFG, cores=CFG.cores)
    assert t >= bound > 0


def test_groups_go_to_idle_cores_only():
    # decode: one row, the outliers spread over groups; a 128-row prompt: no groups
    assert spqr_kernel("s", 1, 1536, 576, (24000, 25000), cores=128).params.groups > 1
    assert spqr_kernel("s", 128, 1536, 576, (24000, 25000), cores=128).params.groups == 1


def test_bad_arguments_are_refused():
    with pytest.raises(ConfigError, match="residual goes with one weight"):
        spqr_kernel("s", 2, 64, 64, (3, 4), cores=1, residual=True)
    with pytest.raises(ConfigError, match="float16, bfloat16 or float32"):
        spqr_kernel("s", 2, 64, 64, (3,), cores=1, values=ACT)
    kern = spqr_kernel("s", 2, 64, 64, (3,), cores=1)
    rng = np.random.default_rng(0)
    with pytest.raises(ConfigError, match="weight 0"):
        spqr_inputs(kern, [_outliers(rng, 64, 64, 4)])
    with pytest.raises(ConfigError, match="1 weights' outliers expected"):
        spqr_inputs(kern, [_outliers(rng, 64, 64, 3)] * 2)


def test_lower_model_puts_the_outlier_ops_before_their_linears_layer_by_layer():
    sc = Scenario(model="smollm2-135m", formats=Formats(weights=DENSE), hardware=DEFAULT_PRESET,
                  phase="decode", batch=1, context_length=512)
    card = sc.card()
    work = PtqWork(outliers=(OutlierSite("qkv_proj", (500,), layers=(0,)),
                             OutlierSite("gate_up", (300, 0), layers=(0, 2)),
                             OutlierSite("down_proj", (700,), layers=(2,))))
    plain = lower_model(card, sc, CFG)
    lm = lower_model(card, sc, CFG, ptq=work)
    assert [s.layers for s in plain.stages[:1]] == [tuple(range(30))]
    assert [s.layers for s in lm.stages[:-1]] == [(0,), (1,) + tuple(range(3, 30)), (2,)]
    names = [op.name for op in lm.stages[0].ops]
    assert names == ["attn_norm", "spqr_qkv_proj", "qkv_proj", "rope_kv", "attention", "o_proj",
                     "mlp_norm", "spqr_gate_up", "gate_up", "down_proj"]
    assert [op.name for op in lm.stages[1].ops] == [op.name for op in plain.stages[0].ops]
    ops = {op.name: op for op in lm.stages[2].ops}
    down, spq = ops["down_proj"], ops["spqr_down_proj"]
    assert down.kernel.params.init and spq.kernel.params.residual
    assert dict(spq.flow.reads) == {"X": "g", "R": "h1"}
    assert dict(spq.flow.writes) == {"C": "down_proj_c"}
    assert dict(down.flow.reads) == {"X": "g", "C": "down_proj_c"}
    gate = {op.name: op for op in lm.stages[0].ops}["spqr_gate_up"]
    assert dict(gate.flow.writes) == {"C": "gate_up_c", "CU": "gate_up_cu"}
    assert gate.weight_bytes == 300 * (2 + 2 + 2) and gate.vector_flops == 2 * 300
    # the plain stage's programs are those of the lowering without outliers
    for a, b in zip(lm.stages[1].ops, plain.stages[0].ops, strict=True):
        assert a.kernel.program == b.kernel.program
    with pytest.raises(ConfigError, match="2 weight"):
        lower_model(card, sc, CFG, ptq=PtqWork(outliers=(OutlierSite("gate_up", (5,)),)))
    assert math.isclose(lm.flops, plain.flops)
