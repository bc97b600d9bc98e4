"""BLAS held at one thread around the PTQ methods.

The methods are sequences of medium-sized matrix products and factorizations. One BLAS thread
makes their results independent of the thread count (the summation order of a threaded BLAS
kernel can depend on how the work is split) and is also faster on a shared machine: a 1536 x 1536
inverse factor took 0.44 s with two threads and 0.12 s with one while other jobs loaded the two
cores. Callers that want parallelism run layers in separate processes.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

from threadpoolctl import threadpool_limits

__all__ = ["one_blas_thread"]

F = TypeVar("F", bound=Callable)


def one_blas_thread(fn: F) -> F:
    """Decorator: run ``fn`` with BLAS limited to one thread (threadpoolctl)."""

    @functools.wraps(fn)
    def call(*args, **kwargs):
        with threadpool_limits(limits=1, user_api="blas"):
            return fn(*args, **kwargs)

    return call  # type: ignore[return-value]
