"""Collectives timed by the standard closed forms (alpha-beta model) on a system's links.

A message of ``n`` bytes over a link of bandwidth ``bw`` (bytes/s, one direction) and latency
``a`` (s) takes ``a + n / bw``. Reductions are assumed free next to the transfers (the adds run at
the socket's vector rate, thousands of times the link rate). For a group of ``p`` sockets and a
buffer of ``n`` bytes per socket:

==============  ==========================================  ========================================
all-reduce      ring                                        ``2 (p-1)/p n/bw + 2 (p-1) a``
                direct (fully connected: reduce-scatter     ``2 n/(p bw) + 2 a``
                then all-gather, each over p-1 links)
                tree (recursive halving + doubling,         ``2 (p-1)/p n/bw + 2 ceil(log2 p) a``
                Rabenseifner)
all-gather      ring (``n`` = gathered bytes)               ``(p-1)/p n/bw + (p-1) a``
reduce-scatter  ring (``n`` = bytes before)                 ``(p-1)/p n/bw + (p-1) a``
all-to-all      direct (fully connected: p-1 links at once) ``n/(p bw) + a``
                pairwise (one link or NIC, p-1 rounds)      ``(p-1)/p n/bw + (p-1) a``
point-to-point                                              ``n/bw + a``
==============  ==========================================  ========================================

A group inside one node uses the socket links (``fully_connected``: ring, direct); a group over
several nodes is *hierarchical*: reduce-scatter inside each node, an all-reduce of each socket's
``n/s`` shard between the nodes (ring or tree, over the socket's share of its node's NICs), an
all-gather inside each node (a reduce-scatter plus an all-gather cost one all-reduce of the same
algorithm). ``"auto"`` picks the fastest closed form at each level, as collective libraries pick
by message size and topology; the result names the choice. ``"ring"`` is the textbook baseline.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from prodigy_sim.errors import ConfigError
from prodigy_sim.hardware import SystemConfig

__all__ = ["Link", "Collective", "ring_allreduce_seconds",
           "direct_allreduce_seconds", "tree_allreduce_seconds", "ring_allgather_seconds",
           "direct_alltoall_seconds", "pairwise_alltoall_seconds", "p2p_seconds",
           "socket_link", "network_link", "allreduce", "allgather", "alltoall", "p2p"]

Algorithm = Literal["auto", "ring"]


@dataclass(frozen=True)
class Link:
    """One direction of a link: bandwidth (bytes/s) and one-way latency (s)."""

    bandwidth_bytes_per_s: float
    latency_s: float


@dataclass(frozen=True)
class Collective:
    """A timed collective: what, over how many sockets, how many bytes, how, how long."""

    op: str
    sockets: int
    nbytes: int
    algorithm: str
    seconds: float


def _check(nbytes: int, p: int) -> None:
    if p < 1:
        raise ConfigError(f"a collective needs >= 1 socket (got {p})")
    if nbytes < 0:
        raise ConfigError(f"a collective moves >= 0 bytes (got {nbytes})")


def ring_allreduce_seconds(nbytes: int, p: int, link: Link) -> float:
    """Ring all-reduce: ``2 (p-1)/p n/bw + 2 (p-1) a`` (0 for one socket)."""
    _check(nbytes, p)
    if p == 1:
        return 0.0
    return 2 * (p - 1) / p * nbytes / link.bandwidth_bytes_per_s + 2 * (p - 1) * link.latency_s


def direct_allreduce_seconds(nbytes: int, p: int, link: Link) -> float:
    """Direct all-reduce on a fully connected group: ``2 n/(p bw) + 2 a``."""
    _check(nbytes, p)
    if p == 1:
        return 0.0
    return 2 * nbytes / (p * link.bandwidth_bytes_per_s) + 2 * link.latency_s


def tree_allreduce_seconds(nbytes: int, p: int, link: Link) -> float:
    """Recursive halving/doubling: ``2 (p-1)/p n/bw + 2 ceil(log2 p) a``."""
    _check(nbytes, p)
    if p == 1:
        return 0.0
    steps = math.ceil(math.log2(p))
    return 2 * (p - 1) / p * nbytes / link.bandwidth_bytes_per_s + 2 * steps * link.latency_s


def ring_allgather_seconds(nbytes: int, p: int, link: Link) -> float:
    """Ring all-gather (or reduce-scatter) of ``n`` bytes in all: ``(p-1)/p n/bw + (p-1) a``."""
    _check(nbytes, p)
    if p == 1:
        return 0.0
    return (p - 1) / p * nbytes / link.bandwidth_bytes_per_s + (p - 1) * link.latency_s


def direct_alltoall_seconds(nbytes: int, p: int, link: Link) -> float:
    """All-to-all of ``n`` bytes per socket on a fully connected group: ``n/(p bw) + a``."""
    _check(nbytes, p)
    if p == 1:
        return 0.0
    return nbytes / (p * link.bandwidth_bytes_per_s) + link.latency_s


def pairwise_alltoall_seconds(nbytes: int, p: int, link: Link) -> float:
    """All-to-all of ``n`` bytes per socket through one port: ``(p-1)/p n/bw + (p-1) a``."""
    return ring_allgather_seconds(nbytes, p, link)


def p2p_seconds(nbytes: int, link: Link) -> float:
    """One message: ``n/bw + a``."""
    _check(nbytes, 1)
    return nbytes / link.bandwidth_bytes_per_s + link.latency_s


def socket_link(system: SystemConfig) -> Link:
    """A socket-to-socket link of ``system``."""
    return Link(system.socket_link_bandwidth_bytes_per_s, system.socket_link_latency_s)


def network_link(system: SystemConfig) -> Link:
    """A socket's path to another node when all sockets of its node send at once (its share of
    the node's NICs)."""
    return Link(system.socket_network_bandwidth_bytes_per_s, system.node_link_latency_s)


