"""What a PTQ scheme adds to the lowered programs, as data: online Hadamard transforms and SpQR
outliers.

:func:`extras_of` reads them off a quantized model (:class:`LoweringExtras`: per model, the
online transforms - which linears' input, size ``n = p x 2^k``, operations per row from
:meth:`~prodigy_sim.ptq.HadamardRotation.ops_per_row` - and per linear the outlier count and
value dtype); :func:`ptq_work` turns them into the lowering's
:class:`~prodigy_sim.lowering.PtqWork` (sites named by lowered op: an online transform before
``qkv_proj`` / ``up_proj`` / ``gate_up`` / ``down_proj``; per layer, the outlier products before
the op that runs the linears, ``gate_up`` with the gate's and the up weight's counts), whose
kernels the timing model simulates with the rest of the layer
(``prodigy_sim.lowering.hadamard_kernel``, ``spqr_kernel``). :func:`outlier_sites` does the
latter for the outliers themselves (the end-to-end run), :func:`fuse_outliers` stacks them as
the lowered ops' weights are (q, k, v into ``qkv_proj``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from prodigy_sim.errors import ConfigError
from prodigy_sim.lowering import OnlineSite, OutlierSite, PtqWork
from prodigy_sim.numerics import FormatSpec, QuantizedTensor
from prodigy_sim.ptq import Outliers

__all__ = ["OnlineHadamard", "LinearOutliers", "LoweringExtras", "extras_of",
           "ptq_work", "online_work", "lowered_op_of", "outlier_sites", "fuse_outliers",
           "additive_outliers", "lowered_values", "op_sites"]


@dataclass(frozen=True)
class OnlineHadamard:
    """One online transform per token in every layer: of the input of ``linears`` (names
    relative to ``layers.{i}.``, which share it), size ``n = p * m`` (``H_p (x) H_m``, ``m`` a
    power of two), with the vector work per token ``ops`` (``sign_flips``, ``add_sub``,
    ``mul_add``, ``scale_mul``)."""

    site: str
    linears: tuple[str, ...]
    n: int
    p: int
    m: int
    ops: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class LinearOutliers:
    """SpQR outliers of one linear weight ``name`` (N, K): ``count`` weights kept in
    ``values`` (float16, bfloat16 or float32)."""

    name: str
    shape: tuple[int, int]
    count: int
    values: str = "float16"


@dataclass(frozen=True)
class LoweringExtras:
    """What the lowering must add for a scheme (module docstring): ``online`` transforms (the
    same in every one of ``layers``) and ``outliers`` per linear."""

    layers: int
    online: tuple[OnlineHadamard, ...] = ()
    outliers: tuple[LinearOutliers, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.online and not self.outliers


def _online(rotations: dict) -> list[OnlineHadamard]:
    """The online transforms of layer 0 (every layer has the same) of ``rotations`` (linear name
    -> :class:`~prodigy_sim.ptq.HadamardRotation`; linears sharing an input share one)."""
    seen: dict[int, OnlineHadamard] = {}
    prefix = "layers.0."
    for name, r in rotations.items():
        if not name.startswith(prefix):
            continue
        key = id(r)
        rel = name[len(prefix):]
        if key in seen:
            o = seen[key]
            seen[key] = OnlineHadamard(f"{o.site}, {rel}", (*o.linears, rel), o.n, o.p, o.m,
                                       o.ops)
        else:
            seen[key] = OnlineHadamard(f"input of {rel}", (rel,), r.n, r.p, r.m,
                                       tuple(r.ops_per_row().items()))
    return list(seen.values())


def online_work(rotations: dict, family: str) -> PtqWork:
    """The lowering's work of a rotated model's online transforms alone (``rotations``: linear
    name -> rotation, e.g. ``QuantizedModel.online``)."""
    return ptq_work(LoweringExtras(1, tuple(_online(rotations))), family)


def lowered_values(dtype: str, fmt: FormatSpec) -> str:
    """How the lowered kernels store the outlier values of a dense part in ``fmt``: as SpQR does
    (``dtype``) when ``fmt`` has a zero (the dense value under an outlier is 0, so adding the
    outlier replaces it), else float32 differences (:func:`additive_outliers`)."""
    return dtype if fmt.zero_codes or fmt.wide else "float32"


def additive_outliers(outliers: Outliers, dense: QuantizedTensor) -> Outliers:
    """``outliers`` as terms to add to ``dense`` (the weight is ``dense + outliers``): the same
    when the format has a zero (SpQR stores the code of 0 under an outlier); else each value
    minus the dense value under it, rounded once to float32 (tai2 has no zero)."""
    if lowered_values(outliers.dtype, dense.fmt) == outliers.dtype:
        return outliers
    from prodigy_sim.functional.reference import scaled_f64

    rows, cols = outliers.rows(), outliers.cols.astype(np.int64)
    under = scaled_f64(dense)[rows, cols]
    vals = (outliers.float_values().astype(np.float64) - under).astype(np.float32)
    return Outliers(row_ptr=outliers.row_ptr, cols=outliers.cols, values=vals, dtype="float32",
                    shape=outliers.shape)


def extras_of(qmodel) -> LoweringExtras:
    """The :class:`LoweringExtras` of a :class:`~prodigy_sim.realmodels._ptq.QuantizedModel`."""
    card = qmodel.weights.card
    outliers = tuple(LinearOutliers(name, res.outliers.shape, res.outliers.count,
                                    lowered_values(res.outliers.dtype, res.quantized.fmt))
                     for name, res in qmodel.results.items() if res.outliers is not None)
    return LoweringExtras(card.num_layers, tuple(_online(qmodel.online)), outliers)


def lowered_op_of(linear: str, family: str) -> str:
    """The lowered op (``prodigy_sim.lowering``) that runs ``linear`` (a name relative to or
    inside ``layers.{i}.``) of a ``family`` (``llama`` or ``bert``) model."""
    rel = linear.split(".", 2)[2] if linear.startswith("layers.") else linear
    ops = {"attn.q_proj": "qkv_proj", "attn.k_proj": "qkv_proj", "attn.v_proj": "qkv_proj",
           "attn.o_proj": "o_proj", "mlp.gate_proj": "gate_up",
           "mlp.up_proj": "gate_up" if family == "llama" else "up_proj",
           "mlp.down_proj": "down_proj"}
    if rel not in ops:
        raise ConfigError(f"no lowered op runs linear {linear!r}")
    return ops[rel]


def op_groups(linears: list[str], family: str, complete: bool = True
              ) -> dict[tuple[int, str], tuple[tuple[str, ...], ...]]:
    """The linears of the layers (``layers.{i}.<linear>``) grouped as the lowering fuses them:
    ``(layer, lowered op) -> weights``, each weight the given linears it stacks along N, in
    order - ``qkv_proj``: one weight of q, k, v; ``gate_up`` (llama): gate, then up; any other
    op: its linear. ``complete``: every linear of a fused op must be given (ConfigError naming
    the op; the outliers themselves are stacked), else missing ones are left out (counts)."""
    groups: dict[tuple[int, str], set[str]] = {}
    for name in linears:
        if not name.startswith("layers."):
            raise ConfigError(f"outliers of {name!r}: only the layers' linears are lowered "
                              "with outliers")
        groups.setdefault((int(name.split(".")[1]), lowered_op_of(name, family)), set()).add(name)
    out: dict[tuple[int, str], tuple[tuple[str, ...], ...]] = {}
    for (layer, op), names in sorted(groups.items()):
        pre = f"layers.{layer}"
        if op == "qkv_proj":
            want: tuple[tuple[str, ...], ...] = (tuple(f"{pre}.attn.{p}" for p in
                                                       ("q_proj", "k_proj", "v_proj")),)
            what = "q, k and v"
        elif op == "gate_up":
            want = ((f"{pre}.mlp.gate_proj",), (f"{pre}.mlp.up_proj",))
            what = "gate and up"
        else:
            (only,) = names
            want, what = ((only,),), only
        if complete and names != {n for w in want for n in w}:
            raise ConfigError(f"{pre}.{op}: outliers of {sorted(names)}; {what} needed")
        out[(layer, op)] = tuple(tuple(n for n in w if n in names) for w in want)
    return out


def _op_dtype(dtypes: list[str]) -> str:
    """The value storage of one outlier kernel whose weights' outliers are in ``dtypes``: theirs
    when they agree, else float32 (which holds each of them exactly)."""
    return dtypes[0] if len(set(dtypes)) == 1 else "float32"


def outlier_sites(outliers: list[LinearOutliers] | tuple[LinearOutliers, ...],
                  family: str) -> tuple[OutlierSite, ...]:
    """One :class:`~prodigy_sim.lowering.OutlierSite` per layer and lowered op whose linears
    have outliers (:func:`op_groups`: q, k, v summed into ``qkv_proj``; ``gate_up``: gate, up),
    with each weight's count - the sites :func:`op_sites` finds in the outliers themselves."""
    by_name = {o.name: o for o in outliers}
    sites = []
    for (layer, op), weights in op_groups(list(by_name), family, complete=False).items():
        counts = tuple(sum(by_name[n].count for n in w) for w in weights)
        if sum(counts):
            dtype = _op_dtype([by_name[n].values for w in weights for n in w])
            sites.append(OutlierSite(op, counts, dtype, (layer,)))
    return tuple(sites)


