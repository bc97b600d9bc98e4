"""Loaded weights under the model card's stable names, and the checkpoint/card shape check.

Every loader maps checkpoint tensor names to the names of :meth:`ModelCard.tensors` and hands the
result to :func:`check_tensors`, which refuses a checkpoint with a missing tensor, an unexpected
tensor or a wrong shape, naming the tensor, the expected and the found shape, and the file.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from prodigy_sim.detmath import SplitWeight, split_weight
from prodigy_sim.errors import ModelFileError
from prodigy_sim.models import ModelCard

__all__ = ["ModelWeights", "check_tensors", "check_config"]


@dataclass(frozen=True, eq=False)
class ModelWeights:
    """float32 weights of one model, keyed by the card's stable tensor names.

    Linear weights are ``(N, K)`` = ``(out_features, in_features)``; ``y = x @ W.T (+ bias)``.
    Arrays are read-only (the loaders cache them).
    """

    card: ModelCard
    tensors: dict[str, np.ndarray]
    source: Path
    _splits: dict[str, SplitWeight] = field(default_factory=dict, init=False, repr=False)

    def __getitem__(self, name: str) -> np.ndarray:
        return self.tensors[name]

    def split(self, name: str) -> SplitWeight:
        """Tensor ``name`` ``(N, K)`` cut for :func:`prodigy_sim.detmath.matmul_f32`, once per
        object (kept: meant for a weight used on every call, such as the LM head, whose split
        costs seconds; the arrays are read-only, so it stays valid)."""
        sw = self._splits.get(name)
        if sw is None:
            sw = self._splits[name] = split_weight(self.tensors[name])
        return sw

    def linear_names(self) -> list[str]:
        """Names of the blocks' linear weights (the tensors that get quantized), in card order."""
        return [t.name for t in self.card.tensors() if t.is_linear]


def check_tensors(found: dict[str, tuple[int, ...]], card: ModelCard, source: Path,
                  checkpoint_names: dict[str, str] | None = None) -> None:
    """Raise :class:`ModelFileError` unless ``found`` (stable name -> shape) is exactly the card's
    tensor list with the card's shapes.

    ``checkpoint_names`` (stable -> checkpoint name) lets the message name the tensor as the file
    spells it too.
    """
    names = checkpoint_names or {}

    def label(stable: str) -> str:
        raw = names.get(stable)
        return f"{stable!r} (checkpoint name {raw!r})" if raw and raw != stable else repr(stable)

    expected = {t.name: tuple(t.shape) for t in card.tensors()}
    for name, shape in expected.items():
        if name in found and tuple(found[name]) != shape:
            raise ModelFileError(f"{source}: tensor {label(name)} has shape "
                                 f"{tuple(found[name])}, expected {shape} (model card "
                                 f"{card.name!r})")
    unexpected = [n for n in found if n not in expected]
    if unexpected:
        raise ModelFileError(f"{source}: unexpected tensor {label(unexpected[0])} with shape "
                             f"{tuple(found[unexpected[0]])}, not in model card {card.name!r}")
    missing = [n for n in expected if n not in found]
    if missing:
        raise ModelFileError(f"{source}: tensor {label(missing[0])} of model card {card.name!r} "
                             f"is missing (expected shape {expected[missing[0]]}); "
                             f"{len(missing)} missing in total")


def check_config(values: dict[str, object], card: ModelCard, source: Path) -> None:
    """Raise :class:`ModelFileError` if a checkpoint hyperparameter differs from the card.

    ``values`` maps card field names to the checkpoint's value (None = not given, skipped).
    """
    for key, got in values.items():
        if got is None:
            continue
        want = getattr(card, key)
        if isinstance(want, float):
            if isinstance(got, bool) or not isinstance(got, numbers.Real):
                raise ModelFileError(f"{source}: checkpoint says {key} = {_short(got)}, not a "
                                     f"number (model card {card.name!r} says {want!r})")
            same = abs(float(got) - want) <= 1e-6 * abs(want)
        else:
            same = type(got) is type(want) and got == want
        if not same:
            raise ModelFileError(f"{source}: checkpoint says {key} = {_short(got)}, model card "
                                 f"{card.name!r} says {want!r}")


def _short(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit - 3]}..."


def read_only(tensors: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The same arrays, contiguous float32 and marked read-only."""
    out = {}
    for name, arr in tensors.items():
        a = np.ascontiguousarray(arr, dtype=np.float32)
        a.flags.writeable = False
        out[name] = a
    return out
