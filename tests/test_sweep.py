"""Sweeps without Dask: the spec and its errors, points and ids, lowering groups, the serial
executor against direct calls, the journal (resume after an interruption), tables, plots, CLI."""

import json
from pathlib import Path

import pytest

from prodigy_sim.cli import main
from prodigy_sim.errors import ConfigError
from prodigy_sim.models import Scenario, footprint_report
from prodigy_sim.sweep import (
    Evaluator,
    batches,
    expand,
    load_spec,
    lowering_key,
    pareto_front,
    parse_spec,
    plot_line,
    spec_names,
    sweep,
)

ROOT = Path(__file__).resolve().parents[1]

FOOTPRINT = {
    "name": "fp", "compute": ["footprint"],
    "fixed": {"model": "llama-2-7b", "phase": "decode", "context": 2048},
    "grid": {"memory.capacity_bytes": [4_000_000_000, 8_000_000_000],
             "weights": ["tai4", "float8_e4m3fn", "bfloat16"]},
    "execution": {"executor": "serial", "batch_points": 1},
}


def _write(tmp_path, text, name="spec.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize(("text", "message"), [
    ("fixed: {model: llama-2-7b}\nexecution:\n  workers: 0\n",
     r"spec.yaml:3: 'execution.workers': Input should be greater than or equal to 1 \(got 0\)"),
    ("fixed: {model: llama-2-7b}\ngrid:\n  memory.chanels: [8]\n",
     r"spec.yaml: 'grid.memory.chanels': .*unknown field 'memory.chanels'.*did you mean "
     r"'channels'"),
    ("fixed: {model: llama-2-7b}\ngrid:\n  batch: []\n",
     r"spec.yaml:3: 'grid.batch': List should have at least 1 item"),
    ("grid: {batch: [1]}\npoints: [{batch: 2}]\n", r"'points\[0\]': 'batch' also in 'grid'"),
    ("fixed: {model: llama-2-7b}\nplots:\n  - {kind: heatmap, x: batch, y: context}\n",
     r"spec.yaml:3: 'plots.0': Value error, 'value' .*heatmap"),
    ("fixed: {model: llama-2-7b}\nextra: 1\n", r"spec.yaml:2: 'extra': Extra inputs"),
])
def test_spec_errors_name_file_line_and_field(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message) as err:
        load_spec(_write(tmp_path, text))
    assert "\n" not in str(err.value)


def test_errors_found_before_running(tmp_path):
    with pytest.raises(ConfigError, match="'compute': unknown evaluator 'accuracy'"):
        sweep({**FOOTPRINT, "compute": ["accuracy"]}, out=tmp_path)
    with pytest.raises(ConfigError, match="'plots.0.y': unknown column 'time_s'"):
        sweep({**FOOTPRINT, "plots": [{"kind": "line", "x": "weights", "y": "time_s"}]},
              out=tmp_path)
    with pytest.raises(ConfigError, match="'model': no model given"):
        sweep({"grid": {"batch": [1, 2]}}, out=tmp_path)
    with pytest.raises(ConfigError, match="no point can run; point 0 .*'context_length' = 9000 "
                                          "exceeds max_position_embeddings = 4096"):
        sweep({**FOOTPRINT, "fixed": {**FOOTPRINT["fixed"], "context": 9000}}, out=tmp_path)
    assert not (tmp_path / "results.jsonl").exists()


def test_points_defaults_and_stable_ids():
    spec = parse_spec({"fixed": {"model": "bert-base-uncased"}, "grid": {"batch": [1, 2]},
                       "compute": ["footprint"]})
    points = expand(spec)
    assert [p.params["batch"] for p in points] == [1, 2]
    assert points[0].params == {"model": "bert-base-uncased", "phase": "prefill", "batch": 1,
                                "context": 128, "weights": "tai4", "kv_cache": "float8_e4m3fn",
                                "sparsity": "none", "hw": "prodigy-t16128"}
    again = expand(parse_spec({"points": [{"model": "bert-base-uncased", "batch": 2,
                                           "phase": "prefill"}], "compute": ["footprint"]}))
    assert again[0].point_id == points[1].point_id != points[0].point_id
    other = expand(spec.model_copy(update={"compute": ("footprint", "simulate")}))
    assert other[0].point_id != points[0].point_id      # the results differ: so does the id


