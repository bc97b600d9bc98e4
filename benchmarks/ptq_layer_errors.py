"""Measurement (not a timing benchmark): the issue's per-layer must-show on every linear layer.

For every linear layer of MiniLM or SmolLM2, on its float32 calibration inputs ``X`` (the float
model over the calibration segments): ``||X W^T - X W_q^T||_F`` of round to nearest against GPTQ
with act-order (the tables' "GPTQ", ``gptq-act``) and GPTQ without act-order (block scales chosen
in the sweep, ``gptq``) for tai4, tai2, int4 and float4_e2m1fn (MX E8M0/32, OCP floor, 1 %
damping), and of magnitude pruning against SparseGPT, without and with block act-order
(``sparsegpt-act``), at 8:4 without quantization and with tai4 and tai2. Prints every cell where
the PTQ method is not below its baseline (ratio >= 1) and, per comparison, how many layers pass
and the geometric mean and largest of the ratios (PTQ error / baseline error) over the layers.
docs/ptq.md, "Per-layer output error".

    python benchmarks/ptq_layer_errors.py minilm
    python benchmarks/ptq_layer_errors.py smollm2 [--jsonl FILE]   # ~1 h CPU

With ``--jsonl FILE`` each layer's cells are appended to FILE as they are measured, and layers
already in FILE are read back instead of measured again (a stopped run resumes; a layer whose
line lacks some cells, from before they were added, gets only those measured, on a new line
that holds all of them).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from prodigy_sim.ptq import (
    gptq,
    hessian,
    inverse_factor,
    output_error,
    prune_mask,
    rtn,
    sparsegpt,
)
from prodigy_sim.realmodels import (
    calibrate_minilm,
    calibrate_smollm2,
    minilm_weights,
    smollm2_weights,
)
from prodigy_sim.realmodels._ptq import _Collect, run_sequences

FORMATS = ("tai4", "tai2", "int4", "float4_e2m1fn")
PAIRS = ([(f"gptq-act {f}", f"rtn {f}") for f in FORMATS]
         + [(f"gptq {f}", f"rtn {f}") for f in FORMATS]
         + [(f"sparsegpt{q}", f"magnitude{q}") for q in ("", " tai4", " tai2")]
         + [(f"sparsegpt-act{q}", f"magnitude{q}") for q in ("", " tai4", " tai2")])


def errors(w: np.ndarray, x: np.ndarray, have: dict[str, float] | None = None
           ) -> dict[str, float]:
    """Every cell of one layer (module docstring); the cells in ``have`` are kept, not measured
    again (a file from before a cell was added is completed)."""
    have = have or {}
    h = hessian(x)
    e = dict(have)
    cells: dict[str, Callable[[], np.ndarray]] = {}
    fac = inverse_factor(h)
    for fmt in FORMATS:
        cells[f"rtn {fmt}"] = lambda f=fmt: rtn(w, fmt=f).weight
        cells[f"gptq-act {fmt}"] = lambda f=fmt: gptq(
            w, inverse_factor(h, act_order=True), fmt=f).weight
        cells[f"gptq {fmt}"] = lambda f=fmt: gptq(w, fac, fmt=f).weight
    cells["magnitude"] = lambda: np.where(prune_mask(w, "8:4"), w, 0.0)
    cells["sparsegpt"] = lambda: sparsegpt(w, fac, sparsity="8:4").weight
    cells["sparsegpt-act"] = lambda: sparsegpt(w, h, sparsity="8:4", act_order=True).weight
    for fmt in ("tai4", "tai2"):
        cells[f"magnitude {fmt}"] = lambda f=fmt: rtn(w, fmt=f, sparsity="8:4").weight
        cells[f"sparsegpt {fmt}"] = lambda f=fmt: sparsegpt(w, fac, sparsity="8:4",
                                                            fmt=f).weight
        cells[f"sparsegpt-act {fmt}"] = lambda f=fmt: sparsegpt(w, h, sparsity="8:4", fmt=f,
                                                                act_order=True).weight
    for key, make in cells.items():
        if key not in e:
            e[key] = output_error(w, make(), x)
    return e


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("model", choices=("minilm", "smollm2"))
    ap.add_argument("--jsonl", help="also write each layer's cells to FILE, one JSON per line; "
                                    "layers already in FILE are not measured again")
    args = ap.parse_args()
    w = minilm_weights() if args.model == "minilm" else smollm2_weights()
    cal = calibrate_minilm(w) if args.model == "minilm" else calibrate_smollm2(w)
    names = w.linear_names()
    col = _Collect(w, set(names))
    run_sequences(w, cal.sequences, col)
    done: dict[str, dict[str, float]] = {}
    if args.jsonl and Path(args.jsonl).exists():
        for line in Path(args.jsonl).read_text(encoding="utf-8").splitlines():
            done.update(json.loads(line))
    out = open(args.jsonl, "a", encoding="utf-8") if args.jsonl else None
    passed = dict.fromkeys(PAIRS, 0)
    ratios: dict[tuple[str, str], list[float]] = {pair: [] for pair in PAIRS}
    wanted = {c for pair in PAIRS for c in pair}
    for name in names:
        if name in done and wanted <= done[name].keys():
            e = done[name]
        else:
            e = errors(np.asarray(w[name]), np.concatenate(col.x[name]), done.get(name))
            if out is not None:
                out.write(json.dumps({name: e}) + "\n")
                out.flush()
        for a, b in PAIRS:
            ratios[(a, b)].append(e[a] / e[b])
            if e[a] < e[b]:
                passed[(a, b)] += 1
            else:
                print(f"{name}: {a} {e[a]:.4g} >= {b} {e[b]:.4g} (ratio {e[a] / e[b]:.3f})",
                      flush=True)
    print(f"| comparison | layers where the PTQ method is below (of {len(names)}) | "
          "geo. mean ratio | largest ratio |")
    print("|---|---:|---:|---:|")
    for (a, b), n in passed.items():
        r = np.asarray(ratios[(a, b)])
        print(f"| {a} < {b} | {n} | {np.exp(np.log(r).mean()):.3f} | {r.max():.3f} |")


if __name__ == "__main__":
    main()
