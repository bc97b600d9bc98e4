"""Plots of a :class:`ModelReport` (matplotlib, Agg backend): a roofline with the simulated ops
and a per-layer time breakdown. Each is written as PNG and SVG."""

from __future__ import annotations

from pathlib import Path

from prodigy_sim.reports._report import ModelReport

__all__ = ["plot_roofline", "plot_breakdown", "write_plots"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_roofline(report: ModelReport):
    """Achieved FLOP/s against arithmetic intensity (FLOPs per DDR byte) for every op with
    FLOPs, under the roofs ``min(peak FLOP/s, intensity x peak bandwidth)``. Returns the figure."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    pts = [o for o in report.ops if o["flops"] and o["dma_bytes"] and o["seconds"]]
    xs = [o["flops"] / o["dma_bytes"] for o in pts]
    lo = min(xs + [1.0]) / 4
    hi = max(xs + [report.peak_flops_per_s / report.peak_bytes_per_s]) * 4
    ridge = report.peak_flops_per_s / report.peak_bytes_per_s
    ax.plot([lo, ridge, hi], [lo * report.peak_bytes_per_s, report.peak_flops_per_s,
                              report.peak_flops_per_s], color="black", lw=1.5, label="roofline")
    for o, x in zip(pts, xs, strict=True):
        ax.scatter([x], [o["achieved_flops_per_s"]], s=30)
        ax.annotate(f"{o['op']}" if o["stage"] != "head" else f"head:{o['op']}",
                    (x, o["achieved_flops_per_s"]), fontsize=7, xytext=(3, 3),
                    textcoords="offset points")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity (FLOP / DDR byte)")
    ax.set_ylabel("achieved FLOP/s")
    ax.set_title(f"{report.model} {report.phase} b{report.batch} {report.weights} on "
                 f"{report.hardware}", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_breakdown(report: ModelReport):
    """Stacked bars: time of one pass per stage (all its layers), split by op. Returns the
    figure."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    stages = list(dict.fromkeys(o["stage"] for o in report.ops))
    names = list(dict.fromkeys(o["op"] for o in report.ops))
    bottom = [0.0] * len(stages)
    for name in names:
        vals = [sum(o["total_seconds"] for o in report.ops
                    if o["stage"] == s and o["op"] == name) * 1e3 for s in stages]
        ax.bar(stages, vals, bottom=bottom, label=name)
        bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
    ax.set_ylabel("time per pass (ms)")
    ax.set_title(f"{report.model} {report.phase}: {report.seconds * 1e3:.3f} ms "
                 f"(roofline {report.ideal_roofline_s * 1e3:.3f} ms)", fontsize=9)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig


def write_plots(report: ModelReport, directory: str | Path) -> list[Path]:
    """Write ``roofline.{png,svg}`` and ``breakdown.{png,svg}`` into ``directory`` (created);
    returns the paths."""
    plt = _pyplot()
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for stem, fn in (("roofline", plot_roofline), ("breakdown", plot_breakdown)):
        fig = fn(report)
        for ext in ("png", "svg"):
            p = out / f"{stem}.{ext}"
            fig.savefig(p, dpi=120)
            paths.append(p)
        plt.close(fig)
    return paths
