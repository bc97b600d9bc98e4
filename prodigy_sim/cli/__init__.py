"""The ``prodigy-sim`` command line: one module per subcommand.

Each subcommand module defines ``add_parser(subparsers)`` (registers its flags, with units in the
help) and ``run(args) -> int``. Errors from the package are printed as one line, without a
traceback, and the process exits with status 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from prodigy_sim.errors import ProdigySimError

SUBCOMMANDS = ("simulate", "footprint", "accuracy", "presets", "formats", "run", "asm", "disasm",
               "dram", "sweep", "serve", "parallel")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="prodigy-sim",
        description="Cycle-approximate simulator of the Tachyum Prodigy AI unit.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in SUBCOMMANDS:
        module = importlib.import_module(f"prodigy_sim.cli._{name}")
        sub = module.add_parser(subparsers)
        sub.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except ProdigySimError as exc:
        print(f"prodigy-sim {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a file named on the command line that cannot be read or written
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"prodigy-sim {args.command}: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
