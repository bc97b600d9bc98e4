"""Which rotations a transformer block can absorb (folded) and which must run (online).

Computational invariance (QuaRot, Ashkboos et al. 2024; SliceGPT, Ashkboos et al. 2024): for an
orthogonal ``Q``, a linear layer ``y = x W^T`` gives the same output on the rotated input
``x Q`` with the weight ``W Q``, and writes a rotated output ``y Q`` with ``Q^T W`` (bias
``b Q``). A rotation is *folded* when both its ends are weights (or an RMSNorm, whose gain is
first fused into the following weights: ``W diag(g)``, and which commutes with ``Q`` because it
only divides by the row norm); it is *online* when a nonlinearity or a LayerNorm sits on the
rotated side, and then ``x Q`` is computed at run time (:meth:`HadamardRotation.apply`, a fast
Walsh-Hadamard transform) right before the weights that expect it.

A plan (:func:`llama_rotation_plan`, :func:`bert_rotation_plan`) is a tuple of
:class:`RotationSite`; weight names are the model cards' names relative to a layer
(``attn.q_proj``, ``mlp.down_proj``, ``attn_norm``, ...) or model-level (``embed_tokens``,
``lm_head``, ``final_norm``). :func:`fold_rotations` applies a plan's folded parts and the weight
side of its online parts to a dictionary of weights.

LLaMA-style block (pre-RMSNorm, SwiGLU, GQA):

======== ======== ================================== ==========================================
site     mode     W <- W Q                           W <- Q^T W (and b <- b Q)
======== ======== ================================== ==========================================
residual folded   q, k, v, gate, up, lm_head,        o_proj, down_proj
                  embed_tokens (rows) - after fusing
                  attn_norm, mlp_norm, final_norm
v_heads  folded   o_proj (per head: I (x) Q)         v_proj (per kv head: I (x) Q)
down_in  online   down_proj                          - (x = silu(gate) * up is rotated at run time)
======== ======== ================================== ==========================================

BERT-style block (post-LayerNorm: ``LN(x + f(x))``; the residual stream passes through a
LayerNorm whose mean subtraction and per-feature gain do not commute with ``Q``, so it is not
rotated):

======== ======== ================================== ==========================================
site     mode     W <- W Q                           W <- Q^T W (and b <- b Q)
======== ======== ================================== ==========================================
attn_in  online   q, k, v (one transform for all 3)  - (the block input, a LayerNorm output)
v_heads  folded   o_proj (per head)                  v_proj and its bias (per head)
mlp_in   online   up_proj                            - (the attn_norm output)
down_in  online   down_proj                          - (the GELU output)
======== ======== ================================== ==========================================

Not in these plans (QuaRot uses them for activation / KV-cache quantization, not needed for
weights): an online Hadamard over heads before ``o_proj``, and rotations of queries and keys
after RoPE. Tied embeddings: after folding, ``lm_head`` (``E diag(g_final) Q``) differs from
``embed_tokens`` (``E Q``) unless the final norm gain is 1, so the caller must give ``lm_head`` as
its own weight.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from prodigy_sim._jit import one_blas_thread
from prodigy_sim.errors import ConfigError
from prodigy_sim.ptq._hadamard import HadamardRotation

__all__ = ["RotationSite", "llama_rotation_plan", "bert_rotation_plan", "fold_rotations",
           "rotate_right", "rotate_left", "fuse_norm_gain"]


@dataclass(frozen=True)
class RotationSite:
    """One rotation of a block.

    Attributes:
        name: ``residual``, ``v_heads``, ``attn_in``, ``mlp_in``, ``down_in``.
        size: order ``n`` of the rotation; a weight axis of length ``r * n`` gets ``I_r (x) Q``
            (per head).
        mode: ``folded`` (absorbed by weights) or ``online`` (``x Q`` computed at run time).
        right: weights that become ``W Q`` (they read the rotated space).
        left: weights that become ``Q^T W``, their biases ``b Q`` (they write into it).
        norms: ``(norm, weights)``: RMSNorm gains fused into those weights (``W diag(g)``, the
            gain set to 1) before rotating.
        online_at: for ``online``: the activation the transform runs on.
    """

    name: str
    size: int
    mode: str
    right: tuple[str, ...]
    left: tuple[str, ...] = ()
    norms: tuple[tuple[str, tuple[str, ...]], ...] = ()
    online_at: str = ""


def llama_rotation_plan(*, hidden: int, intermediate: int, head_dim: int
                        ) -> tuple[RotationSite, ...]:
    """The QuaRot plan of a LLaMA-style model (module docstring table)."""
    qkv = ("attn.q_proj", "attn.k_proj", "attn.v_proj")
    return (
        RotationSite("residual", hidden, "folded",
                     right=(*qkv, "mlp.gate_proj", "mlp.up_proj", "lm_head", "embed_tokens"),
                     left=("attn.o_proj", "mlp.down_proj"),
                     norms=(("attn_norm", qkv), ("mlp_norm", ("mlp.gate_proj", "mlp.up_proj")),
                            ("final_norm", ("lm_head",)))),
        RotationSite("v_heads", head_dim, "folded", right=("attn.o_proj",),
                     left=("attn.v_proj",)),
        RotationSite("down_in", intermediate, "online", right=("mlp.down_proj",),
                     online_at="silu(gate_proj(x)) * up_proj(x), the input of mlp.down_proj"),
    )


def bert_rotation_plan(*, hidden: int, intermediate: int, head_dim: int
                       ) -> tuple[RotationSite, ...]:
    """The rotations a post-LayerNorm BERT block allows (module docstring table)."""
    return (
        RotationSite("attn_in", hidden, "online",
                     right=("attn.q_proj", "attn.k_proj", "attn.v_proj"),
                     online_at="the block input (embeddings norm or previous mlp_norm output), "
                               "the input of attn.q_proj / k_proj / v_proj"),
        RotationSite("v_heads", head_dim, "folded", right=("attn.o_proj",),
                     left=("attn.v_proj",)),
        RotationSite("mlp_in", hidden, "online", right=("mlp.up_proj",),
                     online_at="the attn_norm output, the input of mlp.up_proj"),
        RotationSite("down_in", intermediate, "online", right=("mlp.down_proj",),
                     online_at="gelu(up_proj(x)), the input of mlp.down_proj"),
    )


def _blockwise(q: np.ndarray, length: int, what: str) -> np.ndarray:
    n = q.shape[0]
    if length % n:
        raise ConfigError(f"{what}: axis of length {length} is not a multiple of the rotation "
                          f"size {n}")
    r = length // n
    return q if r == 1 else np.kron(np.eye(r), q)


def rotate_right(w: np.ndarray, q: np.ndarray) -> np.ndarray:
    """``W Q`` (float64) for ``w (N, K)``; ``Q`` is ``(n, n)`` with ``K = r n`` (then
    ``I_r (x) Q``)."""
    w = np.asarray(w, dtype=np.float64)
    return w @ _blockwise(q, w.shape[-1], "W Q")


def rotate_left(w: np.ndarray, q: np.ndarray, bias: np.ndarray | None = None
                ) -> tuple[np.ndarray, np.ndarray | None]:
    """``(Q^T W, b Q)`` (float64) for ``w (N, K)`` and optional ``bias (N,)``; ``N = r n``."""
    w = np.asarray(w, dtype=np.float64)
    qb = _blockwise(q, w.shape[0], "Q^T W")
    b = None if bias is None else np.asarray(bias, dtype=np.float64) @ qb
    return qb.T @ w, b


def fuse_norm_gain(gain: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``W diag(gain)`` (float64): a weight reading ``RMSNorm(x) * gain`` reads ``RMSNorm(x)``."""
    return np.asarray(w, dtype=np.float64) * np.asarray(gain, dtype=np.float64)[None, :]


