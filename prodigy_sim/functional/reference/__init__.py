"""An independent numpy reference of the numeric specification (``isa/README.md``), beside the
functional core it checks.

It shares with the core only the specification's constants (:mod:`prodigy_sim.functional.spec`)
and the numerics codecs (quantize, the bfloat16 codec) the specification names; its algorithms
are its own (vectorized numpy, float64 GEMMs with an exactness proof, an integer
superaccumulator). :func:`prodigy_sim.lowering.emulate_kernel` builds whole lowered kernels from
it. See :mod:`._spec` for each function.
"""

from prodigy_sim.functional.reference._spec import CHUNK as CHUNK
from prodigy_sim.functional.reference._spec import bf16 as bf16
from prodigy_sim.functional.reference._spec import canonical as canonical
from prodigy_sim.functional.reference._spec import chunk_exact as chunk_exact
from prodigy_sim.functional.reference._spec import chunk_exact_mask as chunk_exact_mask
from prodigy_sim.functional.reference._spec import dequant_f32 as dequant_f32
from prodigy_sim.functional.reference._spec import exp32 as exp32
from prodigy_sim.functional.reference._spec import gelu32 as gelu32
from prodigy_sim.functional.reference._spec import index_values as index_values
from prodigy_sim.functional.reference._spec import lsb_exp as lsb_exp
from prodigy_sim.functional.reference._spec import mma as mma
from prodigy_sim.functional.reference._spec import rne32_of_sum as rne32_of_sum
from prodigy_sim.functional.reference._spec import scaled_f64 as scaled_f64
from prodigy_sim.functional.reference._spec import silu32 as silu32
from prodigy_sim.functional.reference._spec import vfma as vfma
from prodigy_sim.functional.reference._spec import vgather as vgather
from prodigy_sim.functional.reference._spec import vmax as vmax
from prodigy_sim.functional.reference._spec import vrcp as vrcp
from prodigy_sim.functional.reference._spec import vrmax as vrmax
from prodigy_sim.functional.reference._spec import vrsqrt as vrsqrt
from prodigy_sim.functional.reference._spec import vrsum as vrsum
from prodigy_sim.functional.reference._spec import vscatadd as vscatadd

__all__ = ["CHUNK", "bf16", "canonical", "chunk_exact", "chunk_exact_mask", "dequant_f32",
           "exp32", "gelu32", "index_values", "lsb_exp", "mma", "rne32_of_sum", "scaled_f64",
           "silu32", "vfma", "vgather", "vmax", "vrcp", "vrmax", "vrsqrt", "vrsum", "vscatadd"]
