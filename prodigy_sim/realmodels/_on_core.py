"""Linear layers of a real model run on the functional core, and the same arithmetic in numpy.

Both hooks (``linears(name, x)``, see ``_layers.py``) compute, for ``x`` float32 ``(..., K)``:

- ``A = quantize(x, float8_e4m3fn, block=32)`` and ``W = quantize(w, fmt, block=32)`` (MX, E8M0
  scales along K; the weight once per layer);
- the MMA of the numeric specification (``isa/README.md``): per 128-element chunk of K, in K
  order, the exact sum ``X_c`` of the scaled products, then ``acc <- RNE_fp32(acc + X_c)``;
- the lowered kernel's output store, ``ACC.ST`` to bfloat16 (round to nearest even): the linear
  kernel has no float32 output, bfloat16 is the closest;
- ``+ bias`` in float32 numpy.

:func:`core_linears` runs the lowered program (:func:`prodigy_sim.lowering.linear_kernel`) on
:func:`prodigy_sim.functional.run`; :func:`numpy_linears` uses only numpy and
:func:`prodigy_sim.numerics.quantize`. They must agree to the bit.
"""

from __future__ import annotations

import numpy as np

from prodigy_sim.errors import ConfigError
from prodigy_sim.functional import reference as _npspec
from prodigy_sim.functional.spec import CHUNK
from prodigy_sim.numerics import QuantizedTensor, Storage, quantize
from prodigy_sim.realmodels._weights import ModelWeights

__all__ = ["core_linears", "numpy_linears"]

_ACT = Storage.of("float8_e4m3fn")  # MX: E8M0 scale per 32 elements
_MAX_TILE_ROWS = 64


def _bias(weights: ModelWeights, name: str) -> np.ndarray | None:
    b = weights.tensors.get(name + ".bias")
    return None if b is None else np.asarray(b, dtype=np.float32)


class _Cached:
    def __init__(self, weights: ModelWeights, fmt: str) -> None:
        self.weights = weights
        self.fmt = fmt
        self._w: dict[str, QuantizedTensor] = {}

    def weight(self, name: str) -> QuantizedTensor:
        if name not in self._w:
            w = np.asarray(self.weights[name], dtype=np.float32)
            self._w[name] = quantize(w, Storage.of(self.fmt), axis=-1)
        return self._w[name]


class _CoreLinears(_Cached):
    def __init__(self, weights: ModelWeights, fmt: str, cores: int) -> None:
        super().__init__(weights, fmt)
        self.cores = cores

    def __call__(self, name: str, x: np.ndarray) -> np.ndarray:
        from prodigy_sim.functional import run
        from prodigy_sim.lowering import LinearMapping, linear_kernel

        x = np.asarray(x, dtype=np.float32)
        lead, k = x.shape[:-1], x.shape[-1]
        x2 = x.reshape(-1, k)
        m = x2.shape[0]
        mp = m if m <= _MAX_TILE_ROWS else -(-m // _MAX_TILE_ROWS) * _MAX_TILE_ROWS
        if mp != m:  # zero rows: quantized per row, so they change nothing in the others
            x2 = np.concatenate([x2, np.zeros((mp - m, k), dtype=np.float32)])
        qw = self.weight(name)
        n = qw.shape[0]
        mapping = LinearMapping.simple(mp, n, k, self.cores)
        kern = linear_kernel(name, mp, n, k, weight=Storage.of(self.fmt), cores=self.cores,
                             mapping=mapping, epilogue="store")
        qx = quantize(x2, _ACT, axis=-1)
        state = run(kern.program, ddr={"X": qx, "W": qw}, cores=self.cores)
        y = np.asarray(state.tensor("Y"), dtype=np.float32)[:m]
        b = _bias(self.weights, name)
        if b is not None:
            y = y + b
        return y.reshape(*lead, n)


def core_linears(weights: ModelWeights, fmt: str = "tai4", cores: int = 2) -> _CoreLinears:
    """A ``linears`` hook running every linear layer's lowered program on the functional core
    (module docstring): FP8 E4M3 activations and ``fmt`` weights, both MX (E8M0 / 32 along K)."""
    if cores < 1:
        raise ConfigError(f"'cores' must be >= 1 (got {cores})")
    return _CoreLinears(weights, fmt, cores)


# ---- plain numpy ------------------------------------------------------------------------------
# The MMA and bfloat16 rounding of the numeric specification in numpy live in
# prodigy_sim.functional.reference, shared with the kernel emulation (lowering.emulate_kernel).

_scaled_f64 = _npspec.scaled_f64
_chunk_exact = _npspec.chunk_exact
_rne32_of_sum = _npspec.rne32_of_sum
_bf16_rne = _npspec.bf16


class _NumpyLinears(_Cached):
    def __init__(self, weights: ModelWeights, fmt: str) -> None:
        super().__init__(weights, fmt)
        self._wf: dict[str, np.ndarray] = {}

    def __call__(self, name: str, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        lead, k = x.shape[:-1], x.shape[-1]
        a = _scaled_f64(quantize(x.reshape(-1, k), _ACT, axis=-1))
        if name not in self._wf:
            self._wf[name] = _scaled_f64(self.weight(name))
        w = self._wf[name]
        acc = _npspec.mma(np.zeros((a.shape[0], w.shape[0]), dtype=np.float32), a, w,
                          chunk=CHUNK)
        if np.isnan(acc).any():
            raise ConfigError("numpy_linears: NaN accumulator")
        y = _bf16_rne(acc)
        b = _bias(self.weights, name)
        if b is not None:
            y = y + b
        return y.reshape(*lead, w.shape[0])


def numpy_linears(weights: ModelWeights, fmt: str = "tai4") -> _NumpyLinears:
    """The same hook as :func:`core_linears` in plain numpy (module docstring)."""
    return _NumpyLinears(weights, fmt)
