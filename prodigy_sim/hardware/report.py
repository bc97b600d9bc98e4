"""Printable views of a configuration: key figures, field tables with sources, the hardware doc.

``python -m prodigy_sim.hardware.report > docs/hardware.md`` regenerates the documentation; a test
checks that the committed file is up to date.
"""

from __future__ import annotations

import typing
from typing import Any

from pydantic import BaseModel

from prodigy_sim.hardware._base import GIB, KIB, MIB, TIB
from prodigy_sim.hardware.chip import ChipConfig
from prodigy_sim.hardware.presets import (
    flatten,
    load_preset,
    preset_description,
    preset_names,
    preset_sources,
    source_of,
)
from prodigy_sim.hardware.units import unit_of

__all__ = ["key_figures", "field_rows", "render_hardware_doc", "unit_of", "format_value"]

def _human_bytes(n: int) -> str:
    for size, name in ((TIB, "TiB"), (GIB, "GiB"), (MIB, "MiB"), (KIB, "KiB")):
        if n >= size and n % size == 0:
            return f"{n // size} {name}"
    return f"{n} B"


def format_value(path: str, value: Any) -> str:
    """A field value as text (byte counts also in binary units)."""
    if isinstance(value, bool) or value is None:
        return str(value).lower() if value is not None else "null (derived)"
    if isinstance(value, int) and path.endswith("_bytes") and value >= KIB:
        return f"{value} ({_human_bytes(value)})"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (tuple, list)):
        return ", ".join(map(str, value))
    return str(value)


def key_figures(config: ChipConfig) -> dict[str, Any]:
    """The figures the preset list shows: cores, clock, FP8 peaks, DDR bandwidth and capacity."""
    return {
        "name": config.name,
        "cores": config.cores,
        "frequency_hz": config.frequency_hz,
        "peak_fp8_dense_flops": config.peak_flops("float8_e4m3fn"),
        "peak_fp8_sparse_flops": config.peak_flops("float8_e4m3fn", sparse=True),
        "ddr_channels": config.memory.channels,
        "ddr_transfer_rate_mts": config.memory.transfer_rate_mts,
        "peak_ddr_bandwidth_bytes_per_s": config.peak_ddr_bandwidth_bytes_per_s,
        "ddr_capacity_bytes": config.memory.capacity_bytes,
    }


def field_rows(config: ChipConfig, sources: dict[str, str]) -> list[tuple[str, str, str, str]]:
    """``(path, value, unit, source)`` for every leaf field of ``config``."""
    return [(path, format_value(path, value), unit_of(path), source_of(path, sources))
            for path, value in flatten(config.model_dump()).items()]


def _type_name(annotation: Any) -> str:
    if isinstance(annotation, type):
        return annotation.__name__
    text = str(annotation).replace("typing.", "").replace("collections.abc.", "")
    return text.replace("prodigy_sim.dram.config.", "")


def _models(cls: type[BaseModel], seen: list[type[BaseModel]]) -> list[type[BaseModel]]:
    """``cls`` and the models nested in it, except other packages' models (documented there)."""
    if cls in seen or not cls.__module__.startswith("prodigy_sim.hardware"):
        return seen
    seen.append(cls)
    for field in cls.model_fields.values():
        for ann in (field.annotation, *typing.get_args(field.annotation)):
            if isinstance(ann, type) and issubclass(ann, BaseModel):
                _models(ann, seen)
    return seen


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _model_section(cls: type[BaseModel]) -> list[str]:
    doc = (cls.__doc__ or "").strip().split("\n\n")[0].replace("\n", " ")
    lines = [f"### `{cls.__name__}`", "", doc, "", "| field | type | unit | description |",
             "|---|---|---|---|"]
    for name, field in cls.model_fields.items():
        lines.append(f"| `{name}` | `{_cell(_type_name(field.annotation))}` | {unit_of(name)} | "
                     f"{_cell(field.description or '')} |")
    return [*lines, ""]