def test_points_combine_list_and_grid_and_carry_their_errors():
    spec = parse_spec({"compute": ["footprint"], "fixed": {"context": 4096},
                       "grid": {"memory.channels": [8, 32]},
                       "points": [{"model": "llama-2-7b"}, {"model": "bert-base-uncased"}]})
    points = expand(spec)
    assert [(p.params["model"], p.params["memory.channels"]) for p in points] == [
        ("llama-2-7b", 8), ("llama-2-7b", 32), ("bert-base-uncased", 8),
        ("bert-base-uncased", 32)]
    assert points[0].hardware == "prodigy-t16128+memory.channels=8"
    assert points[0].config.memory.channels == 8 and points[0].error is None
    assert "'sequence_length' = 4096 exceeds max_position_embeddings = 512" in points[2].error


def test_a_point_that_cannot_be_built_is_a_failed_row(tmp_path, capsys):
    spec = {"compute": ["footprint"], "fixed": {"model": "llama-2-7b"},
            "grid": {"context": [2048, 9000]}, "execution": {"executor": "serial"}}
    res = sweep(spec, out=tmp_path)
    assert res.column("status") == ["ok", "failed"]
    assert "'context_length' = 9000 exceeds" in res.rows[1]["error"]
    assert res.rows[1]["footprint_bytes"] is None and res.rows[1]["hardware"] is None
    points = expand(parse_spec({**spec, "compute": ["simulate"]}))
    assert [len(b) for b in batches(points, 8, by_lowering=True)] == [1, 1]
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    assert main(["sweep", str(path), "--out", str(tmp_path)]) == 1
    assert "  failed " in capsys.readouterr().out


def test_lowering_groups_are_per_chip_memory_included():
    """The mapper reads the DDR bandwidth, so points share a lowering only on the same chip."""
    spec = parse_spec({"fixed": {"model": "llama-2-7b", "context": 512},
                       "grid": {"memory.channels": [8, 32], "cores": [64, 128],
                                "weights": ["tai4", "tai4"]}})
    points = expand(spec)
    keys: dict[str, list] = {}
    for p in points:
        keys.setdefault(lowering_key(p), []).append((p.params["cores"],
                                                     p.params["memory.channels"]))
    assert sorted(keys.values()) == [[(c, m)] * 2 for c in (64, 128) for m in (8, 32)]
    assert [lowering_key(p) for p in expand(spec)] == [lowering_key(p) for p in points]


def test_footprint_sweep_matches_direct_calls_and_writes_tables(tmp_path):
    import pyarrow.parquet as pq

    res = sweep(FOOTPRINT, out=tmp_path)
    assert res.summary().startswith("6 points: 6 ok, 0 failed, 0 crashed; 6 computed, 0 skipped")
    for row in res.rows:
        sc = Scenario(model="llama-2-7b", phase="decode", context_length=2048,
                      formats={"weights": row["weights"]})
        fp = footprint_report(sc.card(), sc, capacity_bytes=row["memory.capacity_bytes"])
        assert (row["footprint_bytes"], row["weight_bytes"], row["fits"]) == (
            fp.total_bytes, fp.weight_bytes, fp.fits)
    assert res.column("fits") == [False, False, False, True, True, False]
    table = pq.read_table(tmp_path / "results.parquet")
    assert table.column_names == list(res.columns)
    assert table.to_pylist() == [dict(r) for r in res.rows]
    lines = (tmp_path / "results.csv").read_text().splitlines()
    assert lines[0].split(",")[:4] == ["point_id", "status", "error", "model"]
    assert len(lines) == 7


