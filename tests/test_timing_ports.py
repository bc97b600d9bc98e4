"""The ports' Numba pass (timing/_ports.py) against plain loops written here: within a batch
each port serves its elements in (ready, index) order, ``line x count / bw`` cycles each; across
batches (:class:`PortCalendar`) an element takes the first gap the earlier batches' reservations
leave where it fits."""

import itertools

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from prodigy_sim.timing._ports import RADIX_SORT_MIN, PortCalendar


def _reference(port, ready, bw, line, count):
    """One batch on free ports: per port ``d_j = max(ready_j bw, d_prev) + count_j line``."""
    out = np.zeros(port.size, np.int64)
    busy = {}                                   # port -> bytes served until (in bytes x bw)
    for j in sorted(range(port.size), key=lambda j: (port[j], ready[j], j)):
        p = int(port[j])
        d = max(int(ready[j]) * bw, busy.get(p, 0)) + int(count[j]) * line
        busy[p] = d
        out[j] = -(-d // bw)
    return out


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 500), st.integers(1, 5)),
                min_size=0, max_size=60),
       st.sampled_from([16, 24, 32, 64]), st.booleans())
def test_one_batch_on_free_ports_equals_a_plain_loop(elements, bw, packets):
    port = np.array([e[0] for e in elements], np.int64)
    ready = np.array([e[1] for e in elements], np.int64)
    count = np.array([e[2] for e in elements], np.int64) if packets else np.ones(port.size,
                                                                                np.int64)
    out = PortCalendar(4, bw, 64).serve(port, ready, 0, count if packets else None)
    assert out.tolist() == _reference(port, ready, bw, 64, count).tolist()


def test_sort_paths_agree():
    """Above ``RADIX_SORT_MIN`` elements the order comes from a radix sort of (port, ready),
    below from a counting sort by port: both give the plain loop's departures (many ties,
    unsorted runs)."""
    rng = np.random.default_rng(7)
    for n in (RADIX_SORT_MIN, RADIX_SORT_MIN + 1, 3 * RADIX_SORT_MIN):
        port = rng.integers(0, 9, n)
        ready = np.sort(rng.integers(0, n // 2, n)) + rng.integers(0, 40, n)
        count = rng.integers(1, 4, n)
        for packets in (False, True):
            cnt = count if packets else np.ones(n, np.int64)
            out = PortCalendar(9, 32, 64).serve(port, ready, 0, count if packets else None)
            assert out.tolist() == _reference(port, ready, 32, 64, cnt).tolist()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 60)), max_size=150),
       st.lists(st.integers(0, 40), min_size=4, max_size=4))
def test_port_order_is_a_stable_argsort_and_counts_the_rows(elements, live):
    """Both orders (a port's elements by insertion up to ``INSERTION_SORT_MAX``, the whole
    batch by a radix sort of (port, ready) when a longer group is out of order) give numpy's
    stable order of (port, ready); the row a port needs is its live intervals plus its new
    elements."""
    from prodigy_sim.timing._ports import INSERTION_SORT_MAX, _port_order

    port = np.array([e[0] for e in elements], np.int64)
    ready = np.array([e[1] for e in elements], np.int64)
    lo = np.array([3, 0, 7, 1], np.int64)
    hi = lo + np.array(live, np.int64)
    order, need = _port_order(port, ready, 4, lo, hi)
    assert order.tolist() == np.lexsort((ready, port)).tolist()
    assert need == int((np.bincount(port, minlength=4) + hi - lo).max())
    assert INSERTION_SORT_MAX < 150


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


