"""The FIFO ports' Numba pass (timing/_ports.py) against a plain loop written here: each port
serves its elements in (ready, index) order, ``line x count / bw`` cycles each, no earlier than
the port is free; the port's free cycle ends at its last departure."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from prodigy_sim.timing._ports import fifo_ports


def _reference(port, ready, free, bw, line, count):
    free = free.copy()
    out = np.zeros(port.size, np.int64)
    busy = {}                                   # port -> bytes served until (in bytes x bw)
    for j in sorted(range(port.size), key=lambda j: (port[j], ready[j], j)):
        p = int(port[j])
        d = busy.get(p, int(free[p]) * bw)
        d = max(int(ready[j]) * bw, d) + int(count[j]) * line
        busy[p] = d
        out[j] = -(-d // bw)
        free[p] = out[j]
    return out, free


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 500), st.integers(1, 5)),
                min_size=0, max_size=60),
       st.lists(st.integers(0, 300), min_size=4, max_size=4), st.sampled_from([16, 32, 64]),
       st.booleans())
def test_fifo_ports_equal_a_plain_loop(elements, free0, bw, packets):
    port = np.array([e[0] for e in elements], np.int64)
    ready = np.array([e[1] for e in elements], np.int64)
    count = np.array([e[2] for e in elements], np.int64) if packets else np.ones(port.size,
                                                                                np.int64)
    free = np.array(free0, np.int64)
    ref_out, ref_free = _reference(port, ready, free, bw, 64, count)
    out = fifo_ports(port, ready, free, bw, 64, count if packets else None)
    assert out.tolist() == ref_out.tolist()
    assert free.tolist() == ref_free.tolist()


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 10**6), st.integers(0, 900)),
                max_size=80), st.sampled_from([1, 4, 128]))
def test_group_packets_equal_a_dict(lines, slices):
    from prodigy_sim.timing._ports import group_packets

    dma = np.array([x[0] for x in lines], np.int64)
    line = np.array([x[1] for x in lines], np.int64)
    ready = np.array([x[2] for x in lines], np.int64)
    ref: dict[tuple[int, int], list[int]] = {}
    for d, ln, r in lines:
        cnt_last = ref.setdefault((d, ln % slices), [0, 0])
        cnt_last[0] += 1
        cnt_last[1] = max(cnt_last[1], r)
    pd, home, cnt, last = group_packets(dma, line, ready, slices, 6)
    keys = sorted(ref)
    assert list(zip(pd.tolist(), home.tolist(), strict=True)) == keys
    assert cnt.tolist() == [ref[k][0] for k in keys]
    assert last.tolist() == [ref[k][1] for k in keys]


def test_fifo_ports_sort_paths_agree():
    """Above ``RADIX_SORT_MIN`` elements the order comes from a radix sort of (port, ready),
    below from a counting sort by port: both give the plain loop's departures (many ties,
    unsorted runs)."""
    from prodigy_sim.timing._ports import RADIX_SORT_MIN

    rng = np.random.default_rng(7)
    for n in (RADIX_SORT_MIN, RADIX_SORT_MIN + 1, 3 * RADIX_SORT_MIN):
        port = rng.integers(0, 9, n)
        ready = np.sort(rng.integers(0, n // 2, n)) + rng.integers(0, 40, n)
        count = rng.integers(1, 4, n)
        for packets in (False, True):
            free = rng.integers(0, 100, 9)
            cnt = count if packets else np.ones(n, np.int64)
            ref_out, ref_free = _reference(port, ready, free, 32, 64, cnt)
            out = fifo_ports(port, ready, free, 32, 64, count if packets else None)
            assert out.tolist() == ref_out.tolist()
            assert free.tolist() == ref_free.tolist()


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 10**6), st.integers(0, 7),
                          st.booleans()), max_size=80),
       st.lists(st.tuples(st.integers(0, 5), st.integers(0, 10**6)), max_size=20),
       st.sampled_from([1, 4, 128]))
def test_hit_packets_equal_group_packets_of_the_hits(lines, resident, slices):
    """The fused packets of L3 hits (ready from their entry) and resident lines (ready 0) are
    group_packets of the two concatenated."""
    from prodigy_sim.timing._ports import group_packets, hit_packets

    entry_ready = np.array([5, 0, 900, 17, 3, 3, 44, 1000], np.int64)
    dma = np.array([x[0] for x in lines], np.int64)
    line = np.array([x[1] for x in lines], np.int64)
    ent = np.array([x[2] for x in lines], np.int64)
    hit = np.array([x[3] for x in lines], np.bool_)
    odma = np.array([x[0] for x in resident], np.int64)
    oline = np.array([x[1] for x in resident], np.int64)
    got = hit_packets(dma, line, hit, ent, entry_ready, odma, oline, slices, 6)
    want = group_packets(np.concatenate([dma[hit], odma]), np.concatenate([line[hit], oline]),
                         np.concatenate([entry_ready[ent[hit]], np.zeros(odma.size, np.int64)]),
                         slices, 6)
    for a, b in zip(got, want, strict=True):
        assert a.tolist() == b.tolist()


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, (1 << 62) - 1), max_size=50), st.integers(0, 62))
def test_radix_argsort_is_numpys_stable_argsort(keys, bits):
    from prodigy_sim.timing._ports import _radix_argsort

    key = np.array([k >> bits for k in keys], np.int64)
    assert _radix_argsort(key).tolist() == np.argsort(key, kind="stable").tolist()
