"""Configurations from a preset plus overrides: a YAML file and/or a mapping of field paths.

A YAML file is a mapping. Its optional ``preset:`` key names the base preset; every other key is a
field path, dotted (``core.matrix_unit.latency_cycles: 12``) or nested
(``core: {matrix_unit: {latency_cycles: 12}}``), or both. Mapping-valued fields such as
``core.matrix_unit.relative_throughput`` are merged key by key (a new key adds a format). Unknown
paths are refused with the path, the file and line, and the fields known at that level.
"""

from __future__ import annotations

import collections.abc
import copy
import difflib
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from prodigy_sim._datafile import load_yaml, read_text
from prodigy_sim.errors import ConfigError, config_error_from_validation
from prodigy_sim.hardware.chip import ChipConfig
from prodigy_sim.hardware.presets import (
    DEFAULT_PRESET,
    DERIVED_SOURCES,
    cited_values,
    flatten,
    load_preset,
)

__all__ = ["load_config", "load_config_with_sources", "read_yaml_overrides"]


def _field_kind(annotation: Any) -> tuple[str, Any]:
    """``("model", cls)``, ``("mapping", None)`` or ``("value", None)`` for a field annotation."""
    candidates = typing.get_args(annotation) if typing.get_origin(annotation) in (
        typing.Union, getattr(__import__("types"), "UnionType", typing.Union)) else (annotation,)
    for ann in candidates:
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            return "model", ann
        origin = typing.get_origin(ann)
        if origin in (dict, collections.abc.Mapping, typing.Mapping):
            return "mapping", None
    return "value", None


def _unknown(path: str, section: str, known: list[str], where: str) -> ConfigError:
    name = path.rsplit(".", 1)[-1]
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    level = f"fields of {section}" if section else "top-level fields"
    return ConfigError(f"{where}unknown field {path!r} ({level}: {', '.join(known)}{hint})")


def _set(tree: dict, cls: type[BaseModel], parts: list[str], value: Any, path: str,
         where: Callable[[str], str], base: dict) -> None:
    """Write ``value`` at ``parts`` inside ``tree`` (the values of a ``cls``), checking the path.

    ``base`` is the validated dump of the same section: it fills in a section that ``tree`` holds
    as a shorthand (a preset name) when a sub-field is overridden.
    """
    section = path[: -len(".".join(parts))].rstrip(".")
    name = parts[0]
    fields = cls.model_fields
    if name not in fields:
        bad = f"{section}.{name}" if section else name
        raise _unknown(bad, section, list(fields), where(bad))
    kind, sub = _field_kind(fields[name].annotation)
    here = f"{section}.{name}" if section else name
    rest = parts[1:]
    if kind == "value" and (rest or isinstance(value, dict)):
        raise ConfigError(f"{where(here)}{here!r} is a value, not a section "
                          f"(got {'sub-field ' + repr('.'.join(rest)) if rest else 'a mapping'})")
    sub_base = base.get(name)
    if not isinstance(sub_base, dict):
        sub_base = {}
    if kind == "model" and (rest or isinstance(value, dict)):
        child = tree.get(name)
        if not isinstance(child, dict):
            child = tree[name] = copy.deepcopy(sub_base)
        if rest:
            _set(child, sub, rest, value, path, where, sub_base)
        else:
            for key, item in value.items():
                _set(child, sub, str(key).split("."), item, f"{here}.{key}", where, sub_base)
        return
    if kind == "mapping" and rest:
        child = tree.get(name)
        if not isinstance(child, dict):
            child = tree[name] = {}
        child[".".join(rest)] = value
        return
    if kind == "mapping" and isinstance(value, dict):
        child = tree.get(name)
        tree[name] = {**(child if isinstance(child, dict) else {}), **value}
        return
    tree[name] = value


