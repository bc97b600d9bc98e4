"""Hadamard matrices and rotations: orthogonality, the fast transform, and invariance of small
LLaMA-style and BERT-style networks under the folded + online rotation plans."""

import math

import numpy as np
import pytest

from prodigy_sim.errors import ConfigError
from prodigy_sim.ptq import (
    bert_rotation_plan,
    fold_rotations,
    fwht,
    hadamard_matrix,
    hadamard_order,
    llama_rotation_plan,
    random_hadamard,
)

SUPPORTED = [n for n in range(1, 513) if hadamard_order(n) is not None]


def test_every_supported_order_is_a_hadamard_matrix():
    """Every buildable order up to 512 (every Paley base up to 512 among them), and larger
    model sizes, checked as built."""
    assert len(SUPPORTED) > 100
    for n in SUPPORTED + [576, 768, 1024, 1536, 2304]:
        h = hadamard_matrix(n)
        assert set(np.unique(h)) <= {-1, 1}
        hf = h.astype(np.float64)  # integer sums below 2^53: the float64 product is exact
        assert np.array_equal(hf @ hf.T, n * np.eye(n)), n


def test_model_sizes_are_true_hadamard_orders():
    # SmolLM2: hidden 576 = 36 * 16, intermediate 1536 = 12 * 128, head 64;
    # MiniLM: hidden 384 = 12 * 32, intermediate 1536, head 32
    assert hadamard_order(576) == (36, 16)
    assert hadamard_order(1536) == (12, 128)
    assert hadamard_order(384) == (12, 32)
    assert hadamard_order(64) == (1, 64)
    for n in (12, 20, 28, 36, 44, 60, 4096, 14336):
        assert hadamard_order(n) is not None, n
    # LLaMA-2-7B's 11008 = 64 * 172 would need order 172 (or 344, 688), which no prime Paley
    # construction gives (QuaRot stores a table for 172): here it is the block-diagonal fallback
    assert hadamard_order(11008) is None


def test_unsupported_orders_raise_or_fall_back_to_block_diagonal():
    for n in (3, 6, 10, 92, 116):
        assert hadamard_order(n) is None
        with pytest.raises(ConfigError, match="block-diagonal"):
            hadamard_matrix(n)
    r = random_hadamard(92, seed=1, block_diagonal=True)
    assert (r.blocks, r.d) == (23, 4)
    q = r.matrix()
    np.testing.assert_allclose(q @ q.T, np.eye(92), atol=1e-14)


def test_fwht_is_the_sylvester_matrix_product():
    x = np.random.default_rng(0).standard_normal((3, 64))
    h = hadamard_matrix(64).astype(np.float64)
    np.testing.assert_allclose(fwht(x), x @ h, atol=1e-12)
    signs = np.array([(-1) ** bin(i & j).count("1") for i in range(8) for j in range(8)])
    assert np.array_equal(hadamard_matrix(8).ravel(), signs)
    with pytest.raises(ConfigError, match="power-of-two"):
        fwht(np.ones(12))


@pytest.mark.parametrize("n", [8, 24, 40, 56, 576, 1536])
def test_random_rotation_is_orthogonal_and_apply_matches_the_matrix(n):
    r = random_hadamard(n, seed=n)
    q = r.matrix()
    np.testing.assert_allclose(q @ q.T, np.eye(n), atol=1e-13)
    x = np.random.default_rng(1).standard_normal((4, 2, n))
    np.testing.assert_allclose(r.apply(x), x @ q, atol=1e-12)
    np.testing.assert_allclose(r.apply(x, transpose=True), x @ q.T, atol=1e-12)
    assert np.array_equal(random_hadamard(n, seed=n).signs, r.signs)


def test_online_cost_per_row():
    assert random_hadamard(1536).ops_per_row() == {"sign_flips": 1536, "add_sub": 1536 * 7,
                                                   "mul_add": 1536 * 12, "scale_mul": 1536}
    assert random_hadamard(64).ops_per_row()["mul_add"] == 0


# ---- small networks ------------------------------------------------------------------------------

def _rms(x, g):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + 1e-6) * g


def _ln(x, g, b):
    mu = x.mean(axis=-1, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)
    return (x - mu) / np.sqrt(var + 1e-6) * g + b


