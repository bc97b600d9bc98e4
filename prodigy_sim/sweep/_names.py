"""Where the example sweep specs live and their names; light (no simulator import), so
``prodigy-sim sweep --help`` can list them."""

from __future__ import annotations

from pathlib import Path

__all__ = ["spec_dirs", "spec_names"]

_PACKAGED = Path(__file__).resolve().parent / "specs"
_REPOSITORY = Path(__file__).resolve().parents[2] / "workloads" / "sweeps"


def spec_dirs() -> list[Path]:
    """Folders of the example specs: packaged (a wheel) first, then ``workloads/sweeps``."""
    return [p for p in (_PACKAGED, _REPOSITORY) if p.is_dir()]


def spec_names() -> list[str]:
    """Names of the example specs (``workloads/sweeps/*.yaml``)."""
    names: set[str] = set()
    for folder in spec_dirs():
        names.update(p.stem for p in folder.glob("*.yaml"))
    return sorted(names)
