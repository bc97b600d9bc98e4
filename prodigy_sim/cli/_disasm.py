"""``prodigy-sim disasm``: print the canonical text of a binary program."""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "disasm",
        description="Decode a binary written by 'prodigy-sim asm' and print its canonical text "
                    "(which assembles back to the same binary).",
    )
    p.add_argument("binary", metavar="PROGRAM.bin", help="binary program file")
    return p


def run(args: argparse.Namespace) -> int:
    from prodigy_sim.isa import decode_file, disassemble

    print(disassemble(decode_file(args.binary)), end="")
    return 0
