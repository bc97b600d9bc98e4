"""Sweeps on Dask distributed: the same rows as the serial reference, no point lost when a worker
is killed, resume after an interruption, memory channels halving the decode time."""

import os
import signal
import time
from pathlib import Path

import pytest

from prodigy_sim.hardware import resolve_hardware
from prodigy_sim.models import Scenario
from prodigy_sim.reports import simulate_scenario
from prodigy_sim.sweep import Evaluator, dask_client, sweep

pytest.importorskip("distributed")

DOC = Path(__file__).resolve().parents[1] / "docs" / "sweeps.md"
DOC_COLUMNS = ["memory.channels", "memory.dram.timing", "weights", "hardware", "time_s",
               "tokens_per_s", "roofline_tokens_per_s", "bandwidth_utilization",
               "footprint_bytes"]
"""The columns of the example table in docs/sweeps.md (its --table argument)."""


def _slow(ctx):
    """A test evaluator: a third of a second of waiting, then its worker's process id."""
    time.sleep(0.3)
    return {"pid": os.getpid(), "batch_again": ctx.params["batch"]}


SLOW = {"slow": Evaluator("slow", ("pid", "batch_again"), _slow)}
SLOW_SPEC = {"compute": ["slow"], "fixed": {"model": "bert-base-uncased"},
             "grid": {"batch": list(range(1, 9))}, "execution": {"batch_points": 1}}


@pytest.fixture(scope="module")
def client():
    with dask_client(workers=2) as c:
        yield c


def test_killing_a_worker_loses_no_point(tmp_path, client):
    killed = []

    def kill_a_busy_worker(_n):
        if killed:
            return
        busy = [addr for addr, keys in client.processing().items() if keys]
        if not busy:
            return
        pid = client.run(os.getpid, workers=[busy[0]])[busy[0]]
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)

    res = sweep(SLOW_SPEC, out=tmp_path, client=client, evaluators=SLOW,
                progress=kill_a_busy_worker)
    assert killed, "no worker was busy after the first point"
    assert res.count("ok") == 8 and res.computed == 8
    assert res.column("batch_again") == list(range(1, 9))
    assert len((tmp_path / "results.jsonl").read_text().splitlines()) == 8
    after = [pid for pid in res.column("pid") if pid != killed[0]]
    assert after, "every point ran on the killed worker"


def test_interrupted_dask_sweep_reruns_only_the_missing_points(tmp_path, client):
    seen = []

    def stop_after_three(n):
        seen.append(n)
        if len(seen) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        sweep(SLOW_SPEC, out=tmp_path, client=client, evaluators=SLOW,
              progress=stop_after_three)
    first = (tmp_path / "results.jsonl").read_text().splitlines()
    assert len(first) == 3
    res = sweep(SLOW_SPEC, out=tmp_path, client=client, evaluators=SLOW)
    assert (res.computed, res.skipped, res.count("ok")) == (5, 3, 8)
    assert (tmp_path / "results.jsonl").read_text().splitlines()[:3] == first


def _crash_on_two(ctx):
    """A test evaluator that kills its own worker process at batch 2 while a file exists."""
    if ctx.params["batch"] == 2 and Path(ctx.params["accuracy.crash_file"]).exists():
        os.kill(os.getpid(), signal.SIGKILL)
    return {"batch_again": ctx.params["batch"]}


def _allowed_failures(n, dask_scheduler=None):
    old, dask_scheduler.allowed_failures = dask_scheduler.allowed_failures, n
    return old


def test_a_point_that_keeps_killing_workers_is_recorded_and_rerun(tmp_path, client):
    crash = tmp_path / "crash"
    crash.write_text("")
    spec = {"compute": ["crash"], "fixed": {"model": "bert-base-uncased",
                                            "accuracy.crash_file": str(crash)},
            "grid": {"batch": [1, 2, 3]}, "execution": {"batch_points": 1, "retries": 1}}
    evs = {"crash": Evaluator("crash", ("batch_again",), _crash_on_two)}
    old = client.run_on_scheduler(_allowed_failures, 0)     # KilledWorker at the first death
    try:
        res = sweep(spec, out=tmp_path / "out", client=client, evaluators=evs)
    finally:
        client.run_on_scheduler(_allowed_failures, old)
    # point 2 kills every worker it runs on; a point that shared a dying worker may crash too
    status = res.column("status")
    assert status[1] == "crashed" and set(status) <= {"ok", "crashed"}
    assert res.rows[1]["error"] == ("worker died running this point, 2 submission(s) "
                                    "(KilledWorker)")
    assert res.rows[1]["accuracy.crash_file"] == str(crash)      # a pass-through column
    crash.unlink()
    again = sweep(spec, out=tmp_path / "out", executor="serial", evaluators=evs)
    assert (again.computed, again.skipped) == (status.count("crashed"), status.count("ok"))
    assert again.column("batch_again") == [1, 2, 3] and again.count("ok") == 3


@pytest.mark.slow
def test_dask_equals_serial_and_32_channels_halve_the_decode_time(tmp_path):
    spec = {"name": "ddr-2x2x2", "compute": ["footprint", "simulate"],
            "fixed": {"model": "llama-2-7b", "phase": "decode", "batch": 1, "context": 2048},
            "grid": {"memory.channels": [16, 32], "memory.dram.timing": [4800, 7200],
                     "weights": ["tai4", "float8_e4m3fn"]}}
    serial = sweep(spec, out=tmp_path / "serial", executor="serial")
    dask = sweep(spec, out=tmp_path / "dask", workers=2)
    assert serial.count("ok") == dask.count("ok") == 8
    assert serial.rows == dask.rows
    t = {(r["memory.channels"], r["memory.dram.timing"], r["weights"]): r["time_s"]
         for r in serial.rows}
    ratio = t[32, 7200, "tai4"] / t[16, 7200, "tai4"]
    assert 0.45 < ratio < 0.55
    row = next(r for r in serial.rows if (r["memory.channels"], r["memory.dram.timing"],
                                          r["weights"]) == (32, 7200, "tai4"))
    assert row["hardware"] == "prodigy-t16128+memory.channels=32"
    # the shared lowering gives what a fresh lowering on that chip gives
    chip, _ = resolve_hardware(None, ["memory.channels=32"])
    direct = simulate_scenario(Scenario(model="llama-2-7b", phase="decode", context_length=2048),
                               config=chip)
    assert direct.seconds == row["time_s"] and direct.hardware == row["hardware"]
    # these rows are those of the example table in docs/sweeps.md
    text = DOC.read_text()
    assert "--table " + ",".join(DOC_COLUMNS) in text
    for line in serial.markdown(DOC_COLUMNS).splitlines()[2:]:
        assert line in text