class _Counting:
    """An evaluator that counts its calls (serial executor: same process)."""

    def __init__(self):
        self.calls = []

    def __call__(self, ctx):
        self.calls.append(ctx.params["batch"])
        if ctx.params["batch"] == 3:
            raise ValueError("batch 3 is refused by this test")
        return {"twice_batch": 2 * ctx.params["batch"]}


def test_interrupted_sweep_resumes_with_the_missing_points_only(tmp_path):
    count = _Counting()
    evs = {"count": Evaluator("count", ("twice_batch",), count)}
    spec = {"compute": ["count"], "fixed": {"model": "bert-base-uncased"},
            "grid": {"batch": [1, 2, 3, 4, 5]}, "execution": {"executor": "serial",
                                                               "batch_points": 1}}
    done = []

    def stop_after_two(n):
        done.append(n)
        if len(done) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        sweep(spec, out=tmp_path, evaluators=evs, progress=stop_after_two)
    assert count.calls == [1, 2]
    journal = tmp_path / "results.jsonl"
    assert len(journal.read_text().splitlines()) == 2
    with open(journal, "a") as f:
        f.write('{"point_id": "torn')            # a crash in the middle of a write
    res = sweep(spec, out=tmp_path, evaluators=evs)
    assert count.calls == [1, 2, 3, 4, 5]
    assert (res.computed, res.skipped, res.count("ok"), res.count("failed")) == (3, 2, 4, 1)
    assert res.column("twice_batch") == [2, 4, None, 8, 10]
    bad = res.rows[2]
    assert bad["status"] == "failed"
    assert bad["error"] == "count: ValueError: batch 3 is refused by this test"
    assert len(journal.read_text().splitlines()) == 5
    res = sweep(spec, out=tmp_path, evaluators=evs)                    # nothing left to do
    assert (res.computed, count.calls) == (0, [1, 2, 3, 4, 5])
    res = sweep(spec, out=tmp_path, evaluators=evs, retry_failed=True)
    assert (res.computed, count.calls[5:]) == (1, [3])


def test_pareto_front_and_ambiguous_line_plot():
    rows = [{"point_id": str(i), "status": "ok", "error": None, "a": a, "b": b,
             "hardware": "h", "x": x, "y": y}
            for i, (a, b, x, y) in enumerate([(1, 1, 1.0, 1.0), (1, 2, 2.0, 3.0),
                                              (2, 1, 3.0, 2.0), (2, 2, 3.0, 5.0),
                                              (3, 1, 1.0, 0.5)])]
    assert [r["point_id"] for r in pareto_front(rows, "x", "y")] == ["0", "1", "3"]
    assert [r["point_id"] for r in pareto_front(rows, "x", "y", "high", "low")] == ["4", "2"]
    with pytest.raises(ConfigError, match=r"several rows per \(a\): b also vary"):
        plot_line(rows, "a", "y")
    fig = plot_line(rows, "a", "y", lines="b")
    ax = fig.axes[0]
    assert ax.get_xlabel() == "a" and len(ax.lines) == 2


def test_example_specs_expand_and_are_packaged():
    names = spec_names()
    assert {"llama-2-7b-ddr", "llama-2-7b-channels", "footprint-formats"} <= set(names)
    for name in names:
        spec = load_spec(name)
        points = expand(spec)
        assert points and all(p.error is None for p in points), name
    ddr = expand(load_spec("llama-2-7b-ddr"))
    assert len(ddr) == 18 and len({lowering_key(p) for p in ddr}) == 18
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    include = project["tool"]["hatch"]["build"]["targets"]["wheel"]["force-include"]
    assert include["workloads/sweeps"] == "prodigy_sim/sweep/specs"
    deps = " ".join(project["project"]["dependencies"])
    assert "pyarrow" in deps and "dask[distributed]" in deps


