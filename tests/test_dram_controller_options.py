"""The realistic-controller options (the chip presets use them; the Ramulator-like defaults stay for
the calibration): row-hit-first scheduling, queue depths, independent controllers in one call."""

import numpy as np
import pytest

from prodigy_sim.dram import (
    ControllerConfig,
    memory_system_preset,
    simulate_controllers,
    simulate_requests,
)
from prodigy_sim.errors import ConfigError

KiB = 1 << 10


def _run(cfg, addrs, arrive=None, writes=None):
    n = len(addrs)
    arrive = np.zeros(n, np.int64) if arrive is None else np.asarray(arrive, np.int64)
    writes = np.zeros(n, bool) if writes is None else np.asarray(writes, bool)
    return simulate_requests(cfg, arrive, np.asarray(addrs, np.uint64), writes)


def test_defaults_are_ramulators_controller():
    ctrl = memory_system_preset().controller
    assert (ctrl.scheduler, ctrl.read_queue_entries, ctrl.write_queue_entries) == ("FRFCFS", 32, 32)


def test_row_hit_first_does_not_close_a_row_under_an_older_hit():
    # Request 0 opens row 0 of bank 0 (bank group 0). A write to bank 1 of the same bank group
    # then blocks reads of that bank group for tWTR_L, while bank 0's PRE is ready at once. Request
    # 2 (older, a hit to row 0) and request 3 (younger, row 1 of bank 0) arrive meanwhile.
    t = memory_system_preset().timing
    addrs = [0, 32 * KiB, 64, 128 * KiB]
    arrive = [0, 500, 540, 541]
    writes = [False, True, False, False]
    ramulator = _run(memory_system_preset(), addrs, arrive, writes)
    rhf = _run(memory_system_preset(controller=ControllerConfig(scheduler="row_hit_first")),
               addrs, arrive, writes)
    wr = int(ramulator.issue_cycle[1])
    # Ramulator's FR-FCFS: the younger request's PRE is the oldest *ready* command; it closes the
    # row and the older hit becomes a miss (ACT)
    assert ramulator.first_command_cycle[3] == 542
    assert list(ramulator.row_class) == [1, 1, 1, 2]
    # row-hit-first: no PRE while the older hit waits; the hit reads as soon as tWTR_L allows
    assert list(rhf.row_class) == [1, 1, 0, 2]
    assert rhf.issue_cycle[2] == wr + t.nCWL + t.nBL + t.nWTRL
    assert rhf.first_command_cycle[3] > rhf.issue_cycle[2]
    assert rhf.complete_cycle[2] < ramulator.complete_cycle[2]


def test_deeper_queues_find_more_row_hits_among_interleaved_streams():
    # 40 streams, each in its own row of one bank, offered round-robin: the scheduler can only
    # batch a row's hits if they are in the queue together
    s = np.tile(np.arange(40), 64)
    line = np.repeat(np.arange(64), 40)
    addrs = (s * 128 * KiB + line * 64).astype(np.uint64)
    bw, hits = [], []
    for depth in (32, 64, 128):
        cfg = memory_system_preset(controller=ControllerConfig(scheduler="row_hit_first",
                                                               read_queue_entries=depth))
        st = _run(cfg, addrs).stats("drained")
        bw.append(st.bandwidth_GBps)
        hits.append(st.row_hits)
    assert hits[0] == 0 < hits[1] < hits[2]  # 32 entries never hold two requests of one stream
    assert bw[0] < bw[1] < bw[2]


@pytest.mark.parametrize("depth", [1, 2, 200])
def test_any_queue_depth_serves_every_request(depth):
    rng = np.random.default_rng(depth)
    addrs = rng.integers(0, 1 << 26, 500).astype(np.uint64) * np.uint64(64)
    writes = rng.random(500) < 0.4
    for sched in ("FRFCFS", "row_hit_first"):
        ctrl = ControllerConfig(scheduler=sched, read_queue_entries=depth,
                                write_queue_entries=depth)
        res = _run(memory_system_preset(controller=ctrl), addrs, writes=writes)
        assert np.all(res.complete_cycle >= res.accept_cycle)


def test_independent_controllers_do_not_block_each_other():
    # a 2-subchannel system with ONE frontend: 200 same-bank conflicts to subchannel 0 fill its
    # queue, and the 4 reads for subchannel 1 behind them wait for ~20,000 cycles
    flood = np.arange(200, dtype=np.uint64) * np.uint64(256 * KiB)
    few = np.arange(4, dtype=np.uint64) * np.uint64(128) + np.uint64(64)
    addrs = np.concatenate([flood, few])
    zeros = np.zeros(addrs.size, np.int64)
    shared = simulate_requests(memory_system_preset(channels=2), zeros, addrs,
                               np.zeros(addrs.size, bool))
    assert set(shared.channel[-4:].tolist()) == {1}
    assert shared.complete_cycle[-4:].min() > 10_000
    # each subchannel its own controller: subchannel 1's reads are served as if alone
    one = memory_system_preset()
    sub = (addrs // np.uint64(128)) * np.uint64(64)
    ctrl = np.r_[np.zeros(200, np.int64), np.ones(4, np.int64)]
    res = simulate_controllers(one, ctrl, zeros, sub, np.zeros(addrs.size, bool))
    alone = simulate_requests(one, zeros[:4], sub[-4:], np.zeros(4, bool))
    np.testing.assert_array_equal(res.complete_cycle[-4:], alone.complete_cycle)
    assert res.complete_cycle[-4:].max() < 200


def test_independent_controllers_refuse_bad_input():
    one = memory_system_preset()
    z = np.zeros(3, np.int64)
    with pytest.raises(ConfigError, match="non-decreasing within each controller"):
        simulate_controllers(one, [0, 0, 1], [5, 1, 0], z.astype(np.uint64), np.zeros(3, bool))
    with pytest.raises(ConfigError, match="one length"):
        simulate_controllers(one, [0, 0], z, z.astype(np.uint64), np.zeros(3, bool))
    with pytest.raises(ConfigError, match="controllers = 1"):
        simulate_controllers(one, [0, 1, 1], z, z.astype(np.uint64), np.zeros(3, bool),
                             controllers=1)
