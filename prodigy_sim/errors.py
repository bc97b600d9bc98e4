"""The package's exception hierarchy.

Every error that bad input can cause is a :class:`ProdigySimError`. Messages say what was wrong,
where (file, line, column or field path) and what was expected, so the CLI can print them without a
traceback.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

__all__ = [
    "short_repr",
    "ProdigySimError",
    "ConfigError",
    "FormatError",
    "EncodeError",
    "AssemblyError",
    "TraceError",
    "ProgramError",
    "SimulationError",
    "ModelFileError",
    "MissingDependencyError",
    "config_error_from_validation",
]


class ProdigySimError(Exception):
    """Base class of every error prodigy-sim raises on bad input or impossible requests."""


class ConfigError(ProdigySimError, ValueError):
    """A configuration, spec or scenario value is invalid (the message names the field)."""


class FormatError(ConfigError):
    """A number-format definition is inconsistent, unknown, or cannot do what was asked."""


class EncodeError(ProdigySimError, ValueError):
    """A value cannot be encoded in a format (for example NaN in a format with no NaN code)."""


class _LocatedError(ProdigySimError):
    """An error in a text input, located by file, line and column (1-based; 0 = unknown)."""

    def __init__(self, message: str, *, file: str | Path | None = None, line: int = 0,
                 column: int = 0) -> None:
        self.file = str(file) if file is not None else None
        self.line = line
        self.column = column
        self.reason = message
        where = ":".join(str(p) for p in (self.file or "<input>", line or None, column or None)
                         if p is not None)
        super().__init__(f"{where}: {message}")


class AssemblyError(_LocatedError):
    """Program text that does not assemble, or a binary that does not decode."""

    offset: int  # the byte offset, set by the binary decoder on the errors it raises


class TraceError(_LocatedError):
    """A trace line (memory requests, or serving requests) that cannot be parsed."""


class ProgramError(ProdigySimError):
    """A program that is well formed but cannot run (out-of-bounds tile, overflowing memory...)."""


class SimulationError(ProdigySimError):
    """The simulation reached an impossible state (deadlock, unknown resource...)."""


class ModelFileError(ProdigySimError):
    """A model checkpoint or model card does not match what it claims to be."""


class MissingDependencyError(ProdigySimError, ImportError):
    """An optional dependency is not installed; the message says what to install."""


def short_repr(value: object, limit: int = 80) -> str:
    """``repr(value)``, cut to ``limit`` characters (ending in ``...``) for a one-line message."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit - 3]}..."


def config_error_from_validation(err: Exception, *, source: str | Path | None = None,
                                 cls: type[ConfigError] = ConfigError,
                                 line_of: Callable[[str], int] | None = None,
                                 names: Mapping[str, str] | None = None) -> ConfigError:
    """Turn a pydantic ``ValidationError`` into a :class:`ConfigError` naming every bad field.

    ``source`` (a file name or a description) is prefixed so the user knows where to look;
    ``line_of`` (dotted field path -> line of the source, 0 if unknown) adds the line of each;
    ``names`` (top-level field -> what the user wrote, e.g. a command-line flag) replaces a
    field path that starts with one of its keys.
    """
    lines = []
    for e in getattr(err, "errors", lambda: [])():
        loc = tuple(e.get("loc", ()))
        path = (names[loc[0]] if names and loc and loc[0] in names
                else ".".join(str(p) for p in loc))
        msg = str(e.get("msg", "invalid")).removeprefix("Value error, ")
        got = e.get("input")
        got_txt = ("" if isinstance(got, dict) or got is None or e.get("type") == "value_error"
                   else f" (got {short_repr(got)})")
        line = line_of(path) if line_of is not None and path else 0
        where = f"line {line}: " if line else ""
        lines.append(f"{where}'{path}': {msg}{got_txt}" if path else f"{where}{msg}{got_txt}")
    head = f"{source}: " if source else ""
    if not lines:
        lines.append(str(err))
    return cls(head + "; ".join(lines))
