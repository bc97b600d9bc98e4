"""The sweep specification: which points, what to compute at each, where the results go, how to
plot them and how to run (a YAML file validated with pydantic; errors name the file, line and
field).

Parameters are named by keys. A key is one of

- a scenario parameter (:data:`SCENARIO_KEYS`): ``model`` (card name, card file or Hugging Face
  ``config.json``), ``phase``, ``batch``, ``context`` (decode: tokens in the KV cache; prefill:
  prompt tokens), ``encoder_length``, ``sparsity`` and the number formats of
  :class:`~prodigy_sim.models.Formats` by their field names (``weights``, ``kv_cache``,
  ``activations``, ``embedding``, ``head``, ``norm``, ``router``, ``attention``, ``mlp``,
  ``expert``);
- ``hw``: the base hardware, a preset name or a hardware YAML file;
- a pass-through column (``quantization``, or any key starting with ``accuracy.``): recorded
  with the point and handed to the evaluators (an accuracy evaluator reads them);
- anything else: a hardware field path overridden at that point (``memory.channels``,
  ``memory.dram.timing``, ``cores``, ``core.matrix_unit.relative_throughput.tai4`` ...).

The points are ``fixed`` plus each combination of the ``grid`` (cartesian product, the last key
varying fastest), or each entry of ``points``; with both, every entry of ``points`` is combined
with every grid combination.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from prodigy_sim._datafile import read_mapping
from prodigy_sim.errors import ConfigError
from prodigy_sim.hardware import check_override_path
from prodigy_sim.models import Formats
from prodigy_sim.sweep._names import spec_dirs, spec_names

__all__ = ["SCENARIO_KEYS", "FORMAT_KEYS", "PASSTHROUGH_KEYS", "key_kind", "SimulateSettings",
           "OutputSpec", "PlotSpec", "ExecutionSpec", "SweepSpec", "load_spec", "parse_spec"]

FORMAT_KEYS: tuple[str, ...] = tuple(Formats.model_fields)
"""Number-format keys: the fields of :class:`~prodigy_sim.models.Formats`."""

SCENARIO_KEYS: tuple[str, ...] = ("model", "phase", "batch", "context", "encoder_length",
                                  "sparsity", *FORMAT_KEYS)
"""Keys that describe how the model runs (the scenario)."""

PASSTHROUGH_KEYS: tuple[str, ...] = ("quantization",)
"""Keys recorded with a point and passed to the evaluators without being interpreted (also any
key starting with ``accuracy.``)."""

_FROZEN = ConfigDict(frozen=True, extra="forbid")


def key_kind(key: str) -> Literal["scenario", "hw", "passthrough", "hardware"]:
    """What a parameter key names; raises :class:`ConfigError` for a key that is none of them
    (an unknown hardware field path)."""
    if key in SCENARIO_KEYS:
        return "scenario"
    if key == "hw":
        return "hw"
    if key in PASSTHROUGH_KEYS or key.startswith("accuracy."):
        return "passthrough"
    try:
        check_override_path(key)
    except ConfigError as err:
        raise ConfigError(f"{key!r} is neither a scenario key ({', '.join(SCENARIO_KEYS)}), "
                          f"'hw', a pass-through key ({', '.join(PASSTHROUGH_KEYS)}, "
                          f"accuracy.*) nor a hardware field: {err}") from None
    return "hardware"


class SimulateSettings(BaseModel):
    """How the ``simulate`` evaluator runs (as ``prodigy-sim simulate``)."""

    model_config = _FROZEN

    l3: bool = Field(True, description="the shared virtual L3 (and activations kept on chip); "
                                       "false = every DMA to DDR (as --no-l3)")
    steady_units: int = Field(2, ge=0, description="per-core units simulated before "
                                                   "extrapolating; 0 = every unit")
    mapping_candidates: int = Field(1, ge=1, description="each linear op's N cheapest mappings "
                                                         "by the mapper's costs simulated, the "
                                                         "fastest kept; 1 = the mapper's "
                                                         "choice (as --mapping-candidates)")


class OutputSpec(BaseModel):
    """Where results go: ``dir`` holds ``results.jsonl`` (the journal), ``results.csv``,
    ``results.parquet`` and the plots."""

    model_config = _FROZEN

    dir: str | None = Field(None, description="output folder (relative to the current "
                                              "directory); default sweeps/<spec name>")
    formats: tuple[Literal["csv", "parquet"], ...] = Field(
        ("csv", "parquet"), description="table files written at the end")


class PlotSpec(BaseModel):
    """One plot of the result table (columns by name).

    ``line``: ``y`` against ``x``, one line per value of ``lines``; ``heatmap``: ``value``
    over ``x`` and ``y``; ``pareto``: every point in the ``x``-``y`` plane with the
    non-dominated front drawn (``x_better`` / ``y_better``: which direction is better);
    ``compare``: one bar per point labelled by its ``x`` (and the other inputs that vary), its
    time per pass stacked by op (:func:`prodigy_sim.reports.plot_compare`; needs the
    ``simulate`` evaluator; ``y`` is always the time per pass and is left out).
    ``where`` keeps the rows whose columns equal the given values.
    """

    model_config = _FROZEN

    kind: Literal["line", "heatmap", "pareto", "compare"]
    x: str
    y: str | None = None
    lines: str | None = None
    value: str | None = None
    x_better: Literal["low", "high"] = "low"
    y_better: Literal["low", "high"] = "high"
    where: dict[str, Any] = Field(default_factory=dict)
    file: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
                             description="file name stem (default: from the kind and columns)")

    @model_validator(mode="after")
    def _columns_of_kind(self) -> PlotSpec:
        if (self.kind == "heatmap") != (self.value is not None):
            raise ValueError("'value' (the colour) is needed by a heatmap, and only by it")
        if self.lines is not None and self.kind != "line":
            raise ValueError("'lines' is for line plots only")
        if (self.kind == "compare") != (self.y is None):
            raise ValueError("'y' is needed by line, heatmap and pareto plots; a compare plot "
                             "always shows the time per pass (leave 'y' out)")
        return self

    def columns(self) -> list[str]:
        """The table columns this plot reads."""
        return [c for c in (self.x, self.y, self.lines, self.value, *self.where) if c]

    def stem(self) -> str:
        """File name stem: ``file`` or ``<kind>-<y or value>-vs-<x>`` (``compare-<x>``)."""
        if self.file:
            return self.file
        return f"compare-{self.x}" if self.kind == "compare" else \
            f"{self.kind}-{self.value or self.y}-vs-{self.x}"


class ExecutionSpec(BaseModel):
    """How the points are run."""

    model_config = _FROZEN

    executor: Literal["dask", "serial"] = Field(
        "dask", description="dask: a Dask distributed cluster; serial: in this process")
    workers: int = Field(2, ge=1, description="worker processes of the embedded LocalCluster")
    scheduler: str | None = Field(None, description="address of an existing Dask scheduler "
                                                    "(instead of the embedded cluster)")
    batch_points: int = Field(8, ge=1, description="most points per task; the points of a task "
                                                   "share one lowering")
    retries: int = Field(2, ge=0, description="resubmissions of a task whose workers died")


class SweepSpec(BaseModel):
    """A sweep: points (``fixed`` + ``grid`` and/or ``points``), evaluators, output, plots."""

    model_config = _FROZEN

    name: str = Field("sweep", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
                      description="name (the default output folder)")
    description: str = ""
    compute: tuple[str, ...] = Field(("footprint", "simulate"), min_length=1,
                                     description="evaluators run at every point")
    fixed: dict[str, Any] = Field(default_factory=dict,
                                  description="parameters shared by every point")
    grid: dict[str, Annotated[list[Any], Field(min_length=1)]] = Field(
        default_factory=dict, description="key -> values: the cartesian product")
    points: list[dict[str, Any]] = Field(default_factory=list,
                                         description="explicit points (key -> value)")
    simulate: SimulateSettings = Field(default_factory=SimulateSettings)
    output: OutputSpec = Field(default_factory=OutputSpec)
    plots: tuple[PlotSpec, ...] = ()
    execution: ExecutionSpec = Field(default_factory=ExecutionSpec)

    def keys(self) -> list[str]:
        """Every parameter key the spec names, in order of first appearance."""
        seen: dict[str, None] = dict.fromkeys(self.fixed)
        seen.update(dict.fromkeys(self.grid))
        for p in self.points:
            seen.update(dict.fromkeys(p))
        return list(seen)

    def categorical_keys(self) -> list[str]:
        """The keys that take several values, not all numbers (``weights``, ``model``, a
        ``hw`` file ...): the axes a compare plot suits."""
        values: dict[str, list[Any]] = {k: list(v) for k, v in self.grid.items()}
        for p in self.points:
            for k, v in p.items():
                values.setdefault(k, []).append(v)
        return [k for k, vs in values.items()
                if len({repr(v) for v in vs}) > 1
                and not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                            for v in vs)]

    def check_keys(self) -> None:
        """Raise :class:`ConfigError` naming the section of an unknown key, or a key both in
        the grid and in a point."""
        for section, keys in (("fixed", self.fixed), ("grid", self.grid),
                              *((f"points[{i}]", p) for i, p in enumerate(self.points))):
            for key in keys:
                try:
                    key_kind(key)
                except ConfigError as err:
                    raise ConfigError(f"'{section}.{key}': {err}") from None
        for i, p in enumerate(self.points):
            both = sorted(set(p) & set(self.grid))
            if both:
                raise ConfigError(f"'points[{i}]': {', '.join(map(repr, both))} also in 'grid' "
                                  "(a key is either swept by the grid or set per point)")


def _yaml_lines(node: yaml.Node | None, prefix: str = "") -> dict[str, int]:
    """Line (1-based) of every key path of a composed YAML document (``a.b``, ``a.0``)."""
    lines: dict[str, int] = {}
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            path = f"{prefix}{key.value}"
            lines[path] = key.start_mark.line + 1
            lines.update(_yaml_lines(value, path + "."))
    elif isinstance(node, yaml.SequenceNode):
        for i, value in enumerate(node.value):
            path = f"{prefix}{i}"
            lines[path] = value.start_mark.line + 1
            lines.update(_yaml_lines(value, path + "."))
    return lines


def _located(err: ValidationError, source: str, lines: dict[str, int]) -> ConfigError:
    """One line naming the file, the line of the first bad field, and every bad field."""
    parts, first_line = [], 0
    for e in err.errors():
        loc = [str(p) for p in e.get("loc", ())]
        path = ".".join(loc) or "<root>"
        for n in range(len(loc), 0, -1):
            line = lines.get(".".join(loc[:n]))
            if line:
                first_line = first_line or line
                break
        got = e.get("input")
        got_txt = "" if isinstance(got, dict) or got is None else f" (got {got!r})"
        parts.append(f"'{path}': {e.get('msg', 'invalid')}{got_txt}")
    where = f"{source}:{first_line}" if first_line else source
    return ConfigError(f"{where}: " + "; ".join(parts))


def parse_spec(data: object, *, source: str = "<sweep spec>",
               lines: dict[str, int] | None = None) -> SweepSpec:
    """Validate a mapping as a :class:`SweepSpec` (parameter keys checked too)."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: a sweep spec must be a mapping (got {type(data).__name__})")
    try:
        spec = SweepSpec.model_validate(data)
    except ValidationError as err:
        raise _located(err, source, lines or {}) from None
    try:
        spec.check_keys()
    except ConfigError as err:
        raise ConfigError(f"{source}: {err}") from None
    return spec


def load_spec(name_or_path: str | Path) -> SweepSpec:
    """An example spec by name, or a spec file; errors name the file, line and field."""
    text = str(name_or_path)
    path = Path(text)
    if not isinstance(name_or_path, Path) and path.suffix.lower() not in (".yaml", ".yml",
                                                                            ".json"):
        found = [d / f"{text}.yaml" for d in spec_dirs() if (d / f"{text}.yaml").is_file()]
        if not found:
            raise ConfigError(f"unknown sweep spec {text!r}; examples: "
                              f"{', '.join(spec_names()) or '(none)'} (or give a .yaml file)")
        path = found[0]
    data = read_mapping(path, what="sweep spec")
    lines: dict[str, int] = {}
    if path.suffix.lower() != ".json":
        lines = _yaml_lines(yaml.compose(path.read_text(encoding="utf-8")))
    data.setdefault("name", path.stem)
    return parse_spec(data, source=str(path), lines=lines)
