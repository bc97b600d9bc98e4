"""SparseGPT: exact N:M masks, the textbook sweep, and better than magnitude pruning."""

import numpy as np
import pytest

from prodigy_sim.errors import ConfigError
from prodigy_sim.numerics import parse_sparsity, unpack_mask
from prodigy_sim.ptq import (
    hessian,
    inverse_factor,
    output_error,
    prune_mask,
    rtn,
    sparsegpt,
    sparsegpt_act_block,
)
from tests.test_ptq_gptq import calibration, weights


def textbook_sparsegpt(w, h, n, m, percdamp=0.01):
    """Plain OBS sweep with the inverse Hessian downdated column by column; at every group
    start q (q % m == 0) each row keeps the n of columns q..q+m-1 with the largest
    ``w_c^2 / [H_c^-1]_cc`` where ``H_c^-1`` is the inverse after removing columns < c (computed
    by running the downdates ahead), ties to the lower column."""
    w = w.astype(np.float64).copy()
    k = w.shape[1]
    h = h.astype(np.float64) + percdamp * np.mean(np.diag(h)) * np.eye(k)
    hinv = np.linalg.inv(h)
    diag = np.empty(k)
    t = hinv.copy()
    for c in range(k):
        diag[c] = t[c, c]
        t = t - np.outer(t[:, c], t[c, :]) / t[c, c]
    keep = np.zeros(w.shape, bool)
    for q in range(k):
        if q % m == 0:
            score = w[:, q:q + m] ** 2 / diag[q:q + m]
            order = np.argsort(-score, axis=1, kind="stable")[:, :n]
            np.put_along_axis(keep[:, q:q + m], order, True, axis=1)
        v = np.where(keep[:, q], w[:, q], 0.0)
        err = (w[:, q] - v) / hinv[q, q]
        w[:, q + 1:] -= np.outer(err, hinv[q, q + 1:])
        w[:, q] = v
        hinv = hinv - np.outer(hinv[:, q], hinv[q, :]) / hinv[q, q]
    return w, keep


@pytest.mark.parametrize("sparsity", ["8:4", "2:4"])
def test_sparsegpt_equals_the_textbook_sweep(sparsity):
    sp = parse_sparsity(sparsity)
    n, m = sp.kept, sp.group
    x = calibration(256, 64, seed=2)
    w = weights(8, 64, seed=3)
    h = hessian(x)
    got = sparsegpt(w, h, sparsity=sparsity, blocksize=16)
    want_w, want_mask = textbook_sparsegpt(w, h, n, m)
    assert np.array_equal(got.mask, want_mask)
    np.testing.assert_allclose(got.weight, want_w, rtol=1e-5, atol=1e-7)
    assert got.quantized is None


@pytest.mark.parametrize("sparsity", ["8:4", "2:4"])
@pytest.mark.parametrize("fmt", [None, "tai4", "tai2", "int4"])
def test_masks_are_exactly_n_of_m_and_beat_magnitude_pruning(sparsity, fmt):
    sp = parse_sparsity(sparsity)
    n, m = sp.kept, sp.group
    x = calibration(512, 128, seed=5, rank=10)
    w = weights(48, 128, seed=6)
    h = hessian(x)
    res = sparsegpt(w, h, sparsity=sparsity, fmt=fmt)
    groups = res.mask.reshape(48, -1, m).sum(axis=2)
    assert np.all(groups == n)
    assert np.all(res.weight[~res.mask] == 0)
    if fmt is None:
        base = w * prune_mask(w, sparsity)
    else:
        base = rtn(w, fmt=fmt, sparsity=sparsity).weight
        q = res.quantized
        assert q.sparsity == sp
        assert np.array_equal(unpack_mask(q.mask_bits, n, m, 128), res.mask)
        assert np.array_equal(q.dequantize(), res.weight)
    assert output_error(w, res.weight, x) < 0.8 * output_error(w, base, x)


def test_sparsegpt_beats_wanda_too():
    x = calibration(512, 128, seed=9, rank=10, outliers=6)
    w = weights(48, 128, seed=10)
    h = hessian(x)
    norms = np.linalg.norm(x.astype(np.float64), axis=0)
    wanda = rtn(w, fmt="tai4", sparsity="8:4", prune="wanda", act_norms=norms).weight
    res = sparsegpt(w, h, sparsity="8:4", fmt="tai4")
    assert output_error(w, res.weight, x) < output_error(w, wanda, x)