def _calendar_reference(batches, nports, bw, line, gaps=True):
    """Plain loop of :class:`PortCalendar`: per batch, per port first come first served in
    (ready, index) order from the batch's start, no element before the largest horizon so far,
    each at the first ``t`` where its bytes overlap none of the earlier batches' intervals
    (kept whole, never dropped); ``gaps=False``: one interval from 0 to the last end."""
    busy: dict[int, list[tuple[int, int]]] = {p: [] for p in range(nports)}
    outs = []
    top = 0
    for horizon, port, ready, count in batches:
        top = max(top, horizon)
        out = np.zeros(len(port), np.int64)
        new: dict[int, list[tuple[int, int]]] = {p: [] for p in range(nports)}
        cursor: dict[int, int] = {}
        for j in sorted(range(len(port)), key=lambda j: (port[j], ready[j], j)):
            p, s = port[j], count[j] * line
            t = max(ready[j] * bw, top * bw, cursor.get(p, 0))
            spans = sorted(busy[p]) if gaps or not busy[p] else [(0, max(busy[p])[1])]
            for a, b in spans:
                if a < t + s and b > t:
                    t = b
            cursor[p] = t + s
            out[j] = -(-(t + s) // bw)
            new[p].append((t, t + s))
        for p in range(nports):
            busy[p] += new[p]
        outs.append(out.tolist())
    return outs, busy


_element = st.tuples(st.integers(0, 2), st.integers(-30, 120), st.integers(1, 4))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(-20, 40), st.lists(_element, max_size=25)), max_size=6),
       st.sampled_from([16, 32, 64]), st.booleans(), st.booleans())
def test_port_calendar_equals_a_plain_loop(batches, bw, packets, gaps):
    """Batch after batch (each with a horizon that may move back, elements ready up to 30
    cycles before it), the calendar's departures equal the plain loop's, its reservations
    never overlap, and it counts the elements it started late. Without gaps (``gaps=False``)
    a port is free only after its last reservation."""
    cal = PortCalendar(3, bw, 64, gaps)
    horizon = 100
    runs, got = [], []
    late, lag, lag_max, served = 0, 0, 0, 0
    for step, elements in batches:
        horizon += step
        port = [e[0] for e in elements]
        ready = [horizon + e[1] for e in elements]
        count = [e[2] if packets else 1 for e in elements]
        runs.append((horizon, port, ready, count))
        top = max(cal.horizon, horizon)
        late += sum(r < top for r in ready)
        lag += sum(top - r for r in ready if r < top)
        lag_max = max([lag_max] + [top - r for r in ready if r < top])
        served += len(ready)
        out = cal.serve(np.array(port, np.int64), np.array(ready, np.int64), horizon,
                        np.array(count, np.int64) if packets else None)
        got.append(out.tolist())
        for p in range(3):
            spans = cal.busy(p)
            assert all(b0 < b1 <= c0 for (b0, b1), (c0, _) in itertools.pairwise(spans))
    ref, busy = _calendar_reference(runs, 3, bw, 64, gaps)
    assert got == ref
    assert (cal.served, cal.late, cal.late_cycles, cal.late_cycles_max) == (served, late, lag,
                                                                          lag_max)
    # every byte served is reserved: the calendar's busy bytes after the last horizon cover
    # the plain loop's (gaps shorter than a line merged away on the calendar's side only)
    last = cal.horizon * bw
    for p in range(3):
        ref_bytes = sum(max(0, b - max(a, last)) for a, b in busy[p])
        cal_spans = cal.busy(p)
        assert sum(max(0, b - max(a, last)) for a, b in cal_spans) >= ref_bytes


def test_port_calendar_fills_a_gap_before_a_later_reservation():
    """A packet waiting for a DDR fill reserves its port far ahead; a line of the next batch
    that is ready now crosses in the gap before it instead of queueing behind it (a single
    free cycle per port, as before, sent it after the reservation: at 1018)."""
    cal = PortCalendar(1, 32, 64)
    far = cal.serve(np.array([0]), np.array([1000]), 0, np.array([8]))   # 512 B at 1000
    assert far.tolist() == [1016]
    now = cal.serve(np.array([0, 0]), np.array([10, 10]), 10)            # 2 lines at 10
    assert now.tolist() == [12, 14]
    # a packet that does not fit in the gap before the reservation goes after it
    big = cal.serve(np.array([0]), np.array([998]), 10, np.array([2]))
    assert big.tolist() == [1020]
    assert cal.busy(0) == [(320, 448), (32000, 32640)]


