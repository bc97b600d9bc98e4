"""Running the tasks of a sweep: in this process (serial), or on a Dask distributed cluster.

Both executors run the same tasks (:func:`prodigy_sim.sweep._evaluate.run_batch`) and hand each
task's rows to ``on_done`` in the calling process as soon as the task finishes, so the caller
records them before anything else happens; the serial executor runs the tasks in order and is the
reference.

The Dask executor starts an embedded ``LocalCluster`` (worker processes with one thread each and
one Numba thread, no dashboard, its HTTP endpoints on a free port, logs below ERROR silenced) or
connects to ``scheduler``. When a worker dies, the scheduler moves its running task to another
worker by itself; a task whose workers died too often (Dask's ``KilledWorker``) is resubmitted up
to ``retries`` times, then its points are recorded with status ``crashed`` (and computed again by
the next run).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from typing import Any

from prodigy_sim.sweep._evaluate import Evaluator, failed_row, run_batch
from prodigy_sim.sweep._points import Point
from prodigy_sim.sweep._spec import SimulateSettings

__all__ = ["run_serial", "run_dask", "dask_client"]

Task = tuple[Point, ...]
OnDone = Callable[[list[dict[str, Any]]], None]

_WORKER_ENV = {"NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
               "MKL_NUM_THREADS": "1"}
"""One thread per worker process: the workers are the parallelism."""


def run_serial(tasks: list[Task], evaluators: tuple[Evaluator, ...], settings: SimulateSettings,
               on_done: OnDone) -> None:
    """Run ``tasks`` one after the other in this process."""
    for task in tasks:
        on_done(run_batch(task, evaluators, settings))


@contextlib.contextmanager
def dask_client(workers: int = 2, scheduler: str | None = None) -> Iterator[Any]:
    """A ``distributed.Client`` of an embedded LocalCluster of ``workers`` processes, or of the
    scheduler at ``scheduler``; closed (and the cluster shut down) on exit."""
    from distributed import Client, LocalCluster

    from prodigy_sim.simulation import check_workers

    if scheduler is not None:
        with Client(scheduler, set_as_default=False) as client:
            yield client
        return
    check_workers(workers)
    # no dashboard; the scheduler's HTTP endpoints on a free port (not the busy default 8787)
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                      dashboard_address=None, silence_logs=logging.ERROR,
                      scheduler_kwargs={"dashboard": False, "dashboard_address": ":0"},
                      env=dict(_WORKER_ENV)) as cluster, \
            Client(cluster, set_as_default=False) as client:
        yield client


def run_dask(tasks: list[Task], evaluators: tuple[Evaluator, ...], settings: SimulateSettings,
             on_done: OnDone, *, workers: int = 2, scheduler: str | None = None,
             retries: int = 2, client: Any = None) -> None:
    """Run ``tasks`` on Dask (``client``, else :func:`dask_client`); ``on_done`` gets each task's
    rows in completion order."""
    if client is None:
        with dask_client(workers, scheduler) as own:
            _run_on(own, tasks, evaluators, settings, on_done, retries)
    else:
        _run_on(client, tasks, evaluators, settings, on_done, retries)


def _run_on(client: Any, tasks: list[Task], evaluators: tuple[Evaluator, ...],
            settings: SimulateSettings, on_done: OnDone, retries: int) -> None:
    from distributed import KilledWorker, as_completed

    attempts: dict[str, tuple[int, int]] = {}
    futures = as_completed(loop=client.loop)

    def submit(i: int, attempt: int) -> None:
        fut = client.submit(run_batch, tasks[i], evaluators, settings, pure=False)
        attempts[fut.key] = (i, attempt)
        futures.add(fut)

    for i in range(len(tasks)):
        submit(i, 0)
    try:
        for fut in futures:
            i, attempt = attempts.pop(fut.key)
            try:
                rows = fut.result()
            except KilledWorker as err:
                if attempt < retries:
                    submit(i, attempt + 1)
                    continue
                rows = [{**failed_row(p, f"worker died running this point, {attempt + 1} "
                                         f"submission(s) ({type(err).__name__})", evaluators),
                         "status": "crashed"} for p in tasks[i]]
            except Exception as err:  # noqa: BLE001 - a task that cannot run: its points fail
                text = " ".join(str(err).split())
                rows = [failed_row(p, f"task failed: {type(err).__name__}: {text}", evaluators)
                        for p in tasks[i]]
            on_done(rows)
    finally:
        client.cancel(list(futures.futures), force=True)
