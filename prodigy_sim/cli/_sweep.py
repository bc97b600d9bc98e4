"""``prodigy-sim sweep SPEC``: run a parameter sweep (see docs/sweeps.md).

Exit status: 0 every point ok, 1 some point failed or crashed (its row says why), 2 bad input
(printed by the CLI driver).
"""

from __future__ import annotations

import argparse
import json
import sys

from prodigy_sim.cli import deferred


def _epilog() -> str:
    from prodigy_sim.sweep import spec_names

    return f"Example specs: {', '.join(spec_names()) or '(none)'} (workloads/sweeps/)."


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "sweep",
        description="Run every point of a sweep spec (YAML: fixed parameters, a grid and/or a "
                    "list of points over hardware fields such as memory.channels and scenario "
                    "fields such as model, phase, batch, context, weights), computing the "
                    "footprint (bytes) and one simulated pass (time in s, tokens/s, bandwidth "
                    "in bytes/s, utilization) at each. Results are appended to "
                    "DIR/results.jsonl as points finish, a rerun computes only the missing "
                    "points, and the table is written as DIR/results.csv and "
                    "DIR/results.parquet with the spec's plots (PNG). Exit status: 0 all ok, 1 "
                    "some point failed, 2 bad input.",
        epilog=deferred(_epilog),
    )
    parser.add_argument("spec", metavar="SPEC", help="sweep spec: a .yaml file or an example name")
    parser.add_argument("--out", metavar="DIR",
                        help="output folder (default: the spec's output.dir, else "
                             "sweeps/<spec name>)")
    run = parser.add_argument_group("execution")
    how = run.add_mutually_exclusive_group()
    how.add_argument("--serial", action="store_true",
                     help="run the points one after the other in this process (no Dask)")
    how.add_argument("--scheduler", metavar="ADDRESS",
                     help="run on an existing Dask cluster (e.g. tcp://host:8786) instead of an "
                          "embedded LocalCluster")
    run.add_argument("--workers", type=int, metavar="N",
                     help="worker processes of the embedded LocalCluster (default: the spec's, "
                          "2)")
    run.add_argument("--fresh", action="store_true",
                     help="forget the results already in DIR/results.jsonl and compute every "
                          "point")
    run.add_argument("--retry-failed", action="store_true",
                     help="compute again the points recorded as failed")
    out = parser.add_argument_group("output")
    out.add_argument("--no-plots", action="store_true", help="do not draw the spec's plots")
    out.add_argument("--plot", metavar="compare[:COLUMN]", action="append", default=[],
                     help="also draw DIR/compare-COLUMN.png: one bar per point labelled by "
                          "COLUMN (and the other inputs that vary), its time per pass in ms "
                          "stacked by op, the ideal roofline marked and tokens/s written above; "
                          "without COLUMN, one such plot per categorical input that varies "
                          "(weights, model, ...); repeatable")
    fmt = out.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true",
                     help="print the rows as JSON (seconds, bytes, bytes/s) instead of a summary")
    fmt.add_argument("--table", metavar="COLUMNS",
                     help="also print a markdown table of these comma-separated columns (e.g. "
                          "memory.channels,weights,tokens_per_s; numbers to 4 digits)")
    out.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def _with_plots(name: str, plots: list[str]):
    """The spec ``name`` with the ``--plot`` plots added to its own."""
    from prodigy_sim.errors import ConfigError
    from prodigy_sim.sweep import PlotSpec, load_spec

    spec = load_spec(name)
    extra: list[PlotSpec] = []
    for text in plots:
        kind, _, column = text.partition(":")
        if kind != "compare":
            raise ConfigError(f"'--plot {text}': the plot kinds of --plot are: compare[:COLUMN] "
                              "(line, heatmap and pareto plots go in the spec's 'plots')")
        columns = [column] if column else spec.categorical_keys()
        if not columns:
            raise ConfigError(f"'--plot {text}': no input of {spec.name!r} takes several "
                              "non-numeric values; name the column: --plot compare:COLUMN")
        extra += [PlotSpec(kind="compare", x=c) for c in columns]
    return spec.model_copy(update={"plots": (*spec.plots, *extra)})


def run(args: argparse.Namespace) -> int:
    from prodigy_sim.errors import ConfigError
    from prodigy_sim.sweep import sweep

    if args.workers is not None and args.workers < 1:
        raise ConfigError(f"'--workers' must be >= 1 (got {args.workers})")
    bar = None
    show = not args.quiet and sys.stderr.isatty()

    def total(n: int) -> None:
        nonlocal bar
        if show:
            from tqdm import tqdm

            bar = tqdm(total=n, unit="point", file=sys.stderr, desc="sweep")

    def progress(n: int) -> None:
        if bar is not None:
            bar.update(n)

    spec = _with_plots(args.spec, args.plot) if args.plot and not args.no_plots else args.spec
    try:
        result = sweep(spec, out=args.out, executor="serial" if args.serial else None,
                       workers=args.workers, scheduler=args.scheduler, fresh=args.fresh,
                       retry_failed=args.retry_failed, plots=not args.no_plots,
                       progress=progress, total=total)
    finally:
        if bar is not None:
            bar.close()
    if args.json:
        print(json.dumps([dict(r) for r in result.rows], indent=2))
    else:
        print(result.summary())
        for r in result.rows:
            if r["status"] != "ok":
                print(f"  {r['status']} {r['point_id']} {r['hardware'] or r['hw']}: {r['error']}")
        for path in result.files:
            print(f"wrote {path}")
        if args.table:
            print()
            print(result.markdown([c.strip() for c in args.table.split(",") if c.strip()]))
    return 0 if result.count("ok") == len(result.rows) else 1
