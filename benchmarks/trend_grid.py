"""Trends of every shipped scenario on issue 11's hardware grid: more cores (64 / 128 / 256),
more DDR5 channels (8 / 16 / 32), faster DDR5 (4800 / 6400 / 7200 MT/s) or a faster matrix unit
(``tile_k`` 8 / 16 / 32: half, the preset's, twice its MACs per cycle) never make a step slower,
and each step scales with the resource that bounds it.

Each point is the scenario on its preset with one field overridden (``resolve_hardware``), by
the default method (``simulate_scenario``). Prints a markdown table, a row per scenario and axis:
the simulated step time at each point (ms), the worst step between neighbours (``+x%``: the
larger point slower; the tests allow 5% on cores, docs/timing.md *Known limits*, and nothing
on the other axes), and the speed-up from the first to the last point beside the ideal roofline's
(``max(FLOPs / peak FLOP/s, weights and KV cache / peak DDR bandwidth)``) for the same change.

    python benchmarks/trend_grid.py                       # every shipped scenario
    python benchmarks/trend_grid.py --scenarios llama-2-7b-decode-tai4 --axes channels
    python benchmarks/trend_grid.py --ddr persistent      # by the persistent DDR

The points share one :class:`~prodigy_sim.simulation.RunCache` with ``--workers`` processes
(default: one per CPU, as ``prodigy-sim simulate``): a run equal to one made before (an axis'
point that is the preset itself) is reused, the others are made in parallel - the same table.

docs/timing.md, *Trends of the shipped scenarios*, is this table; ``tests/test_trends.py``
recomputes some of its cells.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass

from prodigy_sim.hardware import resolve_hardware
from prodigy_sim.models import load_scenario, scenario_names
from prodigy_sim.reports import simulate_scenario
from prodigy_sim.simulation import RunCache, default_workers
from prodigy_sim.timing import DDR_METHODS

AXES: dict[str, tuple[str, list[str]]] = {
    "cores": ("cores", ["64", "128", "256"]),
    "channels": ("memory.channels", ["8", "16", "32"]),
    "ddr speed": ("memory.dram.timing", ["4800", "6400", "7200"]),
    "matrix rate": ("core.matrix_unit.tile_k", ["8", "16", "32"]),
}
"""Axis name -> (hardware field, its values in increasing order of the resource)."""

@dataclass(frozen=True)
class Point:
    """One simulated point: step time and its ideal roofline (s)."""

    seconds: float
    roofline_s: float


TOLERANCE = {"cores": 0.05}
"""How much slower (relative) a step may be on the larger point of an axis: more cores 5% (a
memory-bound step on more cores runs more concurrent DDR streams, whose interleaving moves row
hits and bank conflicts a percent or two either way, and a larger mesh has longer hops:
docs/timing.md, *Known limits*), the other axes :data:`NOISE`."""
NOISE = 0.001
"""The tolerance of the axes not in :data:`TOLERANCE`: a different interleaving of the same DDR
requests."""


def worst_step(points: list[Point]) -> float:
    """The largest relative slow-down from one point of an axis to the next (negative: every
    step faster)."""
    return max(b.seconds / a.seconds - 1 for a, b in zip(points, points[1:], strict=False))


def holds(axis: str, points: list[Point]) -> bool:
    """Whether ``points`` (in the axis' order) follow the trend, within the axis' tolerance."""
    return worst_step(points) <= TOLERANCE.get(axis, NOISE)


def simulate_point(scenario: str, field: str, value: str, ddr: str = "batched",
                   cache: RunCache | None = None) -> Point:
    """``scenario`` (a shipped scenario's name) on its preset with ``field=value``, by the DDR
    method ``ddr``; with a ``cache``, runs made before (an axis' point equal to another's: the
    same configuration) are reused and its workers make the new ones (the same results)."""
    sc = load_scenario(scenario)
    chip, _ = resolve_hardware(sc.hardware, [f"{field}={value}"])
    r = simulate_scenario(sc, config=chip, ddr=ddr, cache=cache)
    return Point(r.seconds, r.ideal_roofline_s)


def row(scenario: str, axis: str, points: list[Point]) -> str:
    """The table row of ``scenario`` on ``axis``."""
    first, last = points[0], points[-1]
    verdict = "ok" if holds(axis, points) else "**slower**"
    times = " / ".join(f"{p.seconds * 1e3:.3f}" for p in points)
    return (f"| {scenario} | {axis} | {times} | {worst_step(points):+.2%} | {verdict} | "
            f"{first.seconds / last.seconds:.2f}x | {first.roofline_s / last.roofline_s:.2f}x |")


HEADER = ("| scenario | axis | step ms (low / mid / high) | worst step | trend | speed-up | "
          "roofline's speed-up |\n|---|---|---|---:|---|---:|---:|")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenarios", nargs="+", default=None, metavar="NAME",
                    help="shipped scenarios (default: all)")
    ap.add_argument("--axes", nargs="+", default=list(AXES), choices=list(AXES),
                    metavar="AXIS", help=f"axes (default: all of {', '.join(AXES)})")
    ap.add_argument("--ddr", choices=DDR_METHODS, default="batched",
                    help="the DDR method (default: batched, the simulator's default)")
    ap.add_argument("--workers", type=int, default=default_workers(), metavar="N",
                    help="worker processes for the timing-engine runs (default: one per CPU, "
                         "as prodigy-sim simulate; the same table)")
    args = ap.parse_args(argv)
    names = args.scenarios or scenario_names()
    print(HEADER, flush=True)
    with RunCache(args.workers) as cache:   # (also reuses the runs of equal points)
        for name in names:
            for axis in args.axes:
                field, values = AXES[axis]
                t = time.perf_counter()
                pts = [simulate_point(name, field, v, args.ddr, cache) for v in values]
                print(row(name, axis, pts), flush=True)
                print(f"  ({axis}: {time.perf_counter() - t:.0f} s)", file=sys.stderr,
                      flush=True)


if __name__ == "__main__":
    main()