def test_port_calendar_starts_an_element_ready_before_its_horizon_at_the_horizon():
    """Reservations that end before the horizon (the latest first start of a batch so far)
    are dropped, so the port before it is unknown: an element ready earlier - a core that lags
    the other cores' clocks - starts at the horizon, and is counted."""
    cal = PortCalendar(2, 32, 64)
    cal.serve(np.array([0, 1]), np.array([100, 120]), 100)
    assert cal.serve(np.array([1]), np.array([150]), 200).tolist() == [202]
    assert cal.serve(np.array([1]), np.array([150]), 50).tolist() == [204]  # horizon 200
    assert (cal.horizon, cal.served, cal.late, cal.late_cycles, cal.late_cycles_max) == \
        (200, 4, 2, 100.0, 50.0)


def test_a_core_behind_the_last_flush_waits_for_the_horizon_only():
    """A core's clock can lag the flush that another core's wait caused (each core runs on
    its own clock): the ports keep the largest horizon so far, and the memory system runs on
    (a batch that starts before the previous one is not an error)."""
    from prodigy_sim.hardware import load_preset
    from prodigy_sim.isa import Segment
    from prodigy_sim.timing._memory import MemorySystem
    from prodigy_sim.timing._noc import Mesh

    chip = load_preset("prodigy-t16128")
    mem = MemorySystem(chip, Mesh(chip, 2), 2)
    mem.issue(0, 5000, (Segment(0, 4096, 4096, 1),), False, 0)
    mem.flush(5000)
    behind = mem.issue(1, 100, (Segment(1 << 20, 4096, 4096, 1),), False, 1)
    mem.flush(5000)
    assert mem.ctrl_in.horizon == mem.core_in.horizon == 5000
    assert behind.done > 100
    # reported beside the DDR seam's waits: a lagging core's reads of an on-chip (resident)
    # tensor are ready at their slices' ports before the horizon; they start late, by the lag
    # at most
    from prodigy_sim.timing._memory import check_batching

    mem = MemorySystem(chip, Mesh(chip, 2), 2, resident=((1 << 20, (1 << 20) + 4096),))
    mem.issue(0, 50_000, (Segment(0, 4096, 4096, 1),), False, 0)
    mem.flush(50_000)
    mem.issue(1, 100, (Segment(1 << 20, 4096, 4096, 1),), False, 1)
    mem.flush(50_000)
    cals = (mem.ctrl_in, mem.core_in, mem.slice_out, mem.slice_in)
    rep = check_batching(mem)
    late = sum(c.late for c in cals)
    assert late > 0
    assert rep["port_late_share"] == late / sum(c.served for c in cals) < 1
    assert 0 < rep["port_late_cycles_mean"] <= rep["port_late_cycles_max"] <= 50_000 - 100


