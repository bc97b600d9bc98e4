"""Tensor, pipeline and expert parallelism: collectives against their closed forms, shards,
footprint per socket, the pipeline formula, LLaMA-2-70B over 2 and 4 sockets, the 256 PB claim."""

import math
from pathlib import Path

import pytest
import yaml

from prodigy_sim.errors import ConfigError
from prodigy_sim.hardware import load_preset, load_system
from prodigy_sim.models import Formats, Routing, Scenario, footprint_report, load_card
from prodigy_sim.parallel import (
    Link,
    ParallelPlan,
    SocketTimes,
    allgather,
    allreduce,
    alltoall,
    brain_scale,
    direct_allreduce_seconds,
    p2p,
    ring_allreduce_seconds,
    scaled_card,
    shard_card,
    simulate_parallel,
    socket_footprint,
    stage_layers,
    tree_allreduce_seconds,
)

NODE = load_system("4s-t16128")
DOC = (Path(__file__).parent.parent / "docs" / "systems.md").read_text()


def doc_row(first: str) -> list[str]:
    """The cells of the docs/systems.md table row whose first cell is ``first``."""
    line = next(ln for ln in DOC.splitlines() if ln.startswith(f"| {first} |"))
    return [c.strip() for c in line.strip("|").split("|")]
BW = 16 * 32e9 * 128 / 130 / 8  # x16 PCIe 5.0, one direction
LAT = 1e-6


def test_allreduce_formulas_by_hand():
    link = Link(1e9, 1e-6)
    assert ring_allreduce_seconds(4_000_000, 4, link) == pytest.approx(2 * 3 / 4 * 4e-3 + 6e-6)
    assert direct_allreduce_seconds(4_000_000, 4, link) == pytest.approx(2 * 1e-3 + 2e-6)
    assert tree_allreduce_seconds(4_000_000, 8, link) == pytest.approx(2 * 7 / 8 * 4e-3 + 6e-6)
    assert ring_allreduce_seconds(123, 1, link) == 0.0


def test_allreduce_in_a_node_picks_the_faster_closed_form():
    n = 16384
    for p in (2, 4):
        ring = 2 * (p - 1) / p * n / BW + 2 * (p - 1) * LAT
        direct = 2 * n / (p * BW) + 2 * LAT
        auto = allreduce(NODE, n, p)
        assert auto.seconds == pytest.approx(min(ring, direct))
        assert allreduce(NODE, n, p, "ring").seconds == pytest.approx(ring)
    assert allreduce(NODE, n, 4).algorithm == "direct"


def test_hierarchical_allreduce_over_nodes():
    rack = load_system("rack-t16128")
    n = 8_000_000
    got = allreduce(rack, n, 16, "ring")  # 4 nodes of 4 sockets
    intra = 2 * 3 / 4 * n / BW + 6 * LAT
    inter = 2 * 3 / 4 * (n / 4) / 50e9 + 6 * 5e-6
    assert got.seconds == pytest.approx(intra + inter)
    assert "hierarchical" in got.algorithm
    with pytest.raises(ConfigError, match="must fill whole nodes"):
        allreduce(rack, n, 6)


def test_allgather_alltoall_p2p():
    n = 1_000_000
    assert allgather(NODE, n, 4).seconds == pytest.approx(3 / 4 * n / BW + 3 * LAT)
    assert alltoall(NODE, n, 4).seconds == pytest.approx(n / (4 * BW) + LAT)
    assert p2p(NODE, n, same_node=True).seconds == pytest.approx(n / BW + LAT)
    assert p2p(NODE, n, same_node=False).seconds == pytest.approx(n / 50e9 + 5e-6)
    rack = load_system("rack-t16128")
    local = 3 * n / 8 / BW + LAT
    remote = 4 * n / 8 / 50e9 + 5e-6
    assert alltoall(rack, n, 8).seconds == pytest.approx(max(local, remote))


def test_shard_card_divides_and_refuses():
    card = load_card("llama-2-70b")
    s = shard_card(card, 4)
    assert (s.num_attention_heads, s.kv_heads, s.intermediate_size, s.vocab_size,
            s.head_size, s.hidden_size) == (16, 2, 7168, 8000, 128, 8192)
    norms = sum(t.numel for t in card.tensors() if t.tensor_class == "norm")
    assert s.parameter_count() == (card.parameter_count() - norms) // 4 + norms
    with pytest.raises(ConfigError, match="'num_key_value_heads' of 'llama-2-70b' divisible by "
                                          "16 \\(got 8\\)"):
        shard_card(card, 16)
    with pytest.raises(ConfigError, match="has no experts"):
        shard_card(card, 1, ep=2)
    sw = shard_card("switch-1.6t", 1, ep=8)
    assert sw.num_experts == 256