def _attention(q, k, v, heads, kv_heads, hd, causal):
    t = q.shape[0]
    out = []
    for i in range(heads):
        g = i // (heads // kv_heads)
        qi, ki, vi = q[:, i * hd:(i + 1) * hd], k[:, g * hd:(g + 1) * hd], v[:, g * hd:(g + 1) * hd]
        s = qi @ ki.T / math.sqrt(hd)
        if causal:
            s = np.where(np.tri(t, dtype=bool), s, -np.inf)
        p = np.exp(s - s.max(axis=1, keepdims=True))
        out.append((p / p.sum(axis=1, keepdims=True)) @ vi)
    return np.concatenate(out, axis=1)


def _lin(w, x, name):
    y = x @ w[name].T
    return y + w[name + ".bias"] if name + ".bias" in w else y


def llama_forward(w, tokens, layers, heads, kv_heads, hd, online=None):
    """Two-layer LLaMA-style decoder (RMSNorm, GQA attention, SwiGLU), any float dtype."""
    rot = online or {}
    h = w["embed_tokens"][tokens]
    for i in range(layers):
        p = f"layers.{i}."
        x = _rms(h, w[p + "attn_norm"])
        a = _attention(_lin(w, x, p + "attn.q_proj"), _lin(w, x, p + "attn.k_proj"),
                       _lin(w, x, p + "attn.v_proj"), heads, kv_heads, hd, causal=True)
        h = h + _lin(w, a, p + "attn.o_proj")
        x = _rms(h, w[p + "mlp_norm"])
        g = _lin(w, x, p + "mlp.gate_proj")
        m = g / (1 + np.exp(-g)) * _lin(w, x, p + "mlp.up_proj")
        if "down_in" in rot:
            m = rot["down_in"](m)
        h = h + _lin(w, m, p + "mlp.down_proj")
    return _lin(w, _rms(h, w["final_norm"]), "lm_head")


def bert_forward(w, x, layers, heads, hd, online=None):
    """Post-LayerNorm BERT encoder layers with GELU (tanh form), any float dtype."""
    rot = online or {}
    for i in range(layers):
        p = f"layers.{i}."
        xa = rot["attn_in"](x) if "attn_in" in rot else x
        a = _attention(_lin(w, xa, p + "attn.q_proj"), _lin(w, xa, p + "attn.k_proj"),
                       _lin(w, xa, p + "attn.v_proj"), heads, heads, hd, causal=False)
        x = _ln(x + _lin(w, a, p + "attn.o_proj"), w[p + "attn_norm"], w[p + "attn_norm.bias"])
        xm = rot["mlp_in"](x) if "mlp_in" in rot else x
        u = _lin(w, xm, p + "mlp.up_proj")
        g = 0.5 * u * (1 + np.tanh(0.7978845608 * (u + 0.044715 * u**3)))
        if "down_in" in rot:
            g = rot["down_in"](g)
        x = _ln(x + _lin(w, g, p + "mlp.down_proj"), w[p + "mlp_norm"], w[p + "mlp_norm.bias"])
    return x


def _rand(rng, *shape, scale=0.3):
    return rng.standard_normal(shape) * scale


def llama_weights(hidden, inter, heads, kv_heads, hd, vocab, layers, seed=0):
    rng = np.random.default_rng(seed)
    w = {"embed_tokens": _rand(rng, vocab, hidden, scale=1.0),
         "final_norm": 1 + _rand(rng, hidden), "lm_head": _rand(rng, vocab, hidden)}
    for i in range(layers):
        p = f"layers.{i}."
        w |= {p + "attn_norm": 1 + _rand(rng, hidden), p + "mlp_norm": 1 + _rand(rng, hidden),
              p + "attn.q_proj": _rand(rng, heads * hd, hidden),
              p + "attn.k_proj": _rand(rng, kv_heads * hd, hidden),
              p + "attn.v_proj": _rand(rng, kv_heads * hd, hidden),
              p + "attn.o_proj": _rand(rng, hidden, heads * hd),
              p + "mlp.gate_proj": _rand(rng, inter, hidden),
              p + "mlp.up_proj": _rand(rng, inter, hidden),
              p + "mlp.down_proj": _rand(rng, hidden, inter)}
    return w


