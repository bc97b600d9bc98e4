"""The constants of the numeric specification (``isa/README.md``, *Numeric specification*),
stated once.

The functional core (:mod:`prodigy_sim.functional`) and its independent numpy reference
(:mod:`prodigy_sim.functional.reference`) implement the specification separately - different
algorithms, so one can check the other - but both take every constant from here. Values are
the decimal literals of the specification; each is rounded once to float32 where the algorithms
use it (``np.float32(LOG2E)`` = 1.44269502162933349609375).
"""

from __future__ import annotations

__all__ = [
    "CHUNK", "CANONICAL_NAN32", "CANONICAL_NAN_BF16", "LOG2E", "RNE_MAGIC", "LN2_HI", "LN2_LO",
    "EXP_COEFFS", "EXP_OVERFLOW", "EXP_UNDERFLOW", "SILU_SWITCH", "ERFC_COEFFS", "SQRT1_2",
    "GELU_SATURATION", "GELU_SPLIT_MASK",
]

CHUNK = 128
"""MMA accumulation chunk along K (elements): each chunk's products are summed exactly, then
``acc <- RNE_fp32(acc + chunk sum)``."""

CANONICAL_NAN32 = 0x7FC00000
"""The float32 bits every NaN result is written as."""
CANONICAL_NAN_BF16 = 0x7FC0
"""The bfloat16 bits of a NaN written to bfloat16 storage."""

# ---- EXP: Cody-Waite reduction + degree-5 polynomial ------------------------------------------
LOG2E = 1.4426950408889634
"""log2(e): ``n = rne_int(x * LOG2E)``."""
RNE_MAGIC = 12582912.0
"""1.5 * 2^23: ``(t + RNE_MAGIC) - RNE_MAGIC`` rounds a float32 ``t`` to an integer, ties even."""
LN2_HI = 0.693359375
"""High part of ln 2 (exact in few bits): ``r = (x - n*LN2_HI) - n*LN2_LO``."""
LN2_LO = -2.12194440e-4
"""Low part of ln 2."""
EXP_COEFFS = (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2,
              1.6666665459e-1, 5.0000001201e-1)
"""P0..P5 of ``p = ((((P0*r + P1)*r + P2)*r + P3)*r + P4)*r + P5``."""
EXP_OVERFLOW = 89.0
"""``x >= EXP_OVERFLOW`` -> +Inf."""
EXP_UNDERFLOW = -104.0
"""``x <= EXP_UNDERFLOW`` -> +0."""

# ---- SiLU, GELU --------------------------------------------------------------------------------
SILU_SWITCH = -20.0
"""SiLU is ``x / (1 + exp(-x))`` above, ``x * exp(x)`` at or below."""
ERFC_COEFFS = (0.17087277, -0.82215223, 1.48851587, -1.13520398, 0.27886807, -0.18628806,
               0.09678418, 0.37409196, 1.00002368, -1.26551223)
"""Numerical Recipes' Chebyshev erfc coefficients E0..E9, innermost (highest power of t)
first."""
SQRT1_2 = 0.7071067811865476
"""1 / sqrt(2): ``u = |x| * SQRT1_2``."""
GELU_SATURATION = 15.5
"""``|x| >= GELU_SATURATION``: Phi(x) is exactly 1 (x > 0) or 0 (x < 0)."""
GELU_SPLIT_MASK = 0xFFFFF000
"""``xh`` = ``|x|`` with its 12 low significand bits cleared (bits & GELU_SPLIT_MASK)."""