def _fits(system: SystemConfig, p: int) -> tuple[int, int]:
    """``(sockets per node used, nodes)`` of a group of ``p`` sockets packed into nodes."""
    s = system.sockets_per_node
    if p > system.sockets:
        raise ConfigError(f"a group of {p} sockets does not fit system {system.name!r} "
                          f"({system.sockets} sockets)")
    if p <= s:
        return p, 1
    if p % s:
        raise ConfigError(f"a group of {p} sockets spanning nodes must fill whole nodes of "
                          f"{s} sockets (system {system.name!r})")
    return s, p // s


def _best(candidates: dict[str, float]) -> tuple[str, float]:
    name = min(candidates, key=lambda k: (candidates[k], k))
    return name, candidates[name]


def allreduce(system: SystemConfig, nbytes: int, sockets: int,
              algorithm: Algorithm = "auto") -> Collective:
    """All-reduce of ``nbytes`` on each of ``sockets`` sockets (packed into whole nodes).

    ``algorithm``: ``"auto"`` takes the fastest closed form at each level (inside a node: ring
    or direct; between nodes: ring or tree); ``"ring"`` uses rings at every level.
    """
    _check(nbytes, sockets)
    if algorithm not in ("auto", "ring"):
        raise ConfigError(f"all-reduce algorithm must be 'auto' or 'ring' (got {algorithm!r})")
    if sockets == 1:
        return Collective("all-reduce", 1, nbytes, "none", 0.0)
    s, nodes = _fits(system, sockets)
    near, far = socket_link(system), network_link(system)
    intra = {"ring": ring_allreduce_seconds(nbytes, s, near)}
    if algorithm == "auto" and system.socket_topology == "fully_connected":
        intra["direct"] = direct_allreduce_seconds(nbytes, s, near)
    name_in, t_in = _best(intra)
    if nodes == 1:
        return Collective("all-reduce", sockets, nbytes, name_in, t_in)
    shard = math.ceil(nbytes / s)
    inter = {"ring": ring_allreduce_seconds(shard, nodes, far)}
    if algorithm == "auto":
        inter["tree"] = tree_allreduce_seconds(shard, nodes, far)
    name_out, t_out = _best(inter)
    if s == 1:
        return Collective("all-reduce", sockets, nbytes, f"{name_out} between {nodes} nodes",
                          t_out)
    label = (f"hierarchical: {name_in} reduce-scatter in node, {name_out} all-reduce between "
             f"{nodes} nodes, {name_in} all-gather in node")
    return Collective("all-reduce", sockets, nbytes, label, t_in + t_out)


def allgather(system: SystemConfig, nbytes: int, sockets: int) -> Collective:
    """Ring all-gather of ``nbytes`` in all over ``sockets`` sockets (one node) or, over whole
    nodes, inside each node then between nodes (ring)."""
    _check(nbytes, sockets)
    if sockets == 1:
        return Collective("all-gather", 1, nbytes, "none", 0.0)
    s, nodes = _fits(system, sockets)
    t = ring_allgather_seconds(math.ceil(nbytes / nodes), s, socket_link(system)) if s > 1 else 0
    if nodes > 1:
        t += ring_allgather_seconds(nbytes, nodes, network_link(system))
    return Collective("all-gather", sockets, nbytes, "ring", t)


def alltoall(system: SystemConfig, nbytes: int, sockets: int) -> Collective:
    """All-to-all of ``nbytes`` per socket (``nbytes / sockets`` to each socket).

    Inside one fully connected node: direct, ``n/(p bw) + a``. Over ``N`` whole nodes of ``s``
    sockets: the ``(s-1)/p n`` bytes for the node's own sockets go over the socket links at once
    (``(s-1)/p n/bw + a``) while the ``(p-s)/p n`` bytes for other nodes go through the socket's
    share of the NICs, one round per remote node (``(p-s)/p n/bw_net + (N-1) a_net``); the slower
    of the two bounds the exchange."""
    _check(nbytes, sockets)
    if sockets == 1:
        return Collective("all-to-all", 1, nbytes, "none", 0.0)
    s, nodes = _fits(system, sockets)
    if nodes == 1:
        return Collective("all-to-all", sockets, nbytes, "direct",
                          direct_alltoall_seconds(nbytes, s, socket_link(system)))
    near, far = socket_link(system), network_link(system)
    local = (s - 1) * nbytes / sockets / near.bandwidth_bytes_per_s + near.latency_s
    remote = (sockets - s) * nbytes / sockets / far.bandwidth_bytes_per_s \
        + (nodes - 1) * far.latency_s
    return Collective("all-to-all", sockets, nbytes, "direct in node, pairwise between nodes",
                      max(local, remote))


def p2p(system: SystemConfig, nbytes: int, same_node: bool) -> Collective:
    """A point-to-point message between two sockets (socket link, or network)."""
    link = socket_link(system) if same_node else network_link(system)
    return Collective("p2p", 2, nbytes, "socket link" if same_node else "network",
                      p2p_seconds(nbytes, link))
