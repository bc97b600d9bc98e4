"""Step times from the simulator, cached on a grid and interpolated.

:class:`SimulatedStepTimes` times an engine iteration with
:func:`prodigy_sim.reports.simulate_scenario` runs of one socket, each run once and cached (in
memory, and in a JSON file with :meth:`SimulatedStepTimes.save` / ``load``). Grid points are
simulated lazily, the first time a step needs them, every unit of every kernel
(:data:`GRID_STEADY_UNITS`), sharing identical timing-engine runs through one
:class:`~prodigy_sim.simulation.RunCache` (exact: a batch's linear layers are simulated once for
all its contexts). The rules:

- **Decode** of ``b`` sequences with mean context ``c``: the batch runs as the next *bucket*
  ``>= b`` (default every batch 1..64, then multiples of 64: the lowering runs larger batches
  only in whole 64-row blocks; :func:`vllm_decode_buckets` pads to coarser ones). The context is
  rounded up to the 64-token KV tile. The time is interpolated linearly between simulated
  contexts of a batch - the grid (default 64, 256, 1024, 2048, 4096, capped at the model's
  positions), refined by bisection where the time is not affine
  (:meth:`SimulatedStepTimes.decode_interval`) - and between simulated batches - the batch grid
  (default 1, 2, 4, ..., 64), refined the same way (:meth:`SimulatedStepTimes.decode_batches`).
  Decode time is close to affine in the context (the KV cache read) and in the batch, except at
  *aligned* steps (:func:`aligned`: batch x context a power of two >= 2**14 KV tokens), where the
  lowering's contiguous KV cache makes the time depart from the trend, by up to about a quarter
  on LLaMA-2-7B (``docs/serving.md``, part 4). Aligned steps are simulated, not interpolated,
  and enter interpolations at their trend (:meth:`SimulatedStepTimes.decode_node`).
  :func:`check_interpolation` checks the rule against direct simulation.
- **Prefill**: the step's new prompt tokens (all chunks together) run as one prefill of that many
  tokens padded up to the next power of two (>= 64; beyond the model's positions, as several
  sequences of the largest power of two within them). Linear layers see every new token as one
  row and stream the weights once per step. Attention is charged as a causal prefill over the
  step's new tokens; attention of a chunk over its already cached prefix is not charged.
- **Mixed step** (chunked prefill with decodes): the prefill time plus the decode time. Each
  streams the weights, so a mixed step counts them twice: an upper bound.

Why the prompt tokens are not interpolated: prefill time is far from monotone between powers of
two, where it is fastest (``docs/serving.md`` has the measured tables).
"""

from __future__ import annotations

import bisect
import hashlib
import json
import math
from collections.abc import Callable, Generator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TypeVar

from pydantic import ValidationError

from prodigy_sim.errors import ConfigError, config_error_from_validation
from prodigy_sim.hardware import ChipConfig, load_preset
from prodigy_sim.lowering import LoweredModel, lower_model
from prodigy_sim.models import Formats, Routing, Scenario, check_scenario, load_card
from prodigy_sim.reports import report_simulation
from prodigy_sim.serving._steptime import StepShape
from prodigy_sim.simulation import RunCache, SimMethod, prefetch_runs, simulate

__all__ = ["SimulatedStepTimes", "InterpolationCheck", "check_interpolation",
           "default_decode_buckets", "vllm_decode_buckets", "DEFAULT_CONTEXT_GRID",
           "KV_TILE_TOKENS", "DEFAULT_BATCH_GRID", "REFINE_TOLERANCE", "MIN_INTERVAL_TOKENS",
           "ALIGNED_MIN_KV_TOKENS", "aligned"]

DEFAULT_CONTEXT_GRID = (64, 256, 1024, 2048, 4096)
"""Decode contexts simulated (tokens), before capping at the model's positions."""
KV_TILE_TOKENS = 64
"""The lowering's KV cache holds the context rounded up to a multiple of 64 tokens."""

