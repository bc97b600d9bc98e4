"""Models split over several sockets: tensor, pipeline and expert parallelism and their
collectives, timed on a :class:`~prodigy_sim.hardware.SystemConfig`.

- :func:`shard_card`, :func:`stage_layers`: what one socket holds.
- Collectives by their closed forms: :func:`allreduce` (ring, direct, tree, hierarchical),
  :func:`allgather`, :func:`alltoall`, :func:`p2p`, and the per-algorithm formulas.
- :func:`simulate_parallel`: one decode step or prefill of a scenario under a
  :class:`ParallelPlan` -> :class:`ParallelReport` (per-socket compute from a simulation of the
  sharded model, collectives, step time, footprint per socket). The per-socket timer is
  injectable (:data:`SocketTimer`).
- :func:`brain_scale`, :func:`scaled_card`: the 256 PB / 100-quadrillion-parameter claim as a
  system.

See ``docs/systems.md``.
"""

from prodigy_sim.parallel._claim import BRAIN_BYTES as BRAIN_BYTES
from prodigy_sim.parallel._claim import BRAIN_PARAMETERS as BRAIN_PARAMETERS
from prodigy_sim.parallel._claim import BrainScaleCase as BrainScaleCase
from prodigy_sim.parallel._claim import brain_scale as brain_scale
from prodigy_sim.parallel._claim import scaled_card as scaled_card
from prodigy_sim.parallel._collectives import Collective as Collective
from prodigy_sim.parallel._collectives import Link as Link
from prodigy_sim.parallel._collectives import allgather as allgather
from prodigy_sim.parallel._collectives import allreduce as allreduce
from prodigy_sim.parallel._collectives import alltoall as alltoall
from prodigy_sim.parallel._collectives import direct_allreduce_seconds as direct_allreduce_seconds
from prodigy_sim.parallel._collectives import direct_alltoall_seconds as direct_alltoall_seconds
from prodigy_sim.parallel._collectives import network_link as network_link
from prodigy_sim.parallel._collectives import p2p as p2p
from prodigy_sim.parallel._collectives import p2p_seconds as p2p_seconds
from prodigy_sim.parallel._collectives import (
    pairwise_alltoall_seconds as pairwise_alltoall_seconds,
)
from prodigy_sim.parallel._collectives import ring_allgather_seconds as ring_allgather_seconds
from prodigy_sim.parallel._collectives import ring_allreduce_seconds as ring_allreduce_seconds
from prodigy_sim.parallel._collectives import socket_link as socket_link
from prodigy_sim.parallel._collectives import tree_allreduce_seconds as tree_allreduce_seconds
from prodigy_sim.parallel._plan import COLLECTIVE_BYTES_PER_ELEMENT as COLLECTIVE_BYTES_PER_ELEMENT
from prodigy_sim.parallel._plan import ParallelPlan as ParallelPlan
from prodigy_sim.parallel._plan import ParallelReport as ParallelReport
from prodigy_sim.parallel._plan import SocketTimer as SocketTimer
from prodigy_sim.parallel._plan import SocketTimes as SocketTimes
from prodigy_sim.parallel._plan import StageFootprint as StageFootprint
from prodigy_sim.parallel._plan import parse_plan as parse_plan
from prodigy_sim.parallel._plan import simulate_parallel as simulate_parallel
from prodigy_sim.parallel._plan import simulated_socket_times as simulated_socket_times
from prodigy_sim.parallel._plan import socket_footprint as socket_footprint
from prodigy_sim.parallel._shard import shard_card as shard_card
from prodigy_sim.parallel._shard import stage_layers as stage_layers

__all__ = [
    "BRAIN_BYTES", "BRAIN_PARAMETERS", "BrainScaleCase", "brain_scale", "scaled_card",
    "COLLECTIVE_BYTES_PER_ELEMENT", "Collective", "Link", "ParallelPlan", "ParallelReport",
    "SocketTimer", "SocketTimes", "StageFootprint", "allgather", "allreduce", "alltoall",
    "direct_allreduce_seconds", "direct_alltoall_seconds", "network_link", "p2p", "p2p_seconds",
    "pairwise_alltoall_seconds", "parse_plan", "ring_allgather_seconds",
    "ring_allreduce_seconds", "shard_card", "simulate_parallel", "simulated_socket_times",
    "socket_footprint", "socket_link", "stage_layers", "tree_allreduce_seconds",
]
