"""Calibration against Ramulator 2 (tests/data/calibration/): every case of ddr5_cases.csv.

The reference results ship with the repository (a copy of the project's shared calibration folder,
24 KB). The traces are generated in-process with the folder's own ``make_traces.py``; each case
must reproduce Ramulator's bandwidth within 5%, mean read latency within 10% and row hit / miss /
conflict counts within 1%.
"""

import csv
import importlib.util
from pathlib import Path

import numpy as np
import pytest

from prodigy_sim.dram import memory_system_preset, run_trace
from prodigy_sim.dram.trace import ParsedTrace

CALIBRATION = Path(__file__).resolve().parent / "data" / "calibration"


def _cases():
    with open(CALIBRATION / "ddr5_cases.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_every_case_is_present():
    assert [c["case"] for c in _cases()] == [
        "seq_read", "rand_read", "stride_read_1KiB", "mix_rw_2to1", "seq_read_2ch",
        "unloaded_chain_rowhit", "unloaded_chain_rowmiss", "unloaded_chain_conflict_samebank"]


@pytest.fixture(scope="module")
def traces():
    spec = importlib.util.spec_from_file_location("make_traces", CALIBRATION / "make_traces.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.TRACES


def _close(ours, ref, rel, abs_=0.0):
    return abs(ours - ref) <= max(rel * abs(ref), abs_)


@pytest.mark.parametrize("case", _cases(), ids=lambda c: c["case"])
def test_case_matches_ramulator(case, traces):
    ops = traces[case["trace"]]()
    trace = ParsedTrace(name=case["trace"],
                        addr=np.fromiter((a for _, a in ops), np.uint64, len(ops)),
                        is_write=np.fromiter((o == "ST" for o, _ in ops), np.bool_, len(ops)))
    rate = int(case["preset"].removeprefix("DDR5_").removesuffix("AN"))
    cfg = memory_system_preset(speed=rate, channels=int(case["channels"]))
    mode = "chain" if case["case"].startswith("unloaded_chain") else "saturate"
    s = run_trace(trace, cfg, mode=mode).stats
    assert s.n_requests == int(case["n_requests"])
    assert _close(s.bandwidth_GBps, float(case["total_bw_GBps"]), 0.05)
    assert _close(s.avg_read_latency_cycles, float(case["avg_read_lat_cyc"]), 0.10)
    for field in ("row_hits", "row_misses", "row_conflicts"):
        assert _close(getattr(s, field), int(case[field]), 0.01, 2), field
    assert _close(s.refreshes, int(case["refreshes"]), 0.02, 1)
