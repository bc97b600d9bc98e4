"""Measurement (not a timing benchmark): the best bandwidth one DDR5 subchannel of a preset
reaches for streams of reads and writes, by the DDR5 model (which equals Ramulator 2 on the
calibration cases, docs/dram.md).

Every request is offered at cycle 0 (the model's frontend offers one per cycle, retrying while
the queue is full: saturation). Reads stream one region and writes another, each in address
order; the write share and how the two interleave (line by line at random, or in runs of 8 /
64 / 512 lines) vary. Bandwidth = requests x 64 B / time until the last request completed.
What it bounds: a kernel whose DDR bytes are a share ``w`` writes cannot move them faster than
the best row for ``w``, whatever its schedule. docs/lowering.md, "How well the costs rank
mappings".

    python benchmarks/ddr_mix.py [--hw PRESET] [--requests N]
"""

from __future__ import annotations

import argparse

import numpy as np

from prodigy_sim.dram import simulate_requests
from prodigy_sim.hardware import load_preset

WRITE_REGION = 1 << 30
"""Byte offset of the written region (far from the read one: other rows)."""


def stream(is_write: np.ndarray) -> np.ndarray:
    """Addresses: the reads in order from 0, the writes in order from :data:`WRITE_REGION`."""
    r = np.cumsum(~is_write) - 1
    w = np.cumsum(is_write) - 1
    return np.where(is_write, WRITE_REGION + w * 64, r * 64).astype(np.uint64)


def bandwidth(cfg, is_write: np.ndarray) -> float:
    """Bytes per second of the requests ``is_write`` (shape (n,)) at saturation."""
    n = is_write.size
    res = simulate_requests(cfg, np.zeros(n, np.int64), stream(is_write), is_write)
    return n * 64 / (res.drained_cycle * cfg.timing.tck_ps * 1e-12)


def mixes(n: int, seed: int = 0):
    """``(label, write share, is_write)`` of every case."""
    rng = np.random.default_rng(seed)
    yield "reads only", 0.0, np.zeros(n, bool)
    yield "writes only", 1.0, np.ones(n, bool)
    for share in (0.2, 0.55):
        yield "line by line, at random", share, rng.random(n) < share
        for run in (8, 64, 512):
            runs = rng.random(n // run + 1) < share
            yield f"runs of {run} lines", share, runs[np.arange(n) // run]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hw", default="prodigy-t16128")
    ap.add_argument("--requests", type=int, default=200_000)
    args = ap.parse_args()
    chip = load_preset(args.hw)
    cfg = chip.memory.dram.model_copy(update={"channels": 1})
    peak = cfg.timing.rate_mts * 1e6 * cfg.org.channel_width_bits / 8
    print(f"{args.hw}: one {cfg.org.channel_width_bits}-bit subchannel, {cfg.timing.name}, "
          f"{args.requests} requests of 64 B, peak {peak / 1e9:.1f} GB/s")
    print("| write share (target) | interleave | write share (actual) | GB/s | of peak |")
    print("|---:|---|---:|---:|---:|")
    for label, share, is_w in mixes(args.requests):
        bw = bandwidth(cfg, is_w)
        print(f"| {share:.0%} | {label} | {is_w.mean():.1%} | {bw / 1e9:.2f} | {bw / peak:.1%} |")


if __name__ == "__main__":
    main()
