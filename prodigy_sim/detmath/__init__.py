"""Deterministic arithmetic: the same bits on every host, thread count and BLAS build.

The accuracy path (``prodigy_sim.realmodels``) and the PTQ algorithms (``prodigy_sim.ptq``) use
these instead of BLAS, LAPACK and numpy's transcendental functions, whose results depend on the
BLAS kernel (OpenBLAS picks one per CPU), the thread count and numpy's SIMD dispatch:

- :func:`split_matmul`, :func:`matmul_f32`, :func:`bmm_f32`, :func:`gram` (float32 operands):
  an error-free split into integer slices whose BLAS products are exact, so the BLAS cannot
  change a bit; :func:`matmul` (float64 operands): summed in one fixed order (Numba, no
  fast-math);
- :func:`cholesky`, :func:`lower_inverse`: float64 factorizations in a fixed order;
- :func:`exp_f32`, :func:`silu_f32`, :func:`gelu_f32`, :func:`cos_f32`, :func:`sin_f32`:
  correctly rounded float32 results (a float64 evaluation checked by Ziv's rounding test, the
  rare hard cases recomputed exactly with ``decimal``).

numpy's elementwise arithmetic (one IEEE operation per ufunc call) and its reductions (pairwise
summation, a fixed algorithm) are deterministic already and are used as they are.
"""

from prodigy_sim.detmath._gemm import SplitWeight as SplitWeight
from prodigy_sim.detmath._gemm import bmm_f32 as bmm_f32
from prodigy_sim.detmath._gemm import gram as gram
from prodigy_sim.detmath._gemm import matmul as matmul
from prodigy_sim.detmath._gemm import matmul_f32 as matmul_f32
from prodigy_sim.detmath._gemm import split_matmul as split_matmul
from prodigy_sim.detmath._gemm import split_weight as split_weight
from prodigy_sim.detmath._linalg import cholesky as cholesky
from prodigy_sim.detmath._linalg import lower_inverse as lower_inverse
from prodigy_sim.detmath._round import cos_f32 as cos_f32
from prodigy_sim.detmath._round import decimal_to_f32 as decimal_to_f32
from prodigy_sim.detmath._round import exp_decimal as exp_decimal
from prodigy_sim.detmath._round import exp_f32 as exp_f32
from prodigy_sim.detmath._round import gelu_f32 as gelu_f32
from prodigy_sim.detmath._round import ln_decimal as ln_decimal
from prodigy_sim.detmath._round import silu_f32 as silu_f32
from prodigy_sim.detmath._round import sin_f32 as sin_f32

__all__ = ["SplitWeight", "bmm_f32", "cholesky", "cos_f32", "decimal_to_f32", "exp_decimal",
           "exp_f32", "gelu_f32", "gram", "ln_decimal", "lower_inverse", "matmul", "matmul_f32",
           "silu_f32", "sin_f32", "split_matmul", "split_weight"]
