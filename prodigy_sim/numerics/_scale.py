"""How one block scale is stored: :class:`ScaleKind` (the table is in :mod:`._storage`).

A module of its own, without numpy or pydantic, so that listing the scale kinds (a command's
``--help``) loads nothing heavy.
"""

from __future__ import annotations

from enum import Enum

from prodigy_sim.errors import ConfigError

__all__ = ["ScaleKind", "scale_kind"]


class ScaleKind(str, Enum):
    """How one block scale is stored (see the module docstring)."""

    E8M0 = "e8m0"
    E4M3 = "e4m3"
    FP32 = "fp32"
    ABSMEAN = "absmean"
    NONE = "none"

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)

    def __hash__(self) -> int:
        return hash(self.value)  # equal to its string, so hash like it

    @property
    def code_format(self) -> str | None:
        """Name of the numerics format a stored scale is a code of (None: float32 or none)."""
        return _SCALE_CODE_FORMAT[self]

    @property
    def nbytes(self) -> int:
        """Bytes of one stored scale."""
        return _SCALE_BYTES[self]


_SCALE_CODE_FORMAT = {ScaleKind.E8M0: "float8_e8m0fnu", ScaleKind.E4M3: "float8_e4m3fn",
                      ScaleKind.FP32: None, ScaleKind.ABSMEAN: None, ScaleKind.NONE: None}
_SCALE_BYTES = {ScaleKind.E8M0: 1, ScaleKind.E4M3: 1, ScaleKind.FP32: 4, ScaleKind.ABSMEAN: 4,
                ScaleKind.NONE: 0}


def scale_kind(value: ScaleKind | str) -> ScaleKind:
    """``value`` as a :class:`ScaleKind` (ConfigError naming the choices otherwise)."""
    try:
        return ScaleKind(value)
    except ValueError:
        choices = ", ".join(k.value for k in ScaleKind)
        raise ConfigError(f"'scale' must be one of {choices} (got {value!r})") from None
