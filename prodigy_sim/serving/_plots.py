"""Plots of serving runs (matplotlib): latency against load, and a timeline of one run.

Functions take an optional ``ax`` and return the figure, so notebooks show them inline;
:func:`write_serving_plots` saves PNG and SVG without touching the global backend (it draws on
``matplotlib.figure.Figure`` objects).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from prodigy_sim.serving._result import ServingResult

__all__ = ["plot_latency_vs_load", "plot_timeline", "write_serving_plots"]


def plot_latency_vs_load(rates: Sequence[float], results: Sequence[ServingResult],
                         fig: Figure | None = None) -> Figure:
    """p50 / p90 / p99 of time to first token, time per output token and end-to-end latency
    against the arrival rate, and the achieved throughput."""
    fig = fig or Figure(figsize=(12, 3.6), layout="constrained")
    axes = fig.subplots(1, 4)
    metrics = (("ttft_s", "time to first token (ms)"), ("tpot_s", "time per output token (ms)"),
               ("e2e_s", "end-to-end latency (ms)"))
    pct = [r.percentiles() for r in results]
    for ax, (name, label) in zip(axes, metrics, strict=False):
        for q, style in (("p50", "o-"), ("p90", "s--"), ("p99", "^:")):
            ax.plot(rates, [p[name][q] * 1e3 for p in pct], style, label=q)
        ax.set_xlabel("arrival rate (requests/s)")
        ax.set_ylabel(label)
        ax.set_yscale("log")
        ax.grid(True, alpha=0.3)
        ax.legend()
    ax = axes[3]
    ax.plot(rates, [r.requests_per_s for r in results], "o-", label="achieved")
    ax.plot(rates, rates, "k:", label="offered")
    ax.set_xlabel("arrival rate (requests/s)")
    ax.set_ylabel("throughput (requests/s)")
    ax.grid(True, alpha=0.3)
    ax.legend()
    return fig


def plot_timeline(result: ServingResult, fig: Figure | None = None) -> Figure:
    """Running sequences and waiting requests per step, and the KV-cache occupancy, against
    time."""
    fig = fig or Figure(figsize=(10, 5), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True)
    t = result.timeline
    start = t[:, 0] / 1e9
    top.step(start, t[:, 4], where="post", label="running")
    top.step(start, t[:, 6], where="post", label="waiting", alpha=0.7)
    top.set_ylabel("sequences")
    top.legend(loc="upper right")
    top.grid(True, alpha=0.3)
    occ = result.kv_occupancy()
    if np.isnan(occ).all():
        bottom.step(start, t[:, 5] * result.config["block_tokens"], where="post")
        bottom.set_ylabel("KV cache (tokens)")
    else:
        bottom.step(start, 100 * occ, where="post")
        bottom.set_ylabel("KV cache used (%)")
    bottom.set_xlabel("time (s)")
    bottom.grid(True, alpha=0.3)
    return fig


def write_serving_plots(directory: str | Path, result: ServingResult,
                        sweep: tuple[Sequence[float], Sequence[ServingResult]] | None = None
                        ) -> list[Path]:
    """Write ``timeline.{png,svg}`` (and ``latency_vs_load.{png,svg}`` for a sweep)."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    figures = {"timeline": plot_timeline(result)}
    if sweep is not None:
        figures["latency_vs_load"] = plot_latency_vs_load(*sweep)
    paths = []
    for name, fig in figures.items():
        for ext in ("png", "svg"):
            path = out / f"{name}.{ext}"
            fig.savefig(path, dpi=120)
            paths.append(path)
    return paths
