"""prodigy_sim.dram.DramStreams: the real runs equal one run of every request per instance
(bit for bit), whatever the steps; speculation is exact where nothing arrives later; errors."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prodigy_sim.dram import DramStreams, MemorySystemConfig, simulate_grouped, simulate_requests
from prodigy_sim.errors import ConfigError

CFG = MemorySystemConfig(channels=1)


def _steps(seed: int, instances: int, steps: int, per_step: int, spread: int, rows: int,
           write_share: float):
    """Batches of requests, each arriving at or after the previous batch's horizon and up to
    ``spread`` cycles beyond its own (so a later batch may arrive before an earlier one's
    requests: the future lists), on ``rows`` rows of a few banks."""
    rng = np.random.default_rng(seed)
    out = []
    horizon = 0
    for _ in range(steps):
        n = int(rng.integers(0, per_step + 1))
        inst = rng.integers(0, instances, n)
        arrive = horizon + rng.integers(0, spread, n)
        addr = (rng.integers(0, rows, n) * 8192 + rng.integers(0, 16, n) * 64).astype(np.int64)
        is_w = rng.random(n) < write_share
        nxt = horizon + int(rng.integers(0, spread))
        out.append((inst, arrive.astype(np.int64), addr, is_w, nxt))
        horizon = nxt
    return out


def _grouped(inst, instances):
    order = np.lexsort((np.arange(inst.size), inst))
    start = np.zeros(instances + 1, np.int64)
    np.add.at(start, inst + 1, 1)
    return order, np.cumsum(start)


def _run(steps, instances):
    """(speculated, real completion, reference) of every request, in the order added."""
    s = DramStreams(CFG, instances, record=True)
    spec, keys, seen = [], [], []
    for k, (inst, arrive, addr, is_w, horizon) in enumerate(steps):
        # each instance's requests in arrival order
        order = np.lexsort((np.arange(inst.size), arrive, inst))
        start = np.zeros(instances + 1, np.int64)
        np.add.at(start, inst + 1, 1)
        start = np.cumsum(start)
        spec.append(s.step(start, arrive[order], addr[order], is_w[order], horizon))
        seen.append(s.final.copy())
        keys.append(np.stack([inst[order], arrive[order], np.full(inst.size, k),
                              np.arange(inst.size)], axis=1))
    s.finish()
    spec_all = np.concatenate(spec)
    key = np.concatenate(keys)
    addr = np.concatenate([st_[2][np.lexsort((np.arange(st_[0].size), st_[1], st_[0]))]
                           for st_ in steps])
    is_w = np.concatenate([st_[3][np.lexsort((np.arange(st_[0].size), st_[1], st_[0]))]
                           for st_ in steps])
    # the reference: per instance, every request in arrival order (earlier batches first)
    ref_order = np.lexsort((key[:, 3], key[:, 2], key[:, 1], key[:, 0]))
    start = np.zeros(instances + 1, np.int64)
    np.add.at(start, key[:, 0] + 1, 1)
    ref = np.empty(key.shape[0], np.int64)
    ref[ref_order] = simulate_grouped(CFG, np.cumsum(start), key[ref_order, 1],
                                      addr[ref_order], is_w[ref_order])
    real = s.final.copy()
    for early in seen:              # a completion known after a step is already the real one
        known = early >= 0
        np.testing.assert_array_equal(early[known], real[:early.size][known])
    return s, spec_all, real, ref


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31), instances=st.integers(1, 4), steps=st.integers(1, 25),
       per_step=st.integers(0, 60), spread=st.integers(1, 3000), rows=st.integers(1, 200),
       write_share=st.sampled_from([0.0, 0.3, 0.9]))
def test_real_runs_equal_one_run(seed, instances, steps, per_step, spread, rows, write_share):
    s, spec, real, ref = _run(_steps(seed, instances, steps, per_step, spread, rows,
                                     write_share), instances)
    np.testing.assert_array_equal(real, ref)
    assert np.all(spec >= 0)
    np.testing.assert_array_equal(s.speculated, spec)
    st_ = s.spec_stats
    assert st_.requests == real.size and st_.clamped == 0
    late = real - spec
    assert st_.late == int((late > 0).sum()) and st_.early == int((late < 0).sum())
    assert st_.late_cycles == int(late[late > 0].sum())
    assert s.held == 0
    # the real runs' row-buffer outcomes: those of one run of each instance's requests
    steps = _steps(seed, instances, steps, per_step, spread, rows, write_share)
    inst = np.concatenate([x[0] for x in steps])
    arrive = np.concatenate([x[1] for x in steps])
    addr = np.concatenate([x[2] for x in steps])
    is_w = np.concatenate([x[3] for x in steps])
    batch = np.concatenate([np.full(x[0].size, k) for k, x in enumerate(steps)])
    classes = np.zeros(4, np.int64)                 # hit, miss, conflict, forwarded
    for g in range(instances):
        sel = np.flatnonzero(inst == g)
        sel = sel[np.lexsort((sel, batch[sel], arrive[sel]))]   # as the reference above
        if sel.size:
            cls = simulate_requests(CFG, arrive[sel], addr[sel].astype(np.uint64),
                                    is_w[sel]).row_class
            classes += np.bincount(np.where(cls < 0, 3, cls), minlength=4)
    assert [st_.row_hits, st_.row_misses, st_.row_conflicts, st_.forwarded] == classes.tolist()


def test_speculation_exact_without_later_arrivals():
    """One batch and nothing after it: the speculated completions are the real ones."""
    steps = _steps(7, 3, 1, 500, 2000, 50, 0.3)
    s, spec, real, ref = _run(steps, 3)
    np.testing.assert_array_equal(spec, ref)
    assert s.spec_stats.late == 0 and s.spec_stats.early == 0


def test_later_row_hits_make_speculation_late():
    """A waiting read to a closed row is speculated on an idle bank; row hits that arrive
    afterwards (row-hit-first) go ahead of it: its real completion is later."""
    s = DramStreams(CFG, 1, record=True)
    one = np.array([0, 1], np.int64)
    # open row 0 of bank 0 with a stream of hits, and one read to row 1 of the same bank
    s.step(one, np.array([0]), np.array([0]), np.array([False]), 1)
    spec = s.step(one, np.array([1]), np.array([8192 * 1024]), np.array([False]), 2)
    hits = np.arange(1, 64, dtype=np.int64) * 64
    s.step(np.array([0, hits.size]), np.full(hits.size, 2), hits,
           np.zeros(hits.size, np.bool_), 3)
    s.finish()
    assert s.final[1] > spec[0]
    st_ = s.spec_stats
    assert st_.requests == 2 + hits.size and st_.late == 1
    assert st_.late_cycles == s.final[1] - spec[0]


def test_errors():
    s = DramStreams(CFG, 2)
    one = np.zeros(1, np.int64)
    with pytest.raises(ConfigError, match="'start'"):
        s.step(np.array([0, 1]), one, one, np.zeros(1, np.bool_), 5)
    s.step(np.array([0, 1, 1]), one, one, np.zeros(1, np.bool_), 5)
    with pytest.raises(ConfigError, match="'horizon' 4 is before"):
        s.step(np.array([0, 0, 0]), one[:0], one[:0], np.zeros(0, np.bool_), 4)
    s.finish()
    with pytest.raises(ConfigError, match="finished"):
        s.step(np.array([0, 0, 0]), one[:0], one[:0], np.zeros(0, np.bool_), 6)
    with pytest.raises(ConfigError, match="'instances'"):
        DramStreams(CFG, 0)
