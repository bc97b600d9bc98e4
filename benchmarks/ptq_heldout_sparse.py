"""Measurement (not a timing benchmark): does SparseGPT's per-layer gain generalize on SmolLM2,
and how does it depend on the number of calibration tokens?

For every SmolLM2 linear layer, 8:4 pruning quantized to tai4 (MX E8M0/32, OCP floor, 1 %
damping): magnitude pruning + round to nearest, SparseGPT and SparseGPT with block act-order,
calibrated on the first ``--segments`` calibration segments (default: all); the relative output
error ``||X (W - W_q)^T|| / ||X W^T||`` on the calibration inputs and on the inputs of the
perplexity text's first 512 tokens (never calibrated on); float32 inputs of the float model.
Prints the geometric means over the 210 layers and on how many layers each method's held-out
error is not below magnitude pruning's. docs/ptq.md, "Calibration size".

    python benchmarks/ptq_heldout_sparse.py                 # the shipped calibration set
    python benchmarks/ptq_heldout_sparse.py --segments 16   # the first 16 segments (478 tokens)
"""

from __future__ import annotations

import argparse
import math

import numpy as np

from prodigy_sim.realmodels import (
    calibrate_smollm2,
    calibration_segments,
    eval_text,
    smollm2_tokenizer,
    smollm2_weights,
)
from prodigy_sim.realmodels._ptq import heldout_sparse_errors

METHODS = ("magnitude", "sparsegpt", "sparsegpt-act")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--segments", type=int, default=None,
                    help="calibrate on the first N calibration segments (default: all)")
    ap.add_argument("--damping", type=float, default=0.01,
                    help="Hessian damping, fraction of mean(diag H) (default 0.01)")
    args = ap.parse_args()
    w = smollm2_weights()
    segs = calibration_segments()[: args.segments]
    cal = calibrate_smollm2(w, segs)
    held = [np.asarray(smollm2_tokenizer().encode(eval_text()).ids[:512])]
    res = heldout_sparse_errors(w, cal, held, w.linear_names(), damping=args.damping)
    n = len(res)
    tokens = sum(len(s) for s in cal.sequences)
    print(f"{len(segs)} calibration segments, {tokens} tokens; damping {args.damping:g}; "
          f"{n} layers; tai4 8:4")
    print("| method | geometric mean, calibration inputs | held out | layers where held out "
          ">= magnitude |")
    print("|---|---:|---:|---:|")
    for m in METHODS:
        geo = [math.exp(sum(math.log(r[(m, part)]) for r in res.values()) / n)
               for part in ("calib", "heldout")]
        worse = sum(r[(m, "heldout")] >= r[("magnitude", "heldout")] for r in res.values())
        print(f"| {m} | {geo[0]:.4f} | {geo[1]:.4f} | {worse if m != 'magnitude' else '-'} |")


if __name__ == "__main__":
    main()