def _apply_blockwise(w: np.ndarray, rot: HadamardRotation, what: str) -> np.ndarray:
    """``w (I_r (x) Q)`` for ``w (rows, r n)``, by the online transform (fixed operation order,
    no BLAS), float64."""
    n = rot.n
    if w.shape[-1] % n:
        raise ConfigError(f"{what}: axis of length {w.shape[-1]} is not a multiple of the rotation "
                          f"size {n}")
    return rot.apply(w.reshape(w.shape[0], -1, n)).reshape(w.shape)


def _match(weights: dict[str, np.ndarray], name: str) -> list[str]:
    keys = [k for k in weights if k == name or k.endswith("." + name)]
    if not keys:
        raise ConfigError(f"the rotation plan names {name!r}, which matches no weight")
    return keys


@one_blas_thread
def fold_rotations(weights: dict[str, np.ndarray], plan: tuple[RotationSite, ...],
                   rotations: dict[str, HadamardRotation]) -> dict[str, np.ndarray]:
    """A new weight dictionary with ``plan`` applied: every site's norm gains fused (gains set
    to 1), ``right`` weights multiplied by ``Q`` and ``left`` weights by ``Q^T`` (biases
    ``<name>.bias`` by ``Q``). Online sites change only their weights; the caller applies
    ``rotations[name].apply`` to the activation at ``online_at``. The products are computed by
    :meth:`HadamardRotation.apply` (a fixed operation order: the same bits on every host).

    ``weights`` keys are names or ``<prefix>.<name>`` (e.g. ``layers.3.attn.q_proj``); every name
    a plan uses must match at least one key. Values are float64 in the result.
    """
    out = {k: np.asarray(v, dtype=np.float64) for k, v in weights.items()}
    for site in plan:
        if site.name not in rotations:
            raise ConfigError(f"no rotation given for site {site.name!r}")
        if rotations[site.name].n != site.size:
            raise ConfigError(f"site {site.name!r} needs size {site.size}, the rotation has "
                              f"{rotations[site.name].n}")
        for norm, readers in site.norms:
            for nk in _match(out, norm):
                prefix = nk[: len(nk) - len(norm)]
                for r in readers:
                    rk = prefix + r
                    if rk not in out:
                        raise ConfigError(f"norm {nk!r} feeds {rk!r}, which is not a weight")
                    out[rk] = fuse_norm_gain(out[nk], out[rk])
                out[nk] = np.ones_like(out[nk])
    for site in plan:
        rot = rotations[site.name]
        for name in site.right:
            for k in _match(out, name):
                out[k] = _apply_blockwise(out[k], rot, f"{k} Q")
        for name in site.left:
            for k in _match(out, name):
                out[k] = _apply_blockwise(out[k].T, rot, f"Q^T {k}").T.copy()
                if k + ".bias" in out:
                    out[k + ".bias"] = _apply_blockwise(out[k + ".bias"][None], rot,
                                                        f"{k}.bias Q")[0]
    return out
