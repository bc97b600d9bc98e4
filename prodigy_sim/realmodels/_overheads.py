"""What a PTQ scheme adds to the lowered programs, as data: online Hadamard transforms and SpQR
outliers and scales.

:func:`extras_of` reads them off a quantized model (:class:`LoweringExtras`: per model, the
online transforms - which linears' input, size ``n = p x 2^k``, operations per row from
:meth:`~prodigy_sim.ptq.HadamardRotation.ops_per_row` - and per linear the outlier count, value,
index and extra scale bytes and the number of first-level scale groups); :func:`ptq_work` turns
them into the lowering's :class:`~prodigy_sim.lowering.PtqWork` (sites named by lowered op: an
online transform before ``qkv_proj`` / ``up_proj`` / ``gate_up`` / ``down_proj``, SpQR work
after the op that runs the linear), whose kernels the timing model simulates with the rest of the
layer (``prodigy_sim.lowering.hadamard_kernel``, ``spqr_kernel``).
"""

from __future__ import annotations

from dataclasses import dataclass

from prodigy_sim.errors import ConfigError
from prodigy_sim.lowering import OnlineSite, OutlierSite, PtqWork
from prodigy_sim.numerics import footprint

__all__ = ["OnlineHadamard", "LinearOutliers", "LoweringExtras", "extras_of",
           "ptq_work", "online_work", "lowered_op_of"]


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
    """SpQR outliers of one linear weight ``name`` (N, K): ``count`` weights kept in float16,
    ``value_bytes`` + ``index_bytes`` (CSR: int32 row pointers, uint16 columns); ``groups`` =
    first-level scale groups of 16 (3-bit codes to decode)."""

    name: str
    shape: tuple[int, int]
    count: int
    value_bytes: int
    index_bytes: int
    groups: int
    scale_bytes: int = 0
    """Scale bytes (3-bit codes, second-level scales) beyond the base storage's scales (>= 0)."""


@dataclass(frozen=True)
class LoweringExtras:
    """What the lowering must add for a scheme (module docstring): ``online`` transforms (the
    same in every one of ``layers``), ``outliers`` per linear, and ``extra_weight_bytes`` beyond
    the base MX storage (negative: fewer)."""

    layers: int
    online: tuple[OnlineHadamard, ...] = ()
    outliers: tuple[LinearOutliers, ...] = ()
    extra_weight_bytes: int = 0

    @property
    def empty(self) -> bool:
        return not self.online and not self.outliers and self.extra_weight_bytes == 0


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


def extras_of(qmodel, base_bytes: int) -> LoweringExtras:
    """The :class:`LoweringExtras` of a :class:`~prodigy_sim.realmodels._ptq.QuantizedModel`
    (``base_bytes``: the linear bytes of the scheme's base MX storage)."""
    card = qmodel.weights.card
    online = _online(qmodel.online)
    outliers = []
    storage = qmodel.scheme.storage
    for name, res in qmodel.results.items():
        if res.outliers is None:
            continue
        fp = res.footprint
        n, k = res.weight.shape
        base = footprint((n, k), storage).total_bytes if storage is not None else 0
        extra_scales = max(0, sum(fp.values()) - fp["outlier_values"] - fp["outlier_index"]
                           - base)
        outliers.append(LinearOutliers(name, (n, k), res.outliers.count, fp["outlier_values"],
                                       fp["outlier_index"], n * (-(-k // 16)), extra_scales))
    extra = qmodel.linear_bytes - base_bytes if outliers else 0
    return LoweringExtras(card.num_layers, tuple(online), tuple(outliers), extra)


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


def ptq_work(extras: LoweringExtras, family: str) -> PtqWork:
    """The lowering's :class:`~prodigy_sim.lowering.PtqWork` of ``extras``: one online
    transform before the op of its linears; per op that runs linears with outliers, the
    outliers, bytes and scale groups of those linears summed over the model and divided by the
    layer count (every layer shares one lowered stage; rounded up)."""
    online = tuple(OnlineSite(lowered_op_of(o.linears[0], family), o.n, o.p, o.m)
                   for o in extras.online)
    sums: dict[str, list[int]] = {}
    for o in extras.outliers:
        acc = sums.setdefault(lowered_op_of(o.name, family), [0] * 5)
        for i, v in enumerate((o.count, o.value_bytes, o.index_bytes, o.groups,
                               o.scale_bytes)):
            acc[i] += v
    n = max(extras.layers, 1)
    outliers = tuple(OutlierSite(op, *(-(-v // n) for v in acc)) for op, acc in sums.items())
    return PtqWork(online, outliers)
