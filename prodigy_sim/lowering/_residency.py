"""Which activations stay in the on-chip memory between kernels (the residency plan).

Every kernel of a lowered model declares its dataflow (:class:`Dataflow`): which of its DDR
tensors hold which activation of the model (``reads`` and ``writes``, program tensor ->
activation key, e.g. ``("X", "hn")``) and which it writes and reads back itself (``scratch``,
e.g. flash-decoding partials). Weights, constants and the persistent KV cache of a decoder are not
listed: they live in DDR.

An activation written by one kernel and read by later ones (in the same layer, or in the next
layer: a stage's layers run one after another, so the layer's first kernels read what its last
ones wrote) is *kept* on chip when, over every kernel from its producer to its last consumer, the
kept activations fit :data:`RESIDENT_SHARE` of that kernel's on-chip memory beside the
scratchpads (the rest stays the shared L3 of the kernel's own traffic). Activations are considered
in the order they are produced, so early ones win (first fit), unless the caller names some to
consider first (``prefer``: the lowering's trials put the activation on trial first, then the
ones the plan they start from keeps). A kept activation is written into
its home L2 slices and read from them (:func:`prodigy_sim.timing.simulate`'s ``resident``),
never from DDR; the others go through DDR as before. The plan is computed once per lowering, from
the programs' layouts; it does not depend on timing.

A position may be given another share (``shares``): the lowering lets the linear ops it maps
on multicast grids for the plan, with their input kept on chip, give kept activations all of
their on-chip memory (share 1; ``lower_model``'s ``_keep_beyond_share``), since such a kernel
needs no L3 for its own sharing, and the kernels whose units read their own rows (norms, RoPE)
all but what their other inputs need (:func:`private_rows_share`).

A kernel that writes an output in place of an input (``Dataflow.in_place``, from
``Kernel.in_place``: a linear layer's residual ``R`` and output ``Y``) lets the two activations
share one buffer where its read is the input's last (:meth:`_Flows.last_read`) and they have the
same size: the second of them to be kept takes no bytes at that kernel, and the kernel's
:class:`Residency` names the output ``aliased`` (the timing engine counts its bytes once). The
residual stream of a pre-norm decoder is then one buffer from layer to layer.

The model's input to its first layer (the embedding lookup, not lowered) counts as produced by the
stage's last layer kernels, as in every later layer (steady state).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from prodigy_sim.hardware import ChipConfig
from prodigy_sim.isa import validate
from prodigy_sim.lowering._common import Kernel
from prodigy_sim.timing import default_l3_bytes, isa_params

__all__ = ["Dataflow", "Residency", "RESIDENT_SHARE", "fits_share", "plan_residency",
           "live_positions", "Position", "private_rows_share"]

RESIDENT_SHARE = 0.5
"""Share of a kernel's on-chip memory beside the scratchpads (the shared L3) that activations kept
on chip between kernels may take (assumption)."""


def fits_share(kept_bytes: float, l3_bytes: float, share: float = RESIDENT_SHARE) -> bool:
    """Whether ``kept_bytes`` of activations kept on chip fit their ``share`` (by default
    :data:`RESIDENT_SHARE`) of a kernel's ``l3_bytes`` of on-chip memory beside its
    scratchpads: the plan's rule, which a kernel's mapping must leave room for."""
    return kept_bytes <= share * l3_bytes


@dataclass(frozen=True)
class Dataflow:
    """The activations a kernel reads and writes (program tensor name, activation key)."""

    reads: tuple[tuple[str, str], ...] = ()
    writes: tuple[tuple[str, str], ...] = ()
    scratch: tuple[str, ...] = ()
    in_place: tuple[tuple[str, str], ...] = ()
    """``(read tensor, written tensor)`` pairs that may share one buffer (the kernel's
    ``Kernel.in_place`` pairs whose tensors both hold activations)."""


@dataclass(frozen=True)
class Residency:
    """One kernel's part of the plan: its tensors that live on chip, and the bytes the other
    kept activations hold meanwhile (taken from its L3)."""

    resident: frozenset[str] = frozenset()
    held_bytes: int = 0
    share: float = RESIDENT_SHARE
    """The share of the kernel's on-chip memory beside its scratchpads the kept activations
    may take (1 where its mapping was chosen knowing them: see ``lower_model``)."""
    aliased: frozenset[str] = frozenset()
    """Resident tensors written in place of another resident tensor (an ``in_place`` pair of
    the kernel's dataflow): they take no on-chip bytes of their own."""

    def onchip_bytes(self, tensor_bytes: dict[str, int]) -> int:
        """Bytes of the kernel's on-chip memory beside the scratchpads that kept activations
        take during it (its resident tensors but the aliased ones, of sizes ``tensor_bytes``,
        and ``held_bytes``): the shared L3 has that much less."""
        return sum(tensor_bytes[t] for t in self.resident - self.aliased) + self.held_bytes


Position = tuple[int, int]
"""An op's place in the stages: (stage, op)."""

_LOADS = ("DMA.LD", "DMA.LDM")


def private_rows_share(kernel: Kernel, config: ChipConfig, cores: int) -> float:
    """The share of its on-chip memory beside the scratchpads that a kernel whose units read
    their own rows of some inputs (``kernel.private_rows``: no L3 sharing of them) can give
    kept activations: all of it less the bytes of the other tensors it loads (the ones its
    cores share, e.g. a norm's gains, attention's K and V), never less than
    :data:`RESIDENT_SHARE`. Other kernels: :data:`RESIDENT_SHARE`."""
    if not kernel.private_rows:
        return RESIDENT_SHARE
    lay = validate(kernel.program, isa_params(config))
    loaded = {ins.name(1) for ins in kernel.program.instructions if ins.opcode in _LOADS}
    others = sum(lay.tensors[t].nbytes for t in loaded - set(kernel.private_rows))
    l3 = default_l3_bytes(config, cores, lay)
    return max(RESIDENT_SHARE, 1 - others / l3) if l3 else RESIDENT_SHARE


class _Flows:
    """The activations of ``stages`` (``(ops, repeat)`` per stage; each op has ``kernel`` and
    ``flow``): who writes each, who reads it, and the ops it lives across."""

    def __init__(self, stages: Sequence[tuple[Sequence, int]]) -> None:
        self.stages = stages
        self.pos = [(s, i) for s, (ops, _) in enumerate(stages) for i in range(len(ops))]
        self.index = {p: n for n, p in enumerate(self.pos)}
        self.reads_of: dict[tuple[int, str], list[int]] = {}
        for n in range(len(self.pos)):
            for _, key in self.flow(n).reads:
                p = self.producer(n, key)
                if p is not None:
                    self.reads_of.setdefault((p, key), []).append(n)

    def flow(self, n: int) -> Dataflow:
        s, i = self.pos[n]
        return self.stages[s][0][i].flow or Dataflow()

    def producer(self, n: int, key: str) -> int | None:
        """Position of the op whose write of ``key`` a read at position ``n`` sees."""
        s, i = self.pos[n]
        ops, repeat = self.stages[s]
        index, flow = self.index, self.flow
        for j in range(i - 1, -1, -1):
            if any(k == key for _, k in flow(index[(s, j)]).writes):
                return index[(s, j)]
        if repeat > 1:                               # the previous layer of the same stage
            for j in range(len(ops) - 1, i - 1, -1):
                if any(k == key for _, k in flow(index[(s, j)]).writes):
                    return index[(s, j)]
        for m in range(index[(s, 0)] - 1, -1, -1):   # an earlier stage
            if any(k == key for _, k in flow(m).writes):
                return m
        if repeat == 1:                              # a single layer fed by its own last ops
            for j in range(len(ops) - 1, i - 1, -1):
                if any(k == key for _, k in flow(index[(s, j)]).writes):
                    return index[(s, j)]
        return None

    def span(self, p: int, c: int) -> list[int]:
        """Positions from producer ``p`` to consumer ``c`` (wrapping within a stage)."""
        if c > p:
            return list(range(p, c + 1))
        s = self.pos[p][0]
        first = self.index[(s, 0)]
        last = self.index[(s, len(self.stages[s][0]) - 1)]
        return list(range(p, last + 1)) + list(range(first, c + 1))

    def last_read(self, p: int, key: str, c: int) -> bool:
        """Whether the read of ``key`` (written at ``p``) at ``c`` is the last of what ``p``
        wrote, so that ``c`` may overwrite it: ``p`` and ``c`` in one stage, and every other
        reader of it in that stage before ``c`` (from ``p``, wrapping to the next layer); a
        reader in a later stage sees the stage's last layer's write, which ``c`` overwrites
        only if it reads it in the same layer (``c`` after ``p``)."""
        if self.pos[p][0] != self.pos[c][0]:
            return False
        own = len(self.span(p, c))
        for r in self.reads_of.get((p, key), []):
            if r == c:
                continue
            if self.pos[r][0] == self.pos[c][0]:
                if len(self.span(p, r)) >= own:
                    return False
            elif c > p:
                return False
        return True

    def in_place(self, asize: Mapping[tuple[int, str], int]
                 ) -> dict[tuple[int, str], dict[int, tuple[int, str]]]:
        """The activations that may share a buffer, as ``{activation: {position: partner}}``
        (activations as ``(producer position, key)``, sizes ``asize``): at a position whose
        kernel writes an output in place of an input (``Dataflow.in_place``) that is the
        last read of an activation of the same size."""
        out: dict[tuple[int, str], dict[int, tuple[int, str]]] = {}
        for c in range(len(self.pos)):
            f = self.flow(c)
            reads, writes = dict(f.reads), dict(f.writes)
            for rt, wt in f.in_place:
                p = self.producer(c, reads[rt])
                if p is None:
                    continue
                a, b = (p, reads[rt]), (c, writes[wt])
                if (a not in asize or b not in asize or asize[a] != asize[b]
                        or not self.last_read(p, reads[rt], c)):
                    continue
                out.setdefault(a, {})[c] = b
                out.setdefault(b, {})[c] = a
        return out

    def activations(self) -> list[tuple[int, str, str, list[int]]]:
        """Every activation written by one op and read by others, in production order, as
        ``(producer position, key, producer's tensor, positions it lives across)``."""
        out = []
        seen = set()
        for n in range(len(self.pos)):
            for name, key in self.flow(n).writes:
                readers = self.reads_of.get((n, key), [])
                if readers and (n, key) not in seen:
                    seen.add((n, key))
                    live = sorted({q for c in readers for q in self.span(n, c)})
                    out.append((n, key, name, live))
        return out


def live_positions(stages: Sequence[tuple[Sequence, int]]) -> dict[tuple[Position, str],
                                                                    list[Position]]:
    """The ops (``(stage, op)`` positions) each activation of ``stages`` lives across, from
    its producer to its last reader, keyed by ``(producer position, activation key)``, in
    production order."""
    g = _Flows(stages)
    return {(g.pos[n], key): [g.pos[q] for q in live] for n, key, _, live in g.activations()}


def plan_residency(stages: Sequence[tuple[Sequence, int]], config: ChipConfig, cores: int,
                   shares: Mapping[Position, float] | None = None,
                   l3_bytes: Mapping[Position, int] | None = None,
                   prefer: Sequence[tuple[Position, str]] = ()) -> list[list[Residency]]:
    """The residency of every op of ``stages`` (``(ops, repeat)`` per stage; each op has
    ``kernel`` and ``flow``), as a list per stage. See the module docstring. ``shares``: the
    share of their on-chip memory beside the scratchpads that kept activations may take at
    these ``(stage, op)`` positions instead of :data:`RESIDENT_SHARE`; ``l3_bytes``: that
    memory at these positions instead of their kernels' own (what a kernel about to be mapped
    again could leave); ``prefer``: activations (``(producer position, key)``) the first fit
    considers first, in this order, before the others in production order."""
    g = _Flows(stages)
    pos = g.pos
    params = isa_params(config)
    shares = shares or {}
    sizes: list[dict[str, int]] = []
    room: list[float] = []          # bytes kept activations may take during each kernel
    for s, i in pos:
        kern = stages[s][0][i].kernel
        lay = validate(kern.program, params)
        sizes.append({t: pl.nbytes for t, pl in lay.tensors.items()})
        l3 = (l3_bytes or {}).get((s, i))
        room.append(shares.get((s, i), RESIDENT_SHARE)
                    * (default_l3_bytes(config, cores, lay) if l3 is None else l3))
    acts = g.activations()
    rank = {(g.index[at], key): r for r, (at, key) in enumerate(prefer) if at in g.index}
    acts.sort(key=lambda a: rank.get((a[0], a[1]), len(rank)))     # stable: production order
    key_size = {(n, key): max([sizes[n][name]] + [sizes[c][t] for c in g.reads_of[(n, key)]
                                                   for t, k in g.flow(c).reads if k == key])
                for n, key, name, _ in acts}
    partners = g.in_place(key_size)
    load = [0] * len(pos)
    kept: dict[tuple[int, str], bool] = {}          # (producer position, key) -> kept
    charged: dict[tuple[tuple[int, str], int], int] = {}    # (activation, position) -> bytes
    for n, key, _, live in acts:                    # first fit, the preferred ones first
        act = (n, key)
        mates = partners.get(act, {})
        charge = {q: 0 if q in mates and kept.get(mates[q]) else key_size[act] for q in live}
        ok = all(load[q] + charge[q] <= room[q] for q in live)
        kept[act] = ok
        if ok:
            for q in live:
                load[q] += charge[q]
                charged[(act, q)] = charge[q]
    out: list[list[Residency]] = [[] for _ in stages]
    for n, (s, i) in enumerate(pos):
        f = g.flow(n)
        names = {t for t, k in f.writes if kept.get((n, k))}
        touched = {(n, k) for t, k in f.writes if kept.get((n, k))}
        for t, k in f.reads:
            p = g.producer(n, k)
            if p is not None and kept.get((p, k)):
                names.add(t)
                touched.add((p, k))
        held = load[n] - sum(charged[(pk, n)] for pk in touched)
        writes = dict(f.writes)
        mate_of = {wt: partners.get((n, writes[wt]), {}).get(n) for _, wt in f.in_place}
        aliased = frozenset(    # both kept: the second of them took no bytes here
            wt for wt, mate in mate_of.items()
            if mate is not None and kept.get((n, writes[wt])) and kept.get(mate))
        scratch = sum(sizes[n][t] for t in f.scratch)
        if f.scratch and load[n] + scratch <= room[n]:
            names |= set(f.scratch)
        out[s].append(Residency(frozenset(names), held, shares.get((s, i), RESIDENT_SHARE),
                                aliased))
    return out
