"""The mapper: where and how a linear layer runs on the chip (a :class:`LinearMapping`).

It enumerates candidate mappings - accumulator tile shapes and counts, K tile, core grid, block
order, multicast or not - and ranks them with closed-form costs from the chip configuration (cycles
of the core clock), then returns the cheapest (costs within :data:`TIE`, 0.5%, of it are ties,
broken by the preferences of :func:`map_linear`: more cores, then the lighter port term).
Deterministic; cached per (shape, formats, epilogue, cores, chip, what is kept on chip). A
candidate must leave the activations kept on chip during the op (``l3_reserved``) room beside
its scratchpads. The timing model then simulates
the chosen program: the costs only rank candidates, they are never reported as results.

Costs of a candidate on ``c = gm gn`` cores, ``B`` blocks per core (``ceil(mb/gm) ceil(nb/gn)``)::

    compute  = B * sum over its MMAs of mma_cycles (the matrix unit's occupancy)
    port     = B * bytes a block brings into a core / stream
    stream   = min(port bytes/cycle, 2 * K-step bytes / (fill + K-step bytes / port))
    ddr      = sum over X, W, Y of distinct bytes / (peak DDR bytes/cycle * eff(run))
    drain    = min(one K step's loads / stream, one K step's MMAs)
    time     = max(compute, port, ddr) + B * fill + drain

``eff(run) = DDR_EFFICIENCY * run / (run + RUN_HALF_BYTES)``: DDR5 serves long contiguous runs near
its peak and short strided ones far below it (row activations per line; see docs/dram.md); ``run``
is a tile's contiguous bytes - the whole tile when it spans the rows' full length or is a weight
tile the lowering pre-packs (K cut in whole steps: one ``(nt, kt)`` tile is one DDR run), else one
row of it; the output's run is one accumulator tile row (``nt`` wide), or the whole tile when it
spans all ``n`` columns. X and Y that the residency plan keeps on chip (``resident``) cost no DDR
bytes (they still cross the core's port). The second term of ``port`` is the double-buffered stream
of one core: two K steps in flight, each waiting a DDR round trip; ``drain`` is what the double
buffering cannot overlap at the ends of a core's stream (its first step's loads, its last step's
MMAs).

``fill`` is the latency the first K tile of every block waits (a DDR round trip). The kernels
now load a block's first K step during the previous block's last, so the term is a per-block
overhead rather than a measured wait: one ``fill`` per core instead of per block made the chosen
mappings simulate slower (BERT-base b8 s128 0.1217 -> 0.1311 ms; docs/lowering.md).
Distinct DDR bytes: the output once, and X and W each as often as they are fetched again after
leaving the on-chip memory. A row of X blocks in use while the column blocks stream (order
``mn``) is fetched once if the X rows of all grid rows fit the shared L3 (the idle L2), else
once per column block a core visits; all of W is fetched once if it fits the L3, else once per
row wave (and symmetrically for ``nm``). Cores that read the same tile at the same time share
one DDR read: through a multicast (``DMA.LDM``), or through the L3 when it is on.

The costs see the same bytes and MACs for a multicast and its L3 twin, so the choice between
them is a rule (:func:`prefers_multicast`), from the simulations of docs/lowering.md (*How well
the costs rank mappings*): **multicast when every core of the grid computes a single block**,
the L3 otherwise. A multicast starts when the last member of its group has issued, which ties
every member's progress to the slowest of its group at every K step; members that start
together on their only block stay in step, and the multicast saves the L3's store and forward
(BERT-base b8 s128: 17-25% faster). Over many blocks per core the members drift apart and
every step waits for the slowest (the 8192^3 GEMM's blocks: 395 us through the L3, 537-844 us
multicast). For the same reason a multicast grid whose cores compute more than one block is a
candidate only with groups no longer than a line of the mesh (``max(noc.shape)``); the plan of
kept activations maps some linear ops among multicast grids only (``multicast_only``), where
wider groups simulated up to 3.5x slower (docs/lowering.md, *Multicast groups within a mesh
line*).

A K step's loads are one DMA per X tile and per W tile of the block; the costs stream two K
steps at a time (double buffers), or fewer when a step's DMAs fill the core's
``DEFAULT_DMA_OUTSTANDING`` slots.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator

from prodigy_sim.errors import ConfigError
from prodigy_sim.functional.spec import CHUNK
from prodigy_sim.hardware import ChipConfig
from prodigy_sim.lowering._common import ACT, BF16, Budgets
from prodigy_sim.lowering._linear import (
    LinearMapping,
    linear_tile_bytes,
    packed_weight_tile,
    tile_shape,
)
from prodigy_sim.numerics import RowBytes, Storage
from prodigy_sim.timing import DEFAULT_DMA_OUTSTANDING, mma_cycles

__all__ = ["map_linear", "scored_candidates", "beside_scratchpads", "most_room",
           "preference_order", "prefers_multicast", "linear_cost", "linear_terms", "TIE",
           "ddr_efficiency", "DDR_EFFICIENCY", "FILL_CYCLES", "RUN_HALF_BYTES"]

DDR_EFFICIENCY = 0.9
"""Fraction of the peak DDR bandwidth the costs assume long contiguous streams reach."""
RUN_HALF_BYTES = 128
"""Contiguous run length at which the costs assume half of :data:`DDR_EFFICIENCY`. Fitted to
the DDR5 model of the T16128: 128 cores reading tiles of 64 rows whose contiguous runs are
128 / 256 / 512 B reach 0.46 / 0.61 / 0.88 of the peak bandwidth, long runs 0.90
(``tests/test_lowering.py::test_mapper_ddr_efficiency_follows_the_ddr_model``); the curve
``run / (run + 128)`` gives 0.50 / 0.67 / 0.80 of :data:`DDR_EFFICIENCY` (was 1024: 0.11 /
0.20 / 0.33)."""
FILL_CYCLES = 1500
"""Core cycles a block's first K tile waits for its data (a DDR round trip, ~260 ns at
5.7 GHz) in the costs."""


TIE = 5e-3
"""Costs within this share of the cheapest count as ties, which go to more cores, the lighter
port term, larger blocks, larger K steps (:func:`map_linear`): a difference this small is below
what the costs resolve. LLaMA-3-8B prefill (b8 x 2048, MXFP8) on 32 DDR5 channels: `gate_up`'s
K steps of 128 cost 0.02% less than steps of 256-512 (a shorter last step to drain) and
simulated 2.5x slower (2694 against 1094 us), which made the whole step 12% slower on 32
channels than on 16 (0.1% then). LLaMA-2-7B decode: `qkv_proj` with 1x128 blocks on 96 cores
costs 0.12% less than 1x96 blocks on 128 and simulated at 36.6 us against 32.2 us for the
128-core mapping it keeps with 0.5% (the tie taken since the weights' DDR runs are whole packed
tiles in the costs)."""


def ddr_efficiency(run_bytes: int) -> float:
    """Share of the peak DDR bandwidth the costs assume for reads in contiguous runs of
    ``run_bytes``: ``DDR_EFFICIENCY * run / (run + RUN_HALF_BYTES)``."""
    return DDR_EFFICIENCY * run_bytes / (run_bytes + RUN_HALF_BYTES)


class _Sizes:
    """Bytes of stored tensors, each storage's row size computed once per row length (the
    mapper ranks hundreds of candidates of one shape; ``Storage.row_bytes`` costs microseconds).
    Keyed by the storage's identity, which it keeps alive: for the storages of one call."""

    def __init__(self) -> None:
        self._rows: dict[tuple[int, int], tuple[Storage, RowBytes]] = {}

    def nbytes(self, st: Storage, rows: int, cols: int) -> int:
        """``st.nbytes(rows, cols)``."""
        key = (id(st), cols)
        hit = self._rows.get(key)
        if hit is None:
            hit = self._rows[key] = (st, st.row_bytes(cols))
        return hit[1].total(rows)


