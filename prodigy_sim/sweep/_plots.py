"""Plots of a sweep table (matplotlib ``Figure`` objects, no pyplot state): a metric against a
parameter with one line per value of another, a heatmap over two parameters, and a Pareto front.

Each function takes a :class:`~prodigy_sim.sweep.SweepResult` (or a list of rows), uses the rows
with status ``ok`` that match ``where``, and draws into ``ax`` or a new figure, which it returns.
Axis labels carry units (bytes shown in GB = 1e9 B, rates in GB/s and TFLOP/s). A line plot or
heatmap refuses rows that would fall on the same spot because another column varies too: name
it in ``where`` (or ``lines``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from prodigy_sim.errors import ConfigError
from prodigy_sim.hardware import unit_of

__all__ = ["axis_label", "plot_line", "plot_heatmap", "plot_pareto", "pareto_front", "plot_spec",
           "plot_compare"]

MAX_BARS = 24
"""Most bars of a compare plot (more: fix some inputs with ``where``)."""

_LABELS: dict[str, tuple[str, str, float]] = {
    "time_s": ("time per pass", "ms", 1e3),
    "time_to_first_token_s": ("time to first token", "ms", 1e3),
    "roofline_s": ("roofline time", "ms", 1e3),
    "program_roofline_s": ("programs' roofline time", "ms", 1e3),
    "tokens_per_s": ("throughput", "tokens/s", 1.0),
    "roofline_tokens_per_s": ("roofline throughput", "tokens/s", 1.0),
    "flops": ("FLOPs per pass", "GFLOP", 1e-9),
    "flops_per_s": ("achieved", "TFLOP/s", 1e-12),
    "peak_flops_per_s": ("peak", "TFLOP/s", 1e-12),
    "dma_bytes": ("DMA traffic per pass (DDR and on chip)", "GB", 1e-9),
    "ddr_bytes": ("DDR traffic per pass", "GB", 1e-9),
    "compulsory_bytes": ("compulsory traffic per pass", "GB", 1e-9),
    "l3_hit_rate": ("DMA bytes served on chip", "%", 100.0),
    "bandwidth_bytes_per_s": ("achieved DDR bandwidth", "GB/s", 1e-9),
    "peak_bandwidth_bytes_per_s": ("peak DDR bandwidth", "GB/s", 1e-9),
    "bandwidth_utilization": ("DDR bandwidth / peak", "%", 100.0),
    "matrix_utilization": ("matrix unit busy", "%", 100.0),
    "vector_utilization": ("vector units busy", "%", 100.0),
    "parameters": ("parameters", "billions", 1e-9),
    "bits_per_weight": ("stored bits per weight", "bits", 1.0),
    "weight_bytes": ("weights", "GB", 1e-9),
    "kv_cache_bytes": ("KV cache", "GB", 1e-9),
    "activation_bytes": ("activations", "GB", 1e-9),
    "footprint_bytes": ("footprint", "GB", 1e-9),
    "capacity_bytes": ("DDR capacity", "GB", 1e-9),
    "batch": ("batch", "sequences", 1.0),
    "context": ("context", "tokens", 1.0),
    "encoder_length": ("encoder length", "tokens", 1.0),
    "memory.dram.timing": ("memory.dram.timing", "DDR5 MT/s", 1.0),
    "memory.channels": ("memory.channels", "64-bit DDR5 channels", 1.0),
    "cores": ("cores", "count", 1.0),
}


def _unit(column: str) -> tuple[str, str, float]:
    if column in _LABELS:
        return _LABELS[column]
    if column.endswith("_bytes"):
        return column, "GB", 1e-9
    if column.endswith("_per_s"):
        return column, "1/s", 1.0
    if column.endswith("_s"):
        return column, "s", 1.0
    return column, unit_of(column), 1.0


def axis_label(column: str) -> str:
    """``'footprint (GB)'``, ``'throughput (tokens/s)'``: the column's name and display unit."""
    name, unit, _ = _unit(column)
    return f"{name} ({unit})" if unit else name


def _shown(column: str, value: Any) -> Any:
    """A value in the display unit of its column (numbers only)."""
    scale = _unit(column)[2]
    return value * scale if isinstance(value, (int, float)) and not isinstance(value, bool) \
        else value


def _rows(result: Any, where: Mapping[str, Any] | None, needed: Sequence[str]
          ) -> list[dict[str, Any]]:
    rows = list(getattr(result, "rows", result))
    out = [r for r in rows if r.get("status") == "ok"
           and all(r.get(k) == v for k, v in (where or {}).items())
           and all(r.get(c) is not None for c in needed)]
    if not out:
        raise ConfigError(f"no ok rows with {', '.join(needed)}"
                          + (f" where {dict(where)}" if where else ""))
    return out


