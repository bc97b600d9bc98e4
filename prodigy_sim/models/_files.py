"""Where model cards and scenarios live, and reading YAML/JSON files with located errors.

Cards and scenarios are kept once, in the repository's ``workloads/models/`` and
``workloads/scenarios/``. A wheel ships them as package data in ``prodigy_sim/models/cards/`` and
``prodigy_sim/models/scenarios/`` (hatch ``force-include``). Lookup tries the packaged folder
first, then the repository folder (a source checkout or an editable install).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from prodigy_sim._datafile import read_mapping as read_mapping

__all__ = ["card_names", "data_dirs", "named_files", "read_mapping", "looks_like_path",
           "scenario_names"]

_PACKAGED = {"cards": "cards", "scenarios": "scenarios"}
_REPOSITORY = {"cards": "models", "scenarios": "scenarios"}
_SUFFIXES = (".yaml", ".yml", ".json")


def data_dirs(kind: Literal["cards", "scenarios"]) -> list[Path]:
    """Existing folders holding ``kind`` files: packaged first, then ``workloads/``."""
    here = Path(__file__).resolve().parent
    candidates = [here / _PACKAGED[kind], here.parents[1] / "workloads" / _REPOSITORY[kind]]
    return [p for p in candidates if p.is_dir()]


def named_files(kind: Literal["cards", "scenarios"]) -> dict[str, Path]:
    """``{stem: path}`` of every file of ``kind``; a packaged file wins over a repository one."""
    out: dict[str, Path] = {}
    for folder in data_dirs(kind):
        for p in sorted(folder.iterdir()):
            if p.suffix.lower() in _SUFFIXES:
                out.setdefault(p.stem, p)
    return out


def card_names() -> list[str]:
    """Names of the built-in model cards (``workloads/models/*.yaml``), sorted."""
    return sorted(named_files("cards"))


def scenario_names() -> list[str]:
    """Names of the built-in scenarios (``workloads/scenarios/*.yaml``), sorted."""
    return sorted(named_files("scenarios"))


def looks_like_path(text: str) -> bool:
    """True if ``text`` names a file rather than a built-in card or scenario."""
    return Path(text).suffix.lower() in _SUFFIXES or "/" in text or "\\" in text


