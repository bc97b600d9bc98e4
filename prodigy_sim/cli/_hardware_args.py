"""The hardware flags shared by every command that simulates or sizes: ``--hw NAME|FILE`` and
repeated ``--set PATH=VALUE`` (see :func:`prodigy_sim.hardware.resolve_hardware`)."""

from __future__ import annotations

import argparse

from prodigy_sim.hardware import (
    DEFAULT_PRESET,
    ChipConfig,
    HardwareChanges,
    preset_names,
    resolve_hardware,
)

__all__ = ["add_hardware_args", "hardware_from_args", "hardware_given"]


def add_hardware_args(parser: argparse.ArgumentParser | argparse._ArgumentGroup, *,
                      default_help: str = f"default: {DEFAULT_PRESET}") -> None:
    """Add ``--hw NAME|FILE`` (dest ``hw``, default None) and ``--set PATH=VALUE`` (dest ``set``,
    a list) to ``parser``."""
    parser.add_argument(
        "--hw", metavar="NAME|FILE", default=None,
        help=f"hardware: a preset ({', '.join(preset_names())}) or a YAML config file whose "
             f"'preset:' key names the base ({default_help})")
    parser.add_argument(
        "--set", metavar="PATH=VALUE", action="append", default=[], dest="set",
        help="override one hardware field by its dotted path, e.g. --set memory.channels=32, "
             "--set memory.dram.timing=6400 (a DDR5 speed, MT/s), --set "
             "core.matrix_unit.relative_throughput.tai4=2; units are in the field names "
             "(prodigy-sim presets --show NAME lists them); repeatable")


def hardware_given(args: argparse.Namespace) -> bool:
    """True if ``--hw`` or ``--set`` was given."""
    return args.hw is not None or bool(args.set)


def hardware_from_args(args: argparse.Namespace, *, default: str = DEFAULT_PRESET
                       ) -> tuple[ChipConfig, HardwareChanges]:
    """The configuration ``--hw`` and ``--set`` describe (``default`` when ``--hw`` is absent),
    and the record of the fields changed from its preset."""
    return resolve_hardware(args.hw, args.set, default=default)