def _varying_inputs(rows: list[dict[str, Any]], skip: Sequence[str]) -> list[str]:
    """Input columns (before ``hardware``) that take more than one value in ``rows``."""
    keys = list(rows[0])
    inputs = keys[3:keys.index("hardware")] if "hardware" in keys else []
    return [k for k in inputs if k not in skip and len({repr(r.get(k)) for r in rows}) > 1]


def _check_unique(rows: list[dict[str, Any]], keys: Sequence[str]) -> None:
    seen = {tuple(repr(r.get(k)) for k in keys) for r in rows}
    if len(seen) < len(rows):
        others = _varying_inputs(rows, keys)
        raise ConfigError(f"several rows per ({', '.join(keys)}): "
                          f"{', '.join(others) or 'some column'} also vary; fix them with "
                          "'where' (or draw them as 'lines')")


def _sorted_values(values: Sequence[Any]) -> list[Any]:
    """Distinct values: numbers ascending, anything else in order of first appearance."""
    uniq = list(dict.fromkeys(values))
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in uniq):
        return sorted(uniq)
    return uniq


def _figure(ax: Any, size: tuple[float, float]) -> tuple[Any, Any]:
    if ax is not None:
        return ax.figure, ax
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, layout="constrained")
    return fig, fig.add_subplot()


def _positions(values: list[Any]) -> tuple[list[float], list[str] | None]:
    """Numeric x values as they are; categories at 0, 1, ... with tick labels."""
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return [float(v) for v in values], None
    cats = list(dict.fromkeys(values))
    return [float(cats.index(v)) for v in values], [str(c) for c in cats]


def plot_line(result: Any, x: str, y: str, lines: str | None = None, *,
              where: Mapping[str, Any] | None = None, ax: Any = None):
    """``y`` against ``x``, one line (with markers) per value of ``lines``."""
    rows = _rows(result, where, [x, y] + ([lines] if lines else []))
    _check_unique(rows, [x] + ([lines] if lines else []))
    fig, ax = _figure(ax, (6.4, 4.2))
    xs_all = _sorted_values([r[x] for r in rows])
    pos, ticks = _positions(xs_all)
    at = dict(zip(map(repr, xs_all), pos, strict=True))
    for value in _sorted_values([r[lines] for r in rows]) if lines else [None]:
        sel = sorted((r for r in rows if lines is None or r[lines] == value),
                     key=lambda r: at[repr(r[x])])
        ax.plot([at[repr(r[x])] for r in sel], [_shown(y, r[y]) for r in sel], marker="o",
                label=f"{lines} = {value}" if lines else None)
    if ticks is not None:
        ax.set_xticks(pos, ticks)
    elif all(isinstance(v, int) for v in xs_all):
        ax.set_xticks(pos, [str(v) for v in xs_all])
    ax.set_xlabel(axis_label(x))
    ax.set_ylabel(axis_label(y))
    ax.grid(True, alpha=0.3)
    if lines:
        ax.legend(fontsize=8)
    ax.set_title(f"{_unit(y)[0]} vs {_unit(x)[0]}", fontsize=10)
    return fig


def plot_heatmap(result: Any, x: str, y: str, value: str, *,
                 where: Mapping[str, Any] | None = None, ax: Any = None):
    """``value`` as colour over the ``x`` x ``y`` grid, each cell annotated."""
    rows = _rows(result, where, [x, y, value])
    _check_unique(rows, [x, y])
    xs, ys = _sorted_values([r[x] for r in rows]), _sorted_values([r[y] for r in rows])
    grid = [[float("nan")] * len(xs) for _ in ys]
    for r in rows:
        grid[ys.index(r[y])][xs.index(r[x])] = _shown(value, r[value])
    fig, ax = _figure(ax, (6.4, 4.6))
    image = ax.imshow(grid, origin="lower", aspect="auto", cmap="viridis")
    for i, row in enumerate(grid):
        for j, v in enumerate(row):
            if v == v:
                light = image.norm(v) > 0.6
                ax.text(j, i, f"{v:.3g}", ha="center", va="center", fontsize=8,
                        color="black" if light else "white")
    ax.set_xticks(range(len(xs)), [str(v) for v in xs])
    ax.set_yticks(range(len(ys)), [str(v) for v in ys])
    ax.set_xlabel(axis_label(x))
    ax.set_ylabel(axis_label(y))
    fig.colorbar(image, ax=ax, label=axis_label(value))
    ax.set_title(_unit(value)[0], fontsize=10)
    return fig


