"""Threads: Numba kernels that go parallel only when the work is large enough to pay for it,
and BLAS held at one thread around many small GEMMs.

A ``parallel=True`` kernel starts and joins a thread team on every call: on a small array that
costs more than the work, and far more when other processes load the cores (a team member that
is not scheduled holds the join). :func:`parallel_if_large` compiles a kernel twice - with
``prange`` parallel and as a plain loop - and picks by the size of the first argument. Both
versions compute the same values (the kernels it is used on write disjoint rows).
"""

from __future__ import annotations

import contextlib
import functools
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, cast

import numba

__all__ = ["PARALLEL_MIN_ELEMENTS", "parallel_if_large", "blas_single_thread",
           "one_blas_thread", "cached_on_disk"]

PARALLEL_MIN_ELEMENTS = 1 << 16
"""Smallest first-argument size (elements) that runs the parallel version."""


class _Twins(Protocol):
    """What :func:`parallel_if_large` returns: a call and the two dispatchers it picks from."""

    parallel: Any
    serial: Any

    def __call__(self, *args: Any) -> Any: ...


def parallel_if_large(fn: Callable) -> _Twins:
    """Decorator: ``fn`` jitted parallel and serial; a call runs the parallel one iff
    ``args[0].size >= PARALLEL_MIN_ELEMENTS``. ``.parallel`` / ``.serial`` are the two
    dispatchers. The serial twin has its own name, so Numba caches the two apart."""
    par = numba.njit(cache=True, parallel=True)(fn)
    twin = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__ + "_serial",
                              fn.__defaults__, fn.__closure__)
    twin.__qualname__ = fn.__qualname__ + "_serial"
    twin.__module__ = fn.__module__
    ser = numba.njit(cache=True)(twin)

    def run(*args):
        return (par if args[0].size >= PARALLEL_MIN_ELEMENTS else ser)(*args)

    call = cast(_Twins, functools.wraps(fn)(run))  # a function with two attributes set below
    call.parallel, call.serial = par, ser
    return call


def cached_on_disk(*kernels) -> bool:
    """True if every kernel (a Numba dispatcher, or a :func:`parallel_if_large` pair) has its
    on-disk cache (``cache=True``): a new process then loads the compiled code in a fraction of
    a second instead of compiling it (seconds per kernel). Reads Numba's cache locator; if that
    internal API changes, answers True (no "compiling" notice rather than a wrong one)."""
    dispatchers = []
    for k in kernels:
        dispatchers += [k.parallel, k.serial] if hasattr(k, "serial") else [k]
    try:
        return all(Path(d._cache._cache_file._index_path).is_file() for d in dispatchers)
    except AttributeError:
        return True


@functools.cache
def _blas_controller():
    try:
        from threadpoolctl import ThreadpoolController
        return ThreadpoolController()
    except Exception:  # noqa: BLE001 - optional: no threadpoolctl, no control
        return None


def blas_single_thread() -> contextlib.AbstractContextManager:
    """A context holding BLAS at one thread (threadpoolctl; a no-op without it). Small GEMMs
    gain nothing from BLAS threads and lose much when other processes load the cores: a
    64 x 128 x 1152 float64 GEMM took 16 ms with two threads on a loaded 2-core machine and
    0.4 ms with one."""
    ctl = _blas_controller()
    return contextlib.nullcontext() if ctl is None else ctl.limit(limits=1, user_api="blas")


def one_blas_thread(fn: Callable) -> Callable:
    """Decorator: run ``fn`` inside :func:`blas_single_thread` (also makes the summation order
    of its GEMMs and factorizations independent of the thread count)."""

    @functools.wraps(fn)
    def call(*args, **kwargs):
        with blas_single_thread():
            return fn(*args, **kwargs)

    return call
