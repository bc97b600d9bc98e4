"""Shared pieces of the hardware models: the frozen base block and immutable mapping types.

Every hardware block is a frozen pydantic model that refuses unknown fields, so a configuration is a
value: it can be shared between simulations, compared and printed, never mutated in place.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, PlainSerializer

__all__ = ["Block", "FrozenMap", "FrozenFloatMap", "FrozenIntMap", "ELEMENT_BITS",
           "KIB", "MIB", "GIB", "TIB", "MAX_CYCLES", "MAX_BYTES"]

KIB = 1 << 10
MIB = 1 << 20
GIB = 1 << 30
TIB = 1 << 40

MAX_CYCLES = 1_000_000
"""Largest latency or issue interval a field accepts (cycles): a larger one is a typo, and every
value that validates must simulate (cycles stay far inside 64-bit integers)."""
MAX_BYTES = 1 << 60
"""Largest capacity a field accepts (bytes, 1 EiB)."""


class Block(BaseModel):
    """Base of every hardware block: frozen, unknown fields refused, validated on construction."""

    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)


class FrozenMap(Mapping):
    """A read-only, hashable mapping (so a configuration can be a cache key)."""

    __slots__ = ("_data",)

    def __init__(self, data: Mapping) -> None:
        self._data = dict(data)

    def __getitem__(self, key):
        return self._data[key]

    def __iter__(self):
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __hash__(self) -> int:
        return hash(frozenset(self._data.items()))

    def __repr__(self) -> str:
        return repr(self._data)


def _freeze(mapping: Mapping) -> FrozenMap:
    return FrozenMap(mapping)


FrozenFloatMap = Annotated[
    Mapping[str, float], AfterValidator(_freeze), PlainSerializer(dict, return_type=dict)
]
"""A read-only ``str -> float`` mapping field (serialized as a plain dict)."""

FrozenIntMap = Annotated[
    Mapping[str, int], AfterValidator(_freeze), PlainSerializer(dict, return_type=dict)
]
"""A read-only ``str -> int`` mapping field (serialized as a plain dict)."""

ELEMENT_BITS: Mapping[str, int] = MappingProxyType({
    "float64": 64,
    "float32": 32,
    "tf32": 32,  # stored in 32 bits; 19 significant bits
    "bfloat16": 16,
    "float8_e4m3fn": 8,
    "float8_e5m2": 8,
    "int8": 8,
    "float4_e2m1fn": 4,
    "tai4": 4,
    "tai2": 2,
})
"""Storage width in bits of each element format the hardware knows (ml_dtypes-style names)."""
