"""What is computed at a point: a registry of evaluators, and the task that runs a batch of points.

An :class:`Evaluator` turns a :class:`PointContext` (the point's parameters, scenario, chip and a
lazily built lowering) into named output columns. Built in (:data:`EVALUATORS`):

- ``footprint``: bytes of weights, KV cache and activations and whether they fit the chip's DDR
  (:func:`prodigy_sim.models.footprint_report` with the chip's capacity);
- ``simulate``: one pass (decode step or prefill) through the timing model
  (:func:`prodigy_sim.reports.report_lowered`): time, tokens/s, roofline, bytes, bandwidth,
  utilization, and ``op_seconds``, the seconds of the pass by op name as JSON text (what a
  ``compare`` plot stacks).

More can be passed to :func:`prodigy_sim.sweep.sweep` (``evaluators=``), for example an accuracy
evaluator reading the pass-through parameters (``ctx.params["quantization"]``).

A task (:func:`run_batch`) evaluates points that share a lowering (see
:func:`prodigy_sim.sweep._points.lowering_key`): the model is lowered once, for the first point's
chip, and each point simulates that lowering on its own chip. An exception at a point is recorded
in its row (``status`` ``failed``, ``error`` = the evaluator and message); the other evaluators
and points go on.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from prodigy_sim.errors import ProdigySimError
from prodigy_sim.hardware import ChipConfig
from prodigy_sim.lowering import LoweredModel, lower_model
from prodigy_sim.models import Scenario, footprint_report
from prodigy_sim.reports import op_seconds, report_lowered
from prodigy_sim.sweep._points import Point, lowering_key
from prodigy_sim.sweep._spec import SimulateSettings

__all__ = ["PointContext", "Evaluator", "EVALUATORS", "ROW_HEAD", "run_batch", "input_row",
           "failed_row"]

ROW_HEAD = ("point_id", "status", "error")
"""The first columns of every row."""


@dataclass(frozen=True)
class PointContext:
    """What an evaluator sees at one point. ``lowered()`` returns the point's lowering (built once
    per task and shared by the points of the task)."""

    params: Mapping[str, Any]
    scenario: Scenario
    config: ChipConfig
    settings: SimulateSettings
    lowered: Callable[[], LoweredModel]


@dataclass(frozen=True)
class Evaluator:
    """One kind of result: ``fn(ctx)`` returns a mapping with (at least) ``columns``;
    ``uses_lowering``: the evaluator calls ``ctx.lowered()`` (points are then grouped by
    lowering)."""

    name: str
    columns: tuple[str, ...]
    fn: Callable[[PointContext], Mapping[str, Any]]
    uses_lowering: bool = False
    description: str = ""


def _footprint(ctx: PointContext) -> dict[str, Any]:
    fp = footprint_report(ctx.scenario.card(), ctx.scenario,
                          capacity_bytes=ctx.config.memory.capacity_bytes)
    return {"parameters": fp.parameters, "weight_bytes": fp.weight_bytes,
            "bits_per_weight": fp.bits_per_weight, "kv_cache_bytes": fp.kv_cache_bytes,
            "activation_bytes": fp.activation_bytes, "footprint_bytes": fp.total_bytes,
            "capacity_bytes": fp.capacity_bytes, "fits": fp.fits}


def _simulate(ctx: PointContext) -> dict[str, Any]:
    s = ctx.settings
    r = report_lowered(ctx.lowered(), ctx.config, l3=s.l3,
                       steady_units=s.steady_units or None,
                       mapping_candidates=s.mapping_candidates)
    return {
        "time_s": r.seconds,
        "tokens_per_s": r.tokens / r.seconds,
        "time_to_first_token_s": r.time_to_first_token_s,
        "roofline_s": r.ideal_roofline_s,
        "roofline_tokens_per_s": r.tokens / r.ideal_roofline_s,
        "program_roofline_s": r.program_roofline_s,
        "bound": r.bound,
        "flops": r.flops,
        "flops_per_s": r.achieved_flops_per_s,
        "peak_flops_per_s": r.peak_flops_per_s,
        "dma_bytes": r.dma_bytes,
        "ddr_bytes": r.ddr_bytes,
        "compulsory_bytes": r.compulsory_bytes,
        "l3_hit_rate": r.l3_hit_rate,
        "bandwidth_bytes_per_s": r.achieved_ddr_bytes_per_s,
        "peak_bandwidth_bytes_per_s": r.peak_bytes_per_s,
        "bandwidth_utilization": r.achieved_ddr_bytes_per_s / r.peak_bytes_per_s,
        "matrix_utilization": r.matrix_utilization,
        "vector_utilization": r.vector_utilization,
        "op_seconds": json.dumps(op_seconds(r), separators=(",", ":")),
    }


EVALUATORS: Mapping[str, Evaluator] = MappingProxyType({
    "footprint": Evaluator(
        "footprint", ("parameters", "weight_bytes", "bits_per_weight", "kv_cache_bytes",
                      "activation_bytes", "footprint_bytes", "capacity_bytes", "fits"),
        _footprint, description="bytes of weights, KV cache, activations; fits the DDR?"),
    "simulate": Evaluator(
        "simulate", ("time_s", "tokens_per_s", "time_to_first_token_s", "roofline_s",
                     "roofline_tokens_per_s", "program_roofline_s", "bound", "flops",
                     "flops_per_s", "peak_flops_per_s", "dma_bytes", "ddr_bytes",
                     "compulsory_bytes", "l3_hit_rate", "bandwidth_bytes_per_s",
                     "peak_bandwidth_bytes_per_s", "bandwidth_utilization",
                     "matrix_utilization", "vector_utilization", "op_seconds"),
        _simulate, uses_lowering=True,
        description="one pass through the timing model: time, tokens/s, roofline, bandwidth, "
                    "utilization; op_seconds = seconds per pass by op name (JSON text)"),
})
"""The built-in evaluators by name."""


def _cell(value: Any) -> Any:
    """A parameter value as a table cell: mappings and lists as compact JSON text."""
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    return value


def input_row(point: Point) -> dict[str, Any]:
    """The head and input columns of ``point``'s row (status not yet known)."""
    row: dict[str, Any] = {"point_id": point.point_id, "status": None, "error": None}
    row.update({k: _cell(v) for k, v in point.params.items()})
    row["hardware"] = point.hardware
    return row


