"""Measurement (not a timing benchmark): one lowered op of a scenario simulated with other
mappings and other residencies than the lowering chose - what a mapper or a residency plan would
gain by choosing them.

Each row simulates the op (``simulate_op``, the default method) with a mapping (``--mapping``,
default: the lowering's) and a set of its tensors kept on chip (``--resident``, default: the
residency plan's; a K step then issues its loads in the order the lowering gives that
residency, ``with_residency``), and prints its time, its DDR bytes beside its compulsory bytes,
its scratchpad per core and the on-chip memory beside the scratchpads (the shared L3 before the
kept tensors take their part). A residency that does not fit is reported, not simulated.
docs/lowering.md, "Where the 70B prefill's MLP loses its time".

    python benchmarks/op_what_if.py llama-2-70b prefill 2048 down_proj \\
        --mapping 16x8:2x64,2x64:1024:mn:mc --resident X --resident ""
    python benchmarks/op_what_if.py MODEL PHASE SEQUENCE OP [--batch B] [--hw PRESET]
        [--set FIELD=VALUE ...] [--mapping SPEC ...] [--resident T,T ...]

A mapping SPEC is ``GMxGN:AMxMT,ANxNT:KT:ORDER[:mc]`` - the grid, the X tiles (count x rows) and
the W tiles (count x columns) of a block, the K step, ``mn`` or ``nm``, and ``mc`` for multicast:
``16x8:2x64,2x64:1024:mn:mc`` is ``grid 16x8 multicast, blocks 128x128 (2x64 by 2x64), kt 1024,
mn``. ``--resident ""`` keeps none of the op's tensors on chip.
"""

from __future__ import annotations

import argparse

from _op_args import add_op_arguments, lowered_op

from prodigy_sim.errors import ProdigySimError
from prodigy_sim.hardware import ChipConfig
from prodigy_sim.isa import validate
from prodigy_sim.lowering import LoweredOp, with_mapping, with_residency
from prodigy_sim.lowering._linear import LinearMapping
from prodigy_sim.lowering._residency import Residency
from prodigy_sim.simulation import simulate_op
from prodigy_sim.timing import default_l3_bytes
from prodigy_sim.timing._simulate import isa_params


def parse_mapping(spec: str) -> LinearMapping:
    """``GMxGN:AMxMT,ANxNT:KT:ORDER[:mc]`` -> the mapping (see the module docstring)."""
    try:
        parts = spec.split(":")
        gm, gn = (int(v) for v in parts[0].split("x"))
        (am, mt), (an, nt) = ((int(v) for v in t.split("x")) for t in parts[1].split(","))
        order = parts[3]
        multicast = parts[4:] == ["mc"]
        if order not in ("mn", "nm") or parts[4:] not in ([], ["mc"]):
            raise ValueError(spec)
        return LinearMapping(mt, am, nt, an, int(parts[2]), gm, gn, order, multicast)
    except (ValueError, IndexError):
        raise SystemExit(f"mapping {spec!r}: expected GMxGN:AMxMT,ANxNT:KT:ORDER[:mc], e.g. "
                         "16x8:2x64,2x64:1024:mn:mc") from None


def row(op: LoweredOp, var: LoweredOp, kept: frozenset[str], chip: ChipConfig) -> list[str]:
    """The table's cells for ``var`` (``op`` or ``op`` with another mapping) simulated with
    ``kept`` of its tensors on chip (``op``'s held bytes of other activations)."""
    lay = validate(var.kernel.program, isa_params(chip))
    spm = max((p.base + p.nbytes for p in lay.tiles.values()), default=0)
    l3 = default_l3_bytes(chip, var.kernel.cores, lay)
    head = [var.kernel.mapping, ", ".join(sorted(kept)) or "none"]
    tail = [f"{spm / 1024:.1f}", f"{l3 / 2**20:.1f}"]
    try:
        r = simulate_op(with_residency(var, Residency(kept, op.residency.held_bytes)), chip)
    except ProdigySimError as e:
        return head + [f"does not fit: {e}", "-", "-"] + tail
    return head + [f"{r.seconds * 1e6:.1f}", f"{r.ddr_bytes / 1e6:.1f}",
                   f"{r.compulsory_bytes / 1e6:.1f}"] + tail


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    add_op_arguments(ap)
    ap.add_argument("--mapping", action="append", default=[], metavar="SPEC",
                    help="a mapping to simulate the op with (repeatable; default: the "
                         "lowering's)")
    ap.add_argument("--resident", action="append", metavar="T,T",
                    help="the op's tensors kept on chip (repeatable, '' for none; default: the "
                         "residency plan's)")
    args = ap.parse_args()
    chip, _, op = lowered_op(args)
    variants = [op]
    for spec in args.mapping:
        try:
            variants.append(with_mapping(op, parse_mapping(spec)))
        except ProdigySimError as e:
            raise SystemExit(f"mapping {spec!r}: {e}") from None
    residencies = ([frozenset(t for t in r.split(",") if t) for r in args.resident]
                   if args.resident is not None else [op.residency.resident])
    print(f"{args.model} {args.phase} {args.sequence} {args.op} on {chip.name}; the lowering: "
          f"{op.kernel.mapping}, kept on chip {sorted(op.residency.resident) or 'none'}")
    print("| mapping | kept on chip | simulated us | DDR MB | compulsory MB | scratchpad KiB "
          "/ core | on-chip beside them MiB |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for var in variants:
        for kept in residencies:
            print("| " + " | ".join(row(op, var, kept, chip)) + " |", flush=True)


if __name__ == "__main__":
    main()
