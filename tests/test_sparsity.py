"""Tests of N:M structured sparsity (prodigy_sim.numerics._sparsity).

The oracle is a plain per-group Python reference (sort positions by descending |w|, then by
position) and an independent int-based encoding of the mask bits.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from prodigy_sim.errors import ConfigError, EncodeError
from prodigy_sim.numerics._sparsity import (
    SparseTensor,
    compress,
    nm_mask,
    prune,
    sparsity_metadata_nbytes,
    unpack_mask,
    wanda_scores,
)

NM_PAIRS = [(n, m) for m in (2, 4, 8, 16) for n in range(1, m + 1)]

# Few distinct magnitudes, both zeros, both signs: groups full of ties.
TIE_VALUES = [0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 2.0, -2.0, np.inf, -np.inf]


@st.composite
def sparse_case(draw, *, max_lead=2, max_groups=4):
    """(w, n, m, axis): a float32 array whose ``axis`` has a multiple-of-m length."""
    n, m = draw(st.sampled_from(NM_PAIRS))
    lead = draw(st.lists(st.integers(1, 3), min_size=0, max_size=max_lead))
    k = m * draw(st.integers(1, max_groups))
    axis = draw(st.integers(0, len(lead)))
    shape = (*lead[:axis], k, *lead[axis:])
    elements = draw(st.sampled_from(["ties", "floats"]))
    if elements == "ties":
        el = st.sampled_from(TIE_VALUES)
    else:
        el = st.floats(width=32, allow_nan=False, allow_infinity=False)
    w = draw(hnp.arrays(np.float32, shape, elements=el))
    return w, n, m, axis


def reference_mask_last(w_last: np.ndarray, n: int, m: int) -> np.ndarray:
    """Independent per-group reference: keep the n largest |w|, lower position on ties."""
    out = np.zeros(w_last.shape, dtype=bool)
    for row in np.ndindex(*w_last.shape[:-1]):
        vals = [float(v) for v in w_last[row]]
        for g in range(len(vals) // m):
            group = vals[g * m:(g + 1) * m]
            ranked = sorted(range(m), key=lambda j, grp=group: (-abs(grp[j]), j))
            for j in ranked[:n]:
                out[(*row, g * m + j)] = True
    return out


def reference_mask_bits(mask_last: np.ndarray, m: int) -> np.ndarray:
    """Independent encoding: bit j of group g = position g*m + j, groups as little-endian ints."""
    nbytes = math.ceil(m / 8)
    out = []
    for row in np.ndindex(*mask_last.shape[:-1]):
        bits = mask_last[row]
        row_bytes = b""
        for g in range(len(bits) // m):
            code = sum(1 << j for j in range(m) if bits[g * m + j])
            row_bytes += code.to_bytes(nbytes, "little")
        out.append(list(row_bytes))
    return np.array(out, dtype=np.uint8).reshape(*mask_last.shape[:-1], -1)


def bits_of(a: np.ndarray) -> np.ndarray:
    """Raw bit patterns, for bit-for-bit comparisons (distinguishes -0.0 from +0.0)."""
    return a.view(f"u{a.dtype.itemsize}")


# --------------------------------------------------------------------------------------------------
# the mask


@given(sparse_case())
def test_mask_keeps_exactly_n_per_group_and_matches_reference(case):
    w, n, m, axis = case
    mask = nm_mask(w, n, m, axis=axis)
    assert mask.shape == w.shape and mask.dtype == np.bool_
    mask_last = np.moveaxis(mask, axis, -1)
    counts = mask_last.reshape(*mask_last.shape[:-1], -1, m).sum(axis=-1)
    assert (counts == n).all()
    np.testing.assert_array_equal(mask_last,
                                  reference_mask_last(np.moveaxis(w, axis, -1), n, m))


@given(sparse_case())
def test_prune_keeps_the_largest_magnitudes_bit_for_bit(case):
    w, n, m, axis = case
    p = prune(w, n, m, axis=axis)
    mask = nm_mask(w, n, m, axis=axis)
    assert p.dtype == w.dtype and p.shape == w.shape
    np.testing.assert_array_equal(bits_of(p[mask]), bits_of(w[mask]))
    assert (bits_of(p[~mask]) == 0).all()  # pruned entries are +0, not -0
    # Every kept magnitude is >= every pruned magnitude of the same group.
    g_abs = np.abs(np.moveaxis(w, axis, -1)).reshape(-1, m)
    g_keep = np.moveaxis(mask, axis, -1).reshape(-1, m)
    kept_min = np.where(g_keep, g_abs, np.inf).min(axis=-1)
    pruned_max = np.where(g_keep, -np.inf, g_abs).max(axis=-1)
    assert (kept_min >= pruned_max).all()


def test_ties_keep_the_lower_position():
    w = np.array([[1.0, -1.0, 1.0, 1.0, 0.0, -0.0, 0.0, 0.0]], np.float32)
    np.testing.assert_array_equal(nm_mask(w, 2, 4), [[1, 1, 0, 0, 1, 1, 0, 0]])
    np.testing.assert_array_equal(nm_mask(np.zeros((1, 8)), 4, 8), [[1, 1, 1, 1, 0, 0, 0, 0]])


def test_mask_along_axis_0_groups_columns():
    w = np.array([[1.0, 9.0], [5.0, 2.0], [3.0, 8.0], [4.0, 1.0]], np.float32)
    np.testing.assert_array_equal(nm_mask(w, 2, 4, axis=0), [[0, 1], [1, 0], [0, 1], [1, 0]])


def test_explicit_scores_override_magnitude():
    w = np.array([[4.0, 3.0, 2.0, 1.0]])
    scores = np.array([[0, 0, 5, 5]])  # integer scores are accepted
    np.testing.assert_array_equal(nm_mask(w, 2, 4, scores=scores), [[0, 0, 1, 1]])


def test_integer_weights_use_the_true_magnitude():
    w = np.array([[-128, 1, 2, 3]], np.int8)  # np.abs(int8(-128)) would overflow
    np.testing.assert_array_equal(nm_mask(w, 1, 4), [[1, 0, 0, 0]])
    np.testing.assert_array_equal(prune(w, 1, 4), np.array([[-128, 0, 0, 0]], np.int8))


# --------------------------------------------------------------------------------------------------
# Wanda


def test_wanda_keeps_small_weights_on_loud_inputs():
    # Input feature 0 carries 10x the activation energy of the others: its small weight matters
    # more than the larger weight at position 1. Magnitude pruning keeps positions {2, 3};
    # Wanda keeps {0, 3} (scores 10, 2, 3, 4).
    w = np.array([[1.0, 2.0, 3.0, 4.0]], np.float32)
    norms = np.array([10.0, 1.0, 1.0, 1.0], np.float32)
    np.testing.assert_array_equal(wanda_scores(w, norms), [[10.0, 2.0, 3.0, 4.0]])
    np.testing.assert_array_equal(prune(w, 2, 4), [[0.0, 0.0, 3.0, 4.0]])
    np.testing.assert_array_equal(prune(w, 2, 4, method="wanda", act_norms=norms),
                                  [[1.0, 0.0, 0.0, 4.0]])


def test_wanda_scales_along_the_input_axis():
    w = np.array([[1.0, -2.0], [3.0, 4.0]])
    np.testing.assert_array_equal(wanda_scores(w, np.array([1.0, 10.0])), [[1, 20], [3, 40]])
    np.testing.assert_array_equal(wanda_scores(w, np.array([1.0, 10.0]), axis=0),
                                  [[1, 2], [30, 40]])


@given(sparse_case(), st.data())
def test_wanda_keeps_the_largest_weight_times_norm(case, data):
    w, n, m, axis = case
    k = w.shape[axis]
    norms = data.draw(hnp.arrays(np.float32, (k,), elements=st.sampled_from(
        [0.0, 0.25, 1.0, 3.0, 1e3])))
    shape = [1] * w.ndim
    shape[axis] = k
    with np.errstate(invalid="ignore"):
        scores = np.abs(w.astype(np.float64)) * norms.reshape(shape).astype(np.float64)
    if np.isnan(scores).any():  # an infinite weight on a silent input: no defined score
        with pytest.raises(EncodeError, match=r"Wanda score is NaN at index .*w = -?inf"):
            prune(w, n, m, axis=axis, method="wanda", act_norms=norms)
        return
    got = prune(w, n, m, axis=axis, method="wanda", act_norms=norms)
    want = np.where(nm_mask(w, n, m, axis=axis, scores=scores), w, np.float32(0))
    np.testing.assert_array_equal(bits_of(got), bits_of(want))


@given(sparse_case(), st.sampled_from([0.5, 1.0, 7.0]))
def test_wanda_with_equal_norms_is_magnitude_pruning(case, c):
    w, n, m, axis = case
    norms = np.full(w.shape[axis], c, np.float32)
    np.testing.assert_array_equal(
        bits_of(prune(w, n, m, axis=axis, method="wanda", act_norms=norms)),
        bits_of(prune(w, n, m, axis=axis)))


# --------------------------------------------------------------------------------------------------
# packing


@given(sparse_case())
def test_dense_of_compress_equals_prune_bit_for_bit(case):
    w, n, m, axis = case
    t = compress(w, n, m, axis=axis)
    w_last = np.moveaxis(w, axis, -1)
    assert t.shape == w_last.shape and (t.n, t.m) == (n, m)
    assert t.values.shape == (*w_last.shape[:-1], w_last.shape[-1] * n // m)
    assert t.values.dtype == w.dtype
    dense = t.dense()
    assert dense.dtype == w.dtype
    np.testing.assert_array_equal(bits_of(dense),
                                  bits_of(np.moveaxis(prune(w, n, m, axis=axis), axis, -1)))
    np.testing.assert_array_equal(bits_of(np.moveaxis(dense, -1, axis)),
                                  bits_of(prune(w, n, m, axis=axis)))


@given(sparse_case())
def test_values_are_kept_entries_in_position_order(case):
    w, n, m, axis = case
    t = compress(w, n, m, axis=axis)
    w_last = np.moveaxis(w, axis, -1)
    mask_last = reference_mask_last(w_last, n, m)
    for row in np.ndindex(*w_last.shape[:-1]):
        want = [w_last[row][j] for j in range(w_last.shape[-1]) if mask_last[row][j]]
        np.testing.assert_array_equal(bits_of(t.values[row]), bits_of(np.array(want, w.dtype)))


@given(sparse_case())
def test_mask_bits_encoding_and_round_trip(case):
    w, n, m, axis = case
    t = compress(w, n, m, axis=axis)
    mask_last = np.moveaxis(nm_mask(w, n, m, axis=axis), axis, -1)
    assert t.mask_bits.dtype == np.uint8
    np.testing.assert_array_equal(t.mask_bits, reference_mask_bits(mask_last, m))
    np.testing.assert_array_equal(unpack_mask(t.mask_bits, n, m, w.shape[axis]), mask_last)
    np.testing.assert_array_equal(t.mask(), mask_last)
    assert t.metadata_nbytes == t.mask_bits.nbytes == sparsity_metadata_nbytes(t.shape, n, m)


@given(sparse_case())
def test_compress_with_a_given_mask(case):
    w, n, m, axis = case
    scores = -np.abs(w.astype(np.float64))  # keep the smallest: a mask prune() would not choose
    mask = nm_mask(w, n, m, axis=axis, scores=scores)
    t = compress(w, n, m, axis=axis, mask=mask)
    np.testing.assert_array_equal(t.mask(), np.moveaxis(mask, axis, -1))
    np.testing.assert_array_equal(bits_of(np.moveaxis(t.dense(), -1, axis)),
                                  bits_of(np.where(mask, w, np.float32(0))))


def test_docstring_example_8_4():
    w = np.array([[1.0, 0.0, 2.0, 3.0, 0.0, 0.0, 4.0, 0.0]], np.float32)
    t = compress(w)
    assert t.mask_bits.tolist() == [[0x4D]]
    assert t.values.tolist() == [[1.0, 2.0, 3.0, 4.0]]


def test_m16_bytes_are_little_endian():
    w = np.zeros((1, 16), np.float32)
    w[0, [1, 9, 15]] = [1.0, 2.0, 3.0]
    t = compress(w, 3, 16)
    assert t.mask_bits.tolist() == [[0x02, 0x82]]  # bit 1 | bit 9 = byte1 bit 1 | bit 15 = bit 7
    assert t.metadata_nbytes == 2


@pytest.mark.parametrize("n, m", [(4, 8), (2, 4), (1, 2), (3, 8)])
def test_every_mask_byte_is_accepted_iff_its_popcount_is_n(n, m):
    codes = np.arange(256, dtype=np.uint8)
    for code in codes:
        valid = code < (1 << m) and bin(int(code)).count("1") == n
        if valid:
            got = unpack_mask(np.array([code]), n, m, m)
            assert got.tolist() == [bool(code >> j & 1) for j in range(m)]
        else:
            with pytest.raises(EncodeError):
                unpack_mask(np.array([code]), n, m, m)
    assert sum(1 for _ in itertools.combinations(range(m), n)) == math.comb(m, n)


def test_all_70_patterns_of_8_4_round_trip():
    masks = np.zeros((70, 8), bool)
    for i, kept in enumerate(itertools.combinations(range(8), 4)):
        masks[i, list(kept)] = True
    w = np.arange(1, 71 * 8 - 7, dtype=np.float32).reshape(70, 8)
    t = compress(w, mask=masks)
    assert len(set(t.mask_bits[:, 0].tolist())) == 70
    np.testing.assert_array_equal(t.mask(), masks)
    np.testing.assert_array_equal(t.dense(), np.where(masks, w, 0))


@pytest.mark.parametrize("shape, n, m, want", [
    ((4096, 4096), 4, 8, 4096 * 512),
    ((4096, 4096), 2, 4, 4096 * 1024),
    ((2, 3, 32), 8, 16, 2 * 3 * 2 * 2),
    ((16,), 1, 2, 8),
    ((5, 0), 4, 8, 0),
])
def test_metadata_nbytes(shape, n, m, want):
    assert sparsity_metadata_nbytes(shape, n, m) == want


def test_n_equals_m_keeps_everything_and_empty_axes_work():
    w = np.arange(8, dtype=np.float32).reshape(1, 8) - 4
    t = compress(w, 8, 8)
    np.testing.assert_array_equal(t.dense(), w)
    assert t.mask_bits.tolist() == [[0xFF]]
    e = compress(np.zeros((3, 0), np.float32))
    assert e.values.shape == (3, 0) and e.mask_bits.shape == (3, 0) and e.dense().shape == (3, 0)


def test_dtype_is_preserved():
    for dtype in (np.float16, np.float32, np.float64, np.int8):
        w = np.arange(-8, 8).astype(dtype).reshape(2, 8)
        t = compress(w)
        assert t.values.dtype == dtype and t.dense().dtype == dtype
        assert prune(w).dtype == dtype


# --------------------------------------------------------------------------------------------------
# errors


def test_k_not_a_multiple_of_m():
    w = np.ones((2, 12), np.float32)
    for fn in (nm_mask, prune, compress):
        with pytest.raises(ConfigError, match=r"K=12 must be a multiple of the group size m=8"):
            fn(w, 4, 8)
    with pytest.raises(ConfigError, match=r"K=12 .* m=8"):
        sparsity_metadata_nbytes((2, 12), 4, 8)
    with pytest.raises(ConfigError, match=r"K=6 .* m=4"):
        unpack_mask(np.zeros((1,), np.uint8), 2, 4, 6)


@pytest.mark.parametrize("n, m, match", [
    (5, 4, r"1 <= n <= m = 4 \(got n=5\)"),
    (0, 8, r"1 <= n <= m = 8 \(got n=0\)"),
    (2, 3, r"'m' \(group size\) must be one of \[2, 4, 8, 16\] \(got 3\)"),
    (2, 32, r"must be one of"),
    (2.0, 4, r"'n' must be an integer \(got 2.0\)"),
    (True, 4, r"'n' must be an integer"),
])
def test_bad_n_m(n, m, match):
    w = np.ones((1, 16), np.float32)
    for call in (lambda: nm_mask(w, n, m), lambda: prune(w, n, m), lambda: compress(w, n, m),
                 lambda: sparsity_metadata_nbytes((1, 16), n, m)):
        with pytest.raises(ConfigError, match=match):
            call()


def test_bad_axis_and_scalar():
    with pytest.raises(ConfigError, match=r"'axis' 2 is out of range .* 2 dimensions"):
        nm_mask(np.ones((8, 8)), axis=2)
    with pytest.raises(ConfigError, match=r"at least 1 dimension"):
        nm_mask(np.float32(1.0))


def test_nan_is_refused_with_its_position():
    w = np.ones((2, 8), np.float32)
    w[1, 5] = np.nan
    with pytest.raises(EncodeError, match=r"NaN in w at index \(1, 5\)"):
        prune(w)
    with pytest.raises(EncodeError, match=r"NaN in scores at index \(0, 2\)"):
        nm_mask(np.ones((1, 8)), scores=np.array([[1, 1, np.nan, 1, 1, 1, 1, 1]]))


def test_bad_scores_shape():
    with pytest.raises(ConfigError, match=r"'scores' must have the shape of w \(1, 8\)"):
        nm_mask(np.ones((1, 8)), scores=np.ones((8,)))


def test_wanda_argument_errors():
    w = np.ones((2, 8), np.float32)
    with pytest.raises(ConfigError, match=r"method='wanda' needs 'act_norms'"):
        prune(w, method="wanda")
    with pytest.raises(ConfigError, match=r"method='wanda' needs 'act_norms'"):
        compress(w, method="wanda")
    with pytest.raises(ConfigError, match=r"'act_norms' must have shape \(8,\) .* \(got shape "
                                          r"\(2,\)\)"):
        prune(w, method="wanda", act_norms=np.ones(2))
    with pytest.raises(ConfigError, match=r"'act_norms' must have shape \(2,\)"):
        prune(w.T, 2, 2, method="wanda", act_norms=np.ones(8), axis=-1)
    with pytest.raises(ConfigError, match=r"finite and >= 0 \(got -1.0 at index 3\)"):
        wanda_scores(w, np.array([1, 1, 1, -1, 1, 1, 1, 1.0]))
    with pytest.raises(ConfigError, match=r"finite and >= 0 \(got nan at index 0\)"):
        wanda_scores(w, np.array([np.nan, 1, 1, 1, 1, 1, 1, 1.0]))
    w[1, 2] = np.nan
    with pytest.raises(EncodeError, match=r"Wanda score is NaN at index \(1, 2\) \(w = nan"):
        prune(w, method="wanda", act_norms=np.ones(8))
    with pytest.raises(ConfigError, match=r"only used by method='wanda'"):
        prune(w, act_norms=np.ones(8))
    with pytest.raises(ConfigError, match=r"'method' must be one of \['magnitude', 'wanda'\] "
                                          r"\(got 'sparsegpt'\)"):
        prune(w, method="sparsegpt")


def test_unpack_rejects_bad_popcount_naming_the_group():
    bits = np.array([[0x0F, 0xF0], [0x0F, 0x07]], np.uint8)
    with pytest.raises(EncodeError, match=r"group 1 of row \(1,\) \(dense positions 8\.\.15 .*\) "
                                          r"keeps 3 positions \(pattern 0b00000111.*n=4"):
        unpack_mask(bits, 4, 8, 16)
    with pytest.raises(EncodeError, match=r"group 0 .* keeps 5"):
        unpack_mask(np.array([0x1F], np.uint8), 4, 8, 8)


def test_unpack_rejects_high_bits_dtype_and_length():
    with pytest.raises(EncodeError, match=r"group 0 .* set bits above position 3 \(byte 0x13\)"):
        unpack_mask(np.array([0x13], np.uint8), 2, 4, 4)
    with pytest.raises(EncodeError, match=r"must be uint8 \(got dtype int64\)"):
        unpack_mask(np.array([0x0F]), 4, 8, 8)
    with pytest.raises(EncodeError, match=r"last axis 2 groups x 2 byte\(s\) = 4 \(got shape "
                                          r"\(2,\)\)"):
        unpack_mask(np.zeros(2, np.uint8), 8, 16, 32)


def test_compress_rejects_bad_masks():
    w = np.ones((2, 8), np.float32)
    mask = np.zeros((2, 8), bool)
    mask[:, :4] = True
    mask[1, 7] = True
    with pytest.raises(EncodeError, match=r"group 0 of row \(1,\) .* keeps 5 positions"):
        compress(w, mask=mask)
    with pytest.raises(ConfigError, match=r"'mask' must be a bool array"):
        compress(w, mask=mask.astype(np.uint8))
    with pytest.raises(ConfigError, match=r"'mask' must have the shape of w \(2, 8\)"):
        compress(w, mask=mask[:1])
    with pytest.raises(ConfigError, match=r"either 'mask' or a pruning method"):
        compress(w, mask=mask, method="wanda", act_norms=np.ones(8))


def test_sparse_tensor_validates_its_parts():
    t = compress(np.ones((2, 8), np.float32))
    with pytest.raises(EncodeError, match=r"values .* must have shape \(2, 4\) \(got \(2, 5\)\)"):
        SparseTensor(np.ones((2, 5), np.float32), t.mask_bits, 4, 8, (2, 8))
    with pytest.raises(EncodeError, match=r"mask_bits .* uint8 of shape \(2, 1\)"):
        SparseTensor(t.values, t.mask_bits.astype(np.int16), 4, 8, (2, 8))
    with pytest.raises(ConfigError, match=r"K=12 .* m=8"):
        SparseTensor(t.values, t.mask_bits, 4, 8, (2, 12))
    bad = SparseTensor(t.values, np.full((2, 1), 0x07, np.uint8), 4, 8, (2, 8))
    with pytest.raises(EncodeError, match=r"group 0 of row \(0,\) .* keeps 3 positions"):
        bad.dense()


# --------------------------------------------------------------------------------------------------
# the kernels behind compress: float32 by magnitude bits (parallel and serial), the general one


def _tie_heavy(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """float32 full of ties, both zeros, infinities, subnormals and normal values."""
    pool = np.array([0.0, -0.0, 1.0, -1.0, 2.0, -2.0, np.inf, -np.inf, 1e-45, -1e-45, 3e-39,
                     -3e-39, 1.5, -1.5, 3.4e38, -3.4e38], np.float32)
    w = rng.standard_normal(shape).astype(np.float32)
    pick = rng.random(shape) < 0.5
    w[pick] = rng.choice(pool, size=int(pick.sum()))
    return w


@pytest.mark.parametrize("n, m", [(4, 8), (2, 4), (1, 2), (5, 16), (16, 16)])
def test_float32_bit_kernel_equals_the_general_kernel_both_twins(n, m):
    from prodigy_sim.numerics import _sparsity as sp

    rng = np.random.default_rng(n * 100 + m)
    w = _tie_heavy(rng, (64, 1024))  # 65,536 elements: the parallel twin's size
    rows = w.shape[0]
    want_v = np.empty((rows, 1024 // m * n), np.float32)
    want_b = np.empty((rows, 1024 // m * ((m + 7) // 8)), np.uint8)
    assert sp._select_rows.serial(w, np.zeros((0, 0)), n, m, want_v, want_b) == 0
    ref = reference_mask_last(w[:4], n, m)  # the independent reference on a few rows
    np.testing.assert_array_equal(want_b[:4], reference_mask_bits(ref, m))
    for twin in (sp._select_rows_f32.parallel, sp._select_rows_f32.serial):
        v = np.empty_like(want_v)
        b = np.empty_like(want_b)
        assert twin(w.view(np.uint32), n, m, v.view(np.uint32), b) == 0
        np.testing.assert_array_equal(bits_of(v), bits_of(want_v))
        np.testing.assert_array_equal(b, want_b)


def test_compress_float32_with_nan_falls_back_to_the_located_error():
    w = np.ones((3, 16), np.float32)
    w[2, 9] = np.float32(np.nan)
    with pytest.raises(EncodeError, match=r"NaN in w at index \(2, 9\)"):
        compress(w, 4, 8)
    with pytest.raises(EncodeError, match=r"NaN in w at index \(9, 2\)"):
        compress(w.T.copy(), 4, 8, axis=0)


def test_compress_float64_and_explicit_scores_take_the_general_kernel():
    rng = np.random.default_rng(7)
    w = _tie_heavy(rng, (5, 64)).astype(np.float64)
    t = compress(w, 4, 8)
    np.testing.assert_array_equal(t.mask(), reference_mask_last(w, 4, 8))
    w32 = w.astype(np.float32)
    t = compress(w32, 4, 8, method="wanda", act_norms=np.ones(64, np.float32))
    np.testing.assert_array_equal(t.mask(), reference_mask_last(w32, 4, 8))