def failed_row(point: Point, error: str, evaluators: tuple[Evaluator, ...]) -> dict[str, Any]:
    """The row of a point none of whose evaluators ran (``error`` says why)."""
    row = input_row(point)
    row.update(status="failed", error=error)
    for ev in evaluators:
        row.update(dict.fromkeys(ev.columns))
    return row


def _message(ev: Evaluator, err: Exception) -> str:
    kind = "" if isinstance(err, ProdigySimError) else f"{type(err).__name__}: "
    text = " ".join(str(err).split()) or type(err).__name__
    return f"{ev.name}: {kind}{text}"


def run_batch(batch: tuple[Point, ...], evaluators: tuple[Evaluator, ...],
              settings: SimulateSettings) -> list[dict[str, Any]]:
    """Evaluate every point of a task -> one row per point (inputs, outputs, status, error)."""
    lowerings: dict[str, LoweredModel | Exception] = {}

    def lowered_for(point: Point) -> Callable[[], LoweredModel]:
        def get() -> LoweredModel:
            assert point.scenario is not None and point.config is not None
            key = lowering_key(point)
            if key not in lowerings:
                try:
                    lowerings[key] = lower_model(point.scenario.card(), point.scenario,
                                                 point.config)
                except Exception as err:  # noqa: BLE001 - recorded in every row that needs it
                    lowerings[key] = err
            got = lowerings[key]
            if isinstance(got, Exception):
                raise got
            return dataclasses.replace(got, scenario=point.scenario,
                                       config_name=point.config.name)
        return get

    rows = []
    for point in batch:
        if point.error is not None:
            rows.append(failed_row(point, point.error, evaluators))
            continue
        assert point.scenario is not None and point.config is not None
        ctx = PointContext(point.params, point.scenario, point.config, settings,
                           lowered_for(point))
        row = input_row(point)
        errors = []
        for ev in evaluators:
            try:
                out = ev.fn(ctx)
                row.update({c: out[c] for c in ev.columns})
            except Exception as err:  # noqa: BLE001 - a failing point is a row, not a crash
                row.update(dict.fromkeys(ev.columns))
                errors.append(_message(ev, err))
        row.update(status="failed" if errors else "ok", error="; ".join(errors) or None)
        rows.append(row)
    return rows
