"""docs/lowering.md, "Where the 70B prefill's MLP loses its time": cells of its tables
recomputed by the functions of the commands that wrote them (``benchmarks/op_ddr_profile.py``,
``benchmarks/op_what_if.py``), so a change to the lowering, the residency plan or the timing
model that moves them fails here until the section is measured again."""

from pathlib import Path

import numpy as np
import pytest

from prodigy_sim.hardware import load_preset
from prodigy_sim.lowering import lower_model, with_mapping
from prodigy_sim.models import Scenario
from prodigy_sim.timing._costs import DEFAULT_DMA_OUTSTANDING
from prodigy_sim.timing._simulate import _run

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "lowering.md"
pytestmark = pytest.mark.slow


def _rows() -> list[list[str]]:
    text = DOC.read_text(encoding="utf-8")
    start = text.index("### Where the 70B prefill's MLP loses its time")
    section = text[start:text.index("\n### ", start + 1)]
    return [[c.strip() for c in line.strip().strip("|").split("|")]
            for line in section.splitlines() if line.startswith("| ")]


@pytest.fixture(scope="module")
def setup():
    chip = load_preset("prodigy-t16128")
    sc = Scenario(model="llama-2-70b", phase="prefill", batch=1, sequence_length=2048)
    ops = {o.name: o for o in lower_model(sc.card(), sc, chip).stages[0].ops}
    return chip, ops


def test_down_proj_reads_its_weights_once(setup, bench):
    chip, ops = setup
    op = ops["down_proj"]
    _, memory = _run(op.kernel.program, chip, op.kernel.cores, None, DEFAULT_DMA_OUTSTANDING,
                     log=True, resident=op.residency.resident,
                     held_bytes=op.residency.held_bytes, max_steps=None,
                     aliased=op.residency.aliased)
    got = bench("op_ddr_profile").tensor_rows(op.kernel.program, chip,
                                                np.concatenate(memory.log.line),
                                                np.concatenate(memory.log.is_write))
    documented = {r[0]: r for r in _rows() if r[0] in ("X", "W", "Y", "R")}
    assert {r[0]: r for r in got} == documented
    assert documented["W"][3] == "1.00" and documented["X"][2] == "0.0"


def test_what_if_rows(setup, bench):
    chip, ops = setup
    what_if = bench("op_what_if")
    op = ops["down_proj"]
    doc = {(r[0], r[1]): r for r in _rows() if len(r) == 7 and r[0].startswith("grid")}
    old = with_mapping(op, what_if.parse_mapping("8x16:2x64,2x64:1024:mn"))
    assert old.kernel.mapping == "grid 8x16, blocks 128x128 (2x64 by 2x64), kt 1024, mn"
    for var, kept in ((op, frozenset({"X"})), (old, frozenset())):
        cells = what_if.row(op, var, kept, chip)
        assert cells == doc[(cells[0], cells[1])]
    # the lowering's choice, its input kept on chip, moves exactly its compulsory bytes
    assert doc[(op.kernel.mapping, "X")][3] == doc[(op.kernel.mapping, "X")][4]