def _two_step(lines, packets, start, cores, recv, slat, srclat, nctrl, so, ci, horizon):
    """What :func:`deliver` fuses, with :meth:`PortCalendar.serve` (the numpy flush it
    replaced): the packets through their slices' ports, then every element (the lines first),
    once per receiver of its DMA (``recv``: first, count per DMA, receiving cores), through the
    receiver's port; per receiver the last departure."""
    l_dma, l_leave, l_src = lines
    pd, home, cnt, ready = packets
    e = [(l_dma, np.ones(l_dma.size, np.int64), l_leave, l_src)]
    if pd.size:
        last = so.serve(home, np.maximum(start[pd] + 1 + slat[home, cores[pd]], ready), horizon,
                        cnt)
        e.append((pd, cnt, last - ((cnt - 1) * so.line) // so.bw, home + nctrl))
    dma, cnt_all, leave, src = (np.concatenate(x) for x in zip(*e, strict=True))
    first, count, core = recv
    k = count[dma]
    rows = np.repeat(np.arange(dma.size), k)
    rid = first[dma][rows] + (np.arange(rows.size) - np.repeat(np.cumsum(k) - k, k))
    dest = core[rid]
    at = ci.serve(dest, leave[rows] + srclat[src[rows], dest], horizon, cnt_all[rows])
    out = np.zeros(core.size, np.int64)
    np.maximum.at(out, rid, at)
    return out


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.lists(st.tuples(st.integers(0, 40), st.integers(0, 30),
                                                     st.booleans()),
                                           min_size=1, max_size=4))
def test_deliver_equals_the_two_ports_served_one_after_the_other(seed, batches):
    """:func:`deliver` (one Numba pass: the slices' ports, then the cores') gives the same
    departures, calendars and lateness counts as the two :meth:`PortCalendar.serve` calls,
    batch after batch (the calendars carry their reservations; some batches start before the
    horizon), with every DMA received by its own core or by groups of cores (multicast)."""
    from prodigy_sim.timing._ports import deliver

    rng = np.random.default_rng(seed)
    nctrl, nslices, ncores, line = 3, 5, 4, 64
    slat = rng.integers(1, 9, (nslices, ncores))
    srclat = rng.integers(1, 9, (nctrl + nslices, ncores))
    cals = [[PortCalendar(nslices, 32, line), PortCalendar(ncores, 16, line)] for _ in range(2)]
    t = 0
    for nl, npk, multicast in batches:
        n = int(rng.integers(1, 6))
        start = t + rng.integers(0, 50, n)
        cores = rng.integers(0, ncores, n)
        lines = (rng.integers(0, n, nl), start.min() + rng.integers(0, 200, nl),
                 rng.integers(0, nctrl, nl))
        packets = (rng.integers(0, n, npk), rng.integers(0, nslices, npk),
                   rng.integers(1, 9, npk), start.min() + rng.integers(-20, 200, npk))
        if nl + npk == 0:
            continue
        own = (np.arange(n), np.ones(n, np.int64), cores)
        if multicast:                            # each DMA to 1-3 cores, its own first
            count = rng.integers(1, 4, n)
            core = np.concatenate([np.r_[c, rng.integers(0, ncores, k - 1)]
                                   for c, k in zip(cores, count, strict=True)])
            recv = (np.cumsum(count) - count, count, core)
        horizon = int(start.min())
        a = deliver(lines, packets, start, cores, recv if multicast else None, slat, srclat,
                    nctrl, *cals[0], horizon)
        b = _two_step(lines, packets, start, cores, recv if multicast else own, slat, srclat,
                      nctrl, *cals[1], horizon)
        assert a.tolist() == b.tolist()
        for x, y in zip(*cals, strict=True):
            assert (x.horizon, x.served, x.late, x.late_cycles, x.late_cycles_max) == \
                (y.horizon, y.served, y.late, y.late_cycles, y.late_cycles_max)
            assert [x.busy(p) for p in range(x.lo.size)] == [y.busy(p) for p in range(y.lo.size)]
        t += int(rng.integers(-30, 120))


def test_long_batches_order_by_port_then_ready_even_when_the_key_would_overflow():
    """:func:`_pair_order` (batches above ``RADIX_SORT_MIN``): numpy's stable (port, ready)
    order by the radix sort of a combined key, and by the counting sort and sorted runs when
    that key would reach 2**62 (a span of ready times near 2**61 on four ports)."""
    from prodigy_sim.timing._ports import _pair_order, _port_order

    rng = np.random.default_rng(3)
    zeros = np.zeros(4, np.int64)
    for n, order_of in ((RADIX_SORT_MIN + 100, _pair_order), (200, _port_order)):
        port = rng.integers(0, 4, n)
        for top in (10**6, 2**61):
            ready = rng.integers(0, top, n)
            ready[:50] = ready[50]               # ties keep their element order
            order, need = order_of(port, ready, 4, zeros, zeros)
            assert order.tolist() == np.lexsort((ready, port)).tolist()
            assert need == int(np.bincount(port, minlength=4).max())