_DERIVED = (
    ("cores", lambda c: str(c.cores)),
    ("clock (GHz)", lambda c: f"{c.frequency_hz / 1e9:g}"),
    ("mesh (rows x cols)", lambda c: "{} x {}".format(*c.mesh_shape)),
    ("matrix MACs/cycle/core (FP8 dense)", lambda c: str(c.core.matrix_unit.macs_per_cycle)),
    ("peak FP8 dense (PFLOPS)", lambda c: f"{c.peak_flops('float8_e4m3fn') / 1e15:.3f}"),
    ("peak FP8 8:4 sparse (PFLOPS)",
     lambda c: f"{c.peak_flops('float8_e4m3fn', sparse=True) / 1e15:.3f}"),
    ("peak TAI4 dense (PFLOPS)", lambda c: f"{c.peak_flops('tai4') / 1e15:.3f}"),
    ("peak BF16 (TFLOPS)", lambda c: f"{c.peak_flops('bfloat16') / 1e12:.1f}"),
    ("peak FP64, matrix unit (TFLOPS)", lambda c: f"{c.peak_matrix_flops('float64') / 1e12:.1f}"),
    ("peak FP64, vector units (TFLOPS)", lambda c: f"{c.peak_vector_flops('float64') / 1e12:.1f}"),
    ("peak FP32, vector units (TFLOPS)", lambda c: f"{c.peak_vector_flops('float32') / 1e12:.1f}"),
    ("DDR5 channels x width", lambda c: f"{c.memory.channels} x {c.memory.channel_width_bits} bit"),
    ("DDR5 32-bit subchannels", lambda c: str(c.memory.subchannels)),
    ("DDR5 data rate (MT/s)", lambda c: str(c.memory.transfer_rate_mts)),
    ("peak DDR bandwidth (GB/s)", lambda c: f"{c.peak_ddr_bandwidth_bytes_per_s / 1e9:.1f}"),
    ("DDR timing-model peak, integer tCK (GB/s)",
     lambda c: f"{c.memory.timing_model_peak_bandwidth_bytes_per_s / 1e9:.1f}"),
    ("DDR capacity", lambda c: _human_bytes(c.memory.capacity_bytes)),
    ("total L2 = virtual L3 pool", lambda c: _human_bytes(c.total_l2_bytes)),
    ("total on-chip (L1I + L1D + L2)", lambda c: _human_bytes(c.total_on_chip_bytes)),
    ("NoC bisection, one direction (TB/s)",
     lambda c: f"{c.noc_bisection_bandwidth_bytes_per_s / 1e12:.2f}"),
)

