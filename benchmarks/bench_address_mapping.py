"""How the DDR address mapping decides what many cores get from DDR5 (the study behind the
preset's ``memory.dram.mapping`` and ``memory.interleave_bytes``).

Four access patterns of 128-core kernels through the full timing model, each as its simulated
time over its roofline (compulsory bytes / peak DDR bandwidth, or FLOPs / peak), under each
mapping inside a subchannel and each socket interleave granularity:

- ``gemv 1 stream/core``: y = x W^T, 4096 x 4096 tai4, each core one contiguous 68 KB load;
- ``gemv 3 streams/core``: 12288 x 4096 tai4, three concurrent 68 KB loads per core;
- ``gemm 4x32 multicast``: 512 x 8192 x 8192 FP8 x tai4, grid 4 x 32, X and W multicast;
- ``gemm 8x16 multicast``: 1024 x 4096 x 8192, grid 8 x 16.

Run: ``python benchmarks/bench_address_mapping.py [--markdown]`` (about a minute).
"""

from __future__ import annotations

import argparse

from prodigy_sim.hardware import ChipConfig, load_preset
from prodigy_sim.lowering import Budgets, LinearMapping, linear_kernel
from prodigy_sim.numerics import Storage
from prodigy_sim.timing import isa_params, simulate
from prodigy_sim.timing.programs import gemv_program

SETTINGS = [("RoCoBaBgCh", 64), ("RoBaRaCoCh", 64), ("RoBaRaCoCh", 256), ("RoBaRaCoCh", 1024),
            ("RoBaRaCoCh", 4096)]


def _config(mapping: str, interleave: int) -> ChipConfig:
    data = load_preset("prodigy-t16128").model_dump()
    data["memory"]["dram"]["mapping"] = mapping
    data["memory"]["interleave_bytes"] = interleave
    return ChipConfig.model_validate(data)


def _ratio(program, config: ChipConfig, flops: float, compulsory: int) -> float:
    res = simulate(program, config, cores=128, l3_bytes=None)
    roof = max(flops / config.peak_matrix_flops("tai4"),
               compulsory / config.peak_ddr_bandwidth_bytes_per_s)
    return res.seconds / roof


def patterns(config: ChipConfig) -> dict[str, float]:
    bud = Budgets.of(isa_params(config))
    w = Storage.of("tai4")
    out = {}
    p = gemv_program(4096, 4096, 128)
    out["gemv 1 stream/core"] = _ratio(p, config, 0.0, w.nbytes(4096, 4096))
    k = linear_kernel("g", 1, 12288, 4096, weight=w, cores=128, epilogue="store", budgets=bud,
                      mapping=LinearMapping(1, 1, 32, 3, 4096, 1, 128))
    out["gemv 3 streams/core"] = _ratio(k.program, config, k.mma_flops, k.compulsory_bytes)
    for (gm, gn, m, n) in ((4, 32, 512, 8192), (8, 16, 1024, 4096)):
        k = linear_kernel("g", m, n, 8192, weight=w, cores=128, epilogue="store", budgets=bud,
                          mapping=LinearMapping(64, 2, 64, 4, 1024, gm, gn, "mn", True))
        out[f"gemm {gm}x{gn} multicast"] = _ratio(k.program, config, k.mma_flops,
                                                   k.compulsory_bytes)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    rows = [(m, i, patterns(_config(m, i))) for m, i in SETTINGS]
    names = list(rows[0][2])
    if args.markdown:
        print("| mapping | interleave (B) | " + " | ".join(names) + " | worst |")
        print("|---|---:|" + "---:|" * (len(names) + 1))
    for m, i, r in rows:
        cells = [f"{r[n]:.2f}" for n in names] + [f"{max(r.values()):.2f}"]
        if args.markdown:
            print(f"| {m} | {i} | " + " | ".join(cells) + " |")
        else:
            print(m, i, cells, flush=True)


if __name__ == "__main__":
    main()
