"""The DDR batching check (``check_batching``, CLI ``--check-batching``): each op's batched DDR
drain against one DDR5 batch per controller, in the op results and the report, and the cells of
docs/timing.md's table recomputed by the command that wrote them
(``benchmarks/batching_check.py``)."""

import csv
import io
import json

import pytest

from prodigy_sim.cli import main
from prodigy_sim.hardware import load_preset
from prodigy_sim.lowering import linear_op
from prodigy_sim.models import Scenario
from prodigy_sim.numerics import Storage
from prodigy_sim.reports import OP_COLUMNS, simulate_scenario
from prodigy_sim.simulation import BATCHING_MEASURED, SimMethod, simulate_op
from prodigy_sim.timing import batching_error

CHIP = load_preset("prodigy-t16128")
MINILM = Scenario(model="all-minilm-l6-v2", phase="prefill", batch=2, sequence_length=64)


def test_op_check_is_the_replay_of_its_own_run():
    """The op's value is ``batching_error`` of the run its time comes from; unchecked: None."""
    op = linear_op("gemm", 512, 1024, 2048, Storage.of("tai4"), CHIP, cores=16)
    checked = simulate_op(op, CHIP, method=SimMethod(check_batching=True))
    plain = simulate_op(op, CHIP)
    assert plain.ddr_batching_error is None
    assert checked.seconds == plain.seconds                 # the check does not change it
    r = op.residency
    ref = batching_error(op.kernel.program, CHIP, cores=op.kernel.cores,
                         resident=r.resident, held_bytes=r.held_bytes, aliased=r.aliased)
    assert checked.ddr_batching_error == ref["drain_rel_diff_mean"]
    assert abs(checked.ddr_batching_error) < 0.5


def test_report_names_the_largest_and_the_method():
    rep = simulate_scenario(MINILM, config=CHIP, cores=8, check_batching=True)
    errs = [o["ddr_batching_error"] for o in rep.ops]
    assert all(isinstance(e, float) for e in errs)
    worst = rep.worst_batching_op()
    assert worst is not None and abs(worst["ddr_batching_error"]) == max(map(abs, errs))
    total = sum(o["total_seconds"] for o in rep.ops)
    mean = sum(o["total_seconds"] * o["ddr_batching_error"] for o in rep.ops) / total
    assert rep.ddr_batching_error == pytest.approx(mean)
    table = rep.table()
    assert f"{worst['stage']}/{worst['op']}" in table.split("DDR batching")[-1]
    assert "each op checked against one batch per controller" in table
    rows = list(csv.DictReader(io.StringIO(rep.to_csv())))
    assert list(rows[0]) == list(OP_COLUMNS)
    assert float(rows[0]["ddr_batching_error"]) == errs[0]
    # unchecked: no values, and the method line says so with the measured figure
    plain = simulate_scenario(MINILM, config=CHIP, cores=8)
    assert plain.seconds == rep.seconds
    assert plain.worst_batching_op() is None and plain.ddr_batching_error is None
    assert "DDR batching " not in plain.table()
    assert "not checked in this run, --check-batching" in plain.method_line()
    assert f"within {BATCHING_MEASURED:.0%}" in plain.method_line()


def test_cli_check_batching_json(capsys):
    argv = ["simulate", "--model", "all-minilm-l6-v2", "--batch", "2", "--context", "64",
            "--cores", "8", "--quiet", "--json"]
    assert main(argv + ["--check-batching"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["settings"]["check_batching"] is True
    assert all(isinstance(o["ddr_batching_error"], float) for o in out["ops"])
    assert isinstance(out["ddr_batching_error"], float)


def _doc_rows(doc_table) -> dict[str, list[str]]:
    return doc_table("timing.md", "`python benchmarks/batching_check.py`")


def test_doc_table_bert_row(bench, doc_table):
    """The BERT-base row of the docs' table, recomputed (3 s)."""
    mod = bench("batching_check")
    name, spec = next((c[0], c[1]) for c in mod.CASES if c[0].startswith("BERT-base"))
    assert _doc_rows(doc_table)[name] == mod.summary_row(name, mod.case_ops(spec))


def test_measured_figure_is_the_docs_largest(doc_table):
    """:data:`BATCHING_MEASURED` (the method line's figure) covers every case of the table."""
    rows = _doc_rows(doc_table)
    worst = [abs(float(r[3].split("%")[0])) / 100 for r in rows.values()]
    assert len(worst) == 8 and max(worst) <= BATCHING_MEASURED < max(worst) + 0.01


def test_mapping_search_checks_only_the_op_kept(monkeypatch):
    """With a search by simulation, the candidates are not checked: one check per op."""
    import prodigy_sim.simulation._driver as drv
    from prodigy_sim.lowering import lower_model
    from prodigy_sim.simulation import simulate_lowered

    calls = []
    real = drv.batching_error

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(drv, "batching_error", counted)
    lowered = lower_model(MINILM.card(), MINILM, CHIP, cores=8)
    sim = simulate_lowered(lowered, CHIP, method=SimMethod(mapping_candidates=2,
                                                           check_batching=True))
    ops = [o for st in sim.stages for o in st.ops]
    assert len(calls) == len(ops) and all(o.ddr_batching_error is not None for o in ops)
