"""The DDR batch path's Numba passes against plain references written here.

- :func:`prodigy_sim.dram.simulate_grouped` (the address mapping folded into the grouped kernel)
  equals :func:`prodigy_sim.dram.simulate_requests` run on each instance's requests alone.
- :func:`prodigy_sim.timing._ddr.run_batch` (line -> subchannel instance, arrival, address;
  the stable (instance, arrival) order; completion back to core cycles; the data buses' free
  cycles) equals a per-request Python loop with a stable ``sorted`` and one
  :func:`simulate_requests` call per subchannel.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prodigy_sim.dram import MemorySystemConfig, simulate_grouped, simulate_requests
from prodigy_sim.errors import ConfigError
from prodigy_sim.timing._ddr import ALL_WRITES, DdrGeometry, DdrRunner, run_batch

ONE = MemorySystemConfig().model_copy(update={"channels": 1})


def _groups(draw_sizes, rng, span, addr_lines):
    start = np.r_[0, np.cumsum(draw_sizes)].astype(np.int64)
    n = int(start[-1])
    arrive = np.concatenate([np.sort(rng.integers(0, span, k)) for k in draw_sizes]
                            ).astype(np.int64) if n else np.zeros(0, np.int64)
    addr = (rng.integers(0, addr_lines, n) * 64).astype(np.uint64)
    return start, arrive, addr


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 40), min_size=1, max_size=5), st.integers(0, 2**32),
       st.sampled_from(["RoBaRaCoCh", "RoCoBaBgCh"]), st.booleans(),
       st.sampled_from([4, 200, 5000]), st.sampled_from([64, 1 << 22]))
def test_simulate_grouped_equals_one_run_per_instance(sizes, seed, mapping, xor, span, lines):
    config = ONE.model_copy(update={"mapping": mapping, "bank_group_xor": xor})
    rng = np.random.default_rng(seed)
    start, arrive, addr = _groups(sizes, rng, span, lines)
    is_w = rng.random(arrive.size) < 0.3
    got = simulate_grouped(config, start, arrive, addr, is_w)
    for g in range(len(sizes)):
        lo, hi = int(start[g]), int(start[g + 1])
        if hi > lo:
            ref = simulate_requests(config, arrive[lo:hi], addr[lo:hi], is_w[lo:hi])
            assert got[lo:hi].tolist() == ref.complete_cycle.tolist()


def test_simulate_grouped_rejects_bad_input():
    one = np.zeros(2, np.int64)
    with pytest.raises(ConfigError, match="non-decreasing"):
        simulate_grouped(ONE, np.array([0, 2]), np.array([5, 3]), one, one.astype(bool))
    with pytest.raises(ConfigError, match="'start'"):
        simulate_grouped(ONE, np.array([0, 1]), one, one, one.astype(bool))
    with pytest.raises(ConfigError, match="one length"):
        simulate_grouped(ONE, np.array([0, 2]), one, np.zeros(3, np.int64), one.astype(bool))


def _reference(config, geo, line, ctrl, dma, start, cores, latency, is_w, bus_free,
               read_free):
    """The batch as the per-request formulas say, one request at a time: a write offered no
    earlier than ``bus_free - lead``, a read no earlier than ``min(bus_free, read_free +
    drain) - lead``; afterwards ``bus_free`` is the latest burst end, and at least the old
    one plus a burst per read whose burst began before it; ``read_free`` the latest read."""
    old_free = bus_free.copy()
    bus_free = bus_free.copy()
    read_free = read_free.copy()
    n = line.size
    inst, a_eff, addr = [0] * n, [0] * n, [0] * n
    for i in range(n):
        ln, c = int(line[i]), int(ctrl[i])
        run = ln // geo.ilv
        sl = (run % geo.nsub) % geo.sub
        sent = int(start[dma[i]]) + 1 + int(latency[cores[dma[i]], c])
        arrive = -(-(sent * geo.den) // geo.num)
        free = int(bus_free[c, sl])
        if not is_w[i]:
            free = min(free, int(read_free[c, sl]) + geo.drain)
        a_eff[i] = max(arrive, free - geo.lead)
        inst[i] = c * geo.sub + sl
        addr[i] = ((run // geo.nsub) * geo.ilv + ln % geo.ilv) * geo.line
    order = sorted(range(n), key=lambda i: (inst[i], a_eff[i], i))
    nctrl = geo.nsub // geo.sub
    base = [0] * nctrl
    for c in range(nctrl):
        firsts = [a_eff[i] for i in range(n) if int(ctrl[i]) == c]
        if firsts:
            base[c] = (min(firsts) // geo.refi) * geo.refi
    done = np.zeros(n, np.int64)
    per_inst = np.zeros(geo.nsub, np.int64)
    for g in range(geo.nsub):
        idx = [i for i in order if inst[i] == g]
        per_inst[g] = len(idx)
        if not idx:
            continue
        c = g // geo.sub
        comp = simulate_requests(config, np.array([a_eff[i] - base[c] for i in idx]),
                                 np.array([addr[i] for i in idx], np.uint64),
                                 is_w[idx]).complete_cycle + base[c]
        sl = g % geo.sub
        ahead = 0
        for i, cm in zip(idx, comp.tolist(), strict=True):
            done[i] = -(-(cm * geo.num) // geo.den)
            bus = cm + (geo.nbl if is_w[i] else 0)
            bus_free[c, sl] = max(int(bus_free[c, sl]), bus)
            if not is_w[i]:
                read_free[c, sl] = max(int(read_free[c, sl]), cm)
                ahead += cm - geo.nbl < int(old_free[c, sl])
        bus_free[c, sl] = max(int(bus_free[c, sl]), int(old_free[c, sl]) + ahead * geo.nbl)
    return done, per_inst, bus_free, read_free, np.array(a_eff, np.int64)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 30), st.integers(0, 400), st.integers(0, 3),
                          st.booleans(), st.integers(0, 1 << 20)), min_size=1, max_size=12),
       st.sampled_from([(1, 8, 2), (2, 4, 2), (1, 4, 1)]), st.integers(0, 2**32),
       st.integers(0, 3000), st.sampled_from([0, 64, 328, ALL_WRITES]))
def test_run_batch_equals_a_plain_loop(dmas, layout, seed, free_max, drain):
    ilv, nsub, sub = layout
    t = ONE.timing
    geo = DdrGeometry(ilv, nsub, sub, 64, 15789, 10000, 1 + t.nRCD + t.nCL, t.nBL, t.nREFI,
                      drain)
    rng = np.random.default_rng(seed)
    # per DMA: lines (a run of consecutive lines, some repeated DMAs at one time), issue, core
    sizes = np.array([d[0] for d in dmas], np.int64)
    start = np.array([d[1] for d in dmas], np.int64)
    cores = np.array([d[2] for d in dmas], np.int64)
    writes = np.array([d[3] for d in dmas], np.bool_)
    line = np.concatenate([d[4] + np.arange(d[0], dtype=np.int64) for d in dmas])
    dma = np.repeat(np.arange(len(dmas), dtype=np.int64), sizes)
    ctrl = ((line // ilv) % nsub) // sub
    latency = rng.integers(0, 20, (4, nsub // sub)).astype(np.int64)
    bus_free = rng.integers(0, free_max + 1, (nsub // sub, sub)).astype(np.int64)
    read_free = (bus_free * rng.random(bus_free.shape)).astype(np.int64)   # <= bus_free
    is_w = writes[dma]
    ref_done, ref_per, ref_free, ref_read, ref_offer = _reference(
        ONE, geo, line, ctrl, dma, start, cores, latency, is_w, bus_free, read_free)
    free, rfree = bus_free.copy(), read_free.copy()
    done, per_inst, dram, offered = run_batch(DdrRunner(ONE), geo, line, ctrl, dma, start,
                                              cores, latency, is_w, free, rfree,
                                              dram_cycles=True)
    assert done.tolist() == ref_done.tolist()
    assert per_inst.tolist() == ref_per.tolist()
    assert free.tolist() == ref_free.tolist()
    assert rfree.tolist() == ref_read.tolist()
    assert offered is not None and offered.tolist() == ref_offer.tolist()
    assert dram is not None and (-(-(dram * geo.num) // geo.den)).tolist() == done.tolist()


def _one_subchannel(drain):
    t = ONE.timing
    return DdrGeometry(1, 1, 1, 64, 15789, 10000, 1 + t.nRCD + t.nCL, t.nBL, t.nREFI, drain)


def _batch(geo, lines, issue, writes, free, rfree):
    line = np.asarray(lines, np.int64)
    n = line.size
    zeros = np.zeros(n, np.int64)
    done, _, dram, _ = run_batch(DdrRunner(ONE), geo, line, zeros, np.arange(n, dtype=np.int64),
                              np.full(n, issue, np.int64), zeros,
                              np.zeros((1, 1), np.int64), np.full(n, writes, np.bool_),
                              free, rfree, dram_cycles=True)
    return dram


def test_a_later_read_waits_for_one_write_drain_not_for_every_queued_write():
    """An earlier batch left 400 writes at the end of the bus (as a controller that serves
    reads first does); a read arriving later goes ahead of all but one drain's worth of them,
    and the writes it went ahead of still take the bus afterwards."""
    drain = ONE.controller.write_drain_bursts * ONE.timing.nBL
    geo = _one_subchannel(drain)
    free, rfree = np.zeros((1, 1), np.int64), np.zeros((1, 1), np.int64)
    writes = _batch(geo, np.arange(400) * 1000, 0, True, free, rfree)
    queued_until = int(free[0, 0])
    assert queued_until >= int(writes.max())
    read = _batch(geo, [7], 10, False, free, rfree)
    assert int(read[0]) < queued_until
    assert int(read[0]) <= drain + 200                # one drain and a closed-bank read
    assert int(free[0, 0]) >= queued_until + ONE.timing.nBL
    # with ALL_WRITES the read queues behind every write (the rule before 2026-12-06)
    free2, rfree2 = np.zeros((1, 1), np.int64), np.zeros((1, 1), np.int64)
    every = _one_subchannel(ALL_WRITES)
    _batch(every, np.arange(400) * 1000, 0, True, free2, rfree2)
    assert int(_batch(every, [7], 10, False, free2, rfree2)[0]) > queued_until


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 60), st.integers(0, 3000), st.booleans()),
                min_size=1, max_size=6), st.sampled_from([0, 328, ALL_WRITES]),
       st.integers(0, 2**32))
def test_batches_never_move_more_bursts_than_the_bus_carries(batches, drain, seed):
    """However reads go ahead of queued writes, the bus free cycle after a sequence of batches
    leaves room for every burst: bus_free >= first offer + requests x nBL (one subchannel)."""
    geo = _one_subchannel(drain)
    rng = np.random.default_rng(seed)
    free, rfree = np.zeros((1, 1), np.int64), np.zeros((1, 1), np.int64)
    issue, total = 0, 0
    for n, gap, writes in batches:
        issue += gap
        _batch(geo, rng.integers(0, 1 << 16, n), issue, writes, free, rfree)
        total += n
    first = -(-(1 * geo.den) // geo.num)
    assert int(free[0, 0]) >= first + total * ONE.timing.nBL
