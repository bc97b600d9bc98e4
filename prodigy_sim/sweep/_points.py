"""The points of a sweep: parameters with their defaults resolved, a stable id, the scenario and
chip they describe, and the grouping of points that share a lowering.

A point's id is a hash of everything that determines its results: its parameters (defaults
filled in), the evaluators and their settings, and the contents of the files it names (a
hardware YAML, a model card or ``config.json``). The same point in another sweep, or in a rerun,
has the same id.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from prodigy_sim.errors import ConfigError, ProdigySimError, config_error_from_validation
from prodigy_sim.hardware import DEFAULT_PRESET, ChipConfig, preset_names, resolve_hardware
from prodigy_sim.models import Scenario, check_scenario, load_card
from prodigy_sim.sweep._spec import FORMAT_KEYS, SweepSpec, key_kind

__all__ = ["Point", "DEFAULTS", "expand", "lowering_key", "batches"]

DEFAULTS: dict[str, Any] = {"hw": DEFAULT_PRESET, "batch": 1, "weights": "tai4",
                            "kv_cache": "float8_e4m3fn", "sparsity": "none"}
"""Defaults of the parameters every row shows (``phase``: decode, or prefill for encoder-only
models; ``context``: 2048 tokens, or 128 for encoder-only models)."""

_CORE_KEYS = ("model", "phase", "batch", "context", "weights", "kv_cache", "sparsity", "hw")


@dataclass(frozen=True)
class Point:
    """One point: ``params`` (every key, defaults filled in; JSON values), its ``point_id``, and
    either the ``scenario`` and ``config`` it runs (``hardware`` = the config's name) or the
    ``error`` that makes it impossible."""

    index: int
    params: dict[str, Any]
    point_id: str
    scenario: Scenario | None = None
    config: ChipConfig | None = None
    error: str | None = None

    @property
    def hardware(self) -> str | None:
        """The chip's name: the preset, or ``<preset>+<path>=<value>...``."""
        return self.config.name if self.config is not None else None


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _file_digest(value: Any) -> str | None:
    """Hash of the file a parameter names (None for a built-in name)."""
    if not isinstance(value, str) or value in preset_names():
        return None
    path = Path(value)
    if path.is_dir():
        path = path / "config.json"
    try:
        return _digest(path.read_bytes()) if path.is_file() else None
    except OSError:
        return None


MAX_POINTS = 100_000
"""Most points a sweep spec may define (grid combinations x entries of ``points``)."""


def _combinations(spec: SweepSpec) -> list[dict[str, Any]]:
    keys = list(spec.grid)
    count = math.prod(len(spec.grid[k]) for k in keys) * max(len(spec.points or ()), 1)
    if count > MAX_POINTS:
        sizes = " x ".join([str(len(spec.grid[k])) for k in keys]
                             + [str(len(spec.points))] * bool(spec.points))
        raise ConfigError(f"sweep spec {spec.name!r}: 'grid' and 'points' make {sizes} = {count} "
                          f"points; at most {MAX_POINTS}")
    grid = [dict(zip(keys, vals, strict=True))
            for vals in itertools.product(*(spec.grid[k] for k in keys))]
    entries = spec.points or [{}]
    return [{**spec.fixed, **entry, **combo} for entry in entries for combo in grid]


def _complete(given: dict[str, Any], cards: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    """The parameters with defaults filled in (core keys first), and the model card (or the
    error loading it; ``cards`` caches both by model)."""
    params = {k: given.get(k, DEFAULTS.get(k)) for k in _CORE_KEYS}
    params.update({k: v for k, v in given.items() if k not in params})
    key = str(params["model"])
    if key not in cards:
        try:
            cards[key] = load_card(key)
        except ProdigySimError as err:
            cards[key] = err
    card = cards[key]
    if not isinstance(card, Exception):
        if params["phase"] is None:
            params["phase"] = "decode" if card.is_decoder else "prefill"
        if params["context"] is None:
            params["context"] = 2048 if card.is_decoder else 128
    return params, card


def _point_id(params: dict[str, Any], spec: SweepSpec) -> str:
    material = {
        "params": params,
        "compute": list(spec.compute),
        # (a setting at its default since before it existed is left out: the points' ids
        # of earlier journals stay valid)
        "settings": {"simulate": spec.simulate.model_dump(
            exclude={"mapping_candidates"} if spec.simulate.mapping_candidates == 1 else None)}
        if "simulate" in spec.compute else {},
        "files": {k: _file_digest(params[k]) for k in ("hw", "model")},
    }
    text = json.dumps(material, sort_keys=True, separators=(",", ":"), default=str)
    return _digest(text.encode())[:16]


def _resolve(params: dict[str, Any], card: Any, where: str) -> tuple[Scenario, ChipConfig]:
    if isinstance(card, Exception):
        raise ConfigError(f"'model': {card}")
    overrides = {k: v for k, v in params.items() if v is not None
                 and key_kind(k) == "hardware"}
    config, changes = resolve_hardware(params["hw"], overrides)
    decode = params["phase"] == "decode"
    data: dict[str, Any] = {
        "model": str(params["model"]), "phase": params["phase"], "batch": params["batch"],
        ("context_length" if decode else "sequence_length"): params["context"],
        "sparsity": params["sparsity"], "hardware": changes.preset,
        "formats": {k: params[k] for k in FORMAT_KEYS if params.get(k) is not None},
    }
    if params.get("encoder_length") is not None:
        data["encoder_length"] = params["encoder_length"]
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as err:
        raise config_error_from_validation(err) from None
    check_scenario(scenario, card, source=where)
    return scenario, config


def expand(spec: SweepSpec) -> list[Point]:
    """Every point of ``spec``, in order. A point that cannot be built (a context longer than the
    model takes, a bad hardware value...) carries its ``error`` instead of a scenario; a key
    missing from every point (``model``) raises :class:`ConfigError`."""
    spec.check_keys()
    points = []
    cards: dict[str, Any] = {}
    for index, given in enumerate(_combinations(spec)):
        if "model" not in given:
            raise ConfigError("'model': no model given (set it in 'fixed', 'grid' or 'points')")
        params, card = _complete(given, cards)
        pid = _point_id(params, spec)
        try:
            scenario, config = _resolve(params, card, f"point {index}")
        except ProdigySimError as err:
            points.append(Point(index, params, pid, error=str(err)))
            continue
        points.append(Point(index, params, pid, scenario, config))
    return points


def lowering_key(point: Point) -> str:
    """Points with the same key lower to the same kernels: the same model (and card file), the
    same scenario apart from the hardware name, and the same chip apart from its name. The whole
    chip counts, its memory system included: the mapper ranks mappings by costs that read the
    DDR bandwidth, so a lowering made for one memory system is not the one another would get."""
    assert point.scenario is not None and point.config is not None
    material = {
        "scenario": point.scenario.model_dump(mode="json", exclude={"hardware", "name",
                                                                    "description"}),
        "chip": point.config.model_dump(mode="json", exclude={"name"}),
        "model_file": _file_digest(point.params["model"]),
    }
    return _digest(json.dumps(material, sort_keys=True, default=str).encode())[:16]


def batches(points: list[Point], batch_points: int, *, by_lowering: bool
            ) -> list[tuple[Point, ...]]:
    """Split ``points`` into tasks of at most ``batch_points`` points. With ``by_lowering``,
    a task holds points of one lowering key only (points that could not be built go together;
    a group of ``n`` points is cut into
    ``ceil(n / batch_points)`` nearly equal tasks). Tasks are ordered by their first point."""
    groups: dict[str, list[Point]] = {}
    for p in points:
        key = "" if not by_lowering else "error" if p.error is not None else lowering_key(p)
        groups.setdefault(key, []).append(p)
    out = []
    for group in groups.values():
        k = math.ceil(len(group) / batch_points)
        size, extra = divmod(len(group), k)
        start = 0
        for i in range(k):
            n = size + (1 if i < extra else 0)
            out.append(tuple(group[start:start + n]))
            start += n
    return sorted(out, key=lambda b: b[0].index)
