"""The outlier groups of SpQR's kernel (docs/lowering.md, *SpQR's outliers*): simulated time of
``spqr_kernel`` on the default preset's 128 cores for G = 1, 2, ... against the rule's G, at the
shapes of SmolLM2 decode (one token) and of a 32-token MiniLM prompt, with typical outlier
counts. ``python benchmarks/bench_spqr_groups.py`` prints one line per shape."""

from __future__ import annotations

from prodigy_sim.hardware import DEFAULT_PRESET, load_preset
from prodigy_sim.lowering import spqr_kernel
from prodigy_sim.timing import simulate

SHAPES = [  # name, M, N, K, outliers per weight, residual
    ("decode qkv", 1, 960, 576, (15000,), False), ("decode o", 1, 576, 576, (9000,), True),
    ("decode gate_up", 1, 1536, 576, (24000, 25000), False),
    ("decode down", 1, 576, 1536, (23000,), True),
    ("32 tokens qkv", 32, 1152, 384, (6000,), False),
    ("32 tokens up", 32, 1536, 384, (8000,), False),
    ("32 tokens down", 32, 384, 1536, (8000,), True),
]


def main() -> None:
    cfg = load_preset(DEFAULT_PRESET)
    for name, m, n, k, counts, res in SHAPES:
        rule = spqr_kernel(name, m, n, k, counts, cores=cfg.cores, residual=res)
        blocks = m // rule.params.rt
        times = {}
        for g in (1, 2, 3, 4, 6, 8, 10, 12, 16, 24, 32):
            if blocks * g > cfg.cores:
                break
            kern = spqr_kernel(name, m, n, k, counts, cores=cfg.cores, residual=res, groups=g)
            times[g] = simulate(kern.program, cfg, cores=cfg.cores).seconds * 1e6
        best = min(times, key=times.__getitem__)
        print(f"{name}: rule G={rule.params.groups} {times.get(rule.params.groups, 0):.3f} us, "
              f"best G={best} {times[best]:.3f} us, "
              + ", ".join(f"G={g} {t:.3f}" for g, t in times.items()))


if __name__ == "__main__":
    main()
