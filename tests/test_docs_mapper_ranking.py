"""docs/lowering.md, "How well the costs rank mappings": cells of its two tables recomputed by
the functions of the commands that wrote them (``benchmarks/mapper_ranking.py``,
``benchmarks/ddr_mix.py``), so a change to the mapper, the timing model or the DDR5 model that
moves them fails here until the section is measured again."""

from pathlib import Path

import pytest

from prodigy_sim.hardware import load_preset

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "lowering.md"


def _section() -> str:
    text = DOC.read_text(encoding="utf-8")
    start = text.index("### How well the costs rank mappings")
    return text[start:text.index("\n## ", start)]


def _row(first: str) -> list[str]:
    for line in _section().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[0] == first:
            return cells
    raise AssertionError(f"no row {first!r} in {DOC}")


def test_bert_qkv_proj_ranking_row_is_what_the_command_measures(bench):
    mr = bench("mapper_ranking")
    chip = load_preset(mr.HW)
    (stage, op), = [(s, o) for s, o in mr.linear_ops("bert", chip) if o.name == "qkv_proj"]
    ranked, ties, _ = mr.rank(op, stage, chip, top=12)
    chosen, best = ranked[0], min(ranked, key=lambda r: r.sim_us)
    cells = _row("bert: qkv_proj")
    assert chosen.mapping == op.kernel.mapping == cells[1]
    assert cells[2:4] == [f"{chosen.cost_us:.2f}", f"{chosen.sim_us:.2f}"]
    assert cells[4] == f"{best.mapping} ({best.sim_us:.2f})"
    assert cells[6] == str(ties)
    # the section's points: the choice multicasts (one block per core), and a candidate the
    # costs rank lower (other blocks, K steps) still simulates faster
    assert "multicast" in chosen.mapping
    assert best.sim_us < chosen.sim_us


@pytest.mark.parametrize("share, interleave", [(0.0, "reads only"),
                                               (0.55, "runs of 64 lines")])
def test_ddr_mix_rows_are_what_the_command_measures(share, interleave, bench):
    dm = bench("ddr_mix")
    cfg = load_preset("prodigy-t16128").memory.dram.model_copy(update={"channels": 1})
    peak = cfg.timing.rate_mts * 1e6 * cfg.org.channel_width_bits / 8
    (is_w,) = [w for label, s, w in dm.mixes(200_000) if label == interleave and s == share]
    bw = dm.bandwidth(cfg, is_w)
    rows = [c for c in _section().splitlines() if c.startswith(f"| {share:.0%} | {interleave} |")]
    assert len(rows) == 1, rows
    got = [c.strip() for c in rows[0].strip().strip("|").split("|")]
    assert got[2:] == [f"{bw / 1e9:.2f}", f"{bw / peak:.1%}"]