def pareto_front(rows: Sequence[dict[str, Any]], x: str, y: str, x_better: str = "low",
                 y_better: str = "high") -> list[dict[str, Any]]:
    """The rows no other row beats on both ``x`` and ``y`` (ties kept once), sorted by ``x``."""
    sx = 1.0 if x_better == "low" else -1.0
    sy = 1.0 if y_better == "low" else -1.0
    pts = sorted(rows, key=lambda r: (sx * r[x], sy * r[y]))
    front: list[dict[str, Any]] = []
    best = float("inf")
    for r in pts:
        if sy * r[y] < best:
            front.append(r)
            best = sy * r[y]
    return sorted(front, key=lambda r: r[x])


def plot_pareto(result: Any, x: str, y: str, *, x_better: str = "low", y_better: str = "high",
                where: Mapping[str, Any] | None = None, ax: Any = None):
    """Every point in the ``x``-``y`` plane, the Pareto front joined and labelled by the inputs
    that vary."""
    rows = _rows(result, where, [x, y])
    front = pareto_front(rows, x, y, x_better, y_better)
    fig, ax = _figure(ax, (6.8, 4.6))
    ax.scatter([_shown(x, r[x]) for r in rows], [_shown(y, r[y]) for r in rows], s=18,
               color="0.6", label="points")
    ax.plot([_shown(x, r[x]) for r in front], [_shown(y, r[y]) for r in front], marker="o",
            color="C3", label="Pareto front")
    varying = _varying_inputs(rows, [x, y])
    for r in front:
        text = ", ".join(f"{r[k]}" for k in varying)
        if text:
            ax.annotate(text, (_shown(x, r[x]), _shown(y, r[y])), fontsize=7, xytext=(4, 4),
                        textcoords="offset points")
    ax.set_xlabel(axis_label(x) + (" (lower is better)" if x_better == "low" else ""))
    ax.set_ylabel(axis_label(y) + (" (higher is better)" if y_better == "high" else ""))
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    if varying:
        ax.set_title("front labelled by " + ", ".join(varying), fontsize=9)
    return fig


def plot_compare(result: Any, x: str, *, where: Mapping[str, Any] | None = None):
    """One bar per point (at most :data:`MAX_BARS`), labelled by ``x`` and the other inputs that
    vary, its time per pass (ms) stacked by op name, the ideal roofline time as a tick and the
    throughput (tokens/s) above it: :func:`prodigy_sim.reports.plot_compare_bars` of the rows'
    ``op_seconds``, ``roofline_s`` and ``tokens_per_s``. Returns the figure."""
    import json

    from prodigy_sim.reports import plot_compare_bars

    rows = _rows(result, where, [x, "op_seconds", "roofline_s", "tokens_per_s"])
    if len(rows) > MAX_BARS:
        raise ConfigError(f"a compare plot of {x!r} would have {len(rows)} bars (at most "
                          f"{MAX_BARS}); fix some of {', '.join(_varying_inputs(rows, [x]))} "
                          "with 'where'")
    order = {repr(v): i for i, v in enumerate(_sorted_values([r[x] for r in rows]))}
    rows = sorted(rows, key=lambda r: order[repr(r[x])])
    others = _varying_inputs(rows, [x])
    labels = ["\n".join([str(r[x]), *(f"{k}={r[k]}" for k in others)]) for r in rows]
    fixed = {k: rows[0][k] for k in ("model", "phase", "batch", "context")
             if k in rows[0] and k not in others and k != x}
    title = ", ".join(f"{k} {v}" for k, v in fixed.items())
    return plot_compare_bars(labels, [json.loads(r["op_seconds"]) for r in rows],
                             [r["roofline_s"] for r in rows],
                             [f"{r['tokens_per_s']:.4g} tok/s" for r in rows], title=title,
                             xlabel=axis_label(x) + (f"; also {', '.join(others)}" if others
                                                     else ""))


def plot_spec(result: Any, spec: Any, ax: Any = None):
    """The plot a :class:`~prodigy_sim.sweep.PlotSpec` describes (a compare plot draws its own
    figure: ``ax`` is not used)."""
    if spec.kind == "compare":
        return plot_compare(result, spec.x, where=spec.where)
    if spec.kind == "line":
        return plot_line(result, spec.x, spec.y, spec.lines, where=spec.where, ax=ax)
    if spec.kind == "heatmap":
        return plot_heatmap(result, spec.x, spec.y, spec.value, where=spec.where, ax=ax)
    return plot_pareto(result, spec.x, spec.y, x_better=spec.x_better, y_better=spec.y_better,
                       where=spec.where, ax=ax)
