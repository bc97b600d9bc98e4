"""``prodigy-sim disasm``: print the canonical text of a binary program."""

from __future__ import annotations

import argparse
from pathlib import Path

from prodigy_sim.isa import decode, disassemble


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "disasm",
        help="disassemble a binary program to canonical text",
        description="Decode a binary written by 'prodigy-sim asm' and print its canonical text "
                    "(which assembles back to the same binary).",
    )
    p.add_argument("binary", metavar="PROGRAM.bin", help="binary program file")
    return p


def run(args: argparse.Namespace) -> int:
    path = Path(args.binary)
    print(disassemble(decode(path.read_bytes(), file=path)), end="")
    return 0