def linear_cost(m: int, n: int, k: int, weight: Storage, act: Storage, epilogue: str,
                mp: LinearMapping, config: ChipConfig, l3_bytes: int,
                resident: frozenset[str] = frozenset(), sizes: _Sizes | None = None) -> float:
    """Estimated cycles of ``mp`` (see the module docstring); ``resident``: the kernel's
    tensors kept on chip (of those the costs count, ``X`` and ``Y``), which cost no DDR
    bytes. ``sizes``: a cache of tensor sizes shared by the candidates of one shape."""
    return linear_terms(m, n, k, weight, act, epilogue, mp, config, l3_bytes, resident,
                        sizes)[0]


def linear_terms(m: int, n: int, k: int, weight: Storage, act: Storage, epilogue: str,
                 mp: LinearMapping, config: ChipConfig, l3_bytes: int,
                 resident: frozenset[str] = frozenset(), sizes: _Sizes | None = None
                 ) -> tuple[float, float]:
    """``(cost, port)``: :func:`linear_cost` and its ``port`` term (cycles)."""
    nbytes = (sizes or _Sizes()).nbytes
    nw = 2 if epilogue == "gated" else 1
    mb, nb = m // mp.block_m, n // mp.block_n
    per_core = blocks_per_core(m, n, mp)
    kt = mp.kt
    nk, tail = divmod(k, kt)
    mma = nk * mma_cycles(mp.mt, mp.nt, kt, weight.fmt, config, weight.sparsity is not None)
    if tail:
        mma += mma_cycles(mp.mt, mp.nt, tail, weight.fmt, config, weight.sparsity is not None)
    compute = per_core * mp.am * mp.an * nw * mma
    a_block = nbytes(act, mp.block_m, k)
    w_block = nw * nbytes(weight, mp.block_n, k)
    port_bw = min(config.noc.link_bandwidth_bytes_per_cycle,
                  config.core.on_chip_memory.l2_bandwidth_bytes_per_cycle)
    step = (nbytes(act, mp.block_m, kt) + nw * nbytes(weight, mp.block_n, kt))
    # two K steps in flight (double buffers), or fewer when a step's DMAs (a tile each) fill
    # the core's DMA slots
    in_flight = min(2.0, DEFAULT_DMA_OUTSTANDING / (mp.am + nw * mp.an))
    stream_bw = min(port_bw, in_flight * step / (FILL_CYCLES + step / port_bw))
    port = per_core * (a_block + w_block) / stream_bw
    a_all, w_all = nbytes(act, m, k), nw * nbytes(weight, n, k)
    out_fmt = ACT if epilogue in ("quant", "bias", "gelu", "gated") else BF16
    out = nbytes(out_fmt, m, n)
    if mp.order == "mn":            # X row blocks stay in use, W column blocks stream
        a_fetch = a_all if mp.gm * a_block <= l3_bytes // 2 else a_all * math.ceil(nb / mp.gn)
        w_fetch = w_all if w_all <= l3_bytes // 2 else w_all * math.ceil(mb / mp.gm)
    else:
        w_fetch = w_all if mp.gn * w_block <= l3_bytes // 2 else w_all * math.ceil(mb / mp.gm)
        a_fetch = a_all if a_all <= l3_bytes // 2 else a_all * math.ceil(nb / mp.gn)
    if not mp.multicast and l3_bytes == 0:   # no sharing at all: every core fetches its own
        a_fetch = max(a_fetch, a_all * nb)
        w_fetch = max(w_fetch, w_all * mb)
    peak = config.peak_ddr_bandwidth_bytes_per_s / config.frequency_hz

    def eff(rows: int, st: Storage) -> float:
        return ddr_efficiency(nbytes(st, rows, k) if kt == k else nbytes(st, 1, kt))

    # the output is stored an accumulator tile at a time: runs of one tile row (nt wide), or
    # the whole tile when it spans all n columns - the K tile has nothing to do with them
    out_run = nbytes(out_fmt, mp.mt, n) if mp.nt == n else nbytes(out_fmt, 1, mp.nt)
    if "X" in resident:
        a_fetch = 0
    if "Y" in resident:
        out = 0
    packed = packed_weight_tile(mp, k)      # pre-packed weights: one run per tile
    w_eff = ddr_efficiency(nbytes(weight, *packed)) if packed else eff(mp.nt, weight)
    ddr = (a_fetch / eff(mp.mt, act) + w_fetch / w_eff
           + out / ddr_efficiency(out_run)) / peak
    # the double-buffered K steps overlap loads with MMAs, except at the ends of a core's
    # stream: its first step's loads and its last step's MMAs run alone
    step_mma = compute / (per_core * max(1, -(-k // kt)))
    drain = min(step / stream_bw, step_mma)
    return max(compute, port, ddr) + per_core * FILL_CYCLES + drain, port


def _divisors(x: int, limit: int) -> list[int]:
    return [d for d in range(1, min(x, limit) + 1) if x % d == 0]


def _kts(k: int) -> list[int]:
    out = [k]
    kt = CHUNK
    while kt < k:
        out.append(kt)
        kt *= 2
    return out


def _candidates(m: int, n: int, k: int, weight: Storage, act: Storage, epilogue: str,
                cores: int, bud: Budgets, tile_bytes: int, init: bool = False):
    nw = 2 if epilogue == "gated" else 1
    quant_out = epilogue in ("quant", "bias", "gelu", "gated")
    if m <= bud.acc_max_rows:
        mts = [(m, 1)]
    else:
        mt = bud.acc_max_rows
        if m % mt:
            raise ConfigError(f"{m} rows are not a multiple of {mt}")
        mts = [(mt, am) for am in (1, 2, 4) if m % (mt * am) == 0]
    for mt, am in mts:
        for nt in (64, 32, 16):
            if nt > bud.acc_max_cols or n % nt or (quant_out and nt % 32):
                continue
            for an in range(1, bud.n_accumulators + 1):
                if am * an * nw > bud.n_accumulators or n % (nt * an):
                    continue
                mb, nb = m // (mt * am), n // (nt * an)
                for kt in _kts(k):
                    probe = LinearMapping(mt, am, nt, an, kt, 1, 1)
                    if linear_tile_bytes(probe, k, weight, act, epilogue,
                                         init=init) > tile_bytes:
                        continue
                    for gm in _divisors(mb, cores) + [min(mb, cores)]:
                        gn_max = max(1, cores // gm)
                        for multicast in (False, True):
                            if multicast:
                                gns = [d for d in _divisors(nb, gn_max)]
                                gns = gns[-1:]
                                if mb % gm:
                                    continue
                            else:
                                gns = [min(nb, gn_max)]
                            for gn in gns:
                                if multicast and gm * gn == 1:
                                    continue
                                for order in ("mn", "nm"):
                                    yield LinearMapping(mt, am, nt, an, kt, gm, gn, order,
                                                        multicast)


def beside_scratchpads(budgets: Budgets, tile_bytes: int, config: ChipConfig) -> int:
    """Bytes of the chip's on-chip memory beside scratchpads of ``tile_bytes`` on every core
    (the shared L3 before the activations kept on chip take their part)."""
    return max(0, budgets.onchip_bytes - tile_bytes) * config.cores


@functools.lru_cache(maxsize=512)
def most_room(m: int, n: int, k: int, weight: Storage, act: Storage, epilogue: str,
              config: ChipConfig, cores: int, budgets: Budgets, init: bool = False) -> int:
    """The most on-chip memory beside its scratchpads any candidate mapping of the linear
    layer (arguments as :func:`map_linear`) leaves (:func:`beside_scratchpads`): the room a
    mapping chosen for them could give activations kept on chip."""
    shapes = {tile_shape(mp): mp for mp in _candidates(m, n, k, weight, act, epilogue, cores,
                                                       budgets, budgets.onchip_bytes, init)}
    return max((beside_scratchpads(budgets, linear_tile_bytes(mp, k, weight, act, epilogue,
                                                              init=init), config)
                for mp in shapes.values()), default=0)


def blocks_per_core(m: int, n: int, mp: LinearMapping) -> int:
    """Blocks of ``Y[m, n]`` the busiest core of ``mp``'s ``gm x gn`` grid computes:
    ``ceil(row blocks / gm) ceil(column blocks / gn)``."""
    return math.ceil(m // mp.block_m / mp.gm) * math.ceil(n // mp.block_n / mp.gn)


def prefers_multicast(m: int, n: int, mp: LinearMapping) -> bool:
    """Whether a multicast suits ``mp``'s grid (the rule of the module docstring): every core
    of the grid computes a single block (:func:`blocks_per_core`)."""
    return blocks_per_core(m, n, mp) == 1


def scored_candidates(m: int, n: int, k: int, weight: Storage, act: Storage, epilogue: str,
                      config: ChipConfig, cores: int, budgets: Budgets, l3: bool = True,
                      l3_reserved: int = 0, resident: frozenset[str] = frozenset(),
                      init: bool = False, multicast_only: bool = False
                      ) -> Iterator[tuple[tuple, float, LinearMapping]]:
    """Every candidate mapping (arguments as :func:`map_linear`) whose scratchpads leave the
    ``l3_reserved`` bytes of kept activations room (when ``l3``), with its costs (cycles) and
    the key :func:`map_linear` ranks by: ``(rounded cost, -cores, rounded port term, -block
    area, -kt, whether the candidate breaks the multicast rule)`` (:func:`prefers_multicast`;
    a multicast and its L3 twin cost the same), ties then going to the order of enumeration."""
    sizes = _Sizes()
    tile_bytes: dict[tuple, int] = {}          # what linear_tile_bytes reads of a mapping
    line = max(config.noc.shape(config.cores))
    for mp in _candidates(m, n, k, weight, act, epilogue, cores, budgets,
                          budgets.onchip_bytes, init):
        if multicast_only and not mp.multicast:
            continue
        if mp.multicast and max(mp.gm, mp.gn) > line and not prefers_multicast(m, n, mp):
            continue                # a lock-step group beyond a mesh line
        shape = tile_shape(mp)
        tiles = tile_bytes.get(shape)
        if tiles is None:
            tiles = tile_bytes[shape] = linear_tile_bytes(mp, k, weight, act, epilogue,
                                                          init=init)
        l3_bytes = (beside_scratchpads(budgets, tiles, config) - l3_reserved) if l3 else 0
        if l3_bytes < 0:
            continue                # no room left for the activations kept on chip
        cost, port = linear_terms(m, n, k, weight, act, epilogue, mp, config, l3_bytes,
                                  resident, sizes)
        yield ((round(cost), -mp.cores, round(port), -mp.block_m * mp.block_n, -mp.kt,
                mp.multicast != prefers_multicast(m, n, mp)), cost, mp)


@functools.lru_cache(maxsize=512)
def map_linear(m: int, n: int, k: int, weight: Storage, act: Storage, epilogue: str,
               config: ChipConfig, cores: int, budgets: Budgets, l3: bool = True,
               l3_reserved: int = 0, resident: frozenset[str] = frozenset(),
               init: bool = False, multicast_only: bool = False) -> LinearMapping:
    """The cheapest :class:`LinearMapping` of ``Y[m, n] = X[m, k] W[n, k]^T`` on ``cores``
    cores of ``config`` (``l3``: the shared L3 is on; ``l3_reserved``: bytes of it that
    activations kept on chip take meanwhile; ``resident``: the kernel's tensors kept on chip,
    read from and written to the L3 instead of DDR; ``init``: the accumulators start from
    float32 tensors, whose tiles take scratchpad; ``multicast_only``: multicast grids only).
    A mapping whose scratchpads leave less than ``l3_reserved`` beside them is no candidate.
    Costs within :data:`TIE` of the cheapest
    are ties, which go to more cores, then the lighter port term (the bytes the busiest core
    brings in: where DDR bounds the cost, the mapping that loads the cores' ports less), then
    larger blocks, then larger K steps, then a
    multicast where every core computes one block and the L3 elsewhere
    (:func:`prefers_multicast`), then the lower cost, then the order of enumeration
    (:func:`scored_candidates`)."""
    scored = list(scored_candidates(m, n, k, weight, act, epilogue, config, cores, budgets,
                                    l3, l3_reserved, resident, init, multicast_only))
    if not scored:
        kept = (f" and leaves {l3_reserved} bytes beside the scratchpads for the activations "
                "kept on chip" if l3 and l3_reserved else "")
        raise ConfigError(f"no {'multicast ' if multicast_only else ''}mapping of a "
                          f"{m}x{n}x{k} linear layer fits the core's {budgets.onchip_bytes} "
                          f"bytes of scratchpad{kept}")
    return preference_order(scored)[0][2]


def preference_order(scored: list[tuple[tuple, float, LinearMapping]]
                     ) -> list[tuple[tuple, float, LinearMapping]]:
    """``scored`` (:func:`scored_candidates`) in the mapper's order of preference: the
    candidates within :data:`TIE` of the cheapest cost first, by their keys without the rounded
    cost (more cores, lighter port, ...; :func:`map_linear` takes the first), then the others
    by key; equal keys keep their order of enumeration."""
    least = min(cost for _, cost, _ in scored) * (1 + TIE)

    def rank(s: tuple[tuple, float, LinearMapping]) -> tuple:
        tied = s[1] <= least
        return (not tied, s[0][1:] if tied else s[0], s[0])

    return sorted(scored, key=rank)
