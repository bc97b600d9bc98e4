"""``prodigy-sim footprint``: bytes of a model's weights, KV cache and activations in a scenario,
and whether they fit the DDR of a hardware preset.

Exit status: 0 if it fits, 1 if it does not, 2 on bad input (printed by the CLI driver).
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from prodigy_sim.cli import LazyChoices, deferred
from prodigy_sim.cli._args import non_negative_int, positive_float, positive_int
from prodigy_sim.cli._hardware_args import add_hardware_args, hardware_from_args
from prodigy_sim.cli._scenario_args import DEFAULT_MODEL, scenario_from_flags
from prodigy_sim.errors import ConfigError

if TYPE_CHECKING:
    from prodigy_sim.models import Scenario


def _epilog() -> str:
    from prodigy_sim.models import card_names, scenario_names

    return (f"Model cards: {', '.join(card_names())}. Scenarios: "
            f"{', '.join(scenario_names()) or '(none)'}.")


def _scale_kinds() -> list[str]:
    from prodigy_sim.numerics import ScaleKind

    return [k.value for k in ScaleKind]

_FMT_HELP = ("a format name from 'prodigy-sim formats' (tai4, tai2, float8_e4m3fn, float4_e2m1fn, "
             "int4, bfloat16, float32, ...) or a format file (.yaml/.json)")


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "footprint",
        description="Count the bytes of a model's weights by tensor class (element codes, block "
                    "scales and n:m sparsity masks separately, exactly), of its KV cache and of "
                    "its peak activations (one layer for the whole batch), and compare the total "
                    "with the DDR capacity of a hardware preset. Sizes are printed in GB = 1e9 "
                    "bytes (JSON and CSV give bytes); bits/w = stored bits per parameter. "
                    "Exit status: 0 fits, 1 does not fit, 2 bad input.",
        epilog=deferred(_epilog),
    )
    src = parser.add_argument_group("what to count")
    src.add_argument("--model", metavar="NAME|FILE",
                     help=f"model card name, alias or card YAML file (default: {DEFAULT_MODEL})")
    src.add_argument("--scenario", metavar="NAME|FILE",
                     help="a scenario (built-in name or YAML file) instead of the flags below")
    src.add_argument("--phase", choices=("prefill", "decode"), default=None,
                     help="prefill: a prompt of --context tokens; decode: one new token with "
                          "--context tokens in the KV cache (default: decode, prefill for "
                          "encoder-only models)")
    src.add_argument("--batch", type=positive_int, default=1, metavar="N",
                     help="sequences processed together (default: 1)")
    src.add_argument("--context", type=positive_int, default=None, metavar="TOKENS",
                     help="tokens per sequence: prompt length (prefill) or KV-cache length "
                          "(decode) (default: 2048, or 128 for encoder-only models)")
    fmt = parser.add_argument_group("number formats")
    fmt.add_argument("--weights", default="tai4", metavar="FMT",
                     help=f"linear-layer weights: {_FMT_HELP} (default: tai4)")
    fmt.add_argument("--block", type=non_negative_int, default=32, metavar="ELEMENTS",
                     help="scale block along the reduction axis, in elements; 0 = one scale per "
                          "row (default: 32)")
    fmt.add_argument("--scale", choices=LazyChoices(_scale_kinds),
                     help="scale kind of the weights (default: e8m0 for <= 8-bit formats, none "
                          "for wider)")
    fmt.add_argument("--sparsity", default="none", metavar="M:N",
                     help="structured sparsity of the linear layers, e.g. 8:4 = keep 4 of every "
                          "8 (default: none)")
    fmt.add_argument("--embeddings", default="float8_e4m3fn", metavar="FMT",
                     help="embedding tables, MX block 32 if <= 8 bits (default: float8_e4m3fn)")
    fmt.add_argument("--head", default="float8_e4m3fn", metavar="FMT",
                     help="LM head / pooler, MX block 32 if <= 8 bits (default: float8_e4m3fn)")
    fmt.add_argument("--norms", default="float32", metavar="FMT",
                     help="norms, biases and MoE routers (default: float32)")
    fmt.add_argument("--activations", default="float8_e4m3fn", metavar="FMT",
                     help="activations (default: float8_e4m3fn)")
    fmt.add_argument("--kv-cache", default="float8_e4m3fn", metavar="FMT",
                     help="KV cache, e.g. float8_e4m3fn or bfloat16 (default: float8_e4m3fn)")
    hw = parser.add_argument_group("hardware and output")
    add_hardware_args(hw, default_help="default: the scenario's preset; its DDR capacity "
                                       "(memory.capacity_bytes) is the limit")
    hw.add_argument("--capacity-gb", type=positive_float, default=None, metavar="GB",
                    help="override the DDR capacity, in GB = 1e9 bytes (e.g. 2000 for a 2 TB "
                         "socket; the same as --set memory.capacity_bytes=2e12 but not recorded "
                         "as a hardware change)")
    out = hw.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print JSON (bytes) instead of a table")
    out.add_argument("--csv", action="store_true", help="print CSV (bytes) instead of a table")
    return parser


def _scenario_from_flags(args: argparse.Namespace) -> Scenario:
    return scenario_from_flags(args, {
        "weights": {"format": args.weights, "block": args.block or None, "scale": args.scale},
        "embedding": args.embeddings,
        "head": args.head,
        "norm": args.norms,
        "router": args.norms,
        "activations": args.activations,
        "kv_cache": args.kv_cache,
    })


def run(args: argparse.Namespace) -> int:
    from prodigy_sim.models import footprint_report, load_scenario

    if args.scenario:
        if args.model:
            raise ConfigError("give either --scenario or --model, not both")
        scenario = load_scenario(args.scenario)
    else:
        scenario = _scenario_from_flags(args)
    capacity = None
    if args.capacity_gb is not None:
        if not 0 < args.capacity_gb <= 1e9:
            raise ConfigError(f"'--capacity-gb' must be > 0 and at most 1e9 GB (got "
                              f"{args.capacity_gb})")
        capacity = int(args.capacity_gb * 1e9)
    config, _ = hardware_from_args(args, default=scenario.hardware)
    report = footprint_report(scenario.card(), scenario, hardware=config,
                              capacity_bytes=capacity)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    elif args.csv:
        print(report.to_csv(), end="")
    else:
        print(report.table())
    return 0 if report.fits else 1

