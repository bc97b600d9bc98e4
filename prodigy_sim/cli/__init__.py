"""The ``prodigy-sim`` command line: one module per subcommand.

Each subcommand module defines ``add_parser(subparsers)`` (registers its flags, with units in the
help) and ``run(args) -> int``; its one-line summary is in :data:`COMMANDS`. Only the module of the
subcommand being run is imported, and the modules import the simulator inside ``run``, so
``--help``, ``--version`` and a bad argument cost no more than Python and ``argparse``.

Exit status: what ``run`` returns (0 = done), 2 for bad input. Every error - a bad argument, a
bad file, a package error (:class:`~prodigy_sim.errors.ProdigySimError`) - is printed as one line
``prodigy-sim COMMAND: error: ...`` without a traceback. Output cut short by its reader
(``prodigy-sim simulate --json | head``) ends the command quietly with status 0.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence

from prodigy_sim import __version__
from prodigy_sim.errors import ProdigySimError

__all__ = ["COMMANDS", "build_parser", "main", "deferred", "LazyChoices"]

COMMANDS: dict[str, str] = {
    "simulate": "simulate a decode step or a prefill of a model on a Prodigy preset",
    "footprint": "memory footprint of a model (weights, KV cache, activations) and whether it "
                 "fits",
    "accuracy": "accuracy, weight footprint and simulated throughput of quantized real models",
    "presets": "list the hardware presets, or show one with the source of every field",
    "formats": "list the number formats and the values of their codes",
    "run": "simulate a program (SPMD over N cores) and print its timing",
    "asm": "assemble program text into the 64-bit-word binary format",
    "disasm": "disassemble a binary program to canonical text",
    "dram": "replay a LD/ST memory trace through the DDR5 model (bandwidth GB/s, latency ns)",
    "sweep": "run a sweep over hardware and scenario parameters (Dask), write a table and plots",
    "serve": "simulate serving a request trace (continuous batching, paged KV cache)",
    "parallel": "a model split over several sockets; system presets; the 256 PB claim",
}
"""Subcommand -> its one-line summary (the module ``prodigy_sim.cli._<name>`` implements it)."""


class deferred:  # noqa: N801 - used like a function: help=deferred(lambda: ...)
    """Help text (a description, an epilog, an argument's help) computed only when help is
    printed: ``help=deferred(lambda: f"... {heavy_import().NAME}")``."""

    def __init__(self, make: Callable[[], str]) -> None:
        self.make = make

    @staticmethod
    def resolve(text):
        return text.make() if isinstance(text, deferred) else text


class LazyChoices:
    """``choices=`` of an argument whose allowed values come from a module imported only when
    they are needed (the flag is given, or help is printed)."""

    def __init__(self, make: Callable[[], Sequence]) -> None:
        self._make = make
        self._values: tuple | None = None

    def _get(self) -> tuple:
        if self._values is None:
            self._values = tuple(self._make())
        return self._values

    def __contains__(self, item) -> bool:
        return item in self._get()

    def __iter__(self):
        return iter(self._get())

    def __len__(self) -> int:
        return len(self._get())


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (exit 2) and :class:`deferred` help texts."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")

    def _resolve(self) -> None:
        self.description = deferred.resolve(self.description)
        self.epilog = deferred.resolve(self.epilog)
        for action in self._actions:
            action.help = deferred.resolve(action.help)

    def format_help(self) -> str:
        self._resolve()
        return super().format_help()


class _Subparsers:
    """What a subcommand module's ``add_parser`` receives: adds the summary of
    :data:`COMMANDS` to the subparser it creates."""

    def __init__(self, action) -> None:
        self._action = action

    def add_parser(self, name: str, **kwargs) -> argparse.ArgumentParser:
        kwargs.setdefault("help", COMMANDS[name])
        return self._action.add_parser(name, **kwargs)


def build_parser(commands: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser; only the subcommands in ``commands`` (default: all) get their flags, the
    others only their summary."""
    parser = _Parser(prog="prodigy-sim",
                     description="Cycle-approximate simulator of the Tachyum Prodigy AI unit.")
    parser.add_argument("--version", action="version", version=f"prodigy-sim {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    wanted = COMMANDS if commands is None else commands
    for name, summary in COMMANDS.items():
        if name in wanted:
            module = importlib.import_module(f"prodigy_sim.cli._{name}")
            sub = module.add_parser(_Subparsers(subparsers))
            sub.set_defaults(_run=module.run)
        else:
            subparsers.add_parser(name, help=summary)
    return parser


def _command(argv: Sequence[str]) -> list[str]:
    """The subcommand named in ``argv`` (the first word that is one), as a list."""
    return [a for a in argv if a in COMMANDS][:1]


def _quiet_stdout() -> None:
    """After a broken pipe: send what is still buffered for stdout to /dev/null, so the
    interpreter's final flush does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout without a file descriptor (captured in tests)
        pass


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(_command(argv))
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version (0) or a bad argument (2, message printed)
        return exc.code if isinstance(exc.code, int) else 2
    try:
        status = int(args._run(args) or 0)
        sys.stdout.flush()
        return status
    except BrokenPipeError:  # the reader of our output stopped reading: not an error
        _quiet_stdout()
        return 0
    except KeyboardInterrupt:
        print(f"prodigy-sim {args.command}: interrupted", file=sys.stderr)
        return 130
    except (ProdigySimError, OSError) as exc:
        if isinstance(exc, OSError):  # a file named on the command line, e.g. an output
            where = f"{exc.filename}: " if exc.filename else ""
            message = f"{where}{exc.strerror or exc}"
        else:
            message = " ".join(str(exc).split("\n"))  # one line, whatever the message
        print(f"prodigy-sim {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
