"""Hypothesis strategies shared by the numeric tests."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from prodigy_sim.numerics import builtin_formats


def narrow_format_names():
    """Built-in formats of at most 8 bits (the ones with listed codes)."""
    return sorted(n for n, s in builtin_formats().items() if not s.wide)


def format_names():
    return st.sampled_from(narrow_format_names())


def float32_any():
    """Any float32 bit pattern: every exponent, subnormals, +-0, +-Inf, NaNs."""
    return st.integers(0, 2**32 - 1).map(lambda b: float(np.uint32(b).view(np.float32)))


def float32_near(spec):
    """float32 values near the format's values and rounding midpoints (where rounding decides)."""
    vals = spec.finite_values
    mids = (vals[:-1] + vals[1:]) / 2
    points = np.concatenate([vals, mids, [vals[-1] * 1.25, vals[-1] * 2]])
    points = points[points <= float(np.finfo(np.float32).max)]
    base = st.sampled_from([float(p) for p in points])
    ulps = st.integers(-3, 3)
    sign = st.sampled_from([1.0, -1.0])

    def nudge(args):
        p, k, s = args
        x = np.float32(p)
        for _ in range(abs(k)):
            x = np.nextafter(x, np.float32(np.inf if k > 0 else -np.inf), dtype=np.float32)
        return float(x) * s

    return st.tuples(base, ulps, sign).map(nudge)


def float32_arrays(min_size=1, max_size=64):
    return st.lists(
        st.floats(width=32, allow_nan=False, allow_infinity=False, min_value=-1e6,
                  max_value=1e6),
        min_size=min_size, max_size=max_size,
    ).map(lambda v: np.array(v, dtype=np.float32))