DEFAULT_BATCH_GRID = (1, 2, 4, 8, 16, 32, 64)
"""Decode batches simulated before refinement; batches between are interpolated where the time is
affine in the batch (``()``: simulate every bucket)."""
REFINE_TOLERANCE = 0.02
"""A context interval is interpolated once its simulated midpoint is within 2% of its chord."""
MIN_INTERVAL_TOKENS = KV_TILE_TOKENS
"""Context intervals this short are interpolated without a midpoint check (the default, one KV
tile: where the time is not affine, refinement goes down to simulating the context itself)."""
ALIGNED_MIN_KV_TOKENS = 1 << 14
"""A decode step whose KV tokens (batch x context, the context a multiple of the KV tile) are a
power of two at least this large is *aligned*: the lowering's contiguous KV cache (one region of
``batch x context`` tokens per layer) then puts the sequences' keys and values at the same DDR
channel and bank phase, and the step time departs from its trend, by up to about a quarter on
LLaMA-2-7B (``docs/serving.md``, part 4). Aligned steps are simulated, never interpolated, and
never serve as interpolation nodes (see :meth:`SimulatedStepTimes.decode_node`)."""

GRID_STEADY_UNITS = None
"""The grid's simulations run every unit of every kernel (``steady_units=None``, no steady-state
extrapolation): at serving sizes (LLaMA-2-7B, batches up to 64, prompts up to 2048 tokens, at most
48 units per core) the extrapolation's probe runs (2, 4, 8, ... units per core) cost more than
the whole unit loop and rarely extrapolate (a 2048-token prefill: 38.6 s of CPU with them, 20.1 s
without, the same step time). ``SimulatedStepTimes(..., steady_units=2)`` restores them."""
Simulate = Callable[[Scenario, ChipConfig], float]
_SHAPE_FIELDS = {"name", "description", "model", "phase", "batch", "sequence_length",
                 "context_length", "encoder_length"}
"""Scenario fields a grid point sets (or that do not change its time); every other field is in
the table's key."""


def _upto(sizes: list[int], max_batch: int) -> tuple[int, ...]:
    while sizes[-1] < max_batch:
        sizes.append(sizes[-1] + 64)
    return tuple(b for b in sizes if b < max_batch) + (next(b for b in sizes if b >= max_batch),)


def default_decode_buckets(max_batch: int) -> tuple[int, ...]:
    """Every batch ``1..64``, then multiples of 64 (the lowering takes larger batches only in
    whole 64-row blocks), up to the first >= ``max_batch``: no padding beyond the lowering's."""
    return _upto(list(range(1, 65)), max_batch)


def vllm_decode_buckets(max_batch: int) -> tuple[int, ...]:
    """``1, 2, 4, 8, 16, 24, ..., 64`` (vLLM's default CUDA-graph capture sizes up to 64), then
    multiples of 64: fewer simulations, at the price of padding (``docs/serving.md``)."""
    return _upto([1, 2, 4] + list(range(8, 65, 8)), max_batch)


Points = list[tuple[int, int]]
"""Decode grid points ``(batch, context)`` a bisection step needs simulated."""
T = TypeVar("T")
Bisection = Generator[Points, None, tuple[int, int]]
"""A bisection as a generator: it yields the points it needs next and reads them from the grid
once resumed (so several bisections can have their points simulated together)."""



def aligned(batch: int, context: int, minimum: int | None = ALIGNED_MIN_KV_TOKENS) -> bool:
    """Whether a decode of ``batch`` sequences at ``context`` (a multiple of the KV tile) is
    aligned (:data:`ALIGNED_MIN_KV_TOKENS`): ``batch x context`` a power of two >= ``minimum``
    (None: never)."""
    n = batch * context
    return minimum is not None and n >= minimum and n & (n - 1) == 0


def _chord(x0: float, t0: float, x1: float, t1: float, x: float) -> float:
    """The straight line through ``(x0, t0)`` and ``(x1, t1)`` at ``x`` (interpolation, and the
    chord a bisection midpoint is compared with)."""
    return t0 + (t1 - t0) * (x - x0) / (x1 - x0)

