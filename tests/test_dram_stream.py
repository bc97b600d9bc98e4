"""prodigy_sim.dram.DramStream: a DDR5 run fed in pieces equals one run with every request
(per request, bit for bit), whatever the pieces; its errors."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prodigy_sim.dram import DramStream, MemorySystemConfig, simulate_requests
from prodigy_sim.errors import ConfigError

CFG = MemorySystemConfig()
TWO = MemorySystemConfig(channels=2)


def _requests(seed: int, n: int, span: int, rows: int, write_share: float):
    rng = np.random.default_rng(seed)
    arrive = np.sort(rng.integers(0, span, n)).astype(np.int64)
    # lines in a few rows of a few banks: hits, misses and conflicts, forwarded reads
    addr = (rng.integers(0, rows, n) * 8192 + rng.integers(0, 16, n) * 64).astype(np.uint64)
    is_w = rng.random(n) < write_share
    return arrive, addr, is_w


def _in_pieces(config, arrive, addr, is_w, cuts) -> DramStream:
    s = DramStream(config)
    lo = 0
    for c in sorted(set(cuts)):
        hi = int(np.searchsorted(arrive, c))          # requests arriving before the cut
        s.add(arrive[lo:hi], addr[lo:hi], is_w[lo:hi])
        lo = hi
        s.advance(c)
        done = s.completion()
        assert np.all((done < 0) | (done >= 0))
    s.add(arrive[lo:], addr[lo:], is_w[lo:])
    s.finish()
    return s


def _same(a, b):
    for f in ("accept_cycle", "first_command_cycle", "row_class", "issue_cycle",
              "complete_cycle", "channel", "is_write"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f), err_msg=f)
    assert a.last_accept_cycle == b.last_accept_cycle
    np.testing.assert_array_equal(a.refreshes, b.refreshes)
    np.testing.assert_array_equal(a.refreshes_at_last_accept, b.refreshes_at_last_accept)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**31), n=st.integers(1, 400), span=st.integers(1, 60_000),
       rows=st.integers(1, 300), write_share=st.sampled_from([0.0, 0.3, 0.9]),
       cuts=st.lists(st.integers(0, 70_000), max_size=12), two=st.booleans())
def test_pieces_equal_one_run(seed, n, span, rows, write_share, cuts, two):
    config = TWO if two else CFG
    arrive, addr, is_w = _requests(seed, n, span, rows, write_share)
    one = simulate_requests(config, arrive, addr, is_w)
    _same(_in_pieces(config, arrive, addr, is_w, cuts).result(), one)


def test_every_cycle_a_piece_and_completions_are_final():
    """Advancing one cycle at a time through a saturated stream with refreshes: the same run,
    and a completion once reported never moves."""
    arrive, addr, is_w = _requests(7, 300, 3_000, 40, 0.3)
    one = simulate_requests(CFG, arrive, addr, is_w)
    s = DramStream(CFG)
    lo = 0
    seen = np.full(arrive.size, -1, np.int64)
    for c in range(0, int(one.complete_cycle.max()) + 2, 7):
        hi = int(np.searchsorted(arrive, c))
        s.add(arrive[lo:hi], addr[lo:hi], is_w[lo:hi])
        lo = hi
        s.advance(c)
        done = s.completion()
        known = seen[:done.size] >= 0
        np.testing.assert_array_equal(done[:seen.size][known], seen[:done.size][known])
        seen[:done.size] = np.where(done >= 0, done, seen[:done.size])
        # a completion known at cycle c was fixed by a command issued before c
        assert np.all(s._arr["fin"][:done.size][done >= 0] < c)
    s.add(arrive[lo:], addr[lo:], is_w[lo:])
    s.finish()
    _same(s.result(), one)


def test_errors():
    s = DramStream(CFG)
    s.add(np.array([10, 20]), np.array([0, 64], np.uint64), np.array([False, True]))
    s.advance(100)
    with pytest.raises(ConfigError, match="before cycle 100"):
        s.add(np.array([50]), np.array([0], np.uint64), np.array([False]))
    with pytest.raises(ConfigError, match="non-decreasing"):
        s.add(np.array([300, 200]), np.array([0, 0], np.uint64), np.array([False, False]))
    with pytest.raises(ConfigError, match="cannot advance"):
        s.advance(50)
    with pytest.raises(ConfigError, match="in flight"):
        s.add(np.array([100]), np.array([128], np.uint64), np.array([False]))
        s.result()
    s.finish()
    assert s.result().complete_cycle.min() >= 0 and s.requests == 3



FIELDS = ("accept_cycle", "first_command_cycle", "row_class", "issue_cycle", "complete_cycle")


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31), n=st.integers(1, 300), span=st.integers(1, 40_000),
       rows=st.integers(1, 200), write_share=st.sampled_from([0.0, 0.3, 0.9]),
       cuts=st.lists(st.integers(0, 50_000), min_size=1, max_size=10))
def test_compact_and_fork(seed, n, span, rows, write_share, cuts):
    """Dropping the done requests at every cut changes nothing; a fork run to its end gives
    what one run of the requests added so far gives, and leaves the original as it was."""
    arrive, addr, is_w = _requests(seed, n, span, rows, write_share)
    one = simulate_requests(CFG, arrive, addr, is_w)
    s = DramStream(CFG)
    dropped: list[np.ndarray] = []
    lo = 0
    for c in sorted(set(cuts)):
        hi = int(np.searchsorted(arrive, c))
        idx = s.add(arrive[lo:hi], addr[lo:hi], is_w[lo:hi])
        assert idx.tolist() == list(range(lo, hi))
        lo = hi
        s.advance(c)
        held = s.completion()
        twin = s.fork()
        twin.finish()
        if hi:
            prefix = simulate_requests(CFG, arrive[:hi], addr[:hi], is_w[:hi])
            np.testing.assert_array_equal(twin.completion(),
                                          prefix.complete_cycle[twin.base:hi])
        np.testing.assert_array_equal(s.completion(), held)      # the fork copied
        w0 = s.compact()
        dropped.append(held[:w0])
        assert np.all(held[:w0] >= 0) and s.base + len(s.completion()) == hi
    s.add(arrive[lo:], addr[lo:], is_w[lo:])
    s.finish()
    np.testing.assert_array_equal(np.concatenate(dropped + [s.completion()]),
                                  one.complete_cycle)
    tail = s.result()
    for f in FIELDS:
        np.testing.assert_array_equal(getattr(tail, f), getattr(one, f)[s.base:], err_msg=f)
