"""Lowering of transformer layers to SPMD tile programs, and their simulation.

- :func:`lower_model`: card + scenario + chip -> :class:`LoweredModel` (one
  :class:`LoweredStage` of kernels per layer kind, plus the head); FLOP formulas
  :func:`linear_flops`, :func:`attention_flops`.
- Kernel generators: :func:`linear_kernel`, :func:`attention_kernel`, :func:`norm_kernel`,
  :func:`rope_kv_kernel` -> :class:`Kernel` (program + analytic MMA FLOPs and DMA bytes);
  :func:`decode_splits` (flash-decoding context slices).
- :func:`emulate_kernel`: a kernel's DDR outputs computed in plain numpy, bit-identical to its
  program on :func:`prodigy_sim.functional.run` (from :attr:`Kernel.params`).
- :func:`plan_linear`: the linear kernel the lowering generates for a shape (its tiling);
  :func:`mapping_candidates`: a mapped linear op and its next cheapest mappings by the
  mapper's costs, as ops to simulate (:func:`ranked_mappings`: every candidate and its cost;
  :func:`with_mapping`: an op rebuilt with a given mapping; :func:`with_residency`: an op
  with a given residency, its loads issued in the order that residency asks).
- :func:`weight_storage`: a weight class's storage, checked against the ISA and the matrix unit.
- PTQ work (:class:`PtqWork`, ``lower_model(..., ptq=)``): online Hadamard transforms
  (:func:`hadamard_kernel`, :func:`emulate_hadamard`) added to every layer, and SpQR's outlier
  products (:func:`spqr_kernel`: ``VGATHER`` / ``VMUL`` / ``VSCATADD``; :func:`spqr_inputs`
  lays out the outliers) before the linears whose weights have them, whose accumulators start
  from them (``linear_kernel(..., init=True)``).
- Mixture-of-experts layers (``card.num_experts``) are lowered to router, route, dispatch, expert
  GEMMs and combine kernels under the scenario's routing model (:mod:`._moe`).

The timing model runs lowered models through :mod:`prodigy_sim.simulation`.

See ``docs/lowering.md``.
"""

from prodigy_sim.lowering._attention import attention_kernel as attention_kernel
from prodigy_sim.lowering._attention import decode_splits as decode_splits
from prodigy_sim.lowering._candidates import is_mapped_linear as is_mapped_linear
from prodigy_sim.lowering._candidates import mapping_candidates as mapping_candidates
from prodigy_sim.lowering._candidates import ranked_mappings as ranked_mappings
from prodigy_sim.lowering._candidates import with_mapping as with_mapping
from prodigy_sim.lowering._common import Budgets as Budgets
from prodigy_sim.lowering._common import Kernel as Kernel
from prodigy_sim.lowering._emulate import KERNEL_OUTPUTS as KERNEL_OUTPUTS
from prodigy_sim.lowering._emulate import emulate_kernel as emulate_kernel
from prodigy_sim.lowering._linear import LinearMapping as LinearMapping
from prodigy_sim.lowering._linear import linear_kernel as linear_kernel
from prodigy_sim.lowering._lower import LoweredModel as LoweredModel
from prodigy_sim.lowering._lower import LoweredOp as LoweredOp
from prodigy_sim.lowering._lower import LoweredStage as LoweredStage
from prodigy_sim.lowering._lower import attention_flops as attention_flops
from prodigy_sim.lowering._lower import linear_flops as linear_flops
from prodigy_sim.lowering._lower import linear_op as linear_op
from prodigy_sim.lowering._lower import lower_model as lower_model
from prodigy_sim.lowering._lower import matrix_runs as matrix_runs
from prodigy_sim.lowering._lower import padded_tokens as padded_tokens
from prodigy_sim.lowering._lower import plan_linear as plan_linear
from prodigy_sim.lowering._lower import weight_storage as weight_storage
from prodigy_sim.lowering._lower import with_residency as with_residency
from prodigy_sim.lowering._mapper import DDR_EFFICIENCY as DDR_EFFICIENCY
from prodigy_sim.lowering._mapper import ddr_efficiency as ddr_efficiency
from prodigy_sim.lowering._mapper import linear_cost as linear_cost
from prodigy_sim.lowering._mapper import map_linear as map_linear
from prodigy_sim.lowering._params import AttentionParams as AttentionParams
from prodigy_sim.lowering._params import KernelParams as KernelParams
from prodigy_sim.lowering._params import LinearParams as LinearParams
from prodigy_sim.lowering._params import MoEParams as MoEParams
from prodigy_sim.lowering._params import NormParams as NormParams
from prodigy_sim.lowering._params import RopeKVParams as RopeKVParams
from prodigy_sim.lowering._params import SpqrParams as SpqrParams
from prodigy_sim.lowering._ptq_ops import OnlineSite as OnlineSite
from prodigy_sim.lowering._ptq_ops import OutlierSite as OutlierSite
from prodigy_sim.lowering._ptq_ops import PtqWork as PtqWork
from prodigy_sim.lowering._ptq_ops import emulate_hadamard as emulate_hadamard
from prodigy_sim.lowering._ptq_ops import hadamard_kernel as hadamard_kernel
from prodigy_sim.lowering._ptq_ops import hadamard_vector_ops as hadamard_vector_ops
from prodigy_sim.lowering._residency import RESIDENT_SHARE as RESIDENT_SHARE
from prodigy_sim.lowering._residency import Dataflow as Dataflow
from prodigy_sim.lowering._residency import Residency as Residency
from prodigy_sim.lowering._residency import plan_residency as plan_residency
from prodigy_sim.lowering._spqr import emulate_spqr as emulate_spqr
from prodigy_sim.lowering._spqr import index_storage as index_storage
from prodigy_sim.lowering._spqr import spqr_inputs as spqr_inputs
from prodigy_sim.lowering._spqr import spqr_kernel as spqr_kernel
from prodigy_sim.lowering._spqr import spqr_vector_ops as spqr_vector_ops
from prodigy_sim.lowering._vector import norm_kernel as norm_kernel
from prodigy_sim.lowering._vector import rope_kv_kernel as rope_kv_kernel

__all__ = ["RESIDENT_SHARE", "Dataflow", "Residency", "plan_residency",
    "KERNEL_OUTPUTS", "AttentionParams", "Budgets", "Kernel", "KernelParams", "LinearParams",
    "LoweredModel", "LoweredOp", "LoweredStage", "MoEParams", "NormParams",
    "RopeKVParams", "SpqrParams", "attention_flops", "attention_kernel",
    "decode_splits", "weight_storage", "matrix_runs", "plan_linear", "LinearMapping",
    "linear_cost", "map_linear", "DDR_EFFICIENCY", "ddr_efficiency",
    "is_mapped_linear", "mapping_candidates", "ranked_mappings", "with_mapping",
    "with_residency",
    "emulate_kernel", "linear_flops", "linear_op",
    "linear_kernel", "lower_model", "norm_kernel", "padded_tokens", "rope_kv_kernel",
    "OnlineSite", "OutlierSite", "PtqWork", "emulate_hadamard", "hadamard_kernel",
    "hadamard_vector_ops", "spqr_kernel", "spqr_vector_ops", "spqr_inputs", "emulate_spqr",
    "index_storage",
]
