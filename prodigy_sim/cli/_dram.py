"""``prodigy-sim dram``: replay a memory trace through the DDR5 model alone (DRAM-only mode)."""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

from prodigy_sim.cli import LazyChoices, deferred
from prodigy_sim.cli._args import positive_int
from prodigy_sim.cli._hardware_args import add_hardware_args, hardware_from_args, hardware_given


def _speeds():
    from prodigy_sim.dram import SPEEDS_MTS

    return SPEEDS_MTS


def _orgs():
    from prodigy_sim.dram import ddr5_org_preset_names

    return ddr5_org_preset_names()


def _defaults() -> dict[str, Any]:
    """The calibration system (flags of the memory system alone, without --hw / --set)."""
    from prodigy_sim.dram import CALIBRATION_SPEED_MTS

    return {"speed": CALIBRATION_SPEED_MTS, "org": "DDR5_16Gb_x8", "channels": 1,
            "mapping": "RoBaRaCoCh", "scheduler": "FRFCFS", "read_queue": 32, "write_queue": 32}


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register the ``dram`` subcommand and its flags."""
    p = subparsers.add_parser(
        "dram",
        description=(
            "Replay a Ramulator-style trace ('LD 0x<addr>' / 'ST 0x<addr>', one 64-byte request "
            "per line) through the DDR5 memory-system model. Reports DRAM cycles, simulated time "
            "in ns, bandwidth in GB/s (1e9 B/s), mean read latency in DRAM cycles and ns, row "
            "hits / misses / conflicts and refreshes. The defaults of the flags below are the "
            "calibration system's (one 32-bit subchannel of DDR5-4800, 32-entry queues, "
            "FRFCFS), not a chip's: with --preset NAME (= --hw NAME) and/or --set, the memory "
            "system is the socket's DDR5 of that chip (all its 32-bit subchannels, its speed, "
            "devices, mapping and controller; prodigy-t16128: 16 channels of DDR5-7200, "
            "64-entry queues, row_hit_first) instead of the flags below."),
    )
    p.add_argument("--trace", required=True, metavar="FILE", help="trace file to replay")
    p.add_argument("--speed", type=int, choices=LazyChoices(_speeds), default=None,
                   help=deferred(lambda: f"DDR5 data rate in MT/s (default "
                                         f"{_defaults()['speed']}, the calibration system's; "
                                         "7200 is less certain)"))
    p.add_argument("--org", choices=LazyChoices(_orgs), default=None,
                   help="device organization preset (default DDR5_16Gb_x8)")
    p.add_argument("--channels", type=positive_int, default=None, metavar="N",
                   help="number of independent 32-bit subchannels, a power of two (default 1)")
    p.add_argument("--mapping", choices=("RoBaRaCoCh", "RoCoBaBgCh"), default=None,
                   help="address mapping, fields MSB->LSB (default RoBaRaCoCh)")
    p.add_argument("--scheduler", choices=("FRFCFS", "row_hit_first"), default=None,
                   help="FRFCFS: Ramulator 2's oldest-ready-first (default); row_hit_first: "
                        "classic FR-FCFS, ready row hits first, no PRE under an older hit")
    p.add_argument("--read-queue", type=positive_int, default=None, metavar="N",
                   help="read queue entries per channel (default 32)")
    p.add_argument("--write-queue", type=positive_int, default=None, metavar="N",
                   help="write queue entries per channel (default 32)")
    p.add_argument("--mode", choices=("saturate", "chain"), default="saturate",
                   help="saturate: one request offered per DRAM cycle; chain: one request "
                        "outstanding (unloaded latency)")
    add_hardware_args(p, default_help="default: none, the flags above describe the memory "
                                       "system")
    p.add_argument("--preset", dest="hw", metavar="NAME",
                   help="the memory system of a chip preset (same as --hw NAME)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    return p


def _fmt(value: float, spec: str) -> str:
    """``value`` formatted, or 'n/a' for the latency of a trace without reads (NaN)."""
    return "n/a" if math.isnan(value) else format(value, spec)


def _table(res) -> str:
    s, d = res.stats, res.drained
    cfg = res.config
    head = "until last accept" if res.mode == "saturate" else "until last completion"
    rows = [
        ("DRAM cycles", f"{s.cycles}", f"{d.cycles}"),
        ("simulated time (ns)", f"{s.time_ns:.1f}", f"{d.time_ns:.1f}"),
        ("bandwidth (GB/s)", f"{s.bandwidth_GBps:.3f}", f"{d.bandwidth_GBps:.3f}"),
        ("read bandwidth (GB/s)", f"{s.read_bandwidth_GBps:.3f}", f"{d.read_bandwidth_GBps:.3f}"),
        ("mean read latency (cycles)", _fmt(s.avg_read_latency_cycles, ".3f"),
         _fmt(d.avg_read_latency_cycles, ".3f")),
        ("mean read latency (ns)", _fmt(s.avg_read_latency_ns, ".3f"),
         _fmt(d.avg_read_latency_ns, ".3f")),
        ("row hits", f"{s.row_hits}", f"{d.row_hits}"),
        ("row misses", f"{s.row_misses}", f"{d.row_misses}"),
        ("row conflicts", f"{s.row_conflicts}", f"{d.row_conflicts}"),
        ("refreshes", f"{s.refreshes}", f"{d.refreshes}"),
    ]
    for ch, (a, b) in enumerate(zip(s.channel_bandwidth_GBps, d.channel_bandwidth_GBps,
                                    strict=True)):
        rows.append((f"channel {ch} bandwidth (GB/s)", f"{a:.3f}", f"{b:.3f}"))
    lines = [
        f"trace {res.trace}: {s.n_requests} requests ({s.n_reads} LD, {s.n_writes} ST), "
        f"mode {res.mode}",
        f"{cfg.timing.name} (tCK {cfg.timing.tck_ps} ps), {cfg.org.name}, {cfg.channels} x 32-bit "
        f"channel(s), {cfg.mapping}, peak {cfg.peak_bandwidth_bytes_per_s / 1e9:.3f} GB/s",
        "",
        f"{'':32s} {head:>22s} {'drained':>14s}",
    ]
    lines += [f"{k:32s} {a:>22s} {b:>14s}" for k, a, b in rows]
    return "\n".join(lines)


def _from_flags(args: argparse.Namespace):
    """The memory system of the flags (the calibration system's values for those not given)."""
    from pydantic import ValidationError

    from prodigy_sim.dram import ControllerConfig, memory_system_preset
    from prodigy_sim.errors import config_error_from_validation

    defaults = _defaults()
    flags = {k: v if getattr(args, k) is None else getattr(args, k) for k, v in defaults.items()}
    try:
        controller = ControllerConfig(scheduler=flags["scheduler"],
                                      read_queue_entries=flags["read_queue"],
                                      write_queue_entries=flags["write_queue"])
    except ValidationError as err:
        raise config_error_from_validation(err, source="controller") from None
    return memory_system_preset(speed=flags["speed"], org=flags["org"],
                                channels=flags["channels"], mapping=flags["mapping"],
                                controller=controller)


def run(args: argparse.Namespace) -> int:
    """Run the subcommand; package errors propagate to ``prodigy_sim.cli.main``."""
    from prodigy_sim.dram import compile_kernels, kernels_compiled, run_trace
    from prodigy_sim.errors import ConfigError

    hardware = None
    if hardware_given(args):
        given = [f"--{k.replace('_', '-')}" for k in _defaults() if getattr(args, k) is not None]
        if given:
            raise ConfigError(f"{', '.join(given)}: with --hw/--set the memory system is the "
                              "chip's; change it with --set memory.<field>=VALUE instead")
        chip, hardware = hardware_from_args(args)
        config = chip.memory.socket_memory_system()
    else:
        config = _from_flags(args)
    if not kernels_compiled():
        print("prodigy-sim dram: compiling the DDR5 model's kernels (first run after installing "
              "only; 15-40 s)", file=sys.stderr)
        compile_kernels()
    res = run_trace(args.trace, config, mode=args.mode)
    if args.json:
        out = res.to_dict()
        if hardware is not None:
            out["hardware"] = {"name": chip.name, **hardware.to_dict()}
        json.dump(out, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        if hardware is not None:
            print(f"socket DDR5 of {chip.name}"
                  + (f" ({hardware.describe()})" if hardware.changed else ""))
        print(_table(res))
    return 0
