"""prodigy-sim: a cycle-approximate simulator of the Tachyum Prodigy AI unit.

Subpackages, by concept:

- :mod:`prodigy_sim.numerics` - number formats (FP8, TAI, MX FP4, INT, ternary), codecs, block
  scales, structured sparsity, packing and footprint.
- :mod:`prodigy_sim.errors` - the exception hierarchy.
"""

from prodigy_sim.errors import ProdigySimError as ProdigySimError

__version__ = "0.1.0"
__all__ = ["ProdigySimError", "__version__"]
