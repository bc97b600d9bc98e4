"""The bit-exact functional core: MMA, vector operations, and a program executor.

- :func:`matmul`: ``acc + A . W^T`` of quantized operands by the MMA specification (chunked
  exact sums, one FP32 round-to-nearest-even per chunk of 128 along K).
- Vector kernels (IEEE float32 per operation; EXP / GELU / SiLU by the named float32 algorithms
  of the specification): :func:`vexp`, :func:`vgelu`, :func:`vsilu`, :func:`vfma`, ...
- :func:`run`: execute a :class:`~prodigy_sim.isa.Program` on an architectural state held in
  numpy arrays (DDR bytes, per-core scratchpads, accumulators, scalar registers);
  :func:`ddr_image` places tensors in the program's DDR layout.

The specification these implement is ``isa/README.md``, section *Numeric specification*.
"""

from prodigy_sim.functional._executor import CoreState as CoreState
from prodigy_sim.functional._executor import MachineState as MachineState
from prodigy_sim.functional._executor import ddr_image as ddr_image
from prodigy_sim.functional._executor import run as run
from prodigy_sim.functional._matmul import DEFAULT_CHUNK as DEFAULT_CHUNK
from prodigy_sim.functional._matmul import matmul as matmul
from prodigy_sim.functional._matmul import matmul_stats as matmul_stats
from prodigy_sim.functional._mma import MmaStats as MmaStats
from prodigy_sim.functional._storage import quantize_decl as quantize_decl
from prodigy_sim.functional._vector import canonical as canonical
from prodigy_sim.functional._vector import exp32 as exp32
from prodigy_sim.functional._vector import from_bf16 as from_bf16
from prodigy_sim.functional._vector import gelu32 as gelu32
from prodigy_sim.functional._vector import silu32 as silu32
from prodigy_sim.functional._vector import to_bf16 as to_bf16
from prodigy_sim.functional._vector import vexp as vexp
from prodigy_sim.functional._vector import vfma as vfma
from prodigy_sim.functional._vector import vgelu as vgelu
from prodigy_sim.functional._vector import vmax as vmax
from prodigy_sim.functional._vector import vmin as vmin
from prodigy_sim.functional._vector import vrcp as vrcp
from prodigy_sim.functional._vector import vrmax as vrmax
from prodigy_sim.functional._vector import vrsqrt as vrsqrt
from prodigy_sim.functional._vector import vrsum as vrsum
from prodigy_sim.functional._vector import vsilu as vsilu

__all__ = [
    "DEFAULT_CHUNK", "CoreState", "MachineState", "MmaStats", "canonical", "ddr_image", "exp32",
    "from_bf16", "gelu32", "matmul", "matmul_stats", "quantize_decl", "run", "silu32", "to_bf16",
    "vexp", "vfma", "vgelu", "vmax", "vmin", "vrcp", "vrmax", "vrsqrt", "vrsum", "vsilu",
]
