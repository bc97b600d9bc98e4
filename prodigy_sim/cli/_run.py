"""``prodigy-sim run``: simulate a program on a chip configuration and report its timing.

Exit status: 0 on success, 2 on a bad program, configuration or deadlock, or a program that runs
past its step budget (printed by the CLI driver). A warning on stderr names the instructions of
the program that no core executed (for example the loop body of an SPMD program whose per-core
share of the work rounds down to zero on this many cores).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from prodigy_sim.cli import deferred
from prodigy_sim.cli._args import non_negative_int, positive_int
from prodigy_sim.cli._hardware_args import add_hardware_args, hardware_from_args


def _default_dma() -> int:
    from prodigy_sim.timing import DEFAULT_DMA_OUTSTANDING

    return DEFAULT_DMA_OUTSTANDING


def _default_steps() -> int:
    from prodigy_sim.isa import DEFAULT_MAX_STEPS

    return DEFAULT_MAX_STEPS


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "run",
        description="Simulate an assembly program with the discrete-event timing model and print "
                    "the total time (core cycles and seconds), unit utilization (busy cycles / "
                    "total cycles), issue-stall cycles by reason, DDR traffic (bytes, GB/s = 1e9 "
                    "B/s) and instruction counts.",
    )
    parser.add_argument("program", metavar="PROGRAM.s", help="program text (isa/README.md)")
    add_hardware_args(parser)
    parser.add_argument("--config", metavar="FILE", help="same as --hw FILE")
    parser.add_argument("--cores", type=positive_int, metavar="N",
                        help="cores running the program (default: all cores of the chip)")
    parser.add_argument("--dma-outstanding", type=positive_int, default=None, metavar="N",
                        help=deferred(lambda: "DMA transfers in flight per core (default "
                                              f"{_default_dma()})"))
    parser.add_argument("--max-steps", type=non_negative_int, default=None, metavar="N",
                        help=deferred(lambda: "stop with an error once the cores have executed "
                                              "N instructions together, 0 = no limit (default "
                                              f"{_default_steps():,})"))
    parser.add_argument("--trace-out", metavar="FILE",
                        help="write a Chrome trace-event JSON timeline (open in Perfetto)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    return parser


def _not_executed(program, result) -> str | None:
    """A warning naming the opcodes of ``program`` that no core executed, or None."""
    missing = sorted({ins.opcode for ins in program.instructions} - set(result.instructions))
    if not missing:
        return None
    lines = sorted({ins.source_line for ins in program.instructions
                    if ins.opcode in missing and ins.source_line})
    where = f" (line{'s' if len(lines) > 1 else ''} {', '.join(map(str, lines))})" if lines \
        else ""
    return (f"no core executed any {', '.join(missing)} instruction{where} on "
            f"{result.ncores} cores: is the work per core zero at this core count?")


def run(args: argparse.Namespace) -> int:
    from prodigy_sim.errors import ConfigError, ProgramError, SimulationError
    from prodigy_sim.isa import DEFAULT_MAX_STEPS, assemble_file
    from prodigy_sim.timing import DEFAULT_DMA_OUTSTANDING, ChromeTraceRecorder, simulate

    path = Path(args.program)
    program = assemble_file(path)
    if args.config:
        if args.hw is not None:
            raise ConfigError("give --hw or --config, not both")
        args.hw = args.config
    config, changes = hardware_from_args(args)
    recorder = ChromeTraceRecorder() if args.trace_out else None
    steps = DEFAULT_MAX_STEPS if args.max_steps is None else (args.max_steps or None)
    try:
        result = simulate(program, config, cores=args.cores, recorder=recorder,
                          dma_outstanding=args.dma_outstanding or DEFAULT_DMA_OUTSTANDING,
                          max_steps=steps)
    except (ProgramError, SimulationError) as exc:  # name the program
        raise type(exc)(f"{path}: {exc}") from None
    if recorder is not None:
        recorder.write(args.trace_out)
    warning = _not_executed(program, result)
    if warning:
        print(f"prodigy-sim run: warning: {path}: {warning}", file=sys.stderr)
    if args.json:
        print(json.dumps({**result.to_dict(), "hardware": changes.to_dict()}, indent=2))
        return 0
    cores = f"{result.ncores} core{'s' if result.ncores != 1 else ''}"
    print(f"{path.name} on {cores} of {config.name}: {result.cycles} cycles, "
          f"{result.seconds * 1e6:.3f} us")
    if changes.changed:
        print(f"hardware: {changes.describe()}")
    print("utilization: " + ", ".join(f"{u} {v:.1%}" for u, v in result.utilization.items()))
    print("stall cycles: " + ", ".join(f"{r} {v}" for r, v in result.stall_cycles.items()))
    print(f"DDR: {result.dram_bytes} bytes, {result.dram_bandwidth_bytes_per_s / 1e9:.1f} GB/s")
    print("instructions: " + ", ".join(f"{k} {v}" for k, v in result.instructions.items()))
    return 0
