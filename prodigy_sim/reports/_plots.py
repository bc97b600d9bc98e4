"""Plots of a :class:`ModelReport` (matplotlib, object-oriented: no pyplot state, so notebooks
show them inline and scripts need no display). Each function returns a
:class:`matplotlib.figure.Figure`; :func:`write_plots` saves them as PNG and SVG.

- :func:`plot_roofline`: achieved FLOP/s against arithmetic intensity (FLOPs per DDR byte) for
  every op, matrix and vector, under the memory roof and a dense and an 8:4-sparse ceiling per
  matrix format (and the vector unit's), ridge points marked. Two panels: the whole roofline,
  and the region of the ops (axes scaled to them) with their labels.
- :func:`plot_breakdown`: time per pass of every op beside its own roofline bound.
- :func:`plot_compare`: several reports (formats, sparsity, presets) side by side.

Labels are placed by :func:`place_labels`: a greedy search over offsets around each point that
measures the text's extent with the renderer and takes the first place that overlaps no other
label, no marker and stays inside the axes (so no two labels overlap; tests check it).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from prodigy_sim.reports._report import ModelReport

__all__ = ["plot_roofline", "plot_breakdown", "plot_compare", "plot_compare_bars", "op_seconds",
           "write_plots", "place_labels",
           "roofline_points"]

_RADII = (5, 9, 14, 20, 28, 38, 50, 65, 85, 110, 140)
"""Offsets (points) tried around a point, nearest first."""
_ANGLES = tuple(range(45, 405, 30)) + tuple(range(0, 360, 30))
_PAD = 2.0
"""Pixels kept free around every label."""


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _label(o: dict, stages: int) -> str:
    if o["stage"] == "head":
        return f"head:{o['op']}"
    return f"{o['stage']}:{o['op']}" if stages > 1 else str(o["op"])


def roofline_points(report: ModelReport) -> list[dict[str, Any]]:
    """One point per op with work: ``label``, ``x`` (FLOPs per DDR byte, or per on-chip byte
    when the op moved no DDR bytes: ``on_chip``), ``y`` (achieved FLOP/s), ``vector`` (True for
    ops with vector FLOPs only, placed by those), ``format``, ``sparse``, ``seconds`` (per pass).
    """
    stages = len({o["stage"] for o in report.ops if o["stage"] != "head"})
    pts = []
    for o in report.ops:
        vector = not o["flops"]
        work = o["vector_flops"] if vector else o["flops"]
        nbytes, on_chip = o["ddr_bytes"], False
        if not nbytes:
            nbytes, on_chip = o["dma_bytes"], True
        if not (work and nbytes and o["seconds"]):
            continue
        pts.append({"label": _label(o, stages), "x": work / nbytes, "y": work / o["seconds"],
                    "vector": vector, "on_chip": on_chip,
                    "format": o.get("matrix_format", report.weights),
                    "sparse": bool(o.get("sparse")), "seconds": o["total_seconds"]})
    return pts


def _ceilings(report: ModelReport) -> list[tuple[str, float, str]]:
    """(label, FLOP/s, line style) per distinct ceiling: dense and 8:4 per matrix format
    (formats with equal peaks share a line), and the vector unit's."""
    peaks = report.matrix_peaks or {report.weights.split("/")[0]: (
        report.dense_peak_flops_per_s or report.peak_flops_per_s, report.peak_flops_per_s)}
    by_value: dict[tuple[float, str], list[str]] = {}
    for fmt, (dense, sparse) in peaks.items():
        by_value.setdefault((dense, "dense"), []).append(fmt)
        if sparse > dense * 1.001:
            by_value.setdefault((sparse, "8:4 sparse"), []).append(fmt)
    out = [(f"{', '.join(fmts)} {kind} {v / 1e15:.2f} PFLOP/s", v,
            "-" if kind == "dense" else "--") for (v, kind), fmts in by_value.items()]
    if report.peak_vector_flops_per_s:
        out.append((f"vector FP32 {report.peak_vector_flops_per_s / 1e12:.1f} TFLOP/s",
                    report.peak_vector_flops_per_s, ":"))
    return sorted(out, key=lambda c: -c[1])


