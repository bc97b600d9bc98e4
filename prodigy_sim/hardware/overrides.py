"""A chip chosen by name or file plus ``path=value`` overrides, and the record of what changed.

This is what ``--hw NAME|FILE --set PATH=VALUE ...`` on the command line and the hardware axes of
a sweep resolve to::

    config, changes = resolve_hardware("prodigy-t16128", ["memory.channels=32"])
    config.name         # 'prodigy-t16128+memory.channels=32'
    changes.describe()  # 'prodigy-t16128 with memory.channels 16 -> 32'

Overrides go through the YAML override mechanism of :mod:`prodigy_sim.hardware.loading` (dotted
paths; a mapping field such as ``core.matrix_unit.relative_throughput.tai4=2`` is merged key by
key). A value is parsed as a YAML scalar or flow collection (``32``, ``2.5``, ``true``,
``{tai4: 2}``); numbers in exponent form (``6e9``) are numbers. An unknown path or a bad value
raises a one-line :class:`~prodigy_sim.errors.ConfigError` naming the override and the field.

A changed configuration does not keep the preset's name: unless a ``name`` is given, it is labelled
``<preset>+<path>=<value>+...`` (a file adds ``+<file stem>``), so reports and simulations can
never mistake it for the preset.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from prodigy_sim._datafile import load_yaml_value
from prodigy_sim.errors import ConfigError
from prodigy_sim.hardware.chip import ChipConfig
from prodigy_sim.hardware.loading import _set, load_config_with_sources, read_yaml_overrides
from prodigy_sim.hardware.presets import DEFAULT_PRESET, flatten, load_preset, preset_names

__all__ = ["FieldChange", "HardwareChanges", "base_preset", "changes_from_preset",
           "check_override_path", "parse_override", "resolve_hardware",
           "resolve_hardware_with_sources"]

_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)$")
_FILE_SUFFIXES = (".yaml", ".yml", ".json")
_PREFIX = re.compile(r"^(overrides: |.*? with overrides: )")


@dataclass(frozen=True)
class FieldChange:
    """One field that differs from the base preset: dotted ``path``, ``old`` (None: the preset
    has no such key) and ``new`` value (JSON-ready; a section such as ``memory.dram.timing`` is a
    mapping), and where the change comes from (``override`` or ``FILE:LINE``)."""

    path: str
    old: Any
    new: Any
    origin: str = "override"

    @property
    def implied(self) -> int:
        """Fields below ``path`` that this change implies (0 for a leaf field): for a named
        section such as ``memory.dram.timing`` (a DDR5 speed bin), the leaves other than its
        ``name`` whose values differ."""
        if not isinstance(self.old, dict) or not isinstance(self.new, dict):
            return 0
        old, new = flatten(self.old), flatten(self.new)
        return sum(1 for p in old.keys() | new.keys() if p != "name" and old.get(p) != new.get(p))

    def describe(self) -> str:
        """``'memory.channels 16 -> 32'``; a section change names the section's preset and counts
        the fields it implies: ``'memory.dram.timing DDR5_7200AN -> DDR5_6400AN (implies 19
        timing fields)'``."""
        text = f"{self.path} {_show(self.old)} -> {_show(self.new)}"
        if self.implied:
            section = self.path.rsplit(".", 1)[-1]
            text += f" (implies {self.implied} {section} field{'s' if self.implied > 1 else ''})"
        return text


@dataclass(frozen=True)
class HardwareChanges:
    """What a configuration is: its base ``preset``, the ``file`` it was read from (or None) and
    the ``changes`` from the preset, in the order given (file first, then overrides)."""

    preset: str
    file: str | None
    changes: tuple[FieldChange, ...]

    @property
    def changed(self) -> bool:
        """True if the configuration differs from its preset."""
        return bool(self.changes)

    def describe(self) -> str:
        """One line: ``'prodigy-t16128 with memory.channels 16 -> 32, cores 128 -> 64'`` (or
        just the preset name)."""
        if not self.changes:
            return self.preset
        src = f" from {self.file}" if self.file else ""
        return f"{self.preset}{src} with " + ", ".join(c.describe() for c in self.changes)

    def to_dict(self) -> dict[str, Any]:
        """``{"preset", "file", "changes": [{"path", "old", "new", "origin"}]}`` (JSON-ready)."""
        return {"preset": self.preset, "file": self.file,
                "changes": [{"path": c.path, "old": c.old, "new": c.new, "origin": c.origin}
                            for c in self.changes]}