def test_cli_sweep(tmp_path, capsys):
    spec = _write(tmp_path, json.dumps({**FOOTPRINT, "plots": [
        {"kind": "heatmap", "x": "weights", "y": "memory.capacity_bytes", "value": "fits"}]}),
        name="fp.json")
    out = tmp_path / "out"
    assert main(["sweep", str(spec), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert text.startswith("6 points: 6 ok, 0 failed, 0 crashed; 6 computed, 0 skipped")
    assert f"wrote {out / 'heatmap-fits-vs-weights.png'}" in text
    assert (out / "heatmap-fits-vs-weights.png").stat().st_size > 1000
    assert main(["sweep", str(spec), "--out", str(out), "--json", "--no-plots"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["weights"] for r in rows[:3]] == ["tai4", "float8_e4m3fn", "bfloat16"]
    bad = _write(tmp_path, "fixed: {model: llama-2-7b}\ngrid: {cores: [0]}\n")
    assert main(["sweep", str(bad), "--serial", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "override 'cores=0': 'cores'" in err


def test_compare_plot_of_a_categorical_axis(tmp_path, capsys):
    """``--plot compare`` (no column: the categorical input that varies, here weights) writes
    compare-weights.png: one bar per point, its time per pass stacked by op (the bars add up to
    the rows' time_s), labelled axes with units; a misnamed kind is one line, exit 2."""
    from prodigy_sim.sweep import plot_compare

    spec = _write(tmp_path, json.dumps({
        "name": "cmp", "compute": ["simulate"],
        "fixed": {"model": "smollm2-135m", "phase": "decode", "context": 64},
        "grid": {"weights": ["tai4", "float8_e4m3fn"]},
        "execution": {"executor": "serial"}}), name="cmp.json")
    out = tmp_path / "out"
    assert main(["sweep", str(spec), "--out", str(out), "--plot", "compare", "--quiet"]) == 0
    assert f"wrote {out / 'compare-weights.png'}" in capsys.readouterr().out
    assert (out / "compare-weights.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    result = sweep(spec, out=out, plots=False)
    assert result.computed == 0 and result.count("ok") == 2
    fig = plot_compare(result, "weights")
    ax = fig.axes[0]
    assert ax.get_ylabel() == "time per pass (ms)" and ax.get_xlabel().startswith("weights")
    assert [t.get_text() for t in ax.get_xticklabels()] == ["tai4", "float8_e4m3fn"]
    for i, row in enumerate(result.rows):
        ops = json.loads(row["op_seconds"])
        assert sum(ops.values()) == pytest.approx(row["time_s"], rel=1e-9)
        heights = sum(p.get_height() for c in ax.containers for j, p in enumerate(c) if j == i)
        assert heights == pytest.approx(row["time_s"] * 1e3, rel=1e-9)
    assert main(["sweep", str(spec), "--out", str(out), "--plot", "bars"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "compare[:COLUMN]" in err
    with pytest.raises(ConfigError, match="'plots.0': a compare plot .* 'simulate'"):
        sweep({**FOOTPRINT, "plots": [{"kind": "compare", "x": "weights"}]}, out=tmp_path)


def test_mapping_candidates_setting(tmp_path):
    """``simulate: {mapping_candidates: N}`` searches each point's linear ops by simulation:
    never slower than the mapper's choice; the default keeps the points' ids of journals
    written before the setting existed (it is left out of the id), another value changes them."""
    base = {"name": "mc", "compute": ["simulate"],
            "fixed": {"model": "all-minilm-l6-v2", "batch": 2, "context": 64, "cores": 8},
            "execution": {"executor": "serial"}}
    ids = {n: expand(parse_spec({**base, "simulate": {"mapping_candidates": n}}))[0].point_id
           for n in (1, 2)}
    assert expand(parse_spec(base))[0].point_id == ids[1] != ids[2]
    one = sweep(base, out=tmp_path / "one").rows[0]
    two = sweep({**base, "simulate": {"mapping_candidates": 2}}, out=tmp_path / "two").rows[0]
    assert one["status"] == two["status"] == "ok"
    assert two["time_s"] <= one["time_s"]
    with pytest.raises(ConfigError, match="mapping_candidates"):
        parse_spec({**base, "simulate": {"mapping_candidates": 0}})