def test_sparsegpt_rejects_column_act_order_and_bad_groups():
    x = calibration(100, 32)
    w = weights(4, 32)
    with pytest.raises(ConfigError, match="act_block"):  # columns one by one split the groups
        sparsegpt(w, inverse_factor(hessian(x), act_order=True), act_order=True)
    with pytest.raises(ConfigError, match="contradicts"):
        sparsegpt(w, inverse_factor(hessian(x), act_order=True))
    with pytest.raises(ConfigError, match="multiple of the sparsity group"):
        sparsegpt(w, hessian(x), fmt="tai4", block=4, sparsity="8:4")
    with pytest.raises(ConfigError, match="sparsity"):
        sparsegpt(w, hessian(x), sparsity=None)


def block_permutation(h, block):
    """Blocks of ``block`` columns by descending sum of diag(H), ties to the lower block."""
    sums = np.diagonal(h).reshape(-1, block).sum(axis=1)
    first = np.argsort(-sums, kind="stable") * block
    return (first[:, None] + np.arange(block)).ravel()


@pytest.mark.parametrize("fmt", [None, "tai4", "tai2"])
def test_block_act_order_is_the_sweep_of_the_block_permuted_layer(fmt):
    """SparseGPT with block act-order equals plain SparseGPT run on W and H with whole blocks
    permuted by descending diag(H) sum, permuted back: the same mask, weights, codes and scales
    (scales chosen in the sweep land on their blocks' original positions)."""
    x = calibration(512, 128, seed=11, rank=10, outliers=6)
    w = weights(24, 128, seed=12)
    h = hessian(x)
    block = 32 if fmt else 8
    assert sparsegpt_act_block("8:4", None, 128) == 8
    perm = block_permutation(h, block)
    assert not np.array_equal(perm, np.arange(128))  # the outliers move their blocks first
    inv = np.argsort(perm)
    got = sparsegpt(w, h, sparsity="8:4", fmt=fmt, act_order=True)
    want = sparsegpt(w[:, perm], h[np.ix_(perm, perm)], sparsity="8:4", fmt=fmt)
    assert np.array_equal(got.mask, want.mask[:, inv])
    assert np.array_equal(got.weight, want.weight[:, inv])
    assert got.stats["act_order"] and not want.stats["act_order"]
    if fmt is not None:
        q, qw = got.quantized, want.quantized
        assert np.array_equal(q.dequantize(), got.weight)
        nb = 128 // block
        bperm = perm.reshape(nb, block)[:, 0] // block
        assert np.array_equal(q.scale_values(), qw.scale_values()[:, np.argsort(bperm)])
        assert not got.stats["static_scales"]  # whole blocks: scales chosen in the sweep


def test_inverse_factor_block_act_order():
    x = calibration(256, 64, seed=4, outliers=4)
    h = hessian(x)
    fac = inverse_factor(h, act_order=True, act_block=16)
    assert fac.act_block == 16
    assert np.array_equal(fac.perm, block_permutation(h, 16))
    assert inverse_factor(h, act_block=16).act_block == 1  # no act-order: nothing moves
    with pytest.raises(ConfigError, match="act_block"):
        inverse_factor(h, act_order=True, act_block=24)


def test_block_act_order_beats_magnitude_at_tai2_on_strong_channels():
    """A layer whose input channels differ by orders of magnitude in energy (lognormal scales,
    as in the v_proj inputs of SmolLM2 where plain SparseGPT at tai2 8:4 lost to magnitude
    pruning + round to nearest): block act-order sweeps the strong blocks first; it must beat
    magnitude + RTN and plain SparseGPT."""
    rng = np.random.default_rng(21)
    k = 256
    x = calibration(1024, k, seed=22, rank=12, outliers=8)
    x = (x * np.exp(1.2 * rng.standard_normal(k))).astype(np.float32)
    w = weights(64, k, seed=23)
    h = hessian(x)
    act = output_error(w, sparsegpt(w, h, sparsity="8:4", fmt="tai2", act_order=True).weight, x)
    plain = output_error(w, sparsegpt(w, h, sparsity="8:4", fmt="tai2").weight, x)
    base = output_error(w, rtn(w, fmt="tai2", sparsity="8:4").weight, x)
    assert act < base and act < plain
