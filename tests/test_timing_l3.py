"""The shared L3's Numba LRU (timing/_l3.py) against a plain OrderedDict LRU written here: the
same hits, the same entries (one per block and batch, surviving eviction until the batch ends),
the same ready cycles through fills and hits, batch after batch."""

from collections import OrderedDict

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from prodigy_sim.timing._l3 import BLOCK_SHIFT, L3Blocks


def _reference_lookup(l3: OrderedDict, cap: int, dmas: list[np.ndarray]):
    """Per line: hit, entry object. One lookup per run of lines of one block in one DMA."""
    hits, entries = [], []
    for lines in dmas:
        i = 0
        while i < lines.size:
            b = int(lines[i]) >> BLOCK_SHIFT
            j = i
            m = 0
            while j < lines.size and int(lines[j]) >> BLOCK_SHIFT == b:
                m |= 1 << (int(lines[j]) & 63)
                j += 1
            e = l3.get(b)
            if e is None:
                e = [m, 0]
                l3[b] = e
                if len(l3) > cap:
                    l3.popitem(last=False)
                hm = 0
            else:
                l3.move_to_end(b)
                hm = m & e[0]
                e[0] |= m
            for k in range(i, j):
                hits.append(bool((hm >> (int(lines[k]) & 63)) & 1))
                entries.append(e)
            i = j
    return hits, entries


batches = st.lists(                       # batches of DMAs of line numbers in a few blocks
    st.lists(st.lists(st.integers(0, 6 * 64 - 1), min_size=1, max_size=40).map(sorted),
             min_size=1, max_size=5),
    min_size=1, max_size=6)


@settings(max_examples=150, deadline=None)
@given(batches, st.integers(1, 4), st.integers(0, 2**32))
def test_l3_blocks_equal_an_ordered_dict_lru(batch_list, cap, seed):
    rng = np.random.default_rng(seed)
    ours, ref = L3Blocks(cap), OrderedDict()
    for dmas in batch_list:
        arrays = [np.asarray(d, np.int64) for d in dmas]
        lines = np.concatenate(arrays)
        first = np.zeros(lines.size, bool)
        first[np.cumsum([a.size for a in arrays]) - [a.size for a in arrays]] = True
        hit, ent, nhit = ours.lookup(lines, first)
        ref_hit, ref_ent = _reference_lookup(ref, cap, arrays)
        assert hit.tolist() == ref_hit
        assert nhit == sum(ref_hit)
        # the same grouping of lines into entries
        ids = [id(e) for e in ref_ent]
        for a in range(lines.size):
            for b in range(a + 1, lines.size):
                assert (ent[a] == ent[b]) == (ids[a] == ids[b])
        # hits read the ready cycle after this batch's fills; fills keep the largest
        assert np.array_equal(ours.ready[ent[hit]], [e[1] for e, h in zip(ref_ent, ref_hit,
                                                                         strict=True) if h])
        fill = rng.integers(1, 1000, lines.size)
        for k in np.flatnonzero(~hit):
            e = ref_ent[k]
            e[1] = max(e[1], int(fill[k]))
        miss = ~hit
        np.maximum.at(ours.ready, ent[miss], fill[miss])
        assert [int(ours.ready[x]) for x in ent] == [e[1] for e in ref_ent]


def test_l3_blocks_grow_beyond_their_first_pool():
    """A batch of more blocks than the initial pool: every block a miss, the LRU keeps the last
    ``cap``; the next batch hits exactly those."""
    cap = 3000
    l3 = L3Blocks(cap)
    lines = np.arange(5000, dtype=np.int64) * 64          # 5000 blocks, one line each
    first = np.ones(lines.size, bool)
    hit, ent, nhit = l3.lookup(lines, first)
    assert nhit == 0 and np.unique(ent).size == 5000
    hit, _, nhit = l3.lookup(lines, first)
    # the second pass misses the 2000 evicted blocks first, which evicts the survivors in LRU
    # order before they are reached: a cyclic scan larger than an LRU never hits
    assert nhit == 0
    small = lines[-cap:]
    l3 = L3Blocks(cap)
    l3.lookup(small, np.ones(cap, bool))
    hit, _, nhit = l3.lookup(small, np.ones(cap, bool))
    assert nhit == cap and hit.all()


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(-1, 7), st.integers(0, 10**6), st.integers(0, 3),
                          st.integers(0, 5000)), max_size=60),
       st.lists(st.integers(0, 3000), min_size=8, max_size=8))
def test_fill_ready_equals_numpy_maximum_at(fills, ready0):
    from prodigy_sim.timing._l3 import fill_ready

    ent = np.array([f[0] for f in fills], np.int64)
    line = np.array([f[1] for f in fills], np.int64)
    ctrl = np.array([f[2] for f in fills], np.int64)
    comp = np.array([f[3] for f in fills], np.int64)
    lat = np.arange(4 * 16, dtype=np.int64).reshape(4, 16) % 7
    ref = np.array(ready0, np.int64)
    f = np.flatnonzero(ent >= 0)
    np.maximum.at(ref, ent[f], comp[f] + lat[ctrl[f], line[f] % 16])
    got = np.array(ready0, np.int64)
    fill_ready(got, ent, line, ctrl, comp, lat, 16)
    assert got.tolist() == ref.tolist()
