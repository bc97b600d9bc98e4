"""``prodigy-sim formats``: list number formats and their value sets."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from prodigy_sim.numerics import FormatSpec


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "formats",
        description="List the registered number formats (or formats loaded from files) with "
        "their layout, range, special codes and full value set (values are unscaled "
        "element values; block scales multiply them).",
    )
    p.add_argument("names", nargs="*", metavar="NAME",
                   help="formats to show (built-in names or .yaml/.json files); default: all")
    p.add_argument("--file", action="append", default=[], metavar="PATH",
                   help="also load a user format definition from a YAML or JSON file")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    return p


def _value_set(spec: FormatSpec) -> list[str] | None:
    """Every code's value as text; None for the wide formats (2^16 or 2^32 codes)."""
    import numpy as np

    if spec.wide:
        return None
    out = []
    for v in spec.values:
        if np.isnan(v):
            out.append("nan")
        elif np.isinf(v):
            out.append("inf" if v > 0 else "-inf")
        else:
            out.append(f"{v:g}" if v != 0 or not np.signbit(v) else "-0")
    return out


def run(args: argparse.Namespace) -> int:
    from prodigy_sim.numerics import builtin_formats, get_format, load_format

    loaded = {s.name: s for s in (load_format(f) for f in args.file)}
    named = ([loaded.get(n) or get_format(n) for n in args.names] if args.names
             else list(builtin_formats().values()))  # a name may be one of the files loaded
    specs = named + [s for s in loaded.values() if s.name not in args.names]
    if args.json:
        print(json.dumps([
            {**s.model_dump(), "values": _value_set(s), "max_finite": s.max_finite,
             "min_positive": s.min_positive} for s in specs
        ], indent=2))
        return 0
    for s in specs:
        print(f"{s.name}: {s.describe()}")
        if s.description:
            print(f"  {s.description}")
        vals = _value_set(s)
        if vals is None:
            print(f"  ({s.n_codes} codes: value table not listed)\n")
            continue
        per_line = 16
        for start in range(0, len(vals), per_line):
            chunk = vals[start:start + per_line]
            print(f"  {start:#04x}: " + " ".join(f"{v:>8}" for v in chunk))
        print()
    return 0
