"""Post-training quantization (PTQ) of linear weights, in numpy: GPTQ, SparseGPT, SpQR, Hadamard
rotations, and the round-to-nearest / magnitude / Wanda baselines.

A linear weight ``W`` has shape ``(N out, K in)`` and is stored, as everywhere in the simulator,
as element codes of a number format with one scale per ``block`` elements along K (and, when
sparse, an N:M mask along K). The methods here choose those codes, scales and masks using the
layer's calibration inputs ``x (T, K)`` through the Hessian ``H = (2/T) x^T x`` of the squared
output error:

- :func:`rtn`: round to nearest (optionally after magnitude or Wanda N:M pruning) - the baseline;
- :func:`gptq`: GPTQ, column-by-column quantization with error compensation (act-order, lazy
  block updates, block scales chosen in the sweep);
- :func:`sparsegpt`: SparseGPT N:M pruning with the mask chosen in the same sweep, optionally
  quantizing, optionally with block act-order (:func:`sparsegpt_act_block`);
- :func:`spqr`: SpQR, small groups with 3-bit quantized scales plus higher-precision outliers;
- :func:`random_hadamard`, :func:`fold_rotations` and the rotation plans: QuaRot-style Hadamard
  rotations, folded into weights where computational invariance allows and online elsewhere.

Every method returns a :class:`PTQResult`: the dequantized float32 weight for float emulation
and the :class:`~prodigy_sim.numerics.QuantizedTensor` the functional core reads. The scale
rules (``floor`` = OCP MX, ``nearest``, ``noclip``, ``mse``) and scale kinds (E8M0, E4M3, fp32)
are in :func:`make_grid` / :func:`block_scales`. See ``docs/ptq.md``.
"""

from prodigy_sim.ptq._gptq import gptq as gptq
from prodigy_sim.ptq._grid import SCALE_RULES as SCALE_RULES
from prodigy_sim.ptq._grid import BlockScales as BlockScales
from prodigy_sim.ptq._grid import Grid as Grid
from prodigy_sim.ptq._grid import block_scales as block_scales
from prodigy_sim.ptq._grid import make_grid as make_grid
from prodigy_sim.ptq._grid import quantize_rows as quantize_rows
from prodigy_sim.ptq._grid import round_to_scales as round_to_scales
from prodigy_sim.ptq._hadamard import HadamardRotation as HadamardRotation
from prodigy_sim.ptq._hadamard import fwht as fwht
from prodigy_sim.ptq._hadamard import hadamard_matrix as hadamard_matrix
from prodigy_sim.ptq._hadamard import hadamard_order as hadamard_order
from prodigy_sim.ptq._hadamard import random_hadamard as random_hadamard
from prodigy_sim.ptq._hessian import HessianAccumulator as HessianAccumulator
from prodigy_sim.ptq._hessian import InverseFactor as InverseFactor
from prodigy_sim.ptq._hessian import hessian as hessian
from prodigy_sim.ptq._hessian import inverse_factor as inverse_factor
from prodigy_sim.ptq._result import Outliers as Outliers
from prodigy_sim.ptq._result import PTQResult as PTQResult
from prodigy_sim.ptq._result import build_quantized as build_quantized
from prodigy_sim.ptq._result import output_error as output_error
from prodigy_sim.ptq._rotation import RotationSite as RotationSite
from prodigy_sim.ptq._rotation import bert_rotation_plan as bert_rotation_plan
from prodigy_sim.ptq._rotation import fold_rotations as fold_rotations
from prodigy_sim.ptq._rotation import fuse_norm_gain as fuse_norm_gain
from prodigy_sim.ptq._rotation import llama_rotation_plan as llama_rotation_plan
from prodigy_sim.ptq._rotation import rotate_left as rotate_left
from prodigy_sim.ptq._rotation import rotate_right as rotate_right
from prodigy_sim.ptq._rtn import prune_mask as prune_mask
from prodigy_sim.ptq._rtn import rtn as rtn
from prodigy_sim.ptq._sparsegpt import sparsegpt as sparsegpt
from prodigy_sim.ptq._sparsegpt import sparsegpt_act_block as sparsegpt_act_block
from prodigy_sim.ptq._spqr import OUTLIER_DTYPES as OUTLIER_DTYPES
from prodigy_sim.ptq._spqr import SPQR_GROUP as SPQR_GROUP
from prodigy_sim.ptq._spqr import spqr as spqr

__all__ = [
    "OUTLIER_DTYPES",
    "SCALE_RULES",
    "SPQR_GROUP",
    "BlockScales",
    "Grid",
    "HadamardRotation",
    "HessianAccumulator",
    "InverseFactor",
    "Outliers",
    "PTQResult",
    "RotationSite",
    "bert_rotation_plan",
    "block_scales",
    "build_quantized",
    "fold_rotations",
    "fuse_norm_gain",
    "fwht",
    "gptq",
    "hadamard_matrix",
    "hadamard_order",
    "hessian",
    "inverse_factor",
    "llama_rotation_plan",
    "make_grid",
    "output_error",
    "prune_mask",
    "quantize_rows",
    "random_hadamard",
    "rotate_left",
    "rotate_right",
    "round_to_scales",
    "rtn",
    "sparsegpt",
    "sparsegpt_act_block",
    "spqr",
]