_INTRO = """\
# Hardware configuration

<!-- Generated by `python -m prodigy_sim.hardware.report > docs/hardware.md`; do not edit by hand.
     tests/test_hardware_doc.py fails when this file is out of date. -->

The simulator's view of a Prodigy socket is one frozen configuration object, a tree of pydantic
models that refuse unknown fields (`prodigy_sim.hardware`). Every field has its unit in its name
and a constraint; peak figures are derived from the fields, never stored. A *preset* is a named
configuration whose every field cites a public source or says "assumption"; `preset_sources(name)`
returns the citations and `prodigy-sim presets --show NAME` prints them.

```
ChipConfig                   cores, frequency_hz
|- core: CoreConfig
|  |- vector_unit: VectorUnitConfig
|  |- matrix_unit: MatrixUnitConfig
|  '- on_chip_memory: OnChipMemoryConfig
|- noc: NocConfig            2-D mesh
'- memory: MemoryConfig      64-bit DDR5 channels, capacity
   '- dram: MemorySystemConfig (prodigy_sim.dram)   DDR5 timing model of ONE channel
```

Counting DDR5 channels: Prodigy's "16 DDR5-7200 channels of 64 bits" is `memory.channels: 16`,
`memory.channel_width_bits: 64`. The DDR5 timing model counts independent 32-bit subchannels, so
one channel is `memory.dram.channels = 64 / 32 = 2` (derived, not settable) and the socket has
`memory.subchannels = 32`.

## Loading a configuration

```python
from prodigy_sim.hardware import load_config, load_preset, preset_names
chip = load_preset("prodigy-t16128")
chip = load_config(file="my_chip.yaml", overrides={"core.matrix_unit.latency_cycles": 12})
chip.peak_flops("float8_e4m3fn", sparse=True)     # FLOPS
```

A YAML file names its base with `preset:` (default `prodigy-t16128`) and overrides any field by its
dotted path or as a nested mapping; mapping fields (`relative_throughput`) merge key by key:

```yaml
preset: prodigy-192
core.matrix_unit.latency_cycles: 12
core:
  matrix_unit:
    relative_throughput: {tai4: 2.0}    # assume TAI weights run at twice the FP8 rate
memory.dram.timing: 6400                # a DDR5 speed bin (MT/s), resolved by prodigy_sim.dram
```

Unknown paths are refused with the file, line and the fields known there; invalid values are
refused with their field path (`'cores': Input should be greater than or equal to 1 (got 0)`).

On the command line (`simulate`, `footprint`, `accuracy`, `run`, `dram`, `presets`), `--hw
NAME|FILE` picks a preset or such a file and repeated `--set PATH=VALUE` overrides fields (values
parsed as YAML; `prodigy-sim presets --show NAME --set memory.channels=32` prints the result with
the changed fields marked). Each command's report names the preset and lists the changed fields;
a section set by name is one change, with the number of fields it implies (`--set
memory.dram.timing=6400` is `memory.dram.timing DDR5_7200AN -> DDR5_6400AN (implies 19 timing
fields)`). In Python,
`resolve_hardware(hw, ["memory.channels=32"])` returns the configuration and the record of the
changed fields (`HardwareChanges`: preset, file, and each field's path, old and new value). A
changed configuration is named `<preset>+<path>=<value>...` unless a `name` is set, so it is never
reported as the preset. See [sweeps.md](sweeps.md).

## Conventions and derivations

- A MAC is 2 FLOPs. Matrix-unit figures count 8:4-sparse work as the dense FLOPs it replaces.
- `peak_flops(fmt)` is the faster of the matrix unit and the vector units for `fmt`;
  `peak_matrix_flops` and `peak_vector_flops` give each.
- 12 AI PFLOPS / (128 cores x 5.7 GHz) = 16,447 ops/clock/core = 2 x 8,192: one 16x16x16 FP8 MAC
  block per clock (4,096 MACs), doubled by 8:4 sparsity. A derivation, not a vendor statement.
- Matrix unit, other formats (assumption): the "4096-bit matrix processor" with "16x16, 8x8 and 4x4
  operations" read as 16x16x16 for 8-bit operands, 8x8x8 (1/8) for 16- and 32-bit ones and 4x4x4
  (1/64) for FP64; this gives 93.4 TFLOPS FP64 on the T16128, near the vendor's unexplained
  90 TFLOPS (the two 1024-bit vector units alone give 46.7). Low-bit weights (TAI, TAI2, FP4) run at
  the FP8 rate because the activations stay FP8; set their `relative_throughput` above 1 to study
  faster variants.
- Peak DDR bandwidth is nominal: channels x MT/s x 8 B (921.6 GB/s for 16 x DDR5-7200). The DDR5
  timing model uses an integer-picosecond clock (277 ps at 7200 MT/s), so its own peak is 0.3%
  higher; both are listed.
- DDR5-17600 (Prodigy 2nm) is beyond the JEDEC tables: its timings are the DDR5-7200 ones kept in
  nanoseconds (cycles scaled up, `scaled_ddr5_timing`), burst and command slots kept in cycles. The
  data bus gets faster, the DRAM core does not.
- `check_fits(bytes, config)` raises `ProgramError` when a tile exceeds a core's usable L2
  (`l2_bytes - l2_reserved_bytes`).

## Sources

- T16128 spec: Tom's Hardware; chipsandcheese, "Tachyum's Revised Prodigy Architecture"
  (2022-08-26); gigazine 2022-06-15.
- T16128 datasheet, quoted on Julia Discourse: "12 PFLOPS FP8 with sparsity", 90 TFLOPS FP64.
- 192-core revision: Tom's Hardware, "Tachyum Prodigy Chip Now Has 192 Universal Cores" (2023).
- Prodigy 2nm: Tom's Hardware, Nov 2025 "1,024 cores with 1,600W"; wccftech; xpu.pub.
- Tachyum white papers: "Tachyum Prodigy on the Leading-Edge of AI Industry Trends" (2022-10-18);
  "Mainstreaming Large Language Models With 2-bit TAI Weights" (2023-11-14).
- DDR5 timings: JESD79-5 via the Ramulator 2 DDR5 model (`prodigy_sim.dram`).
"""


def render_hardware_doc() -> str:
    """The full text of ``docs/hardware.md``, generated from the models and presets."""
    names = preset_names()
    configs = {name: load_preset(name) for name in names}
    out = [_INTRO, "## Derived figures", "",
           "| figure | " + " | ".join(f"`{n}`" for n in names) + " |",
           "|---|" + "---|" * len(names)]
    for label, fn in _DERIVED:
        out.append(f"| {label} | " + " | ".join(fn(c) for c in configs.values()) + " |")
    out += ["", "## Models", "", "`memory.dram` is `prodigy_sim.dram.MemorySystemConfig`, "
            "documented with the DDR5 model.", ""]
    for cls in _models(ChipConfig, []):
        out += _model_section(cls)
    out += ["## Presets", ""]
    for name in names:
        out += [f"### `{name}`", "", preset_description(name), "",
                "| field | value | unit | source |", "|---|---|---|---|"]
        for path, value, unit, source in field_rows(configs[name], preset_sources(name)):
            out.append(f"| `{path}` | {_cell(value)} | {unit} | {_cell(source)} |")
        out.append("")
    return "\n".join(out).rstrip("\n") + "\n"


if __name__ == "__main__":
    print(render_hardware_doc(), end="")
