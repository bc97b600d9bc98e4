"""The floors of the package (``shared/design/style.md``, "Floors and doors"): a subpackage
imports only from lower floors, and only what another subpackage exports - never its private
``_modules``. Checked on the source of every module, lazy (function-level) imports included."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "prodigy_sim"

FLOORS: dict[str, int] = {
    "errors": 0,
    "__init__": 1, "_jit": 1, "_datafile": 1, "_lazy": 1,
    "detmath": 2, "numerics": 2,
    "dram": 3, "isa": 3, "ptq": 3,
    "hardware": 4,
    "functional": 5, "timing": 5,
    "models": 6,
    "lowering": 7,
    "simulation": 8,
    "reports": 9,
    "realmodels": 10,
    "parallel": 11, "serving": 11, "sweep": 11, "testing": 11,
    "cli": 12,
    "__main__": 13,
}
"""Subpackage (or top-level module) -> floor; a room imports only from lower floors."""


_TOP_LEVEL_NAMES = {"__version__"}
"""Names defined in ``prodigy_sim/__init__.py`` itself (floor of ``__init__``)."""


def _modules() -> list[tuple[str, Path]]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).parts
        out.append((rel[0].removesuffix(".py"), path))
    return out


def _imports(path: Path) -> list[tuple[int, list[str]]]:
    """``(line, dotted parts)`` of every ``prodigy_sim`` module or name imported by ``path``."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 \
                and node.module.split(".")[0] == "prodigy_sim":
            base = node.module.split(".")
            out += [(node.lineno, base + [a.name]) for a in node.names]
        elif isinstance(node, ast.Import):
            out += [(node.lineno, a.name.split(".")) for a in node.names
                    if a.name.split(".")[0] == "prodigy_sim"]
    return out


def test_every_subpackage_has_a_floor():
    unknown = sorted({pkg for pkg, _ in _modules()} - set(FLOORS))
    assert not unknown, f"give these subpackages a floor in FLOORS: {unknown}"


@pytest.mark.parametrize("pkg, path", _modules(), ids=lambda v: str(v).split("prodigy_sim/")[-1])
def test_imports_go_down_and_through_the_front_door(pkg, path):
    problems = []
    for line, parts in _imports(path):
        if len(parts) < 2:
            continue
        target = "__init__" if parts[1] in _TOP_LEVEL_NAMES else parts[1]
        where = f"{path.relative_to(PACKAGE.parent)}:{line}: {'.'.join(parts)}"
        if target != pkg:
            if target not in FLOORS:
                problems.append(f"{where} (unknown subpackage {target!r})")
            elif FLOORS[target] >= FLOORS.get(pkg, 99):
                problems.append(f"{where} imports up or sideways (floor {FLOORS[target]} from "
                                f"floor {FLOORS.get(pkg)})")
            if any(p.startswith("_") for p in parts[2:]):
                problems.append(f"{where} reaches into a private module of {target!r}")
    assert not problems, "\n".join(problems)


def test_the_reference_shares_no_code_with_the_core_it_checks():
    """``functional.reference`` may use numerics and ``functional.spec`` (the constants), never
    the functional core's own modules."""
    for path in (PACKAGE / "functional" / "reference").rglob("*.py"):
        for line, parts in _imports(path):
            if parts[:2] == ["prodigy_sim", "functional"]:
                assert parts[2] in ("spec", "reference"), f"{path}:{line}: {'.'.join(parts)}"


def _lazy_packages() -> list[Path]:
    return sorted(p for p in PACKAGE.glob("*/__init__.py") if "lazy_exports(" in p.read_text())


@pytest.mark.parametrize("path", _lazy_packages(), ids=lambda p: p.parent.name)
def test_lazy_package_exports_agree(path):
    """A package whose ``__init__`` imports on first use (:mod:`prodigy_sim._lazy`) lists the
    same name -> module pairs in ``_EXPORTS`` and in its ``if TYPE_CHECKING:`` imports (what
    the type checker sees), and exports only names it can import."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    exports = all_names = None
    typed: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            if node.targets[0].id == "_EXPORTS":
                exports = ast.literal_eval(node.value)
            elif node.targets[0].id == "__all__" and isinstance(node.value, ast.List):
                all_names = ast.literal_eval(node.value)
        elif isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            for imp in node.body:
                assert isinstance(imp, ast.ImportFrom) and imp.module is not None
                typed.update({a.name: imp.module.rsplit(".", 1)[1] for a in imp.names})
    assert exports is not None and exports == typed
    assert all_names is None or set(all_names) <= set(exports)
