"""The controller model, mechanism by mechanism: closed-form latencies, tFAW, write drain,
refresh, forwarding, determinism."""

import numpy as np
import pytest

from prodigy_sim.dram import (
    ControllerConfig,
    MemorySystemConfig,
    memory_system_preset,
    simulate_requests,
)
from prodigy_sim.errors import ConfigError

KiB = 1 << 10


def _run(cfg, addrs, arrive=None, writes=None, chain=False):
    n = len(addrs)
    arrive = np.zeros(n, np.int64) if arrive is None else np.asarray(arrive, np.int64)
    writes = np.zeros(n, bool) if writes is None else np.asarray(writes, bool)
    return simulate_requests(cfg, arrive, np.asarray(addrs, np.uint64), writes, chain=chain)


def _latency(res, i):
    return int(res.complete_cycle[i] - res.accept_cycle[i])


@pytest.mark.parametrize("speed", [4800, 5600, 6400, 7200])
def test_unloaded_latencies_match_closed_forms(speed):
    cfg = memory_system_preset(speed=speed)
    t = cfg.timing
    # miss (bank closed) at 0; hit to the open row at 1000; conflict (same bank, new row) at 2000
    res = _run(cfg, [0, 64, 128 * KiB], arrive=[0, 1000, 2000])
    assert list(res.row_class) == [1, 0, 2]
    assert _latency(res, 0) == 1 + t.nRCD + t.nCL + t.nBL
    assert _latency(res, 1) == 1 + t.nCL + t.nBL
    assert _latency(res, 2) == 1 + (t.nRP - 1) + t.nRCD + t.nCL + t.nBL


@pytest.mark.parametrize("speed", [4800, 5600, 6400])
def test_same_bank_conflict_chain_is_trc_bound(speed):
    cfg = memory_system_preset(speed=speed)
    res = _run(cfg, [i * 128 * KiB for i in range(64)], chain=True)
    lat = res.complete_cycle - res.accept_cycle
    assert int(np.median(lat[1:])) == cfg.timing.nRC


def test_chain_keeps_one_request_outstanding():
    res = _run(memory_system_preset(), [i * 4 * KiB for i in range(8)], chain=True)
    assert np.all(res.accept_cycle[1:] == res.complete_cycle[:-1])


def test_tfaw_delays_the_fifth_activate():
    cfg = memory_system_preset()
    t = cfg.timing
    addrs = [g * 4 * KiB for g in range(5)]  # five bank groups, all banks closed
    res = _run(cfg, addrs)
    acts = list(res.first_command_cycle)
    assert acts[:4] == [1, 1 + t.nRRDS, 1 + 2 * t.nRRDS, 1 + 3 * t.nRRDS]
    assert acts[4] == acts[0] + t.nFAW
    relaxed = MemorySystemConfig(timing=t.model_copy(update={"nFAW": 8}))
    assert _run(relaxed, addrs).first_command_cycle[4] == 1 + 4 * t.nRRDS


def test_rrd_l_within_a_bank_group():
    cfg = memory_system_preset()
    res = _run(cfg, [0, 32 * KiB])  # bank group 0, banks 0 and 1
    assert list(res.first_command_cycle) == [1, 1 + cfg.timing.nRRDL]


def test_writes_drain_in_bursts_of_20_under_mixed_traffic():
    n = 6000
    ops = ["ST" if i % 3 == 2 else "LD" for i in range(n)]
    r = w = 0
    addrs = []
    for op in ops:
        if op == "ST":
            addrs.append((512 << 20) + 64 * w)
            w += 1
        else:
            addrs.append(64 * r)
            r += 1
    writes = np.array([op == "ST" for op in ops])
    res = _run(memory_system_preset(), addrs, writes=writes)
    order = np.argsort(res.issue_cycle, kind="stable")
    kinds = writes[order]
    bursts = np.diff(np.flatnonzero(np.diff(np.r_[False, kinds, False].astype(int))))[::2]
    assert len(bursts) > 20
    assert set(bursts[:-1].tolist()) == {20}


def test_refresh_every_trefi():
    cfg = memory_system_preset()
    res = _run(cfg, np.arange(40000, dtype=np.uint64) * 64)
    s = res.stats("drained")
    assert abs(s.refreshes - s.cycles // cfg.timing.nREFI) <= 1
    no_ref = memory_system_preset(controller=ControllerConfig(refresh="none"))
    assert _run(no_ref, np.arange(40000, dtype=np.uint64) * 64).stats("drained").refreshes == 0


def test_refresh_closes_rows_and_blocks_for_trfc():
    cfg = memory_system_preset()
    t = cfg.timing
    # one read long before the refresh deadline, one right after it, same row
    res = _run(cfg, [0, 64], arrive=[0, t.nREFI])
    assert res.row_class[1] == 1  # the refresh closed the row: a miss, not a hit
    # PREab in the tick the refresh is due (nREFI), REFab nRP later, ACT nRFC - 1 after REFab
    assert res.first_command_cycle[1] == t.nREFI + t.nRP + t.nRFC - 1
    assert res.refreshes.sum() == 1


def test_read_forwarded_from_write_buffer():
    # queued reads keep the controller in read mode, so the write waits in the write buffer
    addrs = [i * 128 * KiB for i in range(10)] + [0x1000, 0x1000]
    writes = [False] * 10 + [True, False]
    res = _run(memory_system_preset(), addrs, writes=writes)
    assert res.row_class[11] == -1
    assert res.complete_cycle[11] == res.accept_cycle[11] + 1
    assert res.issue_cycle[11] == -1


def test_same_input_same_result():
    rng = np.random.default_rng(5)
    addrs = rng.integers(0, 1 << 30, 5000, dtype=np.uint64) & ~np.uint64(63)
    writes = rng.random(5000) < 0.3
    cfg = memory_system_preset(channels=2)
    a = _run(cfg, addrs, writes=writes)
    b = _run(cfg, addrs, writes=writes)
    for field in ("accept_cycle", "first_command_cycle", "row_class", "issue_cycle",
                  "complete_cycle"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert a.stats() == b.stats()


def test_every_request_completes_after_it_arrives():
    rng = np.random.default_rng(7)
    n = 3000
    arrive = np.sort(rng.integers(0, 20000, n))
    addrs = rng.integers(0, 1 << 32, n, dtype=np.uint64) & ~np.uint64(63)
    writes = rng.random(n) < 0.5
    res = _run(memory_system_preset(channels=4, mapping="RoCoBaBgCh"), addrs, arrive, writes)
    assert np.all(res.accept_cycle >= arrive)
    assert np.all(res.complete_cycle >= res.accept_cycle)
    assert np.all(np.diff(res.accept_cycle) >= 1)


def test_bank_group_interleave_streams_faster():
    addrs = np.arange(20000, dtype=np.uint64) * 64
    slow = _run(memory_system_preset(), addrs).stats()
    fast = _run(memory_system_preset(mapping="RoCoBaBgCh"), addrs).stats()
    assert fast.bandwidth_GBps > slow.bandwidth_GBps


def test_bad_batches_are_refused():
    cfg = memory_system_preset()
    with pytest.raises(ConfigError, match="non-decreasing"):
        _run(cfg, [0, 64], arrive=[5, 1])
    with pytest.raises(ConfigError, match="one length"):
        simulate_requests(cfg, np.zeros(2, np.int64), np.zeros(3, np.uint64), np.zeros(2, bool))
