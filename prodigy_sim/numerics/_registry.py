"""The built-in formats, and loading user formats from YAML or JSON files.

Built-in formats are themselves data: one YAML file per format in ``prodigy_sim/numerics/formats``.
Nothing is registered globally; functions that take a format accept a :class:`FormatSpec` (for
example one loaded with :func:`load_format`) or the name of a built-in one.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from pathlib import Path

import yaml
from pydantic import ValidationError

from prodigy_sim._datafile import read_mapping
from prodigy_sim.errors import FormatError, config_error_from_validation
from prodigy_sim.numerics._spec import FormatSpec

__all__ = ["FORMAT_ALIASES", "builtin_formats", "format_names", "get_format", "load_format",
           "parse_format"]

FORMAT_ALIASES = {"fp8": "float8_e4m3fn", "fp8_e4m3": "float8_e4m3fn", "fp8_e5m2": "float8_e5m2",
                  "fp4": "float4_e2m1fn", "bf16": "bfloat16", "fp16": "float16",
                  "fp32": "float32"}
"""Short names accepted wherever a built-in format name is (``fp8`` = OCP E4M3)."""


def parse_format(data: object, *, source: str = "<format>") -> FormatSpec:
    """Validate a mapping (parsed YAML/JSON) as a :class:`FormatSpec`; errors name the field."""
    if not isinstance(data, dict):
        raise FormatError(f"{source}: a format must be a mapping of fields (got "
                          f"{type(data).__name__})")
    try:
        return FormatSpec.model_validate(data)
    except ValidationError as err:
        raise config_error_from_validation(err, source=source, cls=FormatError) from None


def load_format(path: str | Path) -> FormatSpec:
    """Read a format definition from a ``.yaml``/``.yml`` or ``.json`` file (the spec remembers
    the path as its :attr:`~FormatSpec.ref`)."""
    spec = parse_format(read_mapping(path, what="format", cls=FormatError), source=str(path))
    return spec.with_source(str(path))


@lru_cache(maxsize=1)
def builtin_formats() -> dict[str, FormatSpec]:
    """All built-in formats by name (read once from the package's format files)."""
    out: dict[str, FormatSpec] = {}
    folder = resources.files("prodigy_sim.numerics") / "formats"
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".yaml"):
            spec = parse_format(yaml.safe_load(entry.read_text(encoding="utf-8")),
                                source=f"built-in {entry.name}")
            out[spec.name] = spec
    return out


def format_names() -> list[str]:
    """Names of the built-in formats, sorted."""
    return sorted(builtin_formats())


def get_format(fmt: FormatSpec | str) -> FormatSpec:
    """A :class:`FormatSpec` as given, or the built-in format of that name."""
    if isinstance(fmt, FormatSpec):
        return fmt
    formats = builtin_formats()
    if isinstance(fmt, str):
        fmt = FORMAT_ALIASES.get(fmt.lower(), fmt)
    if isinstance(fmt, str) and fmt in formats:
        return formats[fmt]
    if isinstance(fmt, str) and Path(fmt).suffix.lower() in (".yaml", ".yml", ".json"):
        return load_format(fmt)
    raise FormatError(f"unknown format {fmt!r}; built-in formats: {', '.join(format_names())} "
                      f"(aliases: {', '.join(sorted(FORMAT_ALIASES))}; or give a .yaml/.json "
                      "format file)")
