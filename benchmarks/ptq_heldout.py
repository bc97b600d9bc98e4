"""Measurement (not a timing benchmark): does GPTQ's per-layer gain generalize on MiniLM?

For every MiniLM linear layer, GPTQ (act-order, tai4, MX E8M0/32) calibrated on the calibration
segments, at 1 %, 10 % and 100 % Hessian damping: its output error relative to round to nearest
on the calibration inputs and on the evaluation sentences' inputs (not calibrated on), with the
rank of the calibration inputs. docs/ptq.md, "Calibration size, overfitting and damping".

    python benchmarks/ptq_heldout.py                  # act-order GPTQ (the tables' "GPTQ")
    python benchmarks/ptq_heldout.py --sweep-scales   # GPTQ without act-order
"""

from __future__ import annotations

import sys

import numpy as np

from prodigy_sim.realmodels import (
    calibrate_minilm,
    encode_batch,
    eval_sentences,
    minilm_tokenizer,
    minilm_weights,
)
from prodigy_sim.realmodels._ptq import heldout_errors

DAMPINGS = (0.01, 0.1, 1.0)


def main() -> None:
    w = minilm_weights()
    tok = minilm_tokenizer()
    cal = calibrate_minilm(w)
    held = [encode_batch(tok, [s]) for s in eval_sentences()]
    res = heldout_errors(w, cal, held, w.linear_names(), dampings=DAMPINGS,
                         act_order="--sweep-scales" not in sys.argv[1:])
    cols = [f"{d:g} {part}" for d in DAMPINGS for part in ("calib", "heldout")]
    print("| layer | K | rank X_c | " + " | ".join(cols) + " |")
    print("|---|---:|---:|" + "---:|" * len(cols))
    for name, row in res.items():
        vals = [f"{row[(d, part)]:.3f}" for d in DAMPINGS for part in ("calib", "heldout")]
        print(f"| {name} | {row['k']} | {row['rank']} | " + " | ".join(vals) + " |")
    geo = [float(np.exp(np.mean([np.log(r[(d, part)]) for r in res.values()])))
           for d in DAMPINGS for part in ("calib", "heldout")]
    worst = [max(r[(d, part)] for r in res.values()) for d in DAMPINGS
             for part in ("calib", "heldout")]
    print("| geometric mean | | | " + " | ".join(f"{g:.3f}" for g in geo) + " |")
    print("| largest | | | " + " | ".join(f"{g:.3f}" for g in worst) + " |")


if __name__ == "__main__":
    main()
