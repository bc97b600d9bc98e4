"""The hardware flags shared by every command that simulates or sizes: ``--hw NAME|FILE`` and
repeated ``--set PATH=VALUE`` (see :func:`prodigy_sim.hardware.resolve_hardware`).

The hardware package is imported only when the flags are used or their help is printed."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from prodigy_sim.cli import deferred

if TYPE_CHECKING:
    from prodigy_sim.hardware import ChipConfig, HardwareChanges

__all__ = ["add_hardware_args", "hardware_from_args", "hardware_given"]


def _hw_help(default_help: str | None) -> str:
    from prodigy_sim.hardware import DEFAULT_PRESET, preset_names

    default = f"default: {DEFAULT_PRESET}" if default_help is None else default_help
    return (f"hardware: a preset ({', '.join(preset_names())}) or a YAML config file whose "
            f"'preset:' key names the base ({default})")


def add_hardware_args(parser: argparse.ArgumentParser | argparse._ArgumentGroup, *,
                      default_help: str | None = None) -> None:
    """Add ``--hw NAME|FILE`` (dest ``hw``, default None) and ``--set PATH=VALUE`` (dest ``set``,
    a list) to ``parser``; ``default_help`` replaces "default: <the default preset>" in the help
    of ``--hw``."""
    parser.add_argument(
        "--hw", metavar="NAME|FILE", default=None,
        help=deferred(lambda: _hw_help(default_help)))  # type: ignore[arg-type]  # _Parser resolves it
    parser.add_argument(
        "--set", metavar="PATH=VALUE", action="append", default=[], dest="set",
        help="override one hardware field by its dotted path, e.g. --set memory.channels=32, "
             "--set memory.dram.timing=6400 (a DDR5 speed, MT/s), --set "
             "core.matrix_unit.relative_throughput.tai4=2; units are in the field names "
             "(prodigy-sim presets --show NAME lists them); repeatable")


def hardware_given(args: argparse.Namespace) -> bool:
    """True if ``--hw`` or ``--set`` was given."""
    return args.hw is not None or bool(args.set)


def hardware_from_args(args: argparse.Namespace, *, default: str | None = None
                       ) -> tuple[ChipConfig, HardwareChanges]:
    """The configuration ``--hw`` and ``--set`` describe (``default``, else the default preset,
    when ``--hw`` is absent), and the record of the fields changed from its preset."""
    from prodigy_sim.hardware import DEFAULT_PRESET, resolve_hardware

    return resolve_hardware(args.hw, args.set, default=default or DEFAULT_PRESET)