def test_stage_layers():
    assert stage_layers(10, 3) == ((0, 1, 2, 3), (4, 5, 6), (7, 8, 9))
    with pytest.raises(ConfigError, match="pp=11"):
        stage_layers(10, 11)


def test_footprint_per_socket_adds_up():
    sc = Scenario(model="llama-2-70b", phase="decode", batch=4, context_length=1024)
    whole = footprint_report("llama-2-70b", sc)
    stages = socket_footprint("llama-2-70b", sc, ParallelPlan(pp=4))
    assert sum(s.weight_bytes for s in stages) == whole.weight_bytes
    assert sum(s.kv_cache_bytes for s in stages) == whole.kv_cache_bytes
    assert [s.layers for s in stages] == [(0, 19), (20, 39), (40, 59), (60, 79)]
    tp = socket_footprint("llama-2-70b", sc, ParallelPlan(tp=4))[0]
    norms = whole.by_class("norm").total_bytes  # replicated on every socket
    assert tp.weight_bytes == pytest.approx((whole.weight_bytes - norms) / 4 + norms, rel=1e-6)
    assert tp.kv_cache_bytes == whole.kv_cache_bytes // 4


def _timer(layer_s, head_s):
    def timer(card, scenario, chip):
        return SocketTimes((layer_s,) * card.num_layers, head_s, "fixed")
    return timer


def test_pipeline_formula_with_a_fixed_timer():
    sc = Scenario(model="llama-2-7b", phase="decode", batch=8, context_length=512)
    r = simulate_parallel(sc, ParallelPlan(pp=2, microbatches=4), NODE,
                          socket_timer=_timer(1e-3, 2e-3))
    t0, t1 = 16e-3, 16e-3 + 2e-3
    send = 2 * 4096 * 2 / BW + LAT  # microbatch of 2 sequences x 4096 hidden, BF16
    assert r.stage_seconds == pytest.approx((t0, t1))
    assert r.p2p_seconds == pytest.approx((send,))
    assert r.step_s == pytest.approx(t0 + t1 + send + 3 * max(t0, t1, send))
    assert r.tokens_per_s == pytest.approx(8 / r.step_s)
    with pytest.raises(ConfigError, match="batch 8 must divide into microbatches"):
        simulate_parallel(sc, ParallelPlan(pp=2, microbatches=3), NODE,
                          socket_timer=_timer(1e-3, 0.0))
    with pytest.raises(ConfigError, match="needs tp x pp x ep = 8 sockets"):
        simulate_parallel(sc, ParallelPlan(tp=4, pp=2), NODE, socket_timer=_timer(1e-3, 0.0))


def test_expert_parallel_all_to_all_with_an_injected_timer():
    card = load_card("switch-1.6t")
    sc = Scenario(model="switch-1.6t", phase="decode", batch=4, context_length=512)
    r = simulate_parallel(sc, ParallelPlan(ep=4), NODE, socket_timer=_timer(1e-3, 0.0))
    # a decode step runs the decoder's MoE layers only (the encoder ran at prefill)
    moe = sum(card.is_moe_layer(i) for i in range(card.num_layers)
              if card.layer_kind(i) == "decoder")
    a2a = [c for c in r.collectives if c["op"] == "all-to-all"][0]
    assert a2a["count"] == 2 * moe and a2a["nbytes"] == 1 * card.hidden_size * 2
    assert r.step_s == pytest.approx(card.num_layers * 1e-3 + 2 * moe * a2a["seconds"])
    whole = footprint_report(card, sc).by_class("expert").total_bytes
    stage = socket_footprint(card, sc, ParallelPlan(ep=4))[0]
    assert stage.weight_bytes < whole / 4 * 1.05
    with pytest.raises(ConfigError, match="fewer than the 2"):
        shard_card("mixtral-8x7b", 1, ep=8)
    trace = sc.model_copy(update={"routing": Routing(model="trace", trace=((0,),))})
    with pytest.raises(ConfigError, match="trace"):
        simulate_parallel(trace, ParallelPlan(ep=4), NODE, socket_timer=_timer(1e-3, 0.0))


