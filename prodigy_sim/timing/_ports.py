"""First-come-first-served ports (a controller's or an L2 slice's link into the mesh, a core's
link out of it) as one Numba pass over the elements in (port, ready) order."""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["fifo_departures"]


@njit(cache=True)
def _fifo(order, port, ready, nbytes, free, bw, out):
    """Per element ``j`` in ``order`` (sorted by port, then ready): in bytes of its port,
    ``D_j = max(ready_j bw, D_prev) + nbytes_j`` with ``D_prev`` the port's previous departure
    (``free[port] bw`` at first); ``out[j] = ceil(D_j / bw)`` cycles. ``free`` ends as every
    port's last departure (cycles)."""
    n = order.shape[0]
    i = 0
    while i < n:
        p = port[order[i]]
        d = free[p] * bw
        dep = free[p]
        while i < n and port[order[i]] == p:
            j = order[i]
            a = ready[j] * bw
            if a > d:
                d = a
            d += nbytes[j]
            dep = -(-d // bw)
            out[j] = dep
            i += 1
        free[p] = dep


def fifo_departures(order: np.ndarray, port: np.ndarray, ready: np.ndarray,
                    nbytes: np.ndarray, free: np.ndarray, bw: int) -> np.ndarray:
    """Departure cycle of every element (int64, shape (n,)) through its port: see :func:`_fifo`.
    ``order`` must group the elements by port, each port's in ready order; ``free`` (int64,
    per port) is updated in place."""
    out = np.empty(port.size, np.int64)
    if port.size:
        _fifo(order.astype(np.int64, copy=False), port.astype(np.int64, copy=False),
              ready.astype(np.int64, copy=False), nbytes.astype(np.int64, copy=False), free,
              np.int64(bw), out)
    return out
