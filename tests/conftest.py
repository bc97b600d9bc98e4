"""Shared test configuration: Hypothesis profiles, the check of a CLI error (``cli_error``) and
the loader of a benchmark script's module (``bench``).

``ci`` (the default) is derandomized so a run is reproducible; ``dev`` explores more examples.
Select with ``HYPOTHESIS_PROFILE=dev``.
"""

import importlib.util
import os
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile("dev", max_examples=1000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture
def cli_error(capsys):
    """``cli_error(argv, *needles)``: runs the CLI, which must exit 2 with one ``error:`` line on
    stderr (no traceback) containing every needle; returns that line."""
    from prodigy_sim.cli import main

    def check(argv, *needles):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err and "error:" in err, err
        for needle in needles:
            assert needle in err, err
        return err

    return check


@pytest.fixture(scope="session")
def bench():
    """``bench(name)``: the module of ``benchmarks/NAME.py`` (run from the test, so the doc
    tests recompute cells with the functions of the commands that wrote them); the folder is
    put on ``sys.path`` for the modules the scripts share."""
    folder = Path(__file__).resolve().parents[1] / "benchmarks"
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

    def load(name: str):
        spec = importlib.util.spec_from_file_location(name, folder / f"{name}.py")
        assert spec is not None and spec.loader is not None
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod             # (its dataclasses look their module up)
        spec.loader.exec_module(mod)
        return mod

    return load


@pytest.fixture(scope="session")
def doc_table():
    """``doc_table(doc, marker)``: the first markdown table after ``marker`` in
    ``docs/DOC``, as ``{first cell: cells}`` (header and rule rows left out)."""
    docs = Path(__file__).resolve().parents[1] / "docs"

    def rows(doc: str, marker: str) -> dict[str, list[str]]:
        text = (docs / doc).read_text(encoding="utf-8")
        found: dict[str, list[str]] = {}
        for line in text[text.index(marker):].splitlines():
            if not line.startswith("|"):
                if found:
                    break
                continue
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if cells[0] not in ("case", "---"):
                found[cells[0]] = cells
        return found

    return rows
