"""``prodigy-sim asm``: assemble (and validate) a program into the fixed-width binary."""

from __future__ import annotations

import argparse
from pathlib import Path

from prodigy_sim.cli._args import positive_int


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "asm",
        description="Assemble a program (isa/README.md syntax), check that it can run on a core "
                    "(shapes, formats, on-chip memory of --onchip-bytes), and write the binary "
                    "(header, declarations, 64-bit instruction words).",
    )
    p.add_argument("program", metavar="PROGRAM.s", help="program text")
    p.add_argument("-o", "--output", metavar="FILE",
                   help="binary output file (default: PROGRAM with suffix .bin)")
    p.add_argument("--onchip-bytes", type=positive_int, default=None, metavar="BYTES",
                   help="on-chip memory per core in bytes for validation (default: 1 MiB)")
    return p


def run(args: argparse.Namespace) -> int:
    from prodigy_sim.isa import IsaParams, assemble_file, encode, validate

    path = Path(args.program)
    program = assemble_file(path)
    params = IsaParams() if args.onchip_bytes is None else IsaParams(
        onchip_bytes=args.onchip_bytes)
    validate(program, params, source=path)
    out = Path(args.output) if args.output else path.with_suffix(".bin")
    data = encode(program)
    out.write_bytes(data)
    print(f"{path} -> {out}: {len(program.instructions)} instructions, {len(data)} bytes")
    return 0
