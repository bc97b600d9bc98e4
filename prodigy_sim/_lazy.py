"""Package ``__init__`` modules that import each public name from its module on first use.

``__getattr__, __dir__ = lazy_exports(__name__, {"Name": "module", ...})`` in a package's
``__init__`` (PEP 562): ``from prodigy_sim.dram import MemorySystemConfig`` then imports only
``prodigy_sim.dram.config``, not the package's Numba kernels, so commands and configurations that
need a light part of a package (``prodigy-sim --help``, reading a hardware preset) start fast.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

__all__ = ["lazy_exports"]


def lazy_exports(package: str, exports: dict[str, str]
                 ) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package`` whose public names live in the modules named by
    ``exports`` (name -> module of the package)."""
    namespace = importlib.import_module(package).__dict__

    def __getattr__(name: str):  # noqa: N807 - the PEP 562 hook
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:  # noqa: N807
        return sorted(set(namespace) | set(exports))

    return __getattr__, __dir__