def test_expert_parallel_times_the_experts_with_the_simulator(tmp_path):
    """A small top-2-of-8 MoE over ep=2 sockets: each socket's shard (4 experts) is simulated;
    the step is its compute plus two all-to-alls per MoE layer."""
    card = dict(name="tiny-moe", family="llama", source="a test card (not a published model)",
                hidden_size=1024, intermediate_size=512, num_layers=2, num_attention_heads=8,
                vocab_size=1024, max_position_embeddings=512, norm="rmsnorm", norm_eps=1e-5,
                activation="silu", mlp="gated", position_embedding="rope", rope_theta=1e4,
                num_experts=8, experts_per_token=2)
    path = tmp_path / "tiny-moe.yaml"
    path.write_text(yaml.safe_dump(card))
    sc = Scenario(model=str(path), phase="decode", batch=2, context_length=64)
    r = simulate_parallel(sc, ParallelPlan(ep=2), NODE)
    a2a = [c for c in r.collectives if c["op"] == "all-to-all"][0]
    assert a2a["count"] == 2 * 2
    assert r.step_s == pytest.approx(r.compute_s + 4 * a2a["seconds"], rel=1e-12)
    assert r.shard == "tiny-moe-ep2" and "simulate_scenario" in r.method


@pytest.fixture(scope="module")
def llama70b_tp():
    sc = Scenario(model="llama-2-70b", phase="decode", batch=1, context_length=2048)
    return {tp: simulate_parallel(sc, ParallelPlan(tp=tp), NODE) for tp in (1, 2, 4)}


@pytest.mark.slow
def test_llama2_70b_tensor_parallel_speedup_is_below_linear_by_the_all_reduces(llama70b_tp):
    one = llama70b_tp[1].step_s
    layers, hidden, vocab = 80, 8192, 32000
    for p in (2, 4):
        r = llama70b_tp[p]
        n = hidden * 2
        ar = min(2 * (p - 1) / p * n / BW + 2 * (p - 1) * LAT, 2 * n / (p * BW) + 2 * LAT)
        ag = (p - 1) / p * vocab * 2 / BW + (p - 1) * LAT
        assert r.communication_s == pytest.approx((2 * layers + 1) * ar + ag, rel=1e-9)
        assert r.step_s == pytest.approx(r.compute_s + r.communication_s, rel=1e-12)
        speedup = one / r.step_s
        assert 1 < speedup < one / r.compute_s < p + 0.5
        assert speedup < p
        row = doc_row(str(p))  # docs/systems.md, from `prodigy-sim parallel --tp 1,2,4`
        assert row[1:5] == [f"{r.step_s * 1e3:.3f}", f"{r.compute_s * 1e3:.3f}",
                            f"{r.communication_s * 1e3:.3f}", f"{speedup:.3f}"]
    assert llama70b_tp[4].step_s < llama70b_tp[2].step_s


def test_scaled_card_and_brain_scale():
    card = scaled_card()
    assert card.parameter_count() == pytest.approx(1e17, rel=1e-3)
    assert card.hidden_size % 8192 == 0 and card.kv_heads % 8 == 0
    c = brain_scale("tai4")
    cap = load_preset("prodigy-t16128").memory.capacity_bytes
    assert c.sockets_for_claim == math.ceil(256e15 / cap)
    w = footprint_report(card, Formats.uniform("tai4")).weight_bytes
    assert c.weight_bytes == w and c.fits_claim
    assert c.sockets_needed == 4 * c.pp and c.pp == math.ceil(c.layers / c.layers_per_stage)
    assert c.step_seconds == pytest.approx(c.layers * (c.layer_seconds + 2 * c.allreduce_seconds)
                                           + (c.pp - 1) * c.send_seconds)
    # memory-bound: one layer shard of weights + KV at the socket's DDR bandwidth
    assert c.layer_bound == "memory"
    assert c.layer_seconds > (w / c.layers / 4) / 921.6e9
    bf16 = brain_scale("bfloat16")
    assert bf16.fits_claim and not bf16.fits_system  # 200 PB, but whole layers per socket
    row = doc_row("tai4")  # docs/systems.md, from `prodigy-sim parallel --brain-scale`
    assert row[1] == f"{c.weight_bytes / 1e15:.2f}" and row[4] == f"{c.sockets_needed:,}"
    assert row[10] == f"{c.step_seconds:,.0f} s ({c.step_seconds / 3600:.2f} h)"
    assert row[6] == f"{c.layer_shard_bytes / 1e12:.2f}"


def test_cli_worker_processes_give_the_same_table(capsys):
    """``prodigy-sim parallel`` simulates the sockets' kernels in worker processes (one per CPU
    by default) with one cache, so the one-socket baseline of a --tp table reuses the tp=1
    runs: the same JSON as in one process."""
    import json

    from prodigy_sim.cli import main

    argv = ["parallel", "--model", "bert-base-uncased", "--phase", "prefill", "--tp", "1,2",
            "--context", "128", "--json"]
    assert main(argv + ["--workers", "1"]) == 0
    one = json.loads(capsys.readouterr().out)
    assert main(argv + ["--workers", "2"]) == 0
    assert json.loads(capsys.readouterr().out) == one
    assert [r["tp"] for r in one["rows"]] == [1, 2] and one["rows"][0]["speedup"] == 1.0