def test_rotated_llama_network_gives_the_original_output():
    """hidden 24 = 12 * 2 (Paley I), head 8, intermediate 40 = 20 * 2; 2 layers, GQA 3:1."""
    hidden, inter, heads, kv, hd, vocab, layers = 24, 40, 3, 1, 8, 17, 2
    w = llama_weights(hidden, inter, heads, kv, hd, vocab, layers)
    plan = llama_rotation_plan(hidden=hidden, intermediate=inter, head_dim=hd)
    rots = {"residual": random_hadamard(hidden, 1), "v_heads": random_hadamard(hd, 2),
            "down_in": random_hadamard(inter, 3)}
    wr = fold_rotations(w, plan, rots)
    assert not np.allclose(wr["layers.0.attn.q_proj"], w["layers.0.attn.q_proj"])
    assert np.all(wr["layers.1.attn_norm"] == 1.0) and np.all(wr["final_norm"] == 1.0)
    tokens = np.array([3, 1, 4, 1, 5, 9, 2, 6])
    online = {"down_in": rots["down_in"].apply}
    ref = llama_forward(w, tokens, layers, heads, kv, hd)
    got = llama_forward(wr, tokens, layers, heads, kv, hd, online)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-11 * np.abs(ref).max())
    # float32: both networks in float32 agree to float32 rounding
    w32 = {k: v.astype(np.float32) for k, v in w.items()}
    wr32 = {k: v.astype(np.float32) for k, v in wr.items()}
    on32 = {"down_in": lambda x: rots["down_in"].apply(x).astype(np.float32)}
    ref32 = llama_forward(w32, tokens, layers, heads, kv, hd)
    got32 = llama_forward(wr32, tokens, layers, heads, kv, hd, on32)
    assert ref32.dtype == got32.dtype == np.float32
    err = np.abs(got32.astype(np.float64) - ref).max() / np.abs(ref).max()
    assert err < 2e-6
    # the rotation is not a no-op: leaving out the online transform breaks the output
    bad = llama_forward(wr, tokens, layers, heads, kv, hd)
    assert np.abs(bad - ref).max() > 1e-2 * np.abs(ref).max()


def test_rotated_bert_network_gives_the_original_output():
    hidden, inter, heads, hd, layers = 24, 48, 3, 8, 2
    rng = np.random.default_rng(4)
    w = {}
    for i in range(layers):
        p = f"layers.{i}."
        for name, shape in (("attn.q_proj", (hidden, hidden)), ("attn.k_proj", (hidden, hidden)),
                            ("attn.v_proj", (hidden, hidden)), ("attn.o_proj", (hidden, hidden)),
                            ("mlp.up_proj", (inter, hidden)), ("mlp.down_proj", (hidden, inter))):
            w[p + name] = _rand(rng, *shape)
            w[p + name + ".bias"] = _rand(rng, shape[0], scale=0.1)
        for norm in ("attn_norm", "mlp_norm"):
            w[p + norm] = 1 + _rand(rng, hidden)
            w[p + norm + ".bias"] = _rand(rng, hidden, scale=0.1)
    plan = bert_rotation_plan(hidden=hidden, intermediate=inter, head_dim=hd)
    assert [s.mode for s in plan] == ["online", "folded", "online", "online"]
    rots = {"attn_in": random_hadamard(hidden, 5), "v_heads": random_hadamard(hd, 6),
            "mlp_in": random_hadamard(hidden, 7), "down_in": random_hadamard(inter, 8)}
    wr = fold_rotations(w, plan, rots)
    assert not np.allclose(wr["layers.0.attn.v_proj.bias"], w["layers.0.attn.v_proj.bias"])
    x = rng.standard_normal((7, hidden))
    ref = bert_forward(w, x, layers, heads, hd)
    got = bert_forward(wr, x, layers, heads, hd, {k: r.apply for k, r in rots.items()
                                                  if k != "v_heads"})
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-11)


def test_plan_describes_folded_and_online_sites():
    plan = llama_rotation_plan(hidden=576, intermediate=1536, head_dim=64)
    by = {s.name: s for s in plan}
    assert by["residual"].mode == "folded" and by["down_in"].mode == "online"
    assert "attn.o_proj" in by["residual"].left and "mlp.down_proj" in by["down_in"].right
    assert by["down_in"].online_at
    with pytest.raises(ConfigError, match="matches no weight"):
        fold_rotations({"x": np.ones((2, 2))}, plan, {s.name: random_hadamard(s.size)
                                                      for s in plan})