def ptq_work(extras: LoweringExtras, family: str) -> PtqWork:
    """The lowering's :class:`~prodigy_sim.lowering.PtqWork` of ``extras``: one online
    transform before the op of its linears (every layer); the outlier products of each layer
    before the ops that run its linears with outliers (:func:`outlier_sites`)."""
    online = tuple(OnlineSite(lowered_op_of(o.linears[0], family), o.n, o.p, o.m)
                   for o in extras.online)
    return PtqWork(online, outlier_sites(extras.outliers, family))


def fuse_outliers(outliers: dict[str, Outliers], family: str,
                  dense: dict[str, QuantizedTensor] | None = None
                  ) -> dict[str, tuple[Outliers, ...]]:
    """Outliers by linear name -> by lowered op (``layers.{i}.<op>``), one per weight of the op
    as the lowering fuses them: q, k, v stacked along N into ``qkv_proj``; ``gate_up`` (llama):
    (gate, up). Every linear of a fused op must be given (SpQR gives every linear its
    ``Outliers``, possibly none of them). ``dense``: the lowered model's weights (fused names,
    ``fuse_tensors``); the outliers then become the terms added to them
    (:func:`additive_outliers`; the weights of one op in one dtype)."""
    out: dict[str, tuple[Outliers, ...]] = {}
    for (layer, op), weights in op_groups(list(outliers), family).items():
        key = f"layers.{layer}.{op}"
        fused = tuple(Outliers.stack([outliers[n] for n in w]) if len(w) > 1 else outliers[w[0]]
                      for w in weights)
        if dense is not None:
            names = [key] if len(weights) == 1 else [w[0].replace(".mlp.", ".") for w in weights]
            fused = tuple(additive_outliers(o, dense[n]) for o, n in zip(fused, names,
                                                                          strict=True))
        dtype = _op_dtype([o.dtype for o in fused])     # one value storage per kernel
        out[key] = tuple(o if o.dtype == dtype else
                         Outliers(o.row_ptr, o.cols, o.float_values(), dtype, o.shape)
                         for o in fused)
    return out


def op_sites(op_outliers: dict[str, tuple[Outliers, ...]]) -> tuple[OutlierSite, ...]:
    """The lowering's outlier sites of outliers by lowered op (:func:`fuse_outliers`): one per
    layer and op with any."""
    sites = []
    for key, parts in sorted(op_outliers.items(), key=lambda kv: (int(kv[0].split(".")[1]),
                                                                  kv[0])):
        _, layer, op = key.split(".", 2)
        if sum(o.count for o in parts):
            sites.append(OutlierSite(op, tuple(o.count for o in parts), parts[0].dtype,
                                     (int(layer),)))
    return tuple(sites)
