"""``prodigy-sim simulate``: lower a model to per-core programs, simulate one pass (a decode step
or a prefill) with the timing model, and report time, tokens/s, FLOPs, bytes, utilization,
footprint and the roofline bound.

With no flags it runs the default scenario: LLaMA-2-7B decode, batch 1, context 2048, tai4
weights, the default hardware preset. Exit status: 0 done, 2 bad input (printed by the driver).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from prodigy_sim.cli import deferred
from prodigy_sim.cli._args import non_negative_int, positive_int
from prodigy_sim.cli._hardware_args import add_hardware_args, hardware_from_args
from prodigy_sim.cli._scenario_args import ALIASES, scenario_from_flags
from prodigy_sim.errors import ConfigError
from prodigy_sim.timing import DDR_METHODS

if TYPE_CHECKING:
    from prodigy_sim.models import Scenario


def _card_names() -> list[str]:
    from prodigy_sim.models import card_names

    return card_names()


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "simulate",
        description="Lower every layer kind of a model to SPMD tile programs (one per layer "
                    "kind; identical layers are simulated once), run them through the timing "
                    "model and report per op and in total: simulated time (us/ms), tokens/s "
                    "(decode) or time to first token (prefill), FLOPs and FLOP/s, DDR bytes and "
                    "bytes/s, matrix and vector unit utilization (%), the memory footprint (GB = "
                    "1e9 bytes) and the roofline bound. Defaults: LLaMA-2-7B decode, batch 1, "
                    "context 2048, tai4 weights.",
        epilog=deferred(lambda: f"Models: {', '.join(_card_names())} (aliases: "
                                f"{', '.join(sorted(ALIASES))})."),
    )
    what = parser.add_argument_group("what to simulate")
    what.add_argument("--model", default=None, metavar="NAME|FILE",
                      help="model card name, alias (llama2-7b) or card YAML (default: llama-2-7b)")
    what.add_argument("--scenario", metavar="NAME|FILE",
                      help="a scenario (built-in name or YAML) instead of the flags of this group")
    what.add_argument("--phase", choices=("prefill", "decode"), default=None,
                      help="decode: one new token per sequence reading --context cached tokens; "
                           "prefill: a prompt of --context tokens (default: decode, prefill for "
                           "encoder-only models)")
    what.add_argument("--batch", type=positive_int, default=1, metavar="N",
                      help="sequences processed together (default: 1)")
    what.add_argument("--context", type=positive_int, default=None, metavar="TOKENS",
                      help="tokens per sequence: KV-cache length (decode, the new token "
                           "included) or prompt length (prefill) (default: 2048, or 128 for "
                           "encoder-only models)")
    what.add_argument("--weights", default="tai4", metavar="FMT|FILE",
                      help="linear-layer weight format: a name from 'prodigy-sim formats' (tai4, "
                           "tai2, float4_e2m1fn, float8_e4m3fn (alias fp8), int8, bfloat16, ...) "
                           "or a format file (.yaml/.json); MX block 32 with E8M0 scales for <= 8 "
                           "bits (default: tai4)")
    what.add_argument("--sparsity", default="none", metavar="M:N",
                      help="structured sparsity of the linear layers: none or 8:4 (keep 4 of "
                           "every 8) (default: none)")
    what.add_argument("--kv-cache", default="float8_e4m3fn", metavar="FMT",
                      help="KV cache format, float8_e4m3fn or float8_e5m2 (default: "
                           "float8_e4m3fn)")
    what.add_argument("--routing", default=None, metavar="MODEL",
                      help="mixture-of-experts routing: uniform, zipf:S (expert i picked in "
                           "proportion to i^-S) or trace:FILE (YAML/JSON with 'trace': a list of "
                           "expert ids per token) (default: uniform)")
    what.add_argument("--capacity-factor", default=None, metavar="CF",
                      help="MoE expert buffer rows = ceil(CF x tokens x top-k / experts), or "
                           "'none' for dropless (default: 1.25)")
    how = parser.add_argument_group("hardware and method")
    add_hardware_args(how, default_help="default: the scenario's preset")
    how.add_argument("--cores", type=positive_int, default=None, metavar="N",
                     help="cores the work is split over (default: all cores of the preset)")
    how.add_argument("--no-l3", action="store_true",
                     help="no shared virtual L3: every DMA goes to DDR (default: the on-chip "
                          "memory the cores do not use serves as a shared L3)")
    how.add_argument("--steady-units", type=non_negative_int, default=2, metavar="N",
                     help="per-core units simulated before extrapolating longer unit loops; "
                          "0 = simulate every unit (default: 2)")
    how.add_argument("--mapping-candidates", type=positive_int, default=1, metavar="N",
                     help="simulate each linear layer's N cheapest mappings by the mapper's "
                          "closed-form costs and keep the fastest (a search by simulation: "
                          "about N times the linear layers' simulation time) (default: 1, the "
                          "mapper's choice)")
    how.add_argument("--check-batching", action="store_true",
                     help="check each op's DDR batching against one DDR5 batch per controller "
                          "(a second run of each op with every DDR request logged: about 2-3x "
                          "the simulation time); the report gives each op's drain difference")
    how.add_argument("--ddr", choices=DDR_METHODS, default="batched",
                     help="how DMA requests reach the DDR5 model: 'batched' (the requests "
                          "issued until a core waits are simulated together on fresh "
                          "subchannels behind a seam rule) or 'persistent' (one DDR5 run per "
                          "subchannel for the whole op: no seam; completions speculated at "
                          "each wait; about 1.2-2x the simulation time) (default: batched)")
    how.add_argument("--workers", type=positive_int, default=None, metavar="N",
                     help="processes that simulate the kernels (and the candidate mappings "
                          "of --mapping-candidates) in parallel (the same results; 1: none; "
                          "default: one per CPU this process may use, at most 8)")
    out = parser.add_argument_group("output")
    fmt = out.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="print JSON (seconds, bytes, FLOPs) "
                                                         "instead of a table")
    out.add_argument("--csv", metavar="FILE", help="also write the per-op figures as CSV "
                                                   "('-' = stdout instead of the table)")
    out.add_argument("--plot", metavar="DIR", help="write roofline and per-layer time plots "
                                                   "(PNG and SVG) into DIR")
    out.add_argument("--trace-out", metavar="FILE",
                     help="write a Chrome/Perfetto trace-event JSON timeline of the step: a "
                          "track per core and unit (first layer of each stage), DDR channel "
                          "occupancy counters, a slice per kernel and layer, reused layers and "
                          "extrapolated unit loops marked (open in ui.perfetto.dev)")
    out.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def _scenario(args: argparse.Namespace) -> Scenario:
    from prodigy_sim.models import load_scenario

    if args.scenario:
        return load_scenario(args.scenario)
    from prodigy_sim.models import Routing

    extra = {}
    if args.routing is not None or args.capacity_factor is not None:
        extra["routing"] = Routing.from_spec(args.routing or "uniform", args.capacity_factor,
                                             source="command line: '--routing'")
    return scenario_from_flags(args, {"weights": args.weights, "kv_cache": args.kv_cache},
                               extra)


def run(args: argparse.Namespace) -> int:
    from prodigy_sim.reports import report_simulation, write_plots
    from prodigy_sim.simulation import (
        OpTrace,
        RunCache,
        default_workers,
        simulate,
        write_step_timeline,
    )
    from prodigy_sim.timing import compile_kernels, kernels_compiled

    scenario = _scenario(args)
    config, _ = hardware_from_args(args, default=scenario.hardware)
    if args.steady_units < 0:
        raise ConfigError(f"'--steady-units' must be >= 0 (got {args.steady_units})")
    if not kernels_compiled():
        if not args.quiet:
            print("prodigy-sim simulate: compiling the DDR5 and timing models' kernels (first "
                  "run after installing only; 15-40 s)", file=sys.stderr)
        compile_kernels()
    bar = None
    show = not args.quiet and sys.stderr.isatty()

    def total(n: int) -> None:
        nonlocal bar
        if show:
            from tqdm import tqdm

            bar = tqdm(total=n, unit="kernel", file=sys.stderr, desc="simulate", leave=False)

    def progress(n: int) -> None:
        if bar is not None:
            bar.update(n)

    workers = default_workers() if args.workers is None else args.workers
    cache = RunCache(workers=workers) if workers > 1 else None
    try:
        traces: list[OpTrace] | None = [] if args.trace_out else None
        sim = simulate(scenario, config, cores=args.cores, l3=not args.no_l3,
                       steady_units=args.steady_units or None,
                       mapping_candidates=args.mapping_candidates, progress=progress,
                       total=total, trace=traces, cache=cache,
                       check_batching=args.check_batching, ddr=args.ddr)
    finally:
        if bar is not None:
            bar.close()
        if cache is not None:
            cache.close()
    report = report_simulation(sim, config)
    if traces is not None:
        write_step_timeline(args.trace_out, sim, traces, config)
    if args.plot:
        write_plots(report, args.plot)
    if args.csv and args.csv != "-":
        Path(args.csv).write_text(report.to_csv())
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    elif args.csv == "-":
        print(report.to_csv(), end="")
    else:
        print(report.table())
    return 0
