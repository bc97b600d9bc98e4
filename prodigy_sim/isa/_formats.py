"""Number formats as the ISA sees them: declarations' storage, and the opcode table's format groups.

A declaration's ``fmt=``, ``block=``, ``scale=`` and ``sparsity=GROUP:KEPT`` become one
:class:`~prodigy_sim.numerics.Storage` (numerics owns the formats, scale kinds and the byte
layout; see its module). ``fmt`` is a built-in format name or a format file (``.yaml``/``.json``;
a relative path is taken relative to the program file). ISA conventions on top of numerics:
``block=0`` with a scale means one scale for the whole tensor, and without one (the default for
the wide formats float32/bfloat16/float16) no scale at all.

Byte layout of a tensor or tile of shape (R, C) (DDR and scratchpad alike)::

    base -> | codes: R x row_code_bytes | scales: R x row_scale_bytes | metadata: R x row_meta |

then a per-tensor scale, if any (``Storage.row_bytes``).

Format groups (``format_groups`` in ``isa/opcodes.yaml``) say which declared formats an operand
takes: a list of names, or a rule ``{max_bits: N, wide: true|false, formats: [...]}`` that admits
any format of at most ``N`` bits (so a user's own format runs with no table change), wide
formats, and the listed names.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prodigy_sim.errors import ConfigError
from prodigy_sim.numerics import FormatSpec, Sparsity, Storage, get_format

__all__ = ["FormatGroup", "isa_storage", "resolve_format", "SPARSITY_GROUPS"]

SPARSITY_GROUPS = (2, 4, 8, 16)
"""Sparsity group sizes the ISA's metadata encodes (``sparsity=GROUP:KEPT``)."""


def resolve_format(fmt: str | FormatSpec, base: Path | None = None) -> FormatSpec:
    """The format named ``fmt``: a :class:`FormatSpec`, a built-in name, or a format file
    (relative paths relative to ``base``, the program file's folder, when it exists there)."""
    if isinstance(fmt, FormatSpec):
        return fmt
    if not isinstance(fmt, str):
        raise ConfigError(f"fmt must be a format name or file (got {fmt!r})")
    path = Path(fmt)
    if base is not None and path.suffix.lower() in (".yaml", ".yml", ".json") \
            and not path.is_absolute() and (base / path).is_file():
        return get_format(str(base / path))
    return get_format(fmt)


def isa_storage(fmt: str | FormatSpec | Storage, block: int | None = None,
                scale: str | None = None, sparsity: tuple[int, int] | Sparsity | None = None,
                *, base: Path | None = None) -> Storage:
    """A declaration's :class:`Storage` from its attributes, with the ISA's conventions (see the
    module docstring); ``sparsity`` is ``(group, kept)``. Raises ConfigError naming the
    attribute."""
    if isinstance(fmt, Storage):
        return fmt
    spec = resolve_format(fmt, base)
    if sparsity is not None and not isinstance(sparsity, Sparsity):
        if (not isinstance(sparsity, tuple) or len(sparsity) != 2
                or not all(isinstance(v, int) for v in sparsity)):
            raise ConfigError(f"sparsity must be GROUP:KEPT (got {sparsity!r})")
        group, kept = sparsity
        if group not in SPARSITY_GROUPS or not 1 <= kept < group:
            raise ConfigError(f"sparsity must be GROUP:KEPT with GROUP in {SPARSITY_GROUPS} and "
                              f"1 <= KEPT < GROUP (got {group}:{kept})")
        sparsity = Sparsity(group=group, kept=kept)
    if scale is None:
        scale = Storage.of(spec).scale.value
    if scale == "none" and block not in (None, 0):
        raise ConfigError(f"block={block} needs a scale format (got scale=none)")
    return Storage.of(spec, block="default" if block is None else block, scale=scale,
                      sparsity=sparsity)


@dataclass(frozen=True)
class FormatGroup:
    """Formats an operand admits: the ``names`` listed, every format of at most ``max_bits``
    bits, and (``wide``) every wide format."""

    name: str
    names: tuple[str, ...] = ()
    max_bits: int = 0
    wide: bool = False

    @classmethod
    def from_yaml(cls, name: str, raw: Any) -> FormatGroup:
        if isinstance(raw, list):
            return cls(name, tuple(str(v) for v in raw))
        if isinstance(raw, dict) and set(raw) <= {"formats", "max_bits", "wide"}:
            return cls(name, tuple(str(v) for v in raw.get("formats") or ()),
                       int(raw.get("max_bits", 0)), bool(raw.get("wide", False)))
        raise ConfigError(f"opcode table: format group {name!r} must be a list of names or a "
                          f"mapping of formats/max_bits/wide (got {raw!r})")

    def admits(self, spec: FormatSpec) -> bool:
        return (spec.name in self.names or (not spec.wide and spec.bits <= self.max_bits)
                or (self.wide and spec.wide))

    def describe(self) -> str:
        """Human-readable: e.g. ``any format of <= 8 bits, bfloat16``."""
        parts = []
        if self.max_bits:
            parts.append(f"any format of <= {self.max_bits} bits")
        if self.wide:
            parts.append("any wide float (float32, bfloat16, float16)")
        parts += list(self.names)
        return ", ".join(parts)
