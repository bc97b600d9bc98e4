"""``sweep(spec)``: expand the points, skip those already in the journal, run the rest, write the
table and the plots, and return a :class:`SweepResult`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prodigy_sim.errors import ConfigError
from prodigy_sim.sweep._evaluate import EVALUATORS, ROW_HEAD, Evaluator
from prodigy_sim.sweep._execute import run_dask, run_serial
from prodigy_sim.sweep._points import Point, batches, expand
from prodigy_sim.sweep._spec import SweepSpec, load_spec, parse_spec
from prodigy_sim.sweep._store import Journal, arrow_table, write_csv, write_parquet

__all__ = ["SweepResult", "sweep", "STATUSES"]

STATUSES = ("ok", "failed", "crashed")
"""Row statuses: ``ok``; ``failed`` = the point's own error (recorded in ``error``; not retried
unless asked); ``crashed`` = its workers kept dying (retried by the next run)."""


@dataclass(frozen=True)
class SweepResult:
    """The table of a sweep: one row per point (in the spec's order), ``columns`` in order
    (``point_id``, ``status``, ``error``, the inputs, ``hardware``, the outputs). ``computed``
    points ran now, ``skipped`` ones were already in the journal; ``files`` were written."""

    spec: SweepSpec
    columns: tuple[str, ...]
    rows: tuple[dict[str, Any], ...]
    computed: int
    skipped: int
    folder: Path
    files: tuple[Path, ...] = ()

    def count(self, status: str) -> int:
        """Rows with ``status`` (``ok``, ``failed``, ``crashed``)."""
        return sum(r["status"] == status for r in self.rows)

    def column(self, name: str) -> list[Any]:
        """The values of one column, in row order."""
        if name not in self.columns:
            raise ConfigError(f"unknown column {name!r} (columns: {', '.join(self.columns)})")
        return [r.get(name) for r in self.rows]

    def summary(self) -> str:
        """``'18 points: 17 ok, 1 failed, 0 crashed; 18 computed, 0 skipped (in DIR)'``."""
        counts = ", ".join(f"{self.count(s)} {s}" for s in STATUSES)
        return (f"{len(self.rows)} points: {counts}; {self.computed} computed, {self.skipped} "
                f"skipped (already in {self.folder / 'results.jsonl'})")

    def markdown(self, columns: list[str] | tuple[str, ...]) -> str:
        """A markdown table of ``columns`` (numbers to 4 significant digits, bytes as they
        are)."""
        for c in columns:
            self.column(c)
        lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        lines += ["| " + " | ".join(_text(r.get(c)) for c in columns) + " |" for r in self.rows]
        return "\n".join(lines)

    def to_arrow(self):
        """The table as a ``pyarrow.Table``."""
        return arrow_table(list(self.rows), list(self.columns))


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _as_spec(spec: SweepSpec | Mapping[str, Any] | str | Path) -> SweepSpec:
    if isinstance(spec, SweepSpec):
        spec.check_keys()
        return spec
    if isinstance(spec, Mapping):
        return parse_spec(dict(spec))
    return load_spec(spec)


def _columns(points: list[Point], evaluators: tuple[Evaluator, ...]) -> list[str]:
    inputs: dict[str, None] = {}
    for p in points:
        inputs.update(dict.fromkeys(p.params))
    return [*ROW_HEAD, *inputs, "hardware", *(c for ev in evaluators for c in ev.columns)]


def _check_plots(spec: SweepSpec, columns: list[str]) -> None:
    for i, plot in enumerate(spec.plots):
        for field in ("x", "y", "lines", "value"):
            name = getattr(plot, field)
            if name is not None and name not in columns:
                raise ConfigError(f"'plots.{i}.{field}': unknown column {name!r} (columns: "
                                  f"{', '.join(columns)})")
        for name in plot.where:
            if name not in columns:
                raise ConfigError(f"'plots.{i}.where': unknown column {name!r}")
        if plot.kind == "compare" and "op_seconds" not in columns:
            raise ConfigError(f"'plots.{i}': a compare plot stacks the time of each op; it needs "
                              "the 'simulate' evaluator in 'compute'")


def sweep(spec: SweepSpec | Mapping[str, Any] | str | Path, *, out: str | Path | None = None,
          executor: str | None = None, workers: int | None = None,
          scheduler: str | None = None, client: Any = None,
          evaluators: Mapping[str, Evaluator] | None = None, fresh: bool = False,
          retry_failed: bool = False, plots: bool = True,
          progress: Callable[[int], None] | None = None,
          total: Callable[[int], None] | None = None) -> SweepResult:
    """Run a sweep and return its table.

    ``spec``: a :class:`SweepSpec`, a mapping, a spec file or an example name. ``out``: output
    folder (default ``spec.output.dir``, else ``sweeps/<name>``). ``executor``: ``"dask"`` or
    ``"serial"`` (default the spec's); ``workers`` / ``scheduler``: the embedded cluster's size or
    an existing scheduler's address; ``client``: an existing ``distributed.Client``.
    ``evaluators``: more evaluators by name (besides :data:`EVALUATORS`). Points already in the
    folder's journal are skipped (``fresh`` forgets them; ``retry_failed`` reruns failed ones;
    crashed ones always rerun). ``total(n)`` is called with the number of points to compute,
    ``progress(k)`` as each task's ``k`` points are recorded.
    """
    spec = _as_spec(spec)
    registry = {**EVALUATORS, **(evaluators or {})}
    unknown = [n for n in spec.compute if n not in registry]
    if unknown:
        raise ConfigError(f"'compute': unknown evaluator {unknown[0]!r} (known: "
                          f"{', '.join(registry)})")
    evs = tuple(registry[n] for n in spec.compute)
    points = expand(spec)
    if points and all(p.error for p in points):
        p = points[0]
        raise ConfigError(f"no point can run; point 0 ({p.params}): {p.error}")
    columns = _columns(points, evs)
    if plots:
        _check_plots(spec, columns)

    folder = Path(out or spec.output.dir or Path("sweeps") / spec.name)
    journal = Journal(folder)
    if fresh:
        journal.clear()
    done = journal.read()

    def needed(p: Point) -> bool:
        row = done.get(p.point_id)
        return row is None or row["status"] == "crashed" or (
            retry_failed and row["status"] == "failed")

    todo = list({p.point_id: p for p in points if needed(p)}.values())
    skipped = len({p.point_id for p in points}) - len(todo)
    tasks = batches(todo, spec.execution.batch_points,
                    by_lowering=any(ev.uses_lowering for ev in evs))
    if total is not None:
        total(len(todo))

    def on_done(rows: list[dict[str, Any]]) -> None:
        journal.append(rows)
        done.update({r["point_id"]: r for r in rows})
        if progress is not None:
            progress(len(rows))

    run = executor or ("dask" if scheduler or client else spec.execution.executor)
    if run == "serial":
        run_serial(tasks, evs, spec.simulate, on_done)
    elif run == "dask":
        if tasks:
            run_dask(tasks, evs, spec.simulate, on_done,
                     workers=spec.execution.workers if workers is None else workers,
                     scheduler=scheduler or spec.execution.scheduler,
                     retries=spec.execution.retries, client=client)
    else:
        raise ConfigError(f"'executor' must be 'dask' or 'serial' (got {run!r})")

    rows = tuple({c: done[p.point_id].get(c) for c in columns} for p in points)
    result = SweepResult(spec, tuple(columns), rows, len(todo), skipped, folder)
    files: list[Path] = []
    folder.mkdir(parents=True, exist_ok=True)
    if "csv" in spec.output.formats:
        files.append(folder / "results.csv")
        write_csv(list(rows), columns, files[-1])
    if "parquet" in spec.output.formats:
        files.append(folder / "results.parquet")
        write_parquet(list(rows), columns, files[-1])
    if plots and spec.plots:
        from prodigy_sim.sweep._plots import plot_spec

        for plot in spec.plots:
            fig = plot_spec(result, plot)
            files.append(folder / f"{plot.stem()}.png")
            fig.savefig(files[-1], dpi=120)
    return SweepResult(spec, tuple(columns), rows, len(todo), skipped, folder, tuple(files))
