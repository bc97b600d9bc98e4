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
in the order they are produced, so early ones win (first fit). A kept activation is written into
its home L2 slices and read from them (:func:`prodigy_sim.timing.simulate`'s ``resident``),
never from DDR; the others go through DDR as before. The plan is computed once per lowering, from
the programs' layouts; it does not depend on timing.

The model's input to its first layer (the embedding lookup, not lowered) counts as produced by the
stage's last layer kernels, as in every later layer (steady state).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from prodigy_sim.hardware import ChipConfig
from prodigy_sim.isa import validate
from prodigy_sim.timing import default_l3_bytes, isa_params

__all__ = ["Dataflow", "Residency", "RESIDENT_SHARE", "fits_share", "plan_residency"]

RESIDENT_SHARE = 0.5
"""Share of a kernel's on-chip memory beside the scratchpads (the shared L3) that activations kept
on chip between kernels may take (assumption)."""


def fits_share(kept_bytes: float, l3_bytes: float) -> bool:
    """Whether ``kept_bytes`` of activations kept on chip fit their share
    (:data:`RESIDENT_SHARE`) of a kernel's ``l3_bytes`` of on-chip memory beside its
    scratchpads: the plan's rule, which a kernel's mapping must leave room for."""
    return kept_bytes <= RESIDENT_SHARE * l3_bytes


@dataclass(frozen=True)
class Dataflow:
    """The activations a kernel reads and writes (program tensor name, activation key)."""

    reads: tuple[tuple[str, str], ...] = ()
    writes: tuple[tuple[str, str], ...] = ()
    scratch: tuple[str, ...] = ()


@dataclass(frozen=True)
class Residency:
    """One kernel's part of the plan: its tensors that live on chip, and the bytes the other
    kept activations hold meanwhile (taken from its L3)."""

    resident: frozenset[str] = frozenset()
    held_bytes: int = 0

    def onchip_bytes(self, tensor_bytes: dict[str, int]) -> int:
        """Bytes of the kernel's on-chip memory beside the scratchpads that kept activations
        take during it (its resident tensors, of sizes ``tensor_bytes``, and ``held_bytes``):
        the shared L3 has that much less."""
        return sum(tensor_bytes[t] for t in self.resident) + self.held_bytes


def plan_residency(stages: Sequence[tuple[Sequence, int]], config: ChipConfig, cores: int
                   ) -> list[list[Residency]]:
    """The residency of every op of ``stages`` (``(ops, repeat)`` per stage; each op has
    ``kernel`` and ``flow``), as a list per stage. See the module docstring."""
    pos = [(s, i) for s, (ops, _) in enumerate(stages) for i in range(len(ops))]
    index = {p: n for n, p in enumerate(pos)}
    params = isa_params(config)
    sizes: list[dict[str, int]] = []
    l3: list[int] = []              # each kernel's on-chip memory beside its scratchpads
    for s, i in pos:
        kern = stages[s][0][i].kernel
        lay = validate(kern.program, params)
        sizes.append({t: pl.nbytes for t, pl in lay.tensors.items()})
        l3.append(default_l3_bytes(config, cores, lay))
    load = [0] * len(pos)
    kept: dict[tuple[int, str], bool] = {}          # (producer position, key) -> kept
    key_size: dict[tuple[int, str], int] = {}

    def flow(n: int) -> Dataflow:
        s, i = pos[n]
        return stages[s][0][i].flow or Dataflow()

    def producer(n: int, key: str) -> int | None:
        """Position of the op whose write of ``key`` a read at position ``n`` sees."""
        s, i = pos[n]
        ops, repeat = stages[s]
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

    def span(p: int, c: int) -> list[int]:
        """Positions from producer ``p`` to consumer ``c`` (wrapping within a stage)."""
        if c > p:
            return list(range(p, c + 1))
        s = pos[p][0]
        first = index[(s, 0)]
        last = index[(s, len(stages[s][0]) - 1)]
        return list(range(p, last + 1)) + list(range(first, c + 1))

    reads_of: dict[tuple[int, str], list[int]] = {}
    for n in range(len(pos)):
        for _, key in flow(n).reads:
            p = producer(n, key)
            if p is not None:
                reads_of.setdefault((p, key), []).append(n)
    for n in range(len(pos)):                        # first fit, in production order
        for name, key in flow(n).writes:
            readers = reads_of.get((n, key), [])
            if not readers or (n, key) in kept:
                continue
            live = sorted({q for c in readers for q in span(n, c)})
            size = max([sizes[n][name]] + [sizes[c][t] for c in readers
                                            for t, k in flow(c).reads if k == key])
            ok = all(fits_share(load[q] + size, l3[q]) for q in live)
            kept[(n, key)] = ok
            key_size[(n, key)] = size
            if ok:
                for q in live:
                    load[q] += size
    out: list[list[Residency]] = [[] for _ in stages]
    for n, (s, _) in enumerate(pos):
        f = flow(n)
        names = {t for t, k in f.writes if kept.get((n, k))}
        touched = {(n, k) for t, k in f.writes if kept.get((n, k))}
        for t, k in f.reads:
            p = producer(n, k)
            if p is not None and kept.get((p, k)):
                names.add(t)
                touched.add((p, k))
        held = load[n] - sum(key_size[pk] for pk in touched)
        scratch = sum(sizes[n][t] for t in f.scratch)
        if f.scratch and fits_share(load[n] + scratch, l3[n]):
            names |= set(f.scratch)
        out[s].append(Residency(frozenset(names), held))
    return out