def _apply(tree: dict, overrides: dict, where: Callable[[str], str], base: dict) -> list[str]:
    """Apply ``overrides`` to ``tree`` in place; return the dotted leaf paths written."""
    written: list[str] = []
    for key, value in overrides.items():
        if not isinstance(key, str):
            raise ConfigError(f"{where(str(key))}field paths must be strings (got {key!r})")
        _set(tree, ChipConfig, key.split("."), value, key, where, base)
        leaves = flatten({key: value}) if isinstance(value, dict) else {key: value}
        written.extend(leaves)
    return written


def _yaml_lines(node: yaml.Node, prefix: str = "") -> dict[str, int]:
    lines: dict[str, int] = {}
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            path = f"{prefix}{key.value}"
            lines[path] = key.start_mark.line + 1
            lines.update(_yaml_lines(value, path + "."))
    return lines


def read_yaml_overrides(file: str | Path) -> tuple[str | None, dict, dict[str, int]]:
    """Read a YAML config file: ``(preset or None, overrides, line of each key path)``."""
    path = Path(file)
    data, node = load_yaml(read_text(path, what="config"), source=path)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config file must be a mapping of field paths to values "
                          f"(got {type(data).__name__})")
    preset = data.pop("preset", None)
    if preset is not None and not isinstance(preset, str):
        raise ConfigError(f"{path}: 'preset' must be a preset name (got {preset!r})")
    return preset, data, _yaml_lines(node) if node is not None else {}


def _line_of(path: str, lines: dict[str, int]) -> int:
    """Line of the key that sets ``path``: the path or its closest parent, else the first key
    below it (a mapping field set by dotted keys, ``a.b.c: 1`` for the field ``a.b``); 0."""
    parts = path.split(".")
    for n in range(len(parts), 0, -1):
        if ".".join(parts[:n]) in lines:
            return lines[".".join(parts[:n])]
    below = [line for key, line in lines.items() if key.startswith(path + ".")]
    return min(below, default=0)


def load_config_with_sources(preset: str | None = None, overrides: dict | None = None,
                             file: str | Path | None = None) -> tuple[ChipConfig, dict[str, str]]:
    """Like :func:`load_config`, also returning the source of every field by dotted path
    (an overridden field's source names the file and line, or ``"override"``)."""
    file_preset: str | None = None
    file_overrides: dict = {}
    lines: dict[str, int] = {}
    if file is not None:
        file_preset, file_overrides, lines = read_yaml_overrides(file)
    if preset is not None and file_preset is not None and preset != file_preset:
        raise ConfigError(f"{file}: the file names preset {file_preset!r} but preset {preset!r} "
                          "was requested")
    name = preset or file_preset or DEFAULT_PRESET
    tree, sources = cited_values(name)
    base = load_preset(name).model_dump()
    base["memory"]["dram"].pop("channels")
    if file is not None:
        def located(path: str) -> str:
            line = _line_of(path, lines)
            return f"{file}:{line}: " if line else f"{file}: "

        for leaf in _apply(tree, file_overrides, located, base):
            line = _line_of(leaf, lines)
            sources[leaf] = f"override: {file}" + (f":{line}" if line else "")
    for leaf in _apply(tree, dict(overrides or {}), lambda path: "overrides: ", base):
        sources[leaf] = "override"
    try:
        config = ChipConfig.model_validate(tree)
    except ValidationError as err:
        where = f"{file} (preset {name!r})" if file is not None else f"preset {name!r}"
        if overrides:
            where += " with overrides"
        raise config_error_from_validation(
            err, source=where, line_of=lambda path: _line_of(path, lines)) from None
    return config, {**sources, **DERIVED_SOURCES}


def load_config(preset: str | None = None, overrides: dict | None = None,
                file: str | Path | None = None) -> ChipConfig:
    """Build a :class:`ChipConfig`: a preset, then the YAML ``file``'s overrides, then
    ``overrides`` (a mapping of dotted or nested field paths to values).

    The base preset is ``preset``, else the file's ``preset:`` key, else ``prodigy-t16128``; a
    file naming another preset than an explicit ``preset`` is refused. Raises
    :class:`~prodigy_sim.errors.ConfigError` naming the field path (and the file) on an unknown
    field or an invalid value.
    """
    return load_config_with_sources(preset, overrides, file)[0]
