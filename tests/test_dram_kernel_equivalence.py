"""The per-bank controller kernel against the slow reference (tests/reference_dram.py: the kernel
as it was before the restructuring, which reproduces Ramulator 2 on the calibration cases), request
by request, on random traces: mixes of reads and writes, few or many rows and banks (hits, misses,
conflicts, forwarding), 1-4 channels, small and default queues, refresh on and off, saturating,
spaced and chained arrivals. Also: several independent controllers in one call give what each
gives alone."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from reference_dram import reference_simulate

from prodigy_sim.dram import (
    ControllerConfig,
    map_addresses,
    memory_system_preset,
    simulate_controllers,
    simulate_requests,
)
from prodigy_sim.dram import _kernel as K
from prodigy_sim.dram.model import _params


@st.composite
def traces(draw):
    channels = draw(st.sampled_from([1, 2, 4]))
    ctrl = ControllerConfig(read_queue_entries=draw(st.sampled_from([1, 2, 5, 32])),
                            write_queue_entries=draw(st.sampled_from([1, 3, 8, 32])),
                            refresh=draw(st.sampled_from(["all_bank", "none"])))
    cfg = memory_system_preset(speed=draw(st.sampled_from([4800, 6400, 7200])),
                               channels=channels,
                               mapping=draw(st.sampled_from(["RoBaRaCoCh", "RoCoBaBgCh"])),
                               controller=ctrl)
    n = draw(st.integers(1, 400))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    # a small pool of rows makes hits, conflicts and forwarding frequent; a large one, misses
    lines = rng.integers(0, draw(st.sampled_from([8, 256, 1 << 16])), n)
    rows = rng.integers(0, draw(st.sampled_from([1, 2, 3, 1 << 12])), n)
    addr = (lines.astype(np.uint64) * np.uint64(64)) + (rows.astype(np.uint64) << np.uint64(24))
    is_write = rng.random(n) < draw(st.sampled_from([0.0, 0.2, 0.5, 1.0]))
    span = draw(st.sampled_from([0, n, 40 * n, 30000]))
    arrive = np.sort(rng.integers(0, span + 1, n)).astype(np.int64)
    chain = draw(st.booleans()) and n <= 100
    return cfg, arrive, addr, is_write, chain


def _run(kernel, cfg, arrive, addr, is_write, chain):
    m = map_addresses(cfg, addr)
    n = arrive.size
    out = [np.full(n, -1, np.int64) for _ in range(5)]
    ref_stop = np.zeros(cfg.channels, np.int64)
    ref_total = np.zeros(cfg.channels, np.int64)
    stop, status = kernel(_params(cfg, chain), arrive, m.channel, m.bank_group, m.bank, m.row,
                          addr.view(np.int64), is_write, *out, ref_stop, ref_total)
    return (int(stop), int(status)), out, ref_stop, ref_total


@settings(max_examples=120)
@given(traces())
def test_kernel_matches_the_reference_request_by_request(case):
    cfg, arrive, addr, is_write, chain = case
    new = _run(K.simulate_kernel, cfg, arrive, addr, is_write, chain)
    ref = _run(reference_simulate, cfg, arrive, addr, is_write, chain)
    assert new[0] == ref[0]
    for name, a, b in zip(("accept", "first", "class", "issue", "complete"), new[1], ref[1],
                          strict=True):
        np.testing.assert_array_equal(a, b, err_msg=name)
    np.testing.assert_array_equal(new[2], ref[2])
    np.testing.assert_array_equal(new[3], ref[3])


@settings(max_examples=25)
@given(traces(), st.integers(1, 4), st.booleans())
def test_independent_controllers_match_separate_runs(case, groups, rhf):
    cfg, arrive, addr, is_write, _ = case
    if rhf:
        cfg = cfg.model_copy(update={"controller": cfg.controller.model_copy(
            update={"scheduler": "row_hit_first"})})
    rng = np.random.default_rng(arrive.size)
    ctrl = rng.integers(0, groups, arrive.size)
    res = simulate_controllers(cfg, ctrl, arrive, addr, is_write, controllers=groups)
    for g in range(groups):
        sel = ctrl == g
        alone = simulate_requests(cfg, arrive[sel], addr[sel], is_write[sel])
        for field in ("accept_cycle", "first_command_cycle", "row_class", "issue_cycle",
                      "complete_cycle"):
            np.testing.assert_array_equal(getattr(res, field)[sel], getattr(alone, field))
        assert res.last_accept_cycle[g] == (alone.last_accept_cycle if sel.any() else 0)
        np.testing.assert_array_equal(res.refreshes[g], alone.refreshes)


@settings(max_examples=15)
@given(traces(), st.integers(2, 4))
def test_independent_controllers_grouped_input_takes_no_detour(case, groups):
    """Requests already grouped by controller (the timing model's batches) skip the sort and
    the scatter back; the results equal those of the same requests interleaved."""
    cfg, arrive, addr, is_write, _ = case
    ctrl = np.random.default_rng(arrive.size).integers(0, groups, arrive.size)
    mixed = simulate_controllers(cfg, ctrl, arrive, addr, is_write, controllers=groups)
    order = np.argsort(ctrl, kind="stable")
    grouped = simulate_controllers(cfg, ctrl[order], arrive[order], addr[order],
                                   is_write[order], controllers=groups)
    for field in ("accept_cycle", "first_command_cycle", "row_class", "issue_cycle",
                  "complete_cycle"):
        np.testing.assert_array_equal(getattr(grouped, field), getattr(mixed, field)[order])
    np.testing.assert_array_equal(grouped.last_accept_cycle, mixed.last_accept_cycle)
    np.testing.assert_array_equal(grouped.refreshes, mixed.refreshes)