def _show(value: Any) -> str:
    if value is None:
        return "(absent)"
    if isinstance(value, dict):
        return str(value["name"]) if "name" in value else json.dumps(value, sort_keys=True)
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    return str(value)


def base_preset(config: ChipConfig, fallback: str = DEFAULT_PRESET) -> str:
    """The preset ``config`` is based on: its name up to the first ``+`` (the name
    :func:`resolve_hardware` derives) if that is a preset, else ``fallback``."""
    base = config.name.split("+")[0]
    return base if base in preset_names() else fallback


def changes_from_preset(config: ChipConfig, fallback: str = DEFAULT_PRESET) -> HardwareChanges:
    """What ``config`` changes in the preset it is based on (:func:`base_preset`), for a
    configuration whose overrides are not at hand (e.g. a report given only the configuration):
    every leaf field that differs, in field order, except that a named section whose ``name``
    changed (``memory.dram.timing``: a DDR5 speed bin; ``memory.dram.org``) is one change of the
    whole section, as the override that set it gave it (``memory.dram.timing=6400``)."""
    base = base_preset(config, fallback)
    old_tree, new_tree = load_preset(base).model_dump(mode="json"), config.model_dump(mode="json")
    old, new = flatten(old_tree), flatten(new_tree)
    sections = sorted((p[:-len(".name")] for p, v in new.items()
                       if p.endswith(".name") and old.get(p) != v), key=len)
    changes: list[FieldChange] = []
    for p, v in new.items():
        if p == "name" or old.get(p) == v:
            continue
        section = next((s for s in sections if p.startswith(s + ".")), None)
        if section is None:
            changes.append(FieldChange(p, old.get(p), v))
        elif not any(c.path == section for c in changes):
            changes.append(FieldChange(section, _at(old_tree, section), _at(new_tree, section)))
    return HardwareChanges(base, None, tuple(changes))


def _value_text(value: Any) -> str:
    """A value as it appears in a derived name: ``32``, ``2.5``, ``tai4``, ``true``."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float, str)):
        return str(value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def parse_override(text: str) -> tuple[str, Any]:
    """``'memory.channels=32'`` -> ``('memory.channels', 32)``; the value parsed as YAML."""
    path, sep, raw = text.partition("=")
    path = path.strip()
    if not sep or not path:
        raise ConfigError(f"override {text!r}: expected PATH=VALUE, e.g. memory.channels=32")
    raw = raw.strip()
    if _NUMBER.match(raw):
        return path, float(raw)
    try:
        value = load_yaml_value(raw) if raw else None
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"override {text!r}: value {raw!r} is not a YAML value "
                          f"({problem})") from None
    if value is None:
        raise ConfigError(f"override {text!r}: missing value for {path!r}")
    return path, value


def check_override_path(path: str) -> None:
    """Raise :class:`ConfigError` unless ``path`` names a field (or a key of a mapping field) of
    :class:`ChipConfig`; the value is not checked."""
    _set({}, ChipConfig, path.split("."), 0, path, lambda _: "", {})


def _as_mapping(overrides: Mapping[str, Any] | Sequence[str] | None
                ) -> tuple[dict[str, Any], dict[str, str]]:
    """``({path: value}, {path: value as typed})`` of the overrides (later ones win)."""
    if overrides is None:
        return {}, {}
    if isinstance(overrides, Mapping):
        for key in overrides:
            if not isinstance(key, str):
                raise ConfigError(f"override paths must be strings (got {key!r})")
        return dict(overrides), {}
    if isinstance(overrides, str):
        overrides = [overrides]
    values: dict[str, Any] = {}
    texts: dict[str, str] = {}
    for text in overrides:
        path, value = parse_override(text)
        values.pop(path, None)
        values[path] = value
        texts[path] = text.partition("=")[2].strip()
    return values, texts


def _leaves(overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Nested or mapping-valued overrides as dotted leaf paths (the order kept)."""
    out: dict[str, Any] = {}
    for key, value in overrides.items():
        if isinstance(value, dict) and value:
            out.update(flatten(value, key + "."))
        else:
            out[key] = value
    return out


