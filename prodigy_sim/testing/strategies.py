"""Hypothesis strategies for property tests of formats, quantized tensors, ISA programs and
hardware configurations.

Every strategy returns valid objects of the package (a draw never needs ``assume``); values
include the special cases a kernel gets wrong first (signed zeros, subnormals, rounding
midpoints, infinities and NaNs where asked for).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import strategies as st

from prodigy_sim.errors import ProdigySimError
from prodigy_sim.hardware import ChipConfig, resolve_hardware
from prodigy_sim.isa import (
    AccDecl,
    Expr,
    FImm,
    Instruction,
    Program,
    TensorDecl,
    TileDecl,
    isa_storage,
    opcode_table,
)
from prodigy_sim.numerics import (
    FormatSpec,
    QuantizedTensor,
    ScaleKind,
    Storage,
    builtin_formats,
    quantize,
)

__all__ = ["narrow_format_names", "format_names", "user_formats", "formats", "float32_any",
           "float32_near", "float32_arrays", "storages", "quantized_tensors", "programs",
           "chip_configs"]


# ---------------------------------------------------------------- formats

def narrow_format_names() -> list[str]:
    """Built-in formats of at most 8 bits (the ones with listed codes), sorted."""
    return sorted(n for n, s in builtin_formats().items() if not s.wide)


def format_names() -> st.SearchStrategy[str]:
    """Names of the built-in formats of at most 8 bits."""
    return st.sampled_from(narrow_format_names())


def _user_format(kind: str, signed: bool, e: int, m: int, bias: int, subnormals: bool,
                 overflow: str) -> FormatSpec | None:
    bits = int(signed) + e + m
    sign = 1 << (bits - 1) if signed else 0
    zeros: tuple[int, ...]
    infs: tuple[int, ...] = ()
    if kind == "int":
        zeros, e, m, bias, subnormals = (0,), 0, 0, 0, False
    else:
        zeros = (0, sign) if signed else (0,)   # E = M = 0 is zero (or is declared zero)
        if overflow == "nonsaturating":
            top = (1 << (bits - int(signed))) - 1
            infs = (top, top | sign) if signed else (top,)
    try:
        return FormatSpec(name=f"user_{kind}{bits}", bits=bits, kind=kind, signed=signed,
                          exponent_bits=e, mantissa_bits=m, bias=bias,
                          subnormals=subnormals and kind == "float", zero_codes=zeros,
                          inf_codes=infs, overflow=overflow)
    except (ProdigySimError, ValueError):
        return None


@st.composite
def user_formats(draw) -> FormatSpec:
    """Random valid user formats of 2 to 8 bits: floats (with or without subnormals), log
    (powers of two) and integers; saturating, or overflowing to an Inf code."""
    kind = draw(st.sampled_from(["float", "log", "int"]))
    signed = draw(st.booleans())
    budget = 8 - int(signed)
    if kind == "int":
        e, m = 0, draw(st.integers(2 - int(signed), budget))
    elif kind == "log":
        e, m = draw(st.integers(2, min(6, budget))), 0
    else:
        e = draw(st.integers(1, min(5, budget - 1)))
        m = draw(st.integers(1, budget - e))
    bias = draw(st.integers(0, (1 << e) if kind != "int" else 0))
    subnormals = draw(st.booleans())
    overflow = draw(st.sampled_from(["saturate", "nonsaturating"])) if kind != "int" \
        else "saturate"
    spec = _user_format(kind, signed, e, m, bias, subnormals, overflow)
    if spec is None:   # a rare invalid combination (e.g. a log format with one finite value)
        spec = _user_format(kind, signed, e, m, bias, subnormals, "saturate")
    if spec is None:
        spec = builtin_formats()["int4"]
    return spec


def formats(user: bool = True) -> st.SearchStrategy[FormatSpec]:
    """Built-in formats of at most 8 bits, and (``user``) random valid user formats."""
    builtin = format_names().map(lambda n: builtin_formats()[n])
    return st.one_of(builtin, user_formats()) if user else builtin


# ---------------------------------------------------------------- float32 values

def float32_any() -> st.SearchStrategy[float]:
    """Any float32 bit pattern: every exponent, subnormals, +-0, +-Inf, NaNs."""
    return st.integers(0, 2**32 - 1).map(lambda b: float(np.uint32(b).view(np.float32)))


def float32_near(spec: FormatSpec) -> st.SearchStrategy[float]:
    """float32 values within a few ulps of the format's values and of the midpoints between
    them (where rounding decides), and past its largest value, with both signs."""
    vals = spec.finite_values
    mids = (vals[:-1] + vals[1:]) / 2
    points = np.concatenate([vals, mids, [vals[-1] * 1.25, vals[-1] * 2]])
    points = points[points <= float(np.finfo(np.float32).max)]
    base = st.sampled_from([float(p) for p in points])
    ulps = st.integers(-3, 3)
    sign = st.sampled_from([1.0, -1.0])

    def nudge(args):
        p, k, s = args
        x = np.float32(p)
        for _ in range(abs(k)):
            x = np.nextafter(x, np.float32(np.inf if k > 0 else -np.inf), dtype=np.float32)
        return float(x) * s

    return st.tuples(base, ulps, sign).map(nudge)


_SPECIALS = (0.0, -0.0, float(np.finfo(np.float32).smallest_subnormal),
             -float(np.finfo(np.float32).smallest_subnormal),
             float(np.finfo(np.float32).tiny), float(np.finfo(np.float32).max),
             -float(np.finfo(np.float32).max))


def float32_arrays(min_size: int = 1, max_size: int = 64, *, specials: bool = False,
                   nonfinite: bool = False, magnitude: float = 1e6
                   ) -> st.SearchStrategy[np.ndarray]:
    """1-D float32 arrays of ``min_size..max_size`` values in ``[-magnitude, magnitude]``;
    ``specials`` mixes in signed zeros, the smallest subnormal and normal, and the float32
    extremes; ``nonfinite`` also +-Inf and NaN."""
    finite = st.floats(width=32, allow_nan=False, allow_infinity=False,
                       min_value=-magnitude, max_value=magnitude)
    extra = list(_SPECIALS) + ([float("inf"), float("-inf"), float("nan")] if nonfinite else [])
    element = st.one_of(finite, st.sampled_from(extra)) if specials or nonfinite else finite
    return st.lists(element, min_size=min_size, max_size=max_size).map(
        lambda v: np.array(v, dtype=np.float32))


# ---------------------------------------------------------------- quantized tensors

@st.composite
def storages(draw, fmt: st.SearchStrategy[FormatSpec] | None = None, *,
             sparse: bool = True) -> Storage:
    """How a tensor is stored: a narrow format (``fmt``, default built-in or user), any scale
    kind (:class:`~prodigy_sim.numerics.ScaleKind`) with a block of 16, 32 or 64 (or one
    scale per row), and (``sparse``) possibly 8:4, 4:2 or 2:1 structured sparsity."""
    spec = draw(fmt if fmt is not None else formats())
    scale = draw(st.sampled_from(list(ScaleKind)))
    block: int | None = draw(st.sampled_from([16, 32, 64, None]))
    sparsity = draw(st.sampled_from([None, "8:4", "4:2", "2:1"])) if sparse else None
    return Storage.of(spec, block, scale, sparsity)


@st.composite
def quantized_tensors(draw, storage: st.SearchStrategy[Storage] | None = None, *,
                      max_rows: int = 4, max_blocks: int = 3, specials: bool = True
                      ) -> tuple[np.ndarray, QuantizedTensor]:
    """``(x, quantize(x, storage))``: a float32 matrix of ``1..max_rows`` rows whose columns
    are whole blocks (and whole sparsity groups), with values spread over many binades (and,
    with ``specials``, signed zeros, subnormals and the float32 extremes), and its quantized
    tensor."""
    stg = draw(storage if storage is not None else storages())
    unit = max(stg.block or 16, stg.sparsity.group if stg.sparsity else 1)
    rows = draw(st.integers(1, max_rows))
    cols = unit * draw(st.integers(1, max_blocks))
    flat = draw(float32_arrays(rows * cols, rows * cols, specials=specials, magnitude=1e4))
    scale = draw(st.sampled_from([1.0, 2.0**-20, 2.0**20]))
    top = float(np.finfo(np.float32).max)
    x = np.clip(flat.astype(np.float64) * scale, -top, top).astype(np.float32).reshape(rows, cols)
    return x, quantize(x, stg)


# ---------------------------------------------------------------- ISA programs

_NAMES = [f"{p}{i}" for p in ("T", "buf", "Acc", "w_", "L") for i in range(8)]
_ISA_FORMATS = ["float32", "bfloat16", "float8_e4m3fn", "float8_e5m2", "tai4", "tai2",
                "float4_e2m1fn", "int8"]


@st.composite
def _declaration(draw, cls, name: str):
    fmt = draw(st.sampled_from(_ISA_FORMATS))
    if fmt in ("float32", "bfloat16"):
        block, scale, sparsity = 0, "none", None
    else:
        scale = draw(st.sampled_from(["e8m0", "e4m3", "fp32", "none"]))
        block = 0 if scale == "none" else draw(st.sampled_from([0, 16, 32, 64]))
        sparsity = draw(st.sampled_from([None, (8, 4), (4, 2), (16, 4)]))
    unit = max(block, 1) * (sparsity[0] if sparsity else 1)
    storage = isa_storage(fmt, block, scale, sparsity)
    addr = draw(st.none() | st.integers(0, 2**64 - 1))
    if cls is TensorDecl and draw(st.integers(0, 3)) == 0:   # stored in tiles (tile=HxW)
        step = 8 * unit                     # whole bytes of codes at any width of 1..8 bits
        h = draw(st.integers(1, 65535))
        w = step * draw(st.integers(1, 65535 // step))
        shape = (h * draw(st.integers(1, (2**32 - 1) // h)),
                 w * draw(st.integers(1, (2**32 - 1) // w)))
        return cls(name, shape, storage, addr, (h, w))
    rows = draw(st.integers(1, 2**32 - 1))
    cols = unit * draw(st.integers(1, (2**32 - 1) // unit))
    return cls(name, (rows, cols), storage, addr)


def _operand(draw, kind: str, bits: int, imm_bits: int, names: dict[str, list[str]]):
    if kind in names:
        return draw(st.sampled_from(names[kind]))
    if kind == "reg":
        return draw(st.integers(0, 15))
    if kind == "sreg":
        return draw(st.integers(0, 17))
    if kind == "expr":
        lim = 1 << (imm_bits - 1)
        return Expr(draw(st.none() | st.integers(0, 17)), draw(st.integers(-lim, lim - 1)))
    if kind == "simm":
        lim = 1 << (bits - 1)
        return draw(st.integers(-lim, lim - 1))
    return FImm(draw(st.integers(0, 2**32 - 1)))


@st.composite
def programs(draw, max_instructions: int = 25) -> Program:
    """Well-formed programs (they encode, assemble and disassemble; not necessarily runnable):
    every opcode of the opcode table, every operand kind over its full field range, declared
    tensors, tiles and accumulators, labels, balanced loops."""
    table = opcode_table()
    names = draw(st.lists(st.sampled_from(_NAMES), min_size=4, max_size=14, unique=True))
    n_ten = draw(st.integers(1, len(names) - 3))
    n_til = draw(st.integers(1, len(names) - n_ten - 2))
    n_acc = draw(st.integers(1, min(16, len(names) - n_ten - n_til - 1)))
    ten_names = names[:n_ten]
    til_names = names[n_ten: n_ten + n_til]
    acc_names = names[n_ten + n_til: n_ten + n_til + n_acc]
    lab_names = names[n_ten + n_til + n_acc:]
    tensors = tuple(draw(_declaration(TensorDecl, n)) for n in ten_names)
    tiles = tuple(draw(_declaration(TileDecl, n)) for n in til_names)
    accs = tuple(AccDecl(n, (draw(st.integers(1, 65535)), draw(st.integers(1, 65535))),
                         draw(st.none() | st.integers(0, 15))) for n in acc_names)
    n_ins = draw(st.integers(0, max_instructions))
    lab_names = lab_names[: n_ins + 1]
    label_at = draw(st.lists(st.integers(0, n_ins), min_size=len(lab_names),
                             max_size=len(lab_names), unique=True))
    labels = tuple(sorted(zip(lab_names, label_at, strict=True), key=lambda x: x[1]))
    pool = {"tile": til_names, "tensor": ten_names, "acc": acc_names, "label": lab_names}
    choices = [s for s in table.instructions if s.mnemonic != "ENDLOOP"
               and (lab_names or all(o.kind != "label" for o in s.operands))]
    instrs, depth = [], 0
    for _ in range(n_ins):
        spec = draw(st.sampled_from(choices))
        if depth and draw(st.booleans()) and draw(st.booleans()):
            spec = table.by_mnemonic["ENDLOOP"]
        depth += {"LOOP": 1, "ENDLOOP": -1}.get(spec.mnemonic, 0)
        ops = tuple(_operand(draw, o.kind, o.bits, o.imm_bits, pool) for o in spec.operands)
        instrs.append(Instruction(spec.mnemonic, ops))
    for i in range(len(instrs) - 1, -1, -1):   # close open loops, labels keep their indices
        if depth == 0:
            break
        if instrs[i].opcode == "LOOP":
            depth -= 1
            instrs[i] = Instruction("NOP", ())
        elif instrs[i].opcode != "ENDLOOP":
            instrs[i] = Instruction("ENDLOOP", ())
            depth -= 1
    return Program(tensors, tiles, accs, tuple(instrs), labels)


# ---------------------------------------------------------------- hardware

_CHIP_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "cores": st.sampled_from([16, 32, 64, 96, 128, 192, 256]),
    "memory.channels": st.sampled_from([4, 8, 16, 32]),
    "memory.dram.timing": st.sampled_from([4800, 5600, 6400, 7200]),
    "core.matrix_unit.tile_k": st.sampled_from([8, 16, 32, 64]),
    "noc.link_bandwidth_bytes_per_cycle": st.sampled_from([16, 32, 64, 128]),
    "noc.hop_latency_cycles": st.integers(1, 8),
}


@st.composite
def chip_configs(draw, preset: str = "prodigy-t16128", max_changes: int = 3
                 ) -> tuple[ChipConfig, dict[str, Any]]:
    """``(config, overrides)``: ``preset`` with up to ``max_changes`` fields changed within
    their valid ranges (cores, DDR channels and speed, matrix-unit depth, mesh links)."""
    keys = draw(st.lists(st.sampled_from(sorted(_CHIP_FIELDS)), max_size=max_changes,
                         unique=True))
    overrides = {k: draw(_CHIP_FIELDS[k]) for k in keys}
    config, _ = resolve_hardware(preset, overrides)
    return config, overrides
