"""Tools for property tests of formats, kernels and programs: Hypothesis strategies and exact
oracles (the ones the project's own tests use).

Strategies (:mod:`prodigy_sim.testing.strategies`): built-in and random valid user formats
(:func:`formats`, :func:`user_formats`), float32 values near a format's rounding points
(:func:`float32_near`) or anywhere (:func:`float32_any`, :func:`float32_arrays` with special
values), stored tensors and quantized tensors with block scales and N:M sparsity
(:func:`storages`, :func:`quantized_tensors`), well-formed ISA programs from the opcode table
(:func:`programs`), and hardware configurations within their valid ranges
(:func:`chip_configs`).

Oracles, written from the written rules in plain Python with exact ``fractions.Fraction``
arithmetic, sharing no code with the package they check:

- :mod:`prodigy_sim.testing.numerics_oracle`: :func:`exact_values` (every code of a format as
  an exact rational, or NaN / +-Inf / a signed zero), :func:`exact_encode` (the code a float
  rounds to), :func:`exact_mx_block` (OCP MX quantization of one block).
- :mod:`prodigy_sim.testing.core_oracle`: :func:`reference_mma` (the MMA of the numeric
  specification, element by element: exact products, exact chunk sums of 128, each rounded
  once to float32 and added to the accumulator), :func:`rne32` (an exact rational rounded to
  float32), and the vector operations one scalar at a time.

A property test of your own kernel in a few lines (docs/testing.md)::

    from hypothesis import given
    from prodigy_sim.testing import exact_encode, float32_near, formats
    from hypothesis import strategies as st

    @given(st.data())
    def test_my_rounding(data):
        spec = data.draw(formats())
        x = data.draw(float32_near(spec))
        assert my_encode(x, spec) == exact_encode(x, spec, spec.overflow)
"""

from prodigy_sim.testing.core_oracle import ref_matmul as reference_mma
from prodigy_sim.testing.core_oracle import rne32 as rne32
from prodigy_sim.testing.numerics_oracle import ref_encode as exact_encode
from prodigy_sim.testing.numerics_oracle import ref_mx_block as exact_mx_block
from prodigy_sim.testing.numerics_oracle import ref_values as exact_values
from prodigy_sim.testing.strategies import chip_configs as chip_configs
from prodigy_sim.testing.strategies import float32_any as float32_any
from prodigy_sim.testing.strategies import float32_arrays as float32_arrays
from prodigy_sim.testing.strategies import float32_near as float32_near
from prodigy_sim.testing.strategies import format_names as format_names
from prodigy_sim.testing.strategies import formats as formats
from prodigy_sim.testing.strategies import narrow_format_names as narrow_format_names
from prodigy_sim.testing.strategies import programs as programs
from prodigy_sim.testing.strategies import quantized_tensors as quantized_tensors
from prodigy_sim.testing.strategies import storages as storages
from prodigy_sim.testing.strategies import user_formats as user_formats

__all__ = ["chip_configs", "exact_encode", "exact_mx_block", "exact_values", "float32_any",
           "float32_arrays", "float32_near", "format_names", "formats", "narrow_format_names",
           "programs", "quantized_tensors", "reference_mma", "rne32", "storages",
           "user_formats"]
