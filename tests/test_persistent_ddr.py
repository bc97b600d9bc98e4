"""The persistent DDR (``ddr="persistent"``, CLI ``--ddr persistent``): one DDR5 run per
subchannel for the whole op; a load's completion confirmed against the real run before a core
uses it, a store's at the end. Deterministic, never below the roofline, its speculation
measured; the batched default unchanged."""

import json

import pytest

from prodigy_sim.cli import main
from prodigy_sim.errors import ConfigError
from prodigy_sim.hardware import load_preset
from prodigy_sim.lowering import linear_op
from prodigy_sim.numerics import Storage
from prodigy_sim.simulation import SimMethod, simulate_op
from prodigy_sim.timing import roofline_bound, simulate
from prodigy_sim.timing._simulate import _run

CHIP = load_preset("prodigy-t16128")
OP = linear_op("gemm", 512, 1024, 2048, Storage.of("tai4"), CHIP, cores=16)


def _sim(op=OP, ddr="persistent", **kw):
    r = op.residency
    return _run(op.kernel.program, CHIP, op.kernel.cores, None, kw.pop("dma", 4), log=False,
                resident=r.resident, held_bytes=r.held_bytes, aliased=r.aliased, ddr=ddr, **kw)


def test_deterministic_and_measured():
    a, mem = _sim()
    b, _ = _sim()
    assert a == b
    assert a.ddr_method == "persistent"
    spec = a.ddr_speculation
    assert spec is not None and spec.requests == a.dram_requests > 0 and spec.clamped == 0
    assert spec.late_reads <= spec.late and spec.reads <= spec.requests
    # a load is confirmed no later than its data arrives unless its real completion came
    # before the speculated one and before the core first asked
    assert mem.reads_learned_late <= spec.early
    assert mem.stream is not None and mem.stream.streams.held == 0
    seconds, _, _ = roofline_bound(OP.kernel.program, CHIP, cores=OP.kernel.cores)
    assert a.seconds >= seconds


def test_one_dma_at_a_time_is_never_late():
    """One core with one DMA in flight: nothing arrives while it waits, so every speculated
    load completion is the real one."""
    op = linear_op("gemm", 128, 256, 512, Storage.of("tai4"), CHIP, cores=1)
    res, mem = _sim(op, dma=1)
    spec = res.ddr_speculation
    assert spec is not None and spec.reads > 0
    assert spec.late_reads == 0 and mem.reads_learned_late == 0


def test_batched_default_unchanged_and_errors():
    p = OP.kernel.program
    r = OP.residency
    kw = dict(cores=OP.kernel.cores, resident=r.resident, held_bytes=r.held_bytes,
              aliased=r.aliased)
    plain = simulate(p, CHIP, **kw)
    assert plain == simulate(p, CHIP, ddr="batched", **kw)
    assert plain.ddr_method == "batched" and plain.ddr_speculation is None
    with pytest.raises(ConfigError, match="'ddr': unknown DDR method 'fast'"):
        simulate(p, CHIP, ddr="fast", **kw)


def test_op_result_and_method_line():
    r = simulate_op(OP, CHIP, method=SimMethod(ddr="persistent"))
    assert 0.0 <= r.ddr_late_share <= 1.0 and r.ddr_late_ns >= 0.0
    plain = simulate_op(OP, CHIP)
    assert plain.ddr_late_share is None and plain.ddr_late_ns is None
    assert "DDR5 persistent" in SimMethod(ddr="persistent").describe()
    assert "--ddr persistent" in SimMethod().describe()


def test_cli_ddr(capsys):
    argv = ["simulate", "--model", "all-minilm-l6-v2", "--batch", "2", "--context", "64",
            "--cores", "8", "--quiet", "--json"]
    assert main(argv + ["--ddr", "persistent"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["settings"]["ddr"] == "persistent"
    assert "DDR5 persistent" in out["settings"]["description"]
    assert all(isinstance(o["ddr_late_share"], float) for o in out["ops"])
    assert main(argv + ["--ddr", "fast"]) == 2
    assert "invalid choice: 'fast'" in capsys.readouterr().err


def test_batching_check_needs_batches():
    from prodigy_sim.models import Scenario
    from prodigy_sim.simulation import simulate as simulate_model

    sc = Scenario(model="all-minilm-l6-v2", phase="prefill", batch=2, sequence_length=64)
    with pytest.raises(ConfigError, match="there are no batches"):
        simulate_model(sc, CHIP, cores=8, check_batching=True, ddr="persistent")
    with pytest.raises(ConfigError, match="'ddr': unknown DDR method"):
        simulate_model(sc, CHIP, cores=8, ddr="exact")


def test_doc_table_bert_row(bench, doc_table):
    """The BERT-base row of docs/timing.md's *DDR methods* table, recomputed but for its CPU
    times (3 s)."""
    mod = bench("ddr_methods")
    name, spec = next((c[0], c[1]) for c in mod.CASES if c[0].startswith("BERT-base"))
    got = mod.row_cells(name, *(mod.measure(spec, m) for m in ("batched", "persistent")))
    rows = doc_table("timing.md", "`python benchmarks/ddr_methods.py`")
    doc = rows[name]
    keep = [i for i in range(len(got)) if i not in mod.CPU_CELLS]
    assert [got[i] for i in keep] == [doc[i] for i in keep]
    assert len(rows) == 8


def test_measured_figures_are_the_docs_extremes(doc_table):
    """:data:`PERSISTENT_MEASURED` (the batched method line's figures) are the smallest and
    largest difference of docs/timing.md's *DDR methods* table, which the report quotes."""
    from prodigy_sim.simulation import PERSISTENT_MEASURED, SimMethod

    rows = doc_table("timing.md", "`python benchmarks/ddr_methods.py`")
    diffs = [float(r[3].rstrip("%")) / 100 for r in rows.values()]
    assert len(diffs) == 8
    assert PERSISTENT_MEASURED == pytest.approx((min(diffs), max(diffs)), abs=1e-9)
    line = SimMethod().describe()
    assert f"{-min(diffs):.0%} faster to {max(diffs):.0%} slower than the persistent" in line
