"""The functional executor: programs against matmul, the reference, and themselves."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import prodigy_sim.testing.core_oracle as ref
from prodigy_sim.errors import ProgramError
from prodigy_sim.functional import ddr_image, matmul, run
from prodigy_sim.isa import CID, ProgramBuilder, Reg, assemble
from prodigy_sim.numerics import quantize

ROOT = Path(__file__).resolve().parents[1]


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and np.array_equal(np.asarray(a, np.float32).view(np.uint32),
                                                 np.asarray(b, np.float32).view(np.uint32))


def tiled_gemm(m: int, n: int, k: int, tm: int = 32, tn: int = 32, tk: int = 256,
               wfmt: str = "tai4", split_rows: bool = False):
    """Y = X W^T tiled along M, N and K with double-buffered K slices (K/tk even)."""
    assert k % (2 * tk) == 0
    b = ProgramBuilder()
    x = b.tensor("X", (m, k), "float8_e4m3fn")
    w = b.tensor("W", (n, k), wfmt)
    y = b.tensor("Y", (m, n), "float32")
    a0, a1 = b.tile("A0", (tm, tk), "float8_e4m3fn"), b.tile("A1", (tm, tk), "float8_e4m3fn")
    w0, w1 = b.tile("W0", (tn, tk), wfmt), b.tile("W1", (tn, tk), wfmt)
    yt = b.tile("YT", (tm, tn), "float32")
    c = b.acc("C", (tm, tn))
    r_m, r_n, r_k, r_row, r_k2 = Reg(1), Reg(2), Reg(3), Reg(4), Reg(5)
    if split_rows:  # rows [cid * m/ncores, ...): this core's share
        b.li(Reg(6), m)
        b.emit("DIV", Reg(6), Reg(6), Reg(17))
        b.mul(Reg(7), CID, Reg(6))
        b.divi(Reg(8), Reg(6), tm)
        count = Reg(8)
    else:
        b.li(Reg(7), 0)
        count = m // tm
    with b.loop(r_m, count, step=tm):
        b.add(r_row, Reg(7), r_m)
        with b.loop(r_n, n // tn, step=tn):
            b.acc_zero(c)
            with b.loop(r_k, k // (2 * tk), step=2 * tk):
                b.addi(r_k2, r_k, tk)
                b.dma_ld(a0, x, r_row, r_k)
                b.dma_ld(w0, w, r_n, r_k)
                b.dma_ld(a1, x, r_row, r_k2)
                b.dma_ld(w1, w, r_n, r_k2)
                b.mma(c, a0, w0)
                b.mma(c, a1, w1)
            b.acc_st(yt, c)
            b.dma_st(y, r_row, r_n, yt)
    b.barrier()
    return b.build()


def operands(seed: int, m: int, n: int, k: int, wfmt: str = "tai4"):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((m, k), dtype=np.float32) * np.float32(3)
    w = rng.standard_normal((n, k), dtype=np.float32)
    return x, w, quantize(x, "float8_e4m3fn"), quantize(w, wfmt)


@pytest.mark.parametrize("wfmt", ["tai4", "float4_e2m1fn", "float8_e5m2"])
def test_tiled_program_equals_matmul(wfmt):
    m, n, k = 64, 64, 1024
    x, w, xq, wq = operands(1, m, n, k, wfmt)
    prog = tiled_gemm(m, n, k, wfmt=wfmt)
    state = run(prog, ddr={"X": xq, "W": wq})
    assert same_bits(state.tensor("Y"), matmul(xq, wq))
    assert state.mma.chunks == (m // 32) * (n // 32) * (k // 256) * 2


def test_multicore_split_gives_identical_bits():
    m, n, k = 128, 32, 512
    x, w, xq, wq = operands(2, m, n, k)
    prog = tiled_gemm(m, n, k, split_rows=True)
    img = ddr_image(prog, {"X": x, "W": w})
    one = run(prog, ddr=img, cores=1).tensor("Y")
    assert same_bits(one, matmul(xq, wq))
    for cores in (2, 4):
        assert same_bits(run(prog, ddr=img, cores=cores).tensor("Y"), one)


_DETERMINISM = """
import hashlib, sys
import numpy as np
sys.path.insert(0, {tests!r})
from test_functional_executor import operands, tiled_gemm
from prodigy_sim.functional import matmul, run
x, w, xq, wq = operands(3, 256, 512, 1024)
h = hashlib.sha256(matmul(xq, wq).tobytes())
x, w, xq, wq = operands(4, 64, 64, 512)
h.update(run(tiled_gemm(64, 64, 512), ddr={{"X": xq, "W": wq}}, cores=2).ddr.tobytes())
print(h.hexdigest())
"""


def test_deterministic_across_runs_and_thread_counts():
    code = _DETERMINISM.format(tests=str(ROOT / "tests"))
    digests = set()
    for threads in ("1", "2", "2"):
        env = dict(os.environ, NUMBA_NUM_THREADS=threads)
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                             text=True, check=True, cwd=ROOT)
        digests.add(out.stdout.strip())
    assert len(digests) == 1


VECTOR_OPS = ["VADD", "VMUL", "VMAXI", "VEXP", "VGELU", "VSILU", "VRSUM", "VFMA", "NONE"]


def ref_vector(op: str, y: np.ndarray, bias: np.ndarray) -> np.ndarray:
    f = np.float32
    with np.errstate(all="ignore"):
        if op == "VADD":
            return np.array([[ref.canon(f(v + b)) for v, b in zip(r, bias[0], strict=True)]
                             for r in y], dtype=np.float32)
        if op == "VMUL":
            return np.array([[ref.canon(f(v * b)) for v, b in zip(r, bias[0], strict=True)]
                             for r in y], dtype=np.float32)
        if op == "VMAXI":
            return np.array([[ref.fmax(v, f(0.0)) for v in r] for r in y], dtype=np.float32)
        if op == "VRSUM":
            return np.array([[ref.rsum(r)] for r in y], dtype=np.float32)
        if op == "VFMA":
            return np.array([[ref.fma32(v, v, b) for v, b in zip(r, bias[0], strict=True)]
                             for r in y], dtype=np.float32)
        fn = {"VEXP": ref.exp32, "VGELU": ref.gelu32, "VSILU": ref.silu32}.get(op)
        if fn is None:
            return y
        return np.array([[ref.canon(fn(v)) for v in r] for r in y], dtype=np.float32)


@given(seed=st.integers(0, 2**31), m=st.integers(1, 4), n=st.integers(1, 4),
       kt=st.integers(1, 3), wfmt=st.sampled_from(["tai4", "tai2", "float4_e2m1fn", "int8"]),
       sparse=st.booleans(), out_fmt=st.sampled_from(["float32", "bfloat16"]),
       op=st.sampled_from(VECTOR_OPS))
@settings(max_examples=40)
def test_random_programs_match_reference(seed, m, n, kt, wfmt, sparse, out_fmt, op):
    k = 128 * kt
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((m, k)) * 2.0 ** rng.integers(-8, 8)).astype(np.float32)
    w = rng.standard_normal((n, k)).astype(np.float32)
    bias = rng.standard_normal((1, n)).astype(np.float32)
    sp = (8, 4) if sparse else None
    b = ProgramBuilder()
    tx = b.tensor("X", (m, k), "float8_e4m3fn")
    tw = b.tensor("W", (n, k), wfmt, sparsity=sp)
    tb = b.tensor("B", (1, n), "float32")
    ty = b.tensor("Y", (m, 1 if op == "VRSUM" else n), out_fmt)
    ax = b.tile("AX", (m, 128), "float8_e4m3fn")
    aw = b.tile("AW", (n, 128), wfmt, sparsity=sp)
    ab = b.tile("AB", (1, n), "float32")
    t1 = b.tile("T1", (m, n), "float32")
    t2 = b.tile("T2", (m, 1 if op == "VRSUM" else n), out_fmt)
    c = b.acc("C", (m, n))
    b.acc_zero(c)
    b.dma_ld(ab, tb, 0, 0)
    with b.loop(Reg(1), kt, step=128):
        b.dma_ld(ax, tx, 0, Reg(1))
        b.dma_ld(aw, tw, 0, Reg(1))
        (b.mma_sp if sparse else b.mma)(c, ax, aw)
    b.acc_st(t1, c)
    if op in ("VADD", "VMUL"):
        b.emit(op, t2, t1, ab)
    elif op == "VMAXI":
        b.vmaxi(t2, t1, 0.0)
    elif op == "VFMA":
        b.vfma(t2, t1, t1, ab)
    elif op == "NONE":
        b.vcvt(t2, t1)
    else:
        b.emit(op, t2, t1)
    b.dma_st(ty, 0, 0, t2)
    prog = b.build()
    state = run(prog, ddr={"X": x, "W": w, "B": bias})
    xq = quantize(x, "float8_e4m3fn")
    wq = quantize(w, wfmt, sparsity="8:4" if sparse else None)
    want = ref_vector(op, ref.ref_matmul(xq, wq), bias)
    if out_fmt == "bfloat16":
        with np.errstate(all="ignore"):
            want = want.astype(ml_dtypes.bfloat16).astype(np.float32)
        want = np.where(np.isnan(want), np.float32(np.nan), want)
    assert same_bits(state.tensor("Y"), want)


def test_vquant_equals_quantize_and_vdequant():
    rng = np.random.default_rng(6)
    x = (rng.standard_normal((8, 64)) * 50).astype(np.float32)
    for block, scale in ((32, "e8m0"), (0, "e8m0"), (32, "fp32")):
        b = ProgramBuilder()
        tx = b.tensor("X", (8, 64), "float32")
        tq = b.tensor("Q", (8, 64), "float8_e4m3fn", block=block, scale=scale)
        td = b.tensor("D", (8, 64), "float32")
        a = b.tile("A", (8, 64), "float32")
        q = b.tile("QT", (8, 64), "float8_e4m3fn", block=block, scale=scale)
        d = b.tile("DT", (8, 64), "float32")
        b.dma_ld(a, tx, 0, 0)
        b.vquant(q, a)
        b.dma_st(tq, 0, 0, q)
        b.vdequant(d, q)
        b.dma_st(td, 0, 0, d)
        prog = b.build()
        state = run(prog, ddr={"X": x})
        got = state.tensor("Q")
        want = (quantize(x, "float8_e4m3fn", block=block, scale=scale) if block
                else quantize(x.reshape(1, -1), "float8_e4m3fn", block=None, scale=scale))
        assert np.array_equal(got.codes.reshape(-1), want.codes.reshape(-1))
        assert np.array_equal(np.unique(got.scales), np.unique(want.scales))
        assert same_bits(state.tensor("D"), got.dequantize())


def test_example_programs_run_and_gemm_example_matches():
    rng = np.random.default_rng(8)
    prog = assemble((ROOT / "isa/examples/gemm_fp8_tai4.s").read_text())
    x = rng.standard_normal((64, 1024), dtype=np.float32)
    w = rng.standard_normal((256, 1024), dtype=np.float32)
    y = run(prog, ddr={"X": x, "W": w}).tensor("Y")
    want = matmul(quantize(x, "float8_e4m3fn"), quantize(w, "tai4"))
    with np.errstate(all="ignore"):
        want = want.astype(ml_dtypes.bfloat16).astype(np.float32)
    assert same_bits(y, want)
    for name in ("softmax_rows.s", "rmsnorm_rope.s", "sparse_gemm.s", "multicore_gemm.s"):
        p = assemble((ROOT / "isa/examples" / name).read_text())
        data = {t.name: rng.standard_normal(t.shape).astype(np.float32) for t in p.tensors}
        run(p, ddr=data, cores=2 if name == "multicore_gemm.s" else 1)


def test_scalar_registers_and_barrier_mismatch():
    b = ProgramBuilder()
    b.li(Reg(1), 5)
    with b.loop(Reg(2), 3, step=4):
        b.addi(Reg(3), Reg(2), 1)
    b.bne(CID, Reg(0), "skip")
    b.barrier()
    b.label("skip")
    prog = b.build()
    state = run(prog, ddr={}, cores=1)
    assert state.cores[0].regs[1] == 5 and state.cores[0].regs[2] == 8
    assert state.cores[0].regs[3] == 9
    with pytest.raises(ProgramError, match="BARRIER"):
        run(prog, ddr={}, cores=2)
