"""``prodigy-sim parallel``: a model split over several sockets (tensor, pipeline and expert
parallelism), the system presets, and the 256 PB / 100-quadrillion-parameter claim.

Exit status: 0 done, 2 bad input (printed by the CLI driver).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from pydantic import ValidationError

from prodigy_sim.cli._args import positive_int, positive_int_list
from prodigy_sim.errors import config_error_from_validation


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "parallel",
        description="Time one decode step or prefill of a model split over the sockets of a "
                    "system preset: tensor parallelism (--tp, Megatron split: heads, KV heads, "
                    "MLP width and vocabulary divided), pipeline parallelism (--pp stages, "
                    "--microbatches) and expert parallelism (--ep). One socket's compute is a "
                    "simulation of its shard; all-reduce, all-gather, all-to-all and pipeline "
                    "sends are timed by their closed forms on the system's links (bandwidth "
                    "GB/s = 1e9 B/s, latency us). Several --tp values give a speed-up table "
                    "against one socket. --systems lists the system presets, --show NAME the "
                    "source of every field, --brain-scale the 256 PB claim.",
    )
    what = parser.add_argument_group("what to run")
    what.add_argument("--model", default="llama-2-70b", metavar="NAME|FILE",
                      help="model card (default: llama-2-70b)")
    what.add_argument("--phase", choices=("decode", "prefill"), default="decode",
                      help="decode one token or prefill --context tokens (default: decode)")
    what.add_argument("--batch", type=int, default=1, metavar="N",
                      help="sequences (default: 1)")
    what.add_argument("--context", type=int, default=2048, metavar="TOKENS",
                      help="KV-cache length (decode) or prompt length (prefill), tokens "
                           "(default: 2048)")
    what.add_argument("--weights", default="tai4", metavar="FMT",
                      help="linear-layer weight format (default: tai4)")
    what.add_argument("--sparsity", default="none", metavar="M:N",
                      help="structured sparsity (default: none)")
    how = parser.add_argument_group("system and split")
    how.add_argument("--system", default=None, metavar="PRESET",
                     help="system preset (see --systems; default: 4s-t16128, with "
                          "--brain-scale 256pb-t16128)")
    how.add_argument("--chip", default=None, metavar="PRESET",
                     help="chip preset of every socket (default: the system's)")
    how.add_argument("--tp", type=positive_int_list, default="1", metavar="N[,N...]",
                     help="tensor-parallel sockets; a list gives a speed-up table (default: 1)")
    how.add_argument("--pp", type=int, default=1, metavar="N", help="pipeline stages (default: 1)")
    how.add_argument("--ep", type=int, default=1, metavar="N",
                     help="expert-parallel groups, MoE models only (default: 1)")
    how.add_argument("--microbatches", type=int, default=1, metavar="N",
                     help="microbatches for the pipeline (default: 1)")
    how.add_argument("--allreduce", choices=("auto", "ring"), default="auto",
                     help="all-reduce algorithm: auto = fastest closed form per level, ring "
                          "(default: auto)")
    how.add_argument("--workers", type=positive_int, default=None, metavar="N",
                     help="processes that simulate the sockets' kernels in parallel (the same "
                          "results; 1: none; default: one per CPU this process may use, at most 8)")
    other = parser.add_argument_group("other reports")
    other.add_argument("--systems", action="store_true", help="list the system presets")
    other.add_argument("--show", metavar="PRESET", help="every field of a system preset with "
                                                        "its source")
    other.add_argument("--brain-scale", action="store_true",
                       help="the 256 PB / 100-quadrillion-parameter claim: sockets and one "
                            "decode step, for bfloat16, float8_e4m3fn, tai4 and tai2 weights")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    return parser


def _systems(as_json: bool) -> int:
    from prodigy_sim.hardware import load_system, system_preset_description, system_preset_names

    rows: list[dict[str, Any]] = []
    for name in system_preset_names():
        s = load_system(name)
        rows.append({"name": name, "description": system_preset_description(name),
                     "chip": s.chip.name, **s.derived()})
    if as_json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'system':<14} {'sockets':>7} {'DDR PB':>8} {'link GB/s':>9} {'NIC GB/s':>8}  about")
    for r in rows:
        print(f"{r['name']:<14} {r['sockets']:>7} {r['capacity_bytes'] / 1e15:>8.3f} "
              f"{r['socket_link_bandwidth_bytes_per_s'] / 1e9:>9.2f} "
              f"{r['nic_bandwidth_bytes_per_s'] / 1e9:>8.2f}  {r['description']}")
    return 0


def _show(name: str, as_json: bool) -> int:
    from prodigy_sim.hardware import load_system, system_preset_sources

    system = load_system(name)
    sources = system_preset_sources(name)
    values = system.model_dump(mode="json")
    values["chip"] = system.chip.name
    if as_json:
        print(json.dumps({"name": name, "config": values, "sources": sources,
                          "derived": system.derived()}, indent=2))
        return 0
    width = max(map(len, values))
    for key, value in values.items():
        print(f"{key.ljust(width)}  {str(value):<16}  # {sources.get(key, '')}")
    print("\n# derived")
    for key, value in system.derived().items():
        print(f"{key.ljust(38)}  {value:.6g}" if isinstance(value, float)
              else f"{key.ljust(38)}  {value}")
    return 0


def _brain(args: argparse.Namespace) -> int:
    from prodigy_sim.parallel import brain_scale

    cases = [brain_scale(fmt, system=args.system or "256pb-t16128", context=args.context)
             for fmt in ("bfloat16", "float8_e4m3fn", "tai4", "tai2")]
    if args.json:
        print(json.dumps([c.to_dict() for c in cases], indent=2))
        return 0
    c0 = cases[0]
    print(f"model: {c0.parameters:.4e} parameters (LLaMA-2-70B scaled: hidden {c0.hidden_size}, "
          f"{c0.layers} layers of {c0.layer_parameters:.3e} parameters); one sequence, context "
          f"{c0.context}; sockets of {c0.socket_capacity_bytes / 1e12:.3f} TB; 256 PB = "
          f"{c0.sockets_for_claim} sockets")
    print(f"{'weights':<14} {'weights PB':>10} {'KV TB':>7} {'in 256 PB':>9} {'sockets':>8} "
          f"{'<= system':>9} {'shard TB':>8} "
          f"{'nodes':>6} {'layers/stage':>12} {'layer s':>8} {'step s':>9} {'step h':>7} "
          f"{'pipelined tok/s':>15}")
    for c in cases:
        print(f"{c.weights:<14} {c.weight_bytes / 1e15:>10.2f} {c.kv_cache_bytes / 1e12:>7.2f} "
              f"{'yes' if c.fits_claim else 'no':>9} {c.sockets_needed:>8} "
              f"{'yes' if c.fits_system else 'no':>9} {c.layer_shard_bytes / 1e12:>8.2f} "
              f"{c.nodes:>6} "
              f"{c.layers_per_stage:>12} {c.layer_seconds:>8.3f} {c.step_seconds:>9.0f} "
              f"{c.step_seconds / 3600:>7.2f} {c.pipelined_tokens_per_s:>15.4f}")
    print(f"method: tensor parallel over the {c0.tp} sockets of a node, layers pipelined over "
          "nodes; per socket and layer the roofline max(FLOPs / peak, bytes / DDR bandwidth) of "
          f"its weight and KV shards ({c0.layer_bound}-bound), + 2 all-reduces per layer "
          f"({c0.allreduce_algorithm}, {c0.allreduce_seconds * 1e6:.1f} us) and a network send "
          f"per stage ({c0.send_seconds * 1e6:.1f} us); one sequence: stages in turn; "
          "pipelined: one sequence per stage in flight")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.systems:
        return _systems(args.json)
    if args.show:
        return _show(args.show, args.json)
    if args.brain_scale:
        return _brain(args)
    from prodigy_sim.cli._scenario_args import resolve_model
    from prodigy_sim.hardware import load_system
    from prodigy_sim.models import Scenario, check_scenario, load_card
    from prodigy_sim.parallel import ParallelPlan, simulate_parallel
    from prodigy_sim.simulation import RunCache, default_workers

    system = load_system(args.system or "4s-t16128", chip=args.chip)
    tps = args.tp
    model = resolve_model(args.model)
    length = "context_length" if args.phase == "decode" else "sequence_length"
    try:
        scenario = Scenario(model=model, phase=args.phase, batch=args.batch,
                            sparsity=args.sparsity, formats={"weights": args.weights},
                            **{length: args.context})
        plans = [ParallelPlan(tp=tp, pp=args.pp, ep=args.ep, microbatches=args.microbatches,
                              allreduce=args.allreduce) for tp in tps]
    except ValidationError as err:
        raise config_error_from_validation(err, source="command line") from None
    check_scenario(scenario, load_card(model), source="command line")
    workers = default_workers() if args.workers is None else args.workers
    with RunCache(workers) as cache:        # (the one-socket baseline's runs are reused)
        reports = [simulate_parallel(scenario, p, system, cache=cache) for p in plans]
        if len(reports) == 1:
            r = reports[0]
            print(json.dumps(r.to_dict(), indent=2) if args.json else r.table())
            return 0
        base = simulate_parallel(scenario, ParallelPlan(pp=args.pp, ep=args.ep,
                                                        microbatches=args.microbatches),
                                 system, cache=cache)
    rows = [{"tp": p.tp, "sockets": r.sockets, "step_s": r.step_s, "compute_s": r.compute_s,
             "communication_s": r.communication_s, "speedup": base.step_s / r.step_s,
             "compute_speedup": base.step_s / r.compute_s,
             "footprint_bytes_per_socket": r.footprint_bytes_per_socket}
            for p, r in zip(plans, reports, strict=True)]
    if args.json:
        print(json.dumps({"system": system.name, "baseline_step_s": base.step_s, "rows": rows,
                          "reports": [r.to_dict() for r in reports]}, indent=2))
        return 0
    print(f"{model} {args.phase}, batch {args.batch}, context {args.context}, {args.weights} on "
          f"{system.name} (pp={args.pp}, ep={args.ep}); one socket: "
          f"{base.step_s * 1e3:.3f} ms")
    print(f"{'tp':>3} {'step ms':>9} {'compute ms':>10} {'comm ms':>8} {'speed-up':>8} "
          f"{'linear':>6} {'without comm':>12} {'GB/socket':>9}")
    for row in rows:
        print(f"{row['tp']:>3} {row['step_s'] * 1e3:>9.3f} {row['compute_s'] * 1e3:>10.3f} "
              f"{row['communication_s'] * 1e3:>8.3f} {row['speedup']:>8.3f} {row['tp']:>6} "
              f"{row['compute_speedup']:>12.3f} "
              f"{row['footprint_bytes_per_socket'] / 1e9:>9.3f}")
    for r in reports:
        for c in r.collectives:
            if c["op"] == "all-reduce":
                print(f"tp={r.plan['tp']}: {c['count']} all-reduces of {c['nbytes']:,} bytes, "
                      f"{c['algorithm']}, {c['seconds'] * 1e6:.2f} us each")
    return 0
