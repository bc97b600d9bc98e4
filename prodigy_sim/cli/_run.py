"""``prodigy-sim run``: simulate a program on a chip configuration and report its timing.

Exit status: 0 on success, 2 on a bad program, configuration or deadlock (printed by the CLI
driver).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from prodigy_sim.cli._hardware_args import add_hardware_args, hardware_from_args
from prodigy_sim.errors import ConfigError
from prodigy_sim.isa import assemble
from prodigy_sim.timing import DEFAULT_DMA_OUTSTANDING, ChromeTraceRecorder, simulate


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "run",
        help="simulate a program (SPMD over N cores) and print its timing",
        description="Simulate an assembly program with the discrete-event timing model and print "
                    "the total time (core cycles and seconds), unit utilization (busy cycles / "
                    "total cycles), issue-stall cycles by reason, DDR traffic (bytes, GB/s = 1e9 "
                    "B/s) and instruction counts.",
    )
    parser.add_argument("program", metavar="PROGRAM.s", help="program text (isa/README.md)")
    add_hardware_args(parser)
    parser.add_argument("--config", metavar="FILE", help="same as --hw FILE")
    parser.add_argument("--cores", type=int, metavar="N",
                        help="cores running the program (default: all cores of the chip)")
    parser.add_argument("--dma-outstanding", type=int, default=DEFAULT_DMA_OUTSTANDING,
                        metavar="N", help="DMA transfers in flight per core (default "
                                          f"{DEFAULT_DMA_OUTSTANDING})")
    parser.add_argument("--trace-out", metavar="FILE",
                        help="write a Chrome trace-event JSON timeline (open in Perfetto)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    return parser


def run(args: argparse.Namespace) -> int:
    path = Path(args.program)
    program = assemble(path.read_text(encoding="utf-8"), file=path)
    if args.config:
        if args.hw is not None:
            raise ConfigError("give --hw or --config, not both")
        args.hw = args.config
    config, changes = hardware_from_args(args)
    recorder = ChromeTraceRecorder() if args.trace_out else None
    result = simulate(program, config, cores=args.cores, recorder=recorder,
                      dma_outstanding=args.dma_outstanding)
    if recorder is not None:
        recorder.write(args.trace_out)
    if args.json:
        print(json.dumps({**result.to_dict(), "hardware": changes.to_dict()}, indent=2))
        return 0
    print(f"{path.name} on {result.ncores} cores of {config.name}: {result.cycles} cycles, "
          f"{result.seconds * 1e6:.3f} us")
    if changes.changed:
        print(f"hardware: {changes.describe()}")
    print("utilization: " + ", ".join(f"{u} {v:.1%}" for u, v in result.utilization.items()))
    print("stall cycles: " + ", ".join(f"{r} {v}" for r, v in result.stall_cycles.items()))
    print(f"DDR: {result.dram_bytes} bytes, {result.dram_bandwidth_bytes_per_s / 1e9:.1f} GB/s")
    print("instructions: " + ", ".join(f"{k} {v}" for k, v in result.instructions.items()))
    return 0
