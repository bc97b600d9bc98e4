"""Reading YAML / JSON data files (formats, model cards, scenarios) with located errors."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from prodigy_sim.errors import ConfigError


def read_mapping(path: str | Path, *, what: str, cls: type[ConfigError] = ConfigError) -> dict:
    """Parse a ``.json`` (else YAML) file that must hold a mapping.

    Errors are ``cls`` instances naming the file, and the line for syntax errors.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as err:
        raise cls(f"{p}: cannot read {what} file ({err.strerror})") from None
    try:
        data = json.loads(text) if p.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as err:
        mark = getattr(err, "problem_mark", None)
        line = getattr(err, "lineno", None) or (mark.line + 1 if mark is not None else "?")
        raise cls(f"{p}:{line}: not valid {p.suffix.lstrip('.').upper() or 'YAML'}: "
                  f"{getattr(err, 'problem', None) or err}") from None
    if not isinstance(data, dict):
        raise cls(f"{p}: a {what} must be a mapping of fields (got {type(data).__name__})")
    return data