def _at(tree: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(tree, dict) or part not in tree:
            return None
        tree = tree[part]
    return tree


def _base_of(hw: str | Path | None, default: str) -> tuple[str | None, Path | None]:
    """``(preset, None)`` or ``(None, file)`` for ``--hw``'s value."""
    if hw is None:
        return default, None
    text = str(hw)
    if isinstance(hw, Path) or (text not in preset_names() and (
            Path(text).suffix.lower() in _FILE_SUFFIXES or "/" in text or Path(text).is_file())):
        return None, Path(text)
    if text not in preset_names():
        raise ConfigError(f"unknown hardware {text!r}: not a preset ({', '.join(preset_names())})"
                          " nor a .yaml/.json file")
    return text, None


def resolve_hardware_with_sources(
        hw: str | Path | None = None,
        overrides: Mapping[str, Any] | Sequence[str] | None = None, *,
        default: str = DEFAULT_PRESET) -> tuple[ChipConfig, HardwareChanges, dict[str, str]]:
    """:func:`resolve_hardware`, also returning the source of every field by dotted path."""
    preset, file = _base_of(hw, default)
    ovr, texts = _as_mapping(overrides)
    file_ovr: dict[str, Any] = {}
    file_lines: dict[str, int] = {}
    if file is not None:
        load_config_with_sources(file=file)          # the file's own errors, named by line
        file_preset, file_ovr, file_lines = read_yaml_overrides(file)
        preset = file_preset or DEFAULT_PRESET
    assert preset is not None
    base = load_preset(preset).model_dump(mode="json")
    try:
        config, sources = load_config_with_sources(preset=preset if file is None else None,
                                                   overrides=ovr, file=file)
    except ConfigError as err:
        raise _blame(preset, file, ovr, err, texts) from None
    new = config.model_dump(mode="json")
    changes = []
    for path in _leaves(file_ovr):
        line = _line(path, file_lines)
        changes.append(FieldChange(path, _at(base, path), _at(new, path),
                                   f"{file}:{line}" if line else str(file)))
    set_leaves = _leaves(ovr)
    changes = [c for c in changes if c.path not in set_leaves]
    changes += [FieldChange(p, _at(base, p), _at(new, p)) for p in set_leaves]
    named = "name" in set_leaves or "name" in file_ovr
    changes = [c for c in changes if c.old != c.new or c.path == "name"]
    record = HardwareChanges(preset, str(file) if file is not None else None, tuple(changes))
    if not named and changes:
        label = [preset]
        if any(c.origin != "override" for c in changes):
            label.append(Path(str(file)).name)
        label += [f"{p}={texts.get(p) or _value_text(v)}" for p, v in set_leaves.items()
                  if any(c.path == p for c in changes)]
        config = config.model_copy(update={"name": "+".join(label)})
        sources = {**sources, "name": "derived: preset name + the changed fields"}
    return config, record, sources


def _line(path: str, lines: dict[str, int]) -> int:
    parts = path.split(".")
    for n in range(len(parts), 0, -1):
        if ".".join(parts[:n]) in lines:
            return lines[".".join(parts[:n])]
    return 0


def _blame(preset: str, file: Path | None, ovr: dict[str, Any], err: ConfigError,
           texts: dict[str, str]) -> ConfigError:
    """The error of the first override that fails on its own, named ``override 'path=value'``
    as it was typed (``texts``; else its value), or the error of them all together."""
    for path, value in ovr.items():
        try:
            load_config_with_sources(preset=preset if file is None else None,
                                     overrides={path: value}, file=file)
        except ConfigError as alone:
            text = _PREFIX.sub("", str(alone), count=1)
            return ConfigError(f"override '{path}={texts.get(path) or _value_text(value)}': "
                               f"{text}")
    return ConfigError(f"overrides {', '.join(ovr)} together: {err}")


def resolve_hardware(hw: str | Path | None = None,
                     overrides: Mapping[str, Any] | Sequence[str] | None = None, *,
                     default: str = DEFAULT_PRESET) -> tuple[ChipConfig, HardwareChanges]:
    """A validated :class:`ChipConfig` and the record of what differs from its preset.

    ``hw``: a preset name, a YAML/JSON config file (its ``preset:`` key names the base), or None
    for ``default``. ``overrides``: ``["path=value", ...]`` (values parsed as YAML) or a mapping
    ``{path: value}``; applied after the file. Unless a ``name`` is set, a changed configuration
    is named ``<preset>[+<file name>]+<path>=<value>...``. Raises :class:`ConfigError` naming the
    override and the field on an unknown path or a bad value.
    """
    config, record, _ = resolve_hardware_with_sources(hw, overrides, default=default)
    return config, record
