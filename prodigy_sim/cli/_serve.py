"""``prodigy-sim serve``: a request trace through continuous batching on one socket, with step
times from the simulator; latency percentiles, throughput and KV-cache occupancy.

Exit status: 0 done, 2 bad input (printed by the CLI driver).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from prodigy_sim.cli._args import positive_float, positive_float_list
from prodigy_sim.errors import ConfigError, config_error_from_validation

_FLAGS = {name: "--" + name.replace("_", "-") for name in (
    "weights", "kv_cache", "max_batch", "max_prefill_tokens", "chunk_tokens", "block_tokens",
    "kv_blocks")}
"""Fields of Formats and EngineConfig given on the command line -> their flag."""


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "serve",
        description="Serve a request trace on one Prodigy socket: continuous batching "
                    "(iteration-level scheduling), a paged KV cache bounded by the DDR capacity "
                    "left after weights and activations (blocks of --block-tokens tokens; "
                    "preemption by recompute), optional chunked prefill. Step times come from "
                    "the simulator (every decode batch size simulated, contexts interpolated, "
                    "prompt tokens padded to a power of two; see docs/serving.md), simulated "
                    "once per grid point. Prints time to first token, time per output token and "
                    "end-to-end latency (p50/p90/p99, ms), throughput (output tokens/s, "
                    "requests/s) and the peak KV occupancy. Defaults: LLaMA-2-7B, tai4, 1000 "
                    "Poisson requests at 2 requests/s.",
    )
    what = parser.add_argument_group("model and hardware")
    what.add_argument("--model", default="llama-2-7b", metavar="NAME|FILE",
                      help="decoder model card (default: llama-2-7b)")
    what.add_argument("--hw", default=None, metavar="PRESET",
                      help="hardware preset of the socket (default: prodigy-t16128)")
    what.add_argument("--weights", default="tai4", metavar="FMT",
                      help="linear-layer weight format (default: tai4)")
    what.add_argument("--sparsity", default="none", metavar="M:N",
                      help="structured sparsity of the linear layers (default: none)")
    what.add_argument("--kv-cache", default="float8_e4m3fn", metavar="FMT",
                      help="KV cache format (default: float8_e4m3fn)")
    trace = parser.add_argument_group("requests")
    trace.add_argument("--trace", metavar="FILE",
                       help="CSV or JSON trace (arrival_s in seconds, prompt_tokens, "
                            "output_tokens) instead of a generated one")
    trace.add_argument("--requests", type=int, default=1000, metavar="N",
                       help="generated requests, at most 100,000 (default: 1000)")
    trace.add_argument("--rate", type=positive_float, default=2.0, metavar="REQ_PER_S",
                       help="Poisson arrival rate, requests per second (default: 2)")
    trace.add_argument("--rates", type=positive_float_list, metavar="R1,R2,...",
                       help="sweep these arrival rates (requests/s): one trace each, latency "
                            "against load")
    trace.add_argument("--prompt", default="lognormal:512,0.8,2048", metavar="DIST",
                       help="prompt length in tokens: fixed:N, uniform:LOW,HIGH or "
                            "lognormal:MEAN,SIGMA[,MAX] (default: lognormal:512,0.8,2048)")
    trace.add_argument("--output", default="lognormal:128,0.8,1024", metavar="DIST",
                       help="output length in tokens, as --prompt (default: "
                            "lognormal:128,0.8,1024)")
    trace.add_argument("--seed", type=int, default=0, metavar="N",
                       help="seed of the generated trace (default: 0)")
    trace.add_argument("--save-trace", metavar="FILE", help="write the generated trace (CSV or "
                                                             ".json)")
    eng = parser.add_argument_group("engine")
    eng.add_argument("--max-batch", type=int, default=64, metavar="N",
                     help="most sequences running at once (default: 64)")
    eng.add_argument("--max-prefill-tokens", type=int, default=2048, metavar="TOKENS",
                     help="prompt tokens per prefill step without chunked prefill; a longer "
                          "prompt runs alone (default: 2048)")
    eng.add_argument("--chunk-tokens", type=int, default=None, metavar="TOKENS",
                     help="chunked prefill with this token budget per step (default: off)")
    eng.add_argument("--block-tokens", type=int, default=16, metavar="TOKENS",
                     help="tokens per KV-cache block (default: 16)")
    eng.add_argument("--capacity-gb", type=positive_float, default=None, metavar="GB",
                     help="DDR capacity in GB = 1e9 bytes (default: the preset's); the KV cache "
                          "gets what weights and activations leave")
    eng.add_argument("--kv-blocks", type=int, default=None, metavar="N",
                     help="KV-cache blocks, instead of deriving them from the capacity")
    out = parser.add_argument_group("output")
    out.add_argument("--step-table", metavar="FILE",
                     help="step-time table (JSON): read if it exists, written after the run, so "
                          "later runs skip the simulations")
    out.add_argument("--json", action="store_true", help="print JSON (seconds) instead of a "
                                                         "table")
    out.add_argument("--csv", metavar="FILE", help="write one row per request (seconds)")
    out.add_argument("--plot", metavar="DIR", help="write timeline (and latency_vs_load for "
                                                   "--rates) plots, PNG and SVG, into DIR")
    out.add_argument("--quiet", action="store_true", help="no progress bar")
    out.add_argument("--workers", type=int, default=2, metavar="N",
                     help="worker processes that simulate step-time points (default 2; 1: "
                          "serially; the same times either way)")
    return parser


def run(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from prodigy_sim.cli._scenario_args import resolve_model
    from prodigy_sim.models import Formats
    from prodigy_sim.serving import (
        EngineConfig,
        SimulatedStepTimes,
        engine_kv_budget,
        load_trace,
        poisson_trace,
        simulate_serving,
        write_serving_plots,
        write_trace,
    )

    for flag in ("requests", "max_batch", "max_prefill_tokens", "block_tokens"):
        if getattr(args, flag) < 1:
            raise ConfigError(f"'--{flag.replace('_', '-')}' must be >= 1 "
                              f"(got {getattr(args, flag)})")
    if args.seed < 0:
        raise ConfigError(f"'--seed' must be >= 0 (got {args.seed})")
    model = resolve_model(args.model)
    try:
        formats = Formats(weights=args.weights, kv_cache=args.kv_cache)
        engine = EngineConfig(max_batch=args.max_batch, max_prefill_tokens=args.max_prefill_tokens,
                              chunk_tokens=args.chunk_tokens, block_tokens=args.block_tokens,
                              kv_blocks=args.kv_blocks)
    except ValidationError as err:
        raise config_error_from_validation(err, source="command line", names=_FLAGS) from None
    rates = args.rates if args.rates is not None else [args.rate]
    if args.trace:
        if args.rates is not None:
            raise ConfigError("give either --trace or --rates, not both")
        traces = [load_trace(args.trace)]
    else:
        traces = [poisson_trace(args.requests, r, args.prompt, args.output, args.seed)
                  for r in rates]
    if args.save_trace:
        write_trace(traces[-1], args.save_trace)
    show = not args.quiet and sys.stderr.isatty()
    sims = None

    def on_simulate(kind: str, batch: int, length: int, seconds: float) -> None:
        nonlocal sims
        if show:
            from tqdm import tqdm

            if sims is None:
                sims = tqdm(unit="sim", file=sys.stderr, desc="step times", leave=False)
            sims.update(1)

    steps = SimulatedStepTimes(model, formats=formats, sparsity=args.sparsity, hardware=args.hw,
                               max_batch=args.max_batch, on_simulate=on_simulate,
                               workers=args.workers)
    table = Path(args.step_table) if args.step_table else None
    if table is not None and table.exists():
        steps.load(table)
    if engine.kv_blocks is None:
        budget = engine_kv_budget(model, engine, formats=formats, sparsity=args.sparsity,
                                  config=steps.config,
                                  capacity_bytes=None if args.capacity_gb is None
                                  else int(args.capacity_gb * 1e9))
        engine = engine.model_copy(update={"kv_blocks": budget.blocks})
    bar = None
    if show:
        from tqdm import tqdm

        bar = tqdm(total=sum(len(t) for t in traces), unit="req", file=sys.stderr,
                   desc="serve", leave=False)
    try:
        results = [simulate_serving(t, steps, engine,
                                    progress=bar.update if bar is not None else None)
                   for t in traces]
    finally:
        steps.close()
        for b in (bar, sims):
            if b is not None:
                b.close()
    if table is not None:
        steps.save(table)
    result = results[-1]
    if args.csv:
        Path(args.csv).write_text(result.to_csv())
    if args.plot:
        write_serving_plots(args.plot, result, (rates, results) if len(results) > 1 else None)
    if args.json:
        payload = result.to_dict()
        payload["model"] = model
        payload["step_time_points"] = steps.table()
        if len(results) > 1:
            payload["sweep"] = [{"rate_per_s": r, **res.summary()}
                                for r, res in zip(rates, results, strict=True)]
        print(json.dumps(payload, indent=2))
        return 0
    head = (f"{model} on {steps.config.name}, weights {args.weights}, KV {args.kv_cache}; "
            f"max batch {engine.max_batch}, "
            + (f"chunked prefill {engine.chunk_tokens} tokens/step" if engine.chunk_tokens
               else f"prefill up to {engine.max_prefill_tokens} tokens/step")
            + f"; {steps.simulations} step-time points simulated or loaded")
    print(head)
    if len(results) > 1:
        print(f"{'rate req/s':>10} {'req/s':>8} {'tok/s':>8} {'TTFT p50':>9} {'p90':>9} "
              f"{'p99':>9} {'TPOT p50':>9} {'p90':>8} {'p99':>8} {'E2E p50':>9} {'p99':>9}  ms")
        for r, res in zip(rates, results, strict=True):
            p = res.percentiles()
            print(f"{r:>10.3g} {res.requests_per_s:>8.3f} {res.output_tokens_per_s:>8.1f} "
                  + " ".join(f"{p['ttft_s'][q] * 1e3:>9.1f}" for q in ("p50", "p90", "p99"))
                  + " " + " ".join(f"{p['tpot_s'][q] * 1e3:>8.2f}"
                                   for q in ("p50", "p90", "p99"))
                  + f" {p['e2e_s']['p50'] * 1e3:>9.1f} {p['e2e_s']['p99'] * 1e3:>9.1f}")
        print(f"\nlast rate ({rates[-1]:g} requests/s):")
    print(result.table())
    return 0
