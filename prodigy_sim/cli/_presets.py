"""``prodigy-sim presets``: list the hardware presets, or show one configuration with its sources.

Exit status: 0 on success, 2 on a bad preset name or config file (printed by the CLI driver).
"""

from __future__ import annotations

import argparse
import json

from prodigy_sim.cli import deferred
from prodigy_sim.errors import ConfigError


def _default_preset() -> str:
    from prodigy_sim.hardware import DEFAULT_PRESET

    return DEFAULT_PRESET


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "presets",
        description="List the Prodigy hardware presets with their key figures: cores, clock (GHz), "
                    "peak FP8 matrix throughput dense and with 8:4 sparsity (PFLOPS = 1e15 FLOP/s; "
                    "a MAC is 2 FLOPs), peak DDR5 bandwidth (GB/s = 1e9 B/s) and DDR capacity "
                    "(TiB = 2^40 B). With --show, print every field of one configuration with its "
                    "unit and source (a public document, a derivation, or 'assumption'); with "
                    "--set, the fields changed from the preset are marked '*' with their preset "
                    "value.",
    )
    parser.add_argument("--show", metavar="NAME|FILE",
                        help="show every field of preset NAME (or of a YAML config file)")
    parser.add_argument("--config", metavar="FILE",
                        help=deferred(lambda: "show the configuration built from a YAML file "
                                              "(its 'preset:' key names the base, default "
                                              f"{_default_preset()}) instead of a preset"))
    parser.add_argument("--set", metavar="PATH=VALUE", action="append", default=[], dest="set",
                        help="override a field of the shown configuration by its dotted path, "
                             "e.g. --set memory.channels=32 (repeatable; see 'prodigy-sim "
                             "simulate --help')")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    return parser


def _list(as_json: bool) -> int:
    from prodigy_sim.hardware import DEFAULT_PRESET, load_preset, preset_names
    from prodigy_sim.hardware.report import key_figures

    rows = [key_figures(load_preset(name)) for name in preset_names()]
    if as_json:
        print(json.dumps(rows, indent=2))
        return 0
    head = ("preset", "cores", "clock GHz", "FP8 dense PF", "FP8 sparse PF", "DDR5", "DDR GB/s",
            "DDR TiB")
    table = [head] + [(
        r["name"] + (" (default)" if r["name"] == DEFAULT_PRESET else ""),
        str(r["cores"]),
        f"{r['frequency_hz'] / 1e9:g}",
        f"{r['peak_fp8_dense_flops'] / 1e15:.2f}",
        f"{r['peak_fp8_sparse_flops'] / 1e15:.2f}",
        f"{r['ddr_channels']} x {r['ddr_transfer_rate_mts']}",
        f"{r['peak_ddr_bandwidth_bytes_per_s'] / 1e9:.1f}",
        f"{r['ddr_capacity_bytes'] / 2**40:g}",
    ) for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(head))]
    for row in table:
        print("  ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                        for i, (cell, w) in enumerate(zip(row, widths, strict=True))))
    return 0


def _show(hw: str | None, sets: list[str], as_json: bool) -> int:
    from prodigy_sim.hardware import load_preset, resolve_hardware_with_sources
    from prodigy_sim.hardware.presets import flatten
    from prodigy_sim.hardware.report import field_rows, format_value

    config, changes, sources = resolve_hardware_with_sources(hw, sets)
    rows = field_rows(config, sources)
    derived = config.derived()
    if as_json:
        print(json.dumps({
            "name": config.name,
            "preset": changes.preset,
            "changes": changes.to_dict()["changes"],
            "config": config.model_dump(mode="json"),
            "sources": {path: source for path, _, _, source in rows},
            "derived": derived,
        }, indent=2))
        return 0
    base = flatten(load_preset(changes.preset).model_dump())
    now = flatten(config.model_dump())
    changed = {path for path, value in now.items() if path != "name" and base.get(path) != value}
    width = max(len(path) for path, *_ in rows)
    value_width = min(max(len(v) + len(u) + 1 for _, v, u, _ in rows), 40)
    print(f"# {config.name}")
    if changes.changed:
        print(f"# {changes.describe()}; changed fields are marked '*'")
    for path, value, unit, source in rows:
        shown = f"{value} {unit}".strip()
        mark = ("*" if path in changed else " ") if changes.changed else ""
        was = (f" (preset: {format_value(path, base[path]) if path in base else 'absent'})"
               if path in changed else "")
        print(f"{mark}{path.ljust(width)}  {shown.ljust(value_width)}  # {source}{was}")
    print("\n# derived")
    dwidth = max(len(k) for k in derived)
    for key, number in derived.items():
        text = f"{number:.6g}" if isinstance(number, float) else str(number)
        print(f"{key.ljust(dwidth)}  {text}")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.show is None and args.config is None and not args.set:
        return _list(args.json)
    if args.show is not None and args.config is not None:
        raise ConfigError("give --show NAME or --config FILE, not both")
    return _show(args.show or args.config, args.set, args.json)