def _overlaps(a: tuple[float, float, float, float], b: tuple[float, float, float, float]
              ) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def place_labels(ax, points: Sequence[tuple[float, float]], texts: Sequence[str], *,
                 fontsize: float = 7.0, obstacles: Sequence[tuple[float, float]] = ()
                 ) -> list:
    """Annotate ``points`` (data coordinates) of ``ax`` with ``texts`` so that no label overlaps
    another label or a marker (of ``points`` and ``obstacles``) and every label stays inside the
    axes. Greedy, in the order given (put the important first): for each, offsets of growing
    radius in 24 directions are tried, the text's extent measured with the renderer; a label
    placed far from its point gets a leader line. Call after the axes' limits and the figure's
    layout are final. Labels that find no place are listed in one text line under the axes.
    Returns the annotations."""
    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    scale = fig.dpi / 72.0
    frame = ax.get_window_extent(renderer)
    box = (frame.x0 + 1, frame.y0 + 1, frame.x1 - 1, frame.y1 - 1)
    taken = []
    for px, py in ax.transData.transform(list(points) + list(obstacles)):
        taken.append((px - 4, py - 4, px + 4, py + 4))
    anns, lost = [], []
    for (x, y), text in zip(points, texts, strict=True):
        probe = ax.text(0, 0, text, fontsize=fontsize)
        ext = probe.get_window_extent(renderer)
        w, h = ext.width, ext.height
        probe.remove()
        px, py = ax.transData.transform((x, y))
        best = None
        for r in _RADII:
            for deg in _ANGLES:
                c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
                ax_ = px + r * c * scale
                ay_ = py + r * s * scale
                ha = "left" if c > 0.3 else "right" if c < -0.3 else "center"
                va = "bottom" if s > 0.3 else "top" if s < -0.3 else "center"
                x0 = ax_ if ha == "left" else ax_ - w if ha == "right" else ax_ - w / 2
                y0 = ay_ if va == "bottom" else ay_ - h if va == "top" else ay_ - h / 2
                cand = (x0 - _PAD, y0 - _PAD, x0 + w + _PAD, y0 + h + _PAD)
                if (cand[0] < box[0] or cand[1] < box[1] or cand[2] > box[2]
                        or cand[3] > box[3]):
                    continue
                if any(_overlaps(cand, t) for t in taken):
                    continue
                best = (r, c, s, ha, va, cand)
                break
            if best is not None:
                break
        if best is None:
            lost.append(text)
            continue
        r, c, s, ha, va, cand = best
        arrow = ({"arrowstyle": "-", "lw": 0.5, "color": "0.4", "shrinkA": 0, "shrinkB": 2}
                 if r > 12 else None)
        anns.append(ax.annotate(text, (x, y), xytext=(r * c, r * s),
                                textcoords="offset points", ha=ha, va=va, fontsize=fontsize,
                                arrowprops=arrow, annotation_clip=False))
        taken.append(cand)
    if lost:
        anns.append(ax.text(0.0, -0.18, "not labelled (no room): " + ", ".join(lost),
                            transform=ax.transAxes, fontsize=fontsize, va="top"))
    return anns


_FORMAT_COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:cyan", "tab:pink", "tab:olive")
"""Point colors, by the matrix format an op ran in."""
_CEILING_COLORS = ("tab:red", "tab:purple", "tab:brown", "darkgoldenrod", "teal")


def _tick(v: float, _pos: object = None) -> str:
    if 0.01 <= v < 1e4:
        return f"{v:g}"
    exp = math.floor(math.log10(v))
    man = v / 10 ** exp
    return f"$10^{{{exp}}}$" if round(man, 6) == 1 else f"${man:g}\\cdot10^{{{exp}}}$"


