"""RunCache: simulations sharing a cache give exactly the results they give without one, and
decode steps of one batch at different contexts share their linear layers' runs."""

import dataclasses
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor

import pytest

from prodigy_sim.errors import ConfigError
from prodigy_sim.hardware import load_preset
from prodigy_sim.lowering import lower_model
from prodigy_sim.models import ModelCard, Scenario, load_card
from prodigy_sim.simulation import (
    RunCache,
    SimMethod,
    default_workers,
    max_workers,
    prefetch_runs,
    simulate_lowered,
)
from prodigy_sim.simulation._driver import _roofline_estimate

CFG = load_preset("prodigy-t16128")


def _card() -> ModelCard:
    data = load_card("smollm2-135m").model_dump()
    data["num_layers"] = 1
    return ModelCard.model_validate(data)


def _lowered(batch: int, context: int, cores: int = 8):
    sc = Scenario(model="smollm2-135m", phase="decode", batch=batch, context_length=context)
    return lower_model(_card(), sc, CFG, cores=cores)


def test_cached_results_equal_uncached_results():
    """Every op result (times, bytes, utilization, method) of steps simulated with one shared
    cache equals the result of simulating the step alone, with and without the steady-state
    extrapolation; repeating a step is served entirely from the cache."""
    cache = RunCache()
    shapes = [(2, 128), (2, 256), (3, 128), (2, 128)]
    for method in (SimMethod(), SimMethod(steady_units=None)):
        seen = set()
        for batch, context in shapes:
            lm = _lowered(batch, context)
            alone = simulate_lowered(lm, CFG, method=method)
            misses = cache.misses
            shared = simulate_lowered(lm, CFG, method=method, cache=cache)
            if (batch, context) in seen:
                assert cache.misses == misses          # a repeated step: all from the cache
            seen.add((batch, context))
            assert shared.stages == alone.stages
            assert [dataclasses.asdict(o) for s in shared.stages for o in s.ops] == \
                [dataclasses.asdict(o) for s in alone.stages for o in s.ops]
    assert len(cache) == cache.misses


def test_linear_layers_are_shared_across_contexts_not_across_batches_or_chips():
    """A decode step at another context reruns only what depends on the context (attention and
    the KV-cache update); another batch or another chip configuration reruns everything."""
    cache = RunCache()
    simulate_lowered(_lowered(2, 128), CFG, cache=cache)
    first = cache.misses
    simulate_lowered(_lowered(2, 512), CFG, cache=cache)
    rerun = cache.misses - first
    lm = _lowered(2, 512)
    context_ops = {op.name for s in lm.stages for op in s.ops
                   if op.kernel.kind == "attention" or "rope" in op.name}
    assert context_ops and rerun <= len(context_ops) * 4     # at most a few runs per such op
    assert rerun < first
    before = cache.misses
    simulate_lowered(_lowered(4, 512), CFG, cache=cache)
    assert cache.misses - before >= len({op.name for s in lm.stages for op in s.ops
                                         if op.kernel.kind == "linear"})
    slower = CFG.model_copy(update={"frequency_hz": CFG.frequency_hz / 2})
    before = cache.misses
    half = simulate_lowered(lm, slower, cache=cache)
    assert cache.misses > before
    assert half.seconds > simulate_lowered(lm, CFG, cache=cache).seconds


def test_runs_in_worker_processes_equal_runs_made_here():
    """With ``RunCache(workers=2)`` and every run of three steps submitted ahead
    (``prefetch_runs``), each op result equals the result of simulating the step alone without
    a cache; every distinct run was submitted once (the linear layers of the two contexts of
    batch 2 are submitted once) and made once, in a worker or here."""
    method = SimMethod(steady_units=None)
    lms = [_lowered(b, c) for b, c in [(2, 128), (2, 256), (3, 128)]]
    with RunCache(workers=2) as cache:
        offered = [prefetch_runs(lm, CFG, cache, method=method) for lm in lms]
        submitted = cache.submitted
        for lm in lms:
            shared = simulate_lowered(lm, CFG, method=method, cache=cache)
            alone = simulate_lowered(lm, CFG, method=method)
            assert [dataclasses.asdict(o) for s in shared.stages for o in s.ops] == \
                [dataclasses.asdict(o) for s in alone.stages for o in s.ops]
        assert submitted == len(cache) == cache.misses < sum(offered)
    assert prefetch_runs(lms[0], CFG, RunCache(), method=method) == offered[0]  # serial: no-op
    with pytest.raises(ConfigError, match="workers"):
        RunCache(workers=0)


