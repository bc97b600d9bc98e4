"""Shared pieces of the hardware models: the frozen base block and immutable mapping types.

Every hardware block is a frozen pydantic model that refuses unknown fields, so a configuration is a
value: it can be shared between simulations, compared and printed, never mutated in place.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, PlainSerializer

if TYPE_CHECKING:
    from prodigy_sim.numerics import FormatSpec

__all__ = ["Block", "FrozenMap", "FrozenFloatMap", "FrozenIntMap", "element_bits", "format_name",
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

_HARDWARE_ONLY_BITS: Mapping[str, int] = MappingProxyType({"float64": 64, "tf32": 32})
"""Widths of the element formats the units know that are not number formats of numerics
(float64; tf32, stored in 32 bits with 19 significant bits). Every other width comes from its
:class:`~prodigy_sim.numerics.FormatSpec`."""


def element_bits(name: str | FormatSpec) -> int:
    """Storage width in bits of one element of ``name`` (a numerics format, float64 or tf32)."""
    if not isinstance(name, str):
        return name.bits
    if name in _HARDWARE_ONLY_BITS:
        return _HARDWARE_ONLY_BITS[name]
    from prodigy_sim.numerics import get_format  # numpy: imported when a width is needed

    return get_format(name).bits


def format_name(fmt: str | FormatSpec) -> str:
    """The name a hardware table keys ``fmt`` by."""
    return fmt if isinstance(fmt, str) else fmt.name