def _log_ticks(axis, lim: tuple[float, float]) -> None:
    """Readable log ticks: 1-2-5 steps on a short range, plain numbers where they are short; no
    labelled minor ticks (they collide)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    decades = math.log10(lim[1] / lim[0])
    subs = (1.0, 2.0, 5.0) if decades < 2.5 else (1.0,)
    axis.set_major_locator(LogLocator(base=10, subs=subs))
    axis.set_major_formatter(FuncFormatter(_tick))
    axis.set_minor_formatter(NullFormatter())


def _draw_roofline(ax, report: ModelReport, pts: list[dict], colors: dict[str, str],
                   xlim: tuple[float, float], ylim: tuple[float, float],
                   ridge_labels: bool) -> list[tuple[float, float, str]]:
    bw = report.peak_bytes_per_s
    lo, hi = xlim
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    ax.set_ylim(*ylim)
    ax.plot([lo, hi], [lo * bw, hi * bw], color="black", lw=1.2,
            label=f"DDR {bw / 1e9:.0f} GB/s")
    ridges = []
    for i, (name, peak, style) in enumerate(_ceilings(report)):
        ridge = peak / bw
        color = "0.35" if style == ":" else _CEILING_COLORS[i % len(_CEILING_COLORS)]
        ax.plot([max(ridge, lo), hi], [peak, peak], ls=style, color=color, lw=1.2, label=name)
        ax.plot([ridge], [peak], marker="D", ms=5, color=color, ls="none")
        ridges.append((ridge, peak, f"ridge {ridge:,.0f} FLOP/B"))
    for p in pts:
        ax.scatter([p["x"]], [p["y"]], s=28, marker="^" if p["vector"] else "o",
                   facecolors="none" if p["on_chip"] else colors[p["format"]],
                   edgecolors=colors[p["format"]], zorder=3)
    _log_ticks(ax.xaxis, xlim)
    _log_ticks(ax.yaxis, ylim)
    ax.set_xlabel("arithmetic intensity (FLOP per DDR byte)")
    ax.set_ylabel("achieved FLOP/s")
    ax.grid(True, which="major", lw=0.3, alpha=0.5)
    return ridges


def plot_roofline(report: ModelReport):
    """The roofline of ``report`` (two panels: the whole chip, and the ops' region with labels).
    Circles: matrix ops (by their standard FLOPs); triangles: vector-only ops (norms, RoPE; by
    their vector FLOPs, under the vector ceiling); hollow: no DDR traffic (intensity per on-chip
    byte). Colors: the matrix format the op ran in. Returns the figure."""
    fig = _figure(13, 5.8)
    full, zoom = fig.subplots(1, 2)
    pts = roofline_points(report)
    fmts = list(dict.fromkeys(p["format"] for p in pts))
    colors = {f: _FORMAT_COLORS[i % len(_FORMAT_COLORS)] for i, f in enumerate(fmts)}
    xs = [p["x"] for p in pts] or [1.0]
    ys = [p["y"] for p in pts] or [1e12]
    ceil = _ceilings(report)
    ridge_max = max(c[1] for c in ceil) / report.peak_bytes_per_s
    full_x = (min(xs) / 3, max(max(xs), ridge_max) * 3)
    full_y = (min(ys) / 5, max(c[1] for c in ceil) * 3)
    ridges = _draw_roofline(full, report, pts, colors, full_x, full_y, True)
    full.set_title("whole roofline: memory roof, ceilings per format, ridge points", fontsize=9)
    zx = (min(xs) / 2.5, max(xs) * 2.5)
    zy = (min(ys) / 4, max(ys) * 4)
    _draw_roofline(zoom, report, pts, colors, zx, zy, False)
    zoom.set_title("the ops (axes scaled to them)", fontsize=9)
    from matplotlib.lines import Line2D

    handles, labels = full.get_legend_handles_labels()
    for f, c in colors.items():
        handles.append(Line2D([], [], marker="o", ls="none", color=c))
        labels.append(f"ops in {f}")
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=7, frameon=False)
    sparse = f", sparsity {report.sparsity}" if report.sparsity != "none" else ""
    cores = f"{report.cores} core{'' if report.cores == 1 else 's'}"
    fig.suptitle(f"{report.model} {report.phase}, batch {report.batch}, {report.context} tokens, "
                 f"{report.weights}{sparse} on {report.hardware} ({cores}): "
                 f"{report.seconds * 1e3:.3f} ms per pass\ncircles: matrix ops (standard "
                 f"FLOPs); triangles: vector-only ops (vector FLOPs); hollow: no DDR bytes "
                 f"(per on-chip byte)", fontsize=9)
    fig.tight_layout(rect=(0, 0.1, 1, 0.93))
    order = sorted(range(len(pts)), key=lambda i: -pts[i]["seconds"])
    place_labels(zoom, [(pts[i]["x"], pts[i]["y"]) for i in order],
                 [pts[i]["label"] for i in order])
    place_labels(full, [(r[0], r[1]) for r in ridges], [r[2] for r in ridges],
                 obstacles=[(p["x"], p["y"]) for p in pts])
    return fig


def plot_breakdown(report: ModelReport):
    """Time per pass of every op (all its layers), as a bar, beside its own roofline bound
    (``roofline_seconds`` x repeat, the outlined bar); the ratio is written at the bar's end.
    Returns the figure."""
    ops = list(report.ops)
    stages = len({o["stage"] for o in ops if o["stage"] != "head"})
    fig = _figure(9, 1.2 + 0.28 * len(ops))
    ax = fig.subplots()
    names = [f"{_label(o, stages)} x{o['repeat']}" for o in ops]
    t = [o["total_seconds"] * 1e3 for o in ops]
    roof = [o["roofline_seconds"] * o["repeat"] * 1e3 for o in ops]
    y = list(range(len(ops)))
    ax.barh(y, t, height=0.6, color="tab:blue", label="simulated")
    ax.barh(y, roof, height=0.6, fill=False, edgecolor="black", lw=0.8,
            label="its roofline: max(MMA FLOPs / peak, compulsory bytes / DDR peak)")
    top = max(t + roof + [1e-9])
    for yi, ti, ri in zip(y, t, roof, strict=True):
        ax.text(max(ti, ri) + top * 0.01, yi, f"{ti:.3f} ms" + (f"  {ti / ri:.1f}x roof"
                                                                if ri else ""),
                va="center", fontsize=7)
    ax.set_yticks(y, names, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlim(0, top * 1.3)
    ax.set_xlabel("time per pass (ms)")
    ax.set_title(f"{report.model} {report.phase}: {report.seconds * 1e3:.3f} ms per pass "
                 f"(ideal roofline {report.ideal_roofline_s * 1e3:.3f} ms, "
                 f"{report.bound}-bound)", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig


def op_seconds(report: ModelReport) -> dict[str, float]:
    """Seconds of one pass by op name (every stage's repeats included), in order of first use."""
    out: dict[str, float] = {}
    for o in report.ops:
        out[o["op"]] = out.get(o["op"], 0.0) + o["total_seconds"]
    return out


def plot_compare(reports: Sequence[ModelReport], labels: Sequence[str] | None = None, *,
                 xlabel: str | None = None):
    """Several reports side by side: time per pass stacked by op name, the ideal roofline as a
    tick, tokens/s (decode) written on each bar. ``labels`` default to the weight format and
    sparsity; ``xlabel`` names what the bars differ in. Returns the figure."""
    labels = list(labels or [f"{r.weights.split('/')[0]}"
                             + (f" {r.sparsity}" if r.sparsity != "none" else "")
                             for r in reports])
    r0 = reports[0]
    return plot_compare_bars(
        labels, [op_seconds(r) for r in reports], [r.ideal_roofline_s for r in reports],
        [f"{r.tokens_per_s:.1f} tok/s" if r.tokens_per_s is not None
         else f"{r.seconds * 1e3:.2f} ms" for r in reports],
        title=f"{r0.model} {r0.phase}, batch {r0.batch}, {r0.context} tokens", xlabel=xlabel)


def plot_compare_bars(labels: Sequence[str], seconds_by_op: Sequence[Mapping[str, float]],
                      roofline_s: Sequence[float], notes: Sequence[str], *, title: str = "",
                      xlabel: str | None = None):
    """The drawing of :func:`plot_compare` from plain numbers: one bar per label, its time per
    pass (s, shown in ms) stacked by op name (``seconds_by_op``), the ideal roofline time (s) as
    a tick and ``notes`` (e.g. ``'12.3 tok/s'``) above the bar. Returns the figure."""
    fig = _figure(max(6.0, 1.3 * len(labels) + 3), 4.8)
    ax = fig.subplots()
    names = list(dict.fromkeys(n for ops in seconds_by_op for n in ops))
    bottom = [0.0] * len(labels)
    x = list(range(len(labels)))
    for i, name in enumerate(names):
        vals = [ops.get(name, 0.0) * 1e3 for ops in seconds_by_op]
        ax.bar(x, vals, bottom=bottom, width=0.6, label=name, color=f"C{i % 10}")
        bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
    ax.scatter(x, [s * 1e3 for s in roofline_s], marker="_", s=900, color="black",
               zorder=3, label="ideal roofline")
    for xi, note, b in zip(x, notes, bottom, strict=True):
        ax.text(xi, b * 1.01, note, ha="center", va="bottom", fontsize=8)
    ax.set_xticks(x, list(labels), fontsize=8)
    ax.set_ylim(0, max(bottom + [s * 1e3 for s in roofline_s] + [1e-9]) * 1.15)
    ax.set_ylabel("time per pass (ms)")
    if xlabel:
        ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, ncol=1, loc="upper left", bbox_to_anchor=(1.0, 1.0), markerscale=0.3)
    fig.tight_layout()
    return fig


def write_plots(report: ModelReport, directory: str | Path) -> list[Path]:
    """Write ``roofline.{png,svg}`` and ``breakdown.{png,svg}`` into ``directory`` (created);
    returns the paths."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for stem, fn in (("roofline", plot_roofline), ("breakdown", plot_breakdown)):
        fig = fn(report)
        for ext in ("png", "svg"):
            p = out / f"{stem}.{ext}"
            fig.savefig(p, dpi=110)
            paths.append(p)
    return paths
