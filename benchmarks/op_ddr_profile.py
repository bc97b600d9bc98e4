"""Measurement (not a timing benchmark): why one lowered op reaches the DDR bandwidth it does.

Simulates one op of a scenario (the representative layer's kernel, as ``simulate_op`` does, with
its residency), logging every DDR request, then replays each of two controllers' requests in one
DDR5-model run to read off: read and write bytes (against the op's compulsory bytes), each
tensor's DDR reads and writes against its size (a ratio above 1: read again from DDR), row hits /
misses / conflicts, the share of the run the controller has requests waiting (1, 64 = a full
read queue, 512), the batching error of the run and what the batch seam cost
(``check_batching``: mean seam waits of reads and writes beside the reads' DDR5-model
latency). docs/lowering.md, "Where the 70B prefill GEMMs lose their DDR bandwidth".

    python benchmarks/op_ddr_profile.py llama-2-70b prefill 2048 gate_up
    python benchmarks/op_ddr_profile.py MODEL PHASE SEQUENCE OP [--batch B] [--hw PRESET]
        [--set FIELD=VALUE ...]   # hardware overrides, as the CLI's --set
        [--dma-outstanding N]     # DMAs in flight per core (default: the timing model's, 8)
    python benchmarks/op_ddr_profile.py llama-2-7b decode 2048 qkv_proj --set memory.channels=32
"""

from __future__ import annotations

import argparse

import numpy as np
from _op_args import add_op_arguments, lowered_op

from prodigy_sim.dram import simulate_requests
from prodigy_sim.hardware import ChipConfig
from prodigy_sim.isa import Program, validate
from prodigy_sim.simulation import simulate_op
from prodigy_sim.timing._costs import DEFAULT_DMA_OUTSTANDING
from prodigy_sim.timing._memory import check_batching
from prodigy_sim.timing._simulate import _run, isa_params


def _busy_share(arrive: np.ndarray, done: np.ndarray, thresholds) -> list[float]:
    """Share of [first arrival, last completion] with at least each threshold of requests
    waiting or in service."""
    t = np.concatenate([arrive, done])
    d = np.concatenate([np.ones(arrive.size, np.int64), -np.ones(done.size, np.int64)])
    order = np.lexsort((d, t))
    t, d = t[order], d[order]
    level = np.cumsum(d)
    span = np.diff(t, append=t[-1])
    total = t[-1] - t[0]
    return [float(span[level >= k].sum() / total) for k in thresholds]


def tensor_rows(program: Program, chip: ChipConfig, lines: np.ndarray, is_write: np.ndarray
                ) -> list[list[str]]:
    """Per DDR tensor of ``program`` (in address order): its name, MiB, DDR read MiB, reads
    per line of it (above 1: read again) and DDR written MiB, from every DDR request's line
    index and direction (``lines``, ``is_write``: the run's DDR log)."""
    line = chip.core.on_chip_memory.line_bytes
    out = []
    tensors = validate(program, isa_params(chip)).tensors
    for name, pl in sorted(tensors.items(), key=lambda t: t[1].base):
        lo, hi = pl.base // line, -(-(pl.base + pl.nbytes) // line)
        inside = (lines >= lo) & (lines < hi)
        rd, wr = int((inside & ~is_write).sum()), int((inside & is_write).sum())
        out.append([name, f"{(hi - lo) * line / 2**20:.1f}", f"{rd * line / 2**20:.1f}",
                    f"{rd / (hi - lo):.2f}", f"{wr * line / 2**20:.1f}"])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    add_op_arguments(ap)
    ap.add_argument("--dma-outstanding", type=int, default=DEFAULT_DMA_OUTSTANDING,
                    help="DMA transfers in flight per core (default: %(default)s, the timing "
                         "model's)")
    args = ap.parse_args()
    chip, stage, op = lowered_op(args)
    rep = simulate_op(op, chip, stage=stage)
    res, memory = _run(op.kernel.program, chip, op.kernel.cores, None, args.dma_outstanding,
                       log=True,
                       resident=op.residency.resident, held_bytes=op.residency.held_bytes,
                       aliased=op.residency.aliased,
                       max_steps=None)
    lg = memory.log
    ctrl, arrive = np.concatenate(lg.ctrl), np.concatenate(lg.arrive)
    addr, is_w = np.concatenate(lg.addr), np.concatenate(lg.is_write)
    line = chip.core.on_chip_memory.line_bytes
    print(f"{args.model} {args.phase} {args.sequence} {args.op}: {rep.mapping}")
    print(f"simulated {res.seconds * 1e6:.1f} us (roofline {rep.roofline_seconds * 1e6:.1f} us), "
          f"DDR {res.dram_bandwidth_bytes_per_s / 1e9:.0f} GB/s of "
          f"{chip.peak_ddr_bandwidth_bytes_per_s / 1e9:.1f}")
    err = check_batching(memory)
    print(f"DDR reads {int((~is_w).sum()) * line / 2**20:.1f} MiB, writes "
          f"{int(is_w.sum()) * line / 2**20:.1f} MiB; compulsory {rep.compulsory_bytes / 2**20:.1f}"
          f" MiB; batching error {err['drain_rel_diff_max']:.2%}")
    print(f"batch seam: reads wait {err['seam_wait_read']:.0f} DRAM cycles on average behind "
          f"earlier batches' bursts (writes {err['seam_wait_write']:.0f}), then take "
          f"{err['model_latency_read']:.0f} in the DDR5 model (long waits on a mostly idle "
          f"bus are the seam, not the traffic)")
    print("| tensor | MiB | DDR read MiB | read / size | DDR written MiB |")
    print("|---|---:|---:|---:|---:|")
    for cells in tensor_rows(op.kernel.program, chip, np.concatenate(lg.line), is_w):
        print("| " + " | ".join(cells) + " |")
    thresholds = (1, 64, 512)
    print("| controller | row hits | misses | conflicts | share of the run with >= "
          + " / ".join(str(k) for k in thresholds) + " requests waiting |")
    print("|---:|---:|---:|---:|---|")
    for k in (0, int(ctrl.max()) // 2):
        sel = np.flatnonzero(ctrl == k)
        sel = sel[np.argsort(arrive[sel], kind="stable")]
        base = (int(arrive[sel][0]) // memory._refi) * memory._refi
        r = simulate_requests(memory.dram, arrive[sel] - base, addr[sel].astype(np.uint64),
                              is_w[sel])
        st = r.stats("drained")
        n = st.row_hits + st.row_misses + st.row_conflicts
        busy = _busy_share(arrive[sel] - base, r.complete_cycle, thresholds)
        print(f"| {k} | {st.row_hits / n:.1%} | {st.row_misses / n:.1%} | "
              f"{st.row_conflicts / n:.1%} | " + " / ".join(f"{b:.0%}" for b in busy) + " |")


if __name__ == "__main__":
    main()