def test_an_extrapolated_op_offers_its_first_three_runs():
    """An op tried for the steady-state extrapolation offers the workers the three capped runs
    it always makes (u, 2u, 4u units; the later ones depend on their results): they are the
    runs simulate_op then asks for, and its result is the one made without workers."""
    from prodigy_sim.lowering import linear_op
    from prodigy_sim.numerics import Storage
    from prodigy_sim.simulation import simulate_op
    from prodigy_sim.simulation._driver import _offer_runs

    op = linear_op("g", 8192, 4096, 1024, Storage.of("tai4"), CFG, cores=2)
    method = SimMethod(steady_units=2)
    assert op.kernel.per_core_units >= 64
    alone = simulate_op(op, CFG, method=method)
    with RunCache(workers=2) as cache:
        _offer_runs(op, CFG, method, cache)
        assert cache.submitted == 3
        shared = simulate_op(op, CFG, method=method, cache=cache)
        assert cache.submitted == 3 and len(cache) >= 3
    assert dataclasses.asdict(shared) == dataclasses.asdict(alone)
    assert "steady" in alone.method


def test_a_run_no_worker_has_started_is_made_here():
    """A submitted run that no worker has started when it is asked for (the workers busy
    here with other work) is made in this process instead of waited for: the same results as
    without workers, every run counted in ``made_here``."""
    method = SimMethod(steady_units=None)
    lm = _lowered(2, 128)
    alone = simulate_lowered(lm, CFG, method=method)
    with RunCache(workers=2) as cache:
        pool = cache._pool = ProcessPoolExecutor(2,
                                                 mp_context=multiprocessing.get_context("fork"))
        busy = [pool.submit(time.sleep, 60) for _ in range(8)]   # the workers and the pool's
        while not all(f.running() for f in busy[:2]):             # call queue (3) taken
            time.sleep(0.01)
        prefetch_runs(lm, CFG, cache, method=method)
        assert cache.submitted > 0
        shared = simulate_lowered(lm, CFG, method=method, cache=cache)
        assert cache.made_here == cache.submitted == len(cache)
        for proc in list(pool._processes.values()):
            proc.terminate()
        pool.shutdown(wait=True, cancel_futures=True)
        cache._pool = None
    assert [dataclasses.asdict(o) for s in shared.stages for o in s.ops] == \
        [dataclasses.asdict(o) for s in alone.stages for o in s.ops]


def test_runs_are_offered_longest_first():
    """``prefetch_runs`` gives the workers the ops in decreasing order of their rooflines
    (a long run started last would leave the other workers idle at the end)."""
    sc = Scenario(model="smollm2-135m", phase="prefill", batch=1, sequence_length=256)
    lm = lower_model(_card(), sc, CFG, cores=8)
    ops = [op for st in lm.stages for op in st.ops]
    with RunCache(workers=2) as cache:
        prefetch_runs(lm, CFG, cache, method=SimMethod(steady_units=None))
        cache_keys = list(cache._pending)
        programs = [key[0] for key in cache_keys]
    est = {id(op.kernel.program): _roofline_estimate(op, CFG) for op in ops}
    order = [est[id(p)] for p in programs]
    assert len(programs) == len({key for key in cache_keys}) > 2
    assert order == sorted(order, reverse=True) and order[0] > order[-1]


def _put_default_workers(queue) -> None:
    queue.put(default_workers())


def test_default_workers_one_per_cpu_and_none_in_a_daemon():
    """``prodigy-sim simulate`` starts one worker per CPU this process may use (at most 8),
    and none inside a daemonic process, which may not start processes."""
    assert default_workers() == min(len(os.sched_getaffinity(0)), 8, max_workers())
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_put_default_workers, args=(queue,), daemon=True)
    child.start()
    assert queue.get(timeout=60) == 1
    child.join()
