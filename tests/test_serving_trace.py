"""Request traces: CSV / JSON files with located errors, Poisson generation from a seed."""

import json

import numpy as np
import pytest

from prodigy_sim.errors import ConfigError, TraceError
from prodigy_sim.serving import (
    Request,
    load_trace,
    parse_length_dist,
    poisson_trace,
    write_trace,
)


def test_csv_and_json_roundtrip(tmp_path):
    trace = poisson_trace(50, 3.0, "uniform:10,100", "fixed:7", seed=5)
    for name in ("t.csv", "t.json"):
        assert load_trace(write_trace(trace, tmp_path / name)) == trace


def test_csv_any_column_order_comments_and_sorting(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("# a comment\noutput_tokens,arrival_s,prompt_tokens\n5,0.5,10\n\n3,0.25,20\n")
    assert load_trace(p) == (Request(1, 0.25, 20, 3), Request(0, 0.5, 10, 5))


@pytest.mark.parametrize("text, match", [
    ("arrival_s,prompt_tokens\n0,1\n", r"t.csv:1: header must name .*missing output_tokens"),
    ("arrival_s,prompt_tokens,output_tokens,x\n", r"t.csv:1: .*unknown x"),
    ("arrival_s,prompt_tokens,output_tokens\n0,5,2\n0.1,-3,2\n",
     r"t.csv:3: 'prompt_tokens' must be an integer >= 1 \(got '-3'\)"),
    ("arrival_s,prompt_tokens,output_tokens\n0,5,2\nsoon,5,2\n",
     r"t.csv:3: 'arrival_s' must be a number \(got 'soon'\)"),
    ("arrival_s,prompt_tokens,output_tokens\n0,5\n", r"t.csv:2: expected 3 values"),
    ("arrival_s,prompt_tokens,output_tokens\n-1,5,2\n", r"t.csv:2: 'arrival_s' must be >= 0"),
    ("id,arrival_s,prompt_tokens,output_tokens\n1,0,5,2\n1,1,5,2\n", r"request id 1 appears"),
    ("arrival_s,prompt_tokens,output_tokens\n", r"t.csv: the trace has no requests"),
])
def test_csv_errors_are_located(tmp_path, text, match):
    p = tmp_path / "t.csv"
    p.write_text(text)
    with pytest.raises(TraceError, match=match):
        load_trace(p)


def test_json_errors_are_located(tmp_path):
    p = tmp_path / "t.json"
    p.write_text(json.dumps([{"arrival_s": 0, "prompt_tokens": 4, "output_tokens": 1},
                             {"arrival_s": 1, "prompt_tokens": 4.5, "output_tokens": 1}]))
    with pytest.raises(TraceError, match=r"t.json: request 1: 'prompt_tokens' must be an "
                                         r"integer >= 1 \(got 4.5\)"):
        load_trace(p)
    p.write_text('{"requests": [{"arrival_s": 0, "prompt": 4}]}')
    with pytest.raises(TraceError, match="request 0: unknown field"):
        load_trace(p)
    p.write_text('[{"arrival_s": 0,')
    with pytest.raises(TraceError, match=r"t.json:1:\d+: not valid JSON"):
        load_trace(p)
    with pytest.raises(TraceError, match="cannot read the trace"):
        load_trace(tmp_path / "missing.csv")


def test_poisson_is_deterministic_and_has_the_rate():
    a = poisson_trace(4000, 5.0, "lognormal:300,0.6,2000", "uniform:1,9", seed=11)
    assert a == poisson_trace(4000, 5.0, "lognormal:300,0.6,2000", "uniform:1,9", seed=11)
    assert a != poisson_trace(4000, 5.0, "lognormal:300,0.6,2000", "uniform:1,9", seed=12)
    gaps = np.diff([0.0] + [r.arrival_s for r in a])
    assert gaps.mean() == pytest.approx(1 / 5.0, rel=0.05)
    prompts = np.array([r.prompt_tokens for r in a])
    assert prompts.mean() == pytest.approx(300, rel=0.05) and prompts.max() <= 2000
    outs = {r.output_tokens for r in a}
    assert outs == set(range(1, 10))


def test_length_dist_parsing():
    assert parse_length_dist("fixed:8").sample(np.random.default_rng(0), 3).tolist() == [8] * 3
    assert parse_length_dist("lognormal:100,0.5").max is None
    for bad in ("fixed", "uniform:5", "uniform:9,3", "gauss:1,2", "fixed:x", "fixed:0"):
        with pytest.raises(ConfigError, match="distribution"):
            parse_length_dist(bad)
    with pytest.raises(ConfigError, match="rate must be a finite number > 0"):
        poisson_trace(3, 0.0, "fixed:1", "fixed:1")
