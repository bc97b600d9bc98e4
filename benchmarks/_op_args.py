"""The op of a scenario that ``op_ddr_profile.py`` and ``op_what_if.py`` measure: their shared
arguments (model, phase, sequence, op, batch, hardware and overrides) and the lowered op (run as
``python benchmarks/op_*.py``, so this folder is on ``sys.path``)."""

from __future__ import annotations

import argparse

from prodigy_sim.hardware import ChipConfig, resolve_hardware
from prodigy_sim.lowering import LoweredOp, lower_model
from prodigy_sim.models import Scenario, load_card


def add_op_arguments(ap: argparse.ArgumentParser) -> None:
    """MODEL PHASE SEQUENCE OP [--batch B] [--hw PRESET] [--set FIELD=VALUE ...]."""
    ap.add_argument("model")
    ap.add_argument("phase", choices=("prefill", "decode"))
    ap.add_argument("sequence", type=int, help="sequence length (prefill) or context (decode)")
    ap.add_argument("op", help="op name in the layer, e.g. gate_up, down_proj, qkv_proj")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--hw", default="prodigy-t16128")
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                    help="override a hardware field (repeatable), e.g. memory.channels=32")


def lowered_op(args: argparse.Namespace) -> tuple[ChipConfig, str, LoweredOp]:
    """The chip, and the first stage's name and op ``args.op`` of the scenario the arguments
    name, lowered (exits with the stage's op names if there is no such op)."""
    chip, _ = resolve_hardware(args.hw, args.set)
    length = ({"sequence_length": args.sequence} if args.phase == "prefill"
              else {"context_length": args.sequence})
    sc = Scenario(model=args.model, phase=args.phase, batch=args.batch, **length)
    stage = lower_model(load_card(sc.model), sc, chip).stages[0]
    ops = [o for o in stage.ops if o.name == args.op]
    if not ops:
        raise SystemExit(f"no op {args.op!r}; ops: {', '.join(o.name for o in stage.ops)}")
    return chip, stage.name, ops[0]
