"""docs/benchmarks.md, "Whole models": the simulated columns of its table are what the simulator
computes now (the table is written by ``python benchmarks/bench_models.py``; wall and CPU times
are measurements and are not recomputed). A change that moves a simulated number fails here until
the table is regenerated."""

from pathlib import Path

import pytest

from prodigy_sim.models import Scenario
from prodigy_sim.reports import simulate_scenario

DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"


def _row(case: str) -> list[str]:
    text = DOC.read_text(encoding="utf-8")
    section = text[text.index("## Whole models"):]
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells and cells[0] == case:
            return cells
    raise AssertionError(f"no row {case!r} in the whole-models table of {DOC}")


@pytest.mark.parametrize("case, scenario", [
    ("LLaMA-2-7B decode, b1, ctx 2048, tai4",
     Scenario(model="llama-2-7b", phase="decode", batch=1, context_length=2048)),
    ("BERT-base, seq 128, batch 8, tai4",
     Scenario(model="bert-base-uncased", phase="prefill", batch=8, sequence_length=128)),
])
def test_whole_model_rows_match_the_simulator(case, scenario):
    r = simulate_scenario(scenario)
    cells = _row(case)
    sim = f"{r.tokens_per_s:.1f} tok/s" if r.tokens_per_s else f"{r.seconds * 1e3:.3f} ms"
    # columns: case, wall, CPU, target, RSS, target, simulated, roofline, x, target, DDR, comp.
    assert cells[6] == sim
    assert cells[7] == f"{r.ideal_roofline_s * 1e3:.3f} ms ({r.bound})"
    assert cells[8] == f"{r.seconds / r.ideal_roofline_s:.2f}"
    assert cells[10:12] == [f"{r.ddr_bytes / 1e9:.3f}", f"{r.compulsory_bytes / 1e9:.3f}"]


def test_mapping_search_row_matches_the_simulator():
    """The BERT-base row of the N = 4 table of *With the mapping search* (written by
    ``python benchmarks/bench_models.py --mapping-candidates 4``)."""
    text = DOC.read_text(encoding="utf-8")
    section = text[text.index("### With the mapping search"):]
    section = section[section.index("N = 4:"):section.index("N = 8:")]
    case = "BERT-base, seq 128, batch 8, tai4"
    cells = next(c for c in ([x.strip() for x in line.strip().strip("|").split("|")]
                             for line in section.splitlines()) if c and c[0] == case)
    r = simulate_scenario(Scenario(model="bert-base-uncased", phase="prefill", batch=8,
                                   sequence_length=128), mapping_candidates=4)
    assert cells[6] == f"{r.seconds * 1e3:.3f} ms"
    assert cells[8] == f"{r.seconds / r.ideal_roofline_s:.2f}"
    default = simulate_scenario(Scenario(model="bert-base-uncased", phase="prefill", batch=8,
                                         sequence_length=128))
    assert r.seconds <= default.seconds       # the choice is one of the candidates