class SimulatedStepTimes:
    """Step times of ``model`` on one socket from the simulator (see the module docstring).

    ``on_simulate(kind, batch, tokens, seconds)`` is called after each new simulation (for a
    progress bar). ``simulate(scenario, config) -> seconds`` replaces the simulator (tests).
    ``options`` go to :func:`prodigy_sim.simulation.simulate` (``steady_units`` defaults
    to :data:`GRID_STEADY_UNITS`; ``cores``, ``l3``, ``reuse``): a point's seconds are those of
    :func:`prodigy_sim.reports.simulate_scenario` with these options. ``aligned_min``: the
    smallest power of two of KV tokens at which a step counts as aligned (None: none does).

    ``workers`` > 1: the timing-engine runs of the points a query needs (a bisection step's
    three contexts, the three batches of a batch bisection, an aligned node's neighbours, the
    ops of one step) are made in that many worker processes (:class:`RunCache`), submitted
    together; the points, and so every time, are the same as with ``workers=1``
    (``tests/test_serving_steptime.py``). :meth:`close` (or ``with``) stops the workers.
    """

    def __init__(self, model: str = "llama-2-7b", *, formats: Formats | None = None,
                 sparsity: str = "none", routing: Routing | None = None,
                 hardware: str | None = None,
                 config: ChipConfig | None = None, max_batch: int = 64,
                 decode_buckets: Sequence[int] | None = None,
                 context_grid: Sequence[int] | None = None,
                 batch_grid: Sequence[int] | None = DEFAULT_BATCH_GRID,
                 refine_tolerance: float = REFINE_TOLERANCE,
                 min_interval: int = MIN_INTERVAL_TOKENS,
                 aligned_min: int | None = ALIGNED_MIN_KV_TOKENS,
                 simulate: Simulate | None = None,
                 on_simulate: Callable[[str, int, int, float], None] | None = None,
                 workers: int = 1,
                 **options) -> None:
        self.card = load_card(model)
        if not self.card.is_decoder:
            raise ConfigError(f"serving needs a decoder model ({self.card.name!r} is "
                              f"{self.card.family}, encoder-only)")
        base = {"model": model, "phase": "decode", "batch": 1, "context_length": 1,
                "formats": formats or Formats(), "sparsity": sparsity}
        if routing is not None:
            base["routing"] = routing
        if hardware is not None:
            base["hardware"] = hardware
        try:
            self.template = Scenario.model_validate(base)
        except ValidationError as err:
            raise config_error_from_validation(err, source="step-time grid") from None
        check_scenario(self.template, self.card, source="step-time grid")
        self.config = config or load_preset(self.template.hardware)
        self.max_context = self.card.max_position_embeddings
        limit = self.max_context or max(DEFAULT_CONTEXT_GRID)
        self.decode_buckets = tuple(sorted(set(decode_buckets or
                                               default_decode_buckets(max_batch))))
        bad = [b for b in self.decode_buckets if b > 64 and b % 64 or b < 1]
        if bad:
            raise ConfigError(f"decode buckets {bad}: the lowering runs batches of 1..64 or "
                              "multiples of 64")
        grid = sorted({min(c, limit) for c in (context_grid or DEFAULT_CONTEXT_GRID)})
        if len(grid) < 2 and limit > grid[0]:
            grid.append(limit)
        self.context_grid = tuple(grid)
        if refine_tolerance < 0 or min_interval < KV_TILE_TOKENS:
            raise ConfigError(f"refine_tolerance {refine_tolerance} (>= 0; 0: no refinement) "
                              f"and min_interval {min_interval} (>= {KV_TILE_TOKENS} tokens)")
        self.refine_tolerance = refine_tolerance
        self.batch_grid = tuple(sorted(set(batch_grid or ())))
        self.min_interval = min_interval
        self.aligned_min = aligned_min
        options = {"steady_units": GRID_STEADY_UNITS, **options}
        unknown = set(options) - {"steady_units", "cores", "l3", "reuse"}
        if unknown:
            raise ConfigError(f"unknown simulation options {sorted(unknown)} (steady_units, "
                              "cores, l3, reuse)")
        self.runs = RunCache(workers)
        """Timing-engine runs shared by the grid's simulations (exact reuse: the linear layers
        of one batch at every context), made in ``workers`` processes."""
        self._stub = simulate
        self._method = SimMethod(options.get("reuse", True), options["steady_units"],
                                 options.get("l3", True))
        self._options = options
        self._on_simulate = on_simulate
        self._decode: dict[tuple[int, int], float] = {}
        self._prefill: dict[int, float] = {}

    # --- the grid ------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop the worker processes (:meth:`RunCache.close`); the model stays usable."""
        self.runs.close()

    def __enter__(self) -> SimulatedStepTimes:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _scenario(self, phase: str, batch: int, length: int) -> Scenario:
        key = "context_length" if phase == "decode" else "sequence_length"
        scenario = self.template.model_copy(update={"phase": phase, "batch": batch,
                                                    "context_length": None, key: length})
        check_scenario(scenario, self.card, source="step-time grid")
        return scenario

    def _lower(self, scenario: Scenario) -> LoweredModel:
        """``scenario`` lowered as :func:`prodigy_sim.simulation.simulate` lowers it, its
        timing-engine runs submitted to the workers."""
        lowered = lower_model(self.card, scenario, self.config,
                              cores=self._options.get("cores"), l3=self._method.l3)
        prefetch_runs(lowered, self.config, self.runs, method=self._method)
        return lowered

    def _seconds(self, phase: str, batch: int, length: int,
                 lowered: LoweredModel | None = None) -> float:
        if self._stub is not None:
            seconds = float(self._stub(self._scenario(phase, batch, length), self.config))
        else:
            lowered = lowered or self._lower(self._scenario(phase, batch, length))
            sim = simulate(lowered, self.config, steady_units=self._method.steady_units,
                           reuse=self._method.reuse, l3=self._method.l3, cache=self.runs)
            seconds = report_simulation(sim, self.config).seconds
        if not seconds > 0:
            raise ConfigError(f"the simulator gave {seconds} s for {phase} batch {batch}, "
                              f"{length} tokens")
        if self._on_simulate is not None:
            self._on_simulate(phase, batch, length, seconds)
        return seconds

    def simulate(self, phase: str, batch: int, length: int) -> float:
        """One simulation of ``phase`` at ``batch`` and ``length`` tokens (seconds), not added to
        the grid: :func:`prodigy_sim.reports.simulate_scenario` of the model's scenario at that
        shape with the model's options (or the stand-in ``simulate``)."""
        return self._seconds(phase, batch, length)

    def simulate_decodes(self, points: Sequence[tuple[int, int]]) -> None:
        """Add the decode grid points ``(batch, context)`` not simulated yet: all lowered first
        and their timing-engine runs submitted together (in parallel with ``workers`` > 1),
        then each simulated from them."""
        todo = [p for p in dict.fromkeys(points) if p not in self._decode]
        if self._stub is not None or self.runs.workers == 1 or len(todo) < 2:
            for b, c in todo:
                self._decode[(b, c)] = self._seconds("decode", b, c)
            return
        lowered = [self._lower(self._scenario("decode", b, c)) for b, c in todo]
        for (b, c), lm in zip(todo, lowered, strict=True):
            self._decode[(b, c)] = self._seconds("decode", b, c, lm)

    def _run(self, bisection: Generator[Points, None, T]) -> T:
        """Drive one bisection, simulating the points it asks for."""
        try:
            while True:
                self.simulate_decodes(next(bisection))
        except StopIteration as done:
            return done.value

    @staticmethod
    def _together(bisections: Sequence[Generator[Points, None, T]]
                  ) -> Generator[Points, None, list[T]]:
        """Several bisections in lockstep: each round yields the points all of them need."""
        out: dict[int, T] = {}
        active = list(range(len(bisections)))
        while active:
            need: Points = []
            still = []
            for i in active:
                try:
                    need += next(bisections[i])
                except StopIteration as done:
                    out[i] = done.value
                    continue
                still.append(i)
            active = still
            if need:
                yield need
        return [out[i] for i in range(len(bisections))]

    def decode_point(self, batch: int, context: int) -> float:
        """Simulated decode step at a grid point (cached)."""
        key = (batch, context)
        if key not in self._decode:
            self._decode[key] = self.simulate("decode", batch, context)
        return self._decode[key]

    def aligned(self, batch: int, context: int) -> bool:
        """:func:`aligned` with this model's ``aligned_min`` (None: no step is aligned)."""
        return aligned(batch, context, self.aligned_min)

    def _node_points(self, batch: int, context: int) -> Points:
        """The simulated points :meth:`decode_node` takes."""
        if not self.aligned(batch, context) or context - 2 * KV_TILE_TOKENS < self.context_grid[0]:
            return [(batch, context)]
        if context + KV_TILE_TOKENS <= self.context_grid[-1]:
            return [(batch, context - KV_TILE_TOKENS), (batch, context + KV_TILE_TOKENS)]
        return [(batch, context - KV_TILE_TOKENS), (batch, context - 2 * KV_TILE_TOKENS)]

    def decode_node(self, batch: int, context: int) -> float:
        """The decode step time an interpolation uses at a grid point: the simulated point, or
        for an aligned point (:func:`aligned`) the trend through it - the mean of its two
        neighbouring tile contexts (at the top of the grid, the line through the two below
        it), which are not aligned - so that its spike does not leak into the chords around
        it. An aligned point with less than two tiles below it in the grid is taken as
        simulated."""
        if not self.aligned(batch, context) or context - 2 * KV_TILE_TOKENS < self.context_grid[0]:
            return self.decode_point(batch, context)
        lo = self.decode_point(batch, context - KV_TILE_TOKENS)
        if context + KV_TILE_TOKENS <= self.context_grid[-1]:
            return (lo + self.decode_point(batch, context + KV_TILE_TOKENS)) / 2
        return 2 * lo - self.decode_point(batch, context - 2 * KV_TILE_TOKENS)

    def prefill_point(self, tokens: int) -> float:
        """Simulated prefill of ``tokens`` new tokens, a prefill bucket (cached)."""
        if tokens not in self._prefill:
            longest = 1 << int(math.log2(self.max_context or tokens))
            if tokens <= longest:
                self._prefill[tokens] = self.simulate("prefill", 1, tokens)
            else:
                self._prefill[tokens] = self.simulate("prefill", tokens // longest, longest)
        return self._prefill[tokens]

    # --- the rules -----------------------------------------------------------------------------

    def decode_bucket(self, batch: int) -> int:
        """The padded batch a decode of ``batch`` sequences runs as."""
        i = bisect.bisect_left(self.decode_buckets, batch)
        if i == len(self.decode_buckets):
            raise ConfigError(f"decode batch {batch} exceeds the largest bucket "
                              f"{self.decode_buckets[-1]} (raise max_batch)")
        return self.decode_buckets[i]

    @staticmethod
    def prefill_bucket(tokens: int) -> int:
        """The padded token count a prefill of ``tokens`` new tokens runs as (power of 2 >= 64)."""
        return max(64, 1 << max(0, math.ceil(math.log2(max(tokens, 1)))))

    def decode_seconds(self, batch: int, context: float) -> float:
        """A decode step: ``batch`` padded to its bucket, the mean ``context`` rounded up to
        64 tokens; an aligned step (:func:`aligned`) is simulated, any other interpolated
        linearly in the batch between simulated batches (:meth:`decode_batches`) and in the
        context between simulated contexts of each (:meth:`decode_interval`), aligned nodes
        taken at their trend (:meth:`decode_node`)."""
        b = self.decode_bucket(batch)
        c = self.grid_context(context)
        if self.aligned(b, c):
            return self.decode_point(b, c)
        b0, b1 = self.decode_batches(b, c)
        ts = self._run(self._together([self._at_batch(x, c) for x in dict.fromkeys((b0, b1))]))
        if b1 == b0:
            return ts[0]
        return _chord(b0, ts[0], b1, ts[1], b)

    def _at_batch(self, batch: int, context: int) -> Generator[Points, None, float]:
        """The step time of the bucket ``batch`` at a grid ``context``, interpolated in the
        context only (a bisection generator)."""
        c0, c1 = yield from self._interval(batch, context)
        yield self._node_points(batch, c0) + self._node_points(batch, c1)
        t0 = self.decode_node(batch, c0)
        if c1 == c0:
            return t0
        return _chord(c0, t0, c1, self.decode_node(batch, c1), context)

    def decode_batches(self, batch: int, context: int) -> tuple[int, int]:
        """The simulated batches ``(b0, b1)`` a decode of the bucket ``batch`` at the grid
        ``context`` is interpolated between (``b0 == b1``: simulated at that batch).

        The same bisection as :meth:`decode_interval`, over the decode buckets: starting from
        the ``batch_grid`` buckets around ``batch``, the middle bucket is timed at ``context``
        (interpolated in the context only); within ``refine_tolerance`` of the chord, ``batch``
        is interpolated in the half that holds it, otherwise that half is refined in turn, down
        to neighbouring buckets. Outside the batch grid (or with ``refine_tolerance`` 0) every
        bucket is simulated.
        """
        return self._run(self._batches(batch, context))

    def _batches(self, batch: int, context: int) -> Bisection:
        """:meth:`decode_batches` as a bisection generator (the three batches of a step timed
        together)."""
        buckets = self.decode_buckets
        i = buckets.index(batch)
        grid = [j for j, b in enumerate(buckets) if b in self.batch_grid]
        if not self.refine_tolerance or i in grid or not grid or not grid[0] < i < grid[-1]:
            return batch, batch
        k = bisect.bisect_left(grid, i)
        i0, i1 = grid[k - 1], grid[k]
        while i1 - i0 > 1:
            m = (i0 + i1) // 2
            if m == i:                                   # (the chord is not needed)
                return batch, batch
            b0, b1, bm = buckets[i0], buckets[i1], buckets[m]
            t0, t1, tm = yield from self._together([self._at_batch(x, context)
                                                     for x in (b0, b1, bm)])
            affine = abs(_chord(b0, t0, b1, t1, bm) / tm - 1) <= self.refine_tolerance
            i0, i1 = (i0, m) if i < m else (m, i1)
            if affine:
                break
        return buckets[i0], buckets[i1]

    def simulated_at(self, batch: int, context: float) -> bool:
        """True if :meth:`decode_seconds` of ``batch`` at ``context`` is a simulated point
        itself (not interpolated)."""
        b, c = self.decode_bucket(batch), self.grid_context(context)
        if self.aligned(b, c):
            return True
        return self.decode_batches(b, c) == (b, b) and self.decode_interval(b, c) == (c, c)

    def grid_context(self, context: float) -> int:
        """``context`` as :meth:`decode_seconds` takes it: rounded up to the 64-token KV tile,
        clamped to the grid."""
        c = KV_TILE_TOKENS * math.ceil(context / KV_TILE_TOKENS)
        return min(max(c, self.context_grid[0]), self.context_grid[-1])

    def decode_interval(self, batch: int, context: int) -> tuple[int, int]:
        """The simulated contexts ``(c0, c1)`` a decode of the bucket ``batch`` at ``context``
        (a multiple of 64 within the grid) is interpolated between; ``c0 == c1`` when it is a
        simulated point.

        Starting from the grid interval around ``context``: simulate its midpoint (a multiple
        of 64); if the chord of the interval is within ``refine_tolerance`` of it there, the
        step time is close to affine on the interval and ``context`` is interpolated in the
        half that holds it; otherwise (a bend, or a jump) descend
        into that half and repeat, down to intervals of ``min_interval`` tokens. Which points
        are simulated depends only on the grid and the simulated times, not on the order of the
        queries, so a saved table gives the same times.
        """
        return self._run(self._interval(batch, context))

    def _interval(self, batch: int, context: int) -> Bisection:
        """:meth:`decode_interval` as a bisection generator (each step's three contexts
        simulated together)."""
        grid = self.context_grid
        j = bisect.bisect_left(grid, context)
        if grid[j] == context:
            return context, context
        c0, c1 = grid[j - 1], grid[j]
        while True:
            if not self.refine_tolerance or c1 - c0 <= self.min_interval:
                return c0, c1
            m = c0 + KV_TILE_TOKENS * ((c1 - c0) // (2 * KV_TILE_TOKENS))
            if m == context:                             # (the chord is not needed)
                return m, m
            yield [p for x in (c0, c1, m) for p in self._node_points(batch, x)]
            t0, t1, tm = (self.decode_node(batch, x) for x in (c0, c1, m))
            affine = abs(_chord(c0, t0, c1, t1, m) / tm - 1) <= self.refine_tolerance
            c0, c1 = (c0, m) if context < m else (m, c1)
            if affine:
                return c0, c1

    def prefill_seconds(self, tokens: int) -> float:
        """A prefill of ``tokens`` new tokens, padded up to the next power of two (>= 64)."""
        return self.prefill_point(self.prefill_bucket(tokens))

    def step_seconds(self, step: StepShape) -> float:
        """Prefill time of the step's new prompt tokens plus decode time of its decodes."""
        t = 0.0
        if step.prefill_chunks:
            t += self.prefill_seconds(step.prefill_tokens)
        if step.decodes:
            t += self.decode_seconds(step.decodes, step.mean_context)
        if t <= 0:
            raise ConfigError("an engine step with neither prefill nor decode")
        return t

    # --- persistence ---------------------------------------------------------------------------

    def key(self) -> dict:
        """What the cached times depend on: model card, every scenario field but the shape
        (formats, sparsity, MoE routing, ...), chip, options."""
        chip = json.dumps(self.config.model_dump(mode="json"), sort_keys=True)
        scenario = self.template.model_dump(mode="json", exclude=_SHAPE_FIELDS)
        return {"model": self.card.name,
                "card_sha256": hashlib.sha256(
                    self.card.model_dump_json().encode()).hexdigest()[:16],
                "scenario": scenario,
                "chip": self.config.name,
                "chip_sha256": hashlib.sha256(chip.encode()).hexdigest()[:16],
                "options": {k: repr(v) for k, v in sorted(self._options.items())}}

    def table(self) -> dict:
        """The simulated points: ``{"key", "decode": [[batch, context, s]], "prefill":
        [[tokens, s]]}``."""
        return {"key": self.key(),
                "decode": [[b, c, s] for (b, c), s in sorted(self._decode.items())],
                "prefill": [[n, s] for n, s in sorted(self._prefill.items())]}

    def save(self, path: str | Path) -> Path:
        """Write the simulated points as JSON."""
        p = Path(path)
        p.write_text(json.dumps(self.table(), indent=1) + "\n")
        return p

    def load(self, source: str | Path | dict) -> int:
        """Add the points of a file written by :meth:`save` (or of a :meth:`table`) for the same
        key; returns how many. A table for another model, format, chip or simulation options
        raises :class:`ConfigError`."""
        if isinstance(source, dict):
            p, data = "step-time table", source
        else:
            path = Path(source)
            p = str(path)
            try:
                data = json.loads(path.read_text())
            except (OSError, ValueError) as err:  # JSONDecodeError, UnicodeDecodeError, ...
                raise ConfigError(f"{p}: not a step-time table ({err})") from None
        if not isinstance(data, dict) or data.get("key") != self.key():
            theirs = data.get("key") if isinstance(data, dict) else None
            raise ConfigError(f"{p}: a step-time table for another model, format, chip or "
                              f"simulation options (its key: {theirs}; delete it or choose "
                              "another file)")
        for b, c, s in data.get("decode", []):
            self._decode[(int(b), int(c))] = float(s)
        for n, s in data.get("prefill", []):
            self._prefill[int(n)] = float(s)
        return len(data.get("decode", [])) + len(data.get("prefill", []))

    @property
    def simulations(self) -> int:
        """Grid points simulated or loaded so far."""
        return len(self._decode) + len(self._prefill)


@dataclass(frozen=True)
class InterpolationCheck:
    """One held-out decode point: the step-time model against a direct simulation.

    ``direct_s`` simulates the shape the engine runs (the padded batch, the exact context);
    ``error`` = interpolated / direct - 1. ``unpadded_s`` simulates the unpadded batch (None
    when it equals the bucket): ``interpolated / unpadded - 1`` is what padding costs.
    """

    batch: int
    context: int
    bucket: int
    interpolated_s: float
    direct_s: float
    unpadded_s: float | None

    @property
    def error(self) -> float:
        return self.interpolated_s / self.direct_s - 1

    @property
    def padding_overhead(self) -> float | None:
        return None if self.unpadded_s is None else self.interpolated_s / self.unpadded_s - 1

    def to_dict(self) -> dict:
        return dict(asdict(self), error=self.error, padding_overhead=self.padding_overhead)


def check_interpolation(model: SimulatedStepTimes, points: Sequence[tuple[int, int]], *,
                        unpadded: bool = False, shift: bool = False) -> list[InterpolationCheck]:
    """Compare :meth:`SimulatedStepTimes.decode_seconds` at held-out ``(batch, context)`` points
    with direct simulations (not added to the model's grid). A point whose context (rounded up
    to 64) the model simulates for that batch (the grid and its refinement) is not held out: it
    is refused, or with ``shift`` moved up by 64 tokens until it is held out (the row has the
    context checked)."""
    out = []
    for batch, context in points:
        bucket = model.decode_bucket(batch)
        while model.simulated_at(bucket, context):
            if not shift or model.grid_context(context + KV_TILE_TOKENS) == \
                    model.grid_context(context):
                raise ConfigError(f"context {context} is a simulated point of batch {bucket} "
                                  f"(grid {model.context_grid} and its refinement): not a "
                                  "held-out point")
            context += KV_TILE_TOKENS
        value = model.decode_seconds(batch, context)
        direct = model.simulate("decode", bucket, context)
        raw = None
        if unpadded and bucket != batch:
            raw = model.simulate("decode", batch, context)
        out.append(InterpolationCheck(batch, context, bucket, value, direct, raw))
    return out
