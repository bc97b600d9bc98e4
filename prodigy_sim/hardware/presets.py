"""Named Prodigy configurations, every field with its source.

A preset is built by a function from a *cited tree*: the nested field values of a
:class:`ChipConfig`, each leaf a :class:`Cited` pair of value and source. The source is a public
document (named in ``docs/hardware.md``), a derivation from one, or says "assumption" when the
figure is not public. ``preset_sources(name)`` returns the citations by dotted field path so
reports can print them next to the values.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any, NamedTuple

from pydantic import ValidationError

from prodigy_sim.errors import ConfigError, config_error_from_validation
from prodigy_sim.hardware._base import KIB, MIB, TIB
from prodigy_sim.hardware.chip import ChipConfig
from prodigy_sim.hardware.memory import scaled_ddr5_timing

__all__ = ["Cited", "DEFAULT_PRESET", "PRESETS", "preset_names", "load_preset",
           "preset_sources", "source_of", "preset_description", "flatten", "cited_values"]

DEFAULT_PRESET = "prodigy-t16128"


class Cited(NamedTuple):
    """A preset value and where it comes from."""

    value: Any
    source: str


# Sources (see docs/hardware.md for the full titles).
T16128 = "T16128 spec (Tom's Hardware; chipsandcheese 2022-08-26)"
CHIPS = "chipsandcheese 'Tachyum's Revised Prodigy Architecture' (2022-08-26)"
DATASHEET = "T16128 datasheet quoted on Julia Discourse"
R192 = "Tom's Hardware 'Tachyum Prodigy Chip Now Has 192 Universal Cores' (2023)"
U2NM = "Prodigy 2nm spec (Tom's Hardware Nov 2025 '1,024 cores with 1,600W'; wccftech; xpu.pub)"
MATRIX_READING = ("assumption: reading of the '4096-bit matrix processor' with '16x16, 8x8 and 4x4 "
                  "operations' (chipsandcheese) as 16x16x16 for 8-bit, 8x8x8 for 16/32-bit and "
                  "4x4x4 for 64-bit operands")
FP8_RATE = "assumption: activations stay FP8, so the FP8 datapath bounds the rate"


def _t16128() -> dict:
    return {
        "name": Cited("prodigy-t16128", "preset name"),
        "cores": Cited(128, T16128),
        "frequency_hz": Cited(5.7e9, T16128),
        "core": {
            "vector_unit": {
                "count": Cited(2, CHIPS),
                "width_bits": Cited(1024, CHIPS),
                "formats": Cited(("float64", "float32", "bfloat16"),
                                 CHIPS + ": FMA in IEEE DP/SP and BF16"),
                "op_latency_cycles": {
                    "add": Cited(4, "assumption"),
                    "mul": Cited(4, "assumption"),
                    "fma": Cited(4, "assumption"),
                    "convert": Cited(3, "assumption"),
                    "div": Cited(16, "assumption"),
                    "sqrt": Cited(16, "assumption"),
                    "transcendental": Cited(20, "assumption"),
                },
                "op_interval_cycles": {
                    "add": Cited(1, "assumption: fully pipelined"),
                    "mul": Cited(1, "assumption: fully pipelined"),
                    "fma": Cited(1, "assumption: fully pipelined (16 FPUs per unit: "
                                    + CHIPS + ")"),
                    "convert": Cited(1, "assumption: fully pipelined"),
                    "div": Cited(8, "assumption"),
                    "sqrt": Cited(8, "assumption"),
                    "transcendental": Cited(4, "assumption"),
                },
            },
            "matrix_unit": {
                "tile_m": Cited(16, "derivation: 12 AI PFLOPS FP8 sparse / (128 cores x 5.7 GHz) "
                                    "= 2 x 4096 MACs/clk = 16x16x16 x 8:4 sparsity (" + DATASHEET
                                    + ")"),
                "tile_n": Cited(16, "derivation: see tile_m"),
                "tile_k": Cited(16, "derivation: see tile_m"),
                "relative_throughput": {
                    "float8_e4m3fn": Cited(1.0, "reference format (= tile shape)"),
                    "float8_e5m2": Cited(1.0, "assumption: same datapath as E4M3"),
                    "int8": Cited(1.0, MATRIX_READING),
                    "tai4": Cited(1.0, FP8_RATE),
                    "tai2": Cited(1.0, FP8_RATE),
                    "float4_e2m1fn": Cited(1.0, FP8_RATE),
                    "bfloat16": Cited(0.125, MATRIX_READING),
                    "tf32": Cited(0.125, MATRIX_READING),
                    "float64": Cited(1 / 64, MATRIX_READING + "; gives 93.4 TFLOPS FP64 for the "
                                     "T16128, near the vendor's 90 TFLOPS FP64"),
                },
                "sparse_formats": Cited(
                    ("float8_e4m3fn", "float8_e5m2", "int8", "tai4", "tai2", "float4_e2m1fn"),
                    "assumption: 8:4 pruning is offered with FP8 and low-bit weights (Tachyum "
                    "LLM white paper 2023-11-14)"),
                "unlisted_relative_throughput": {
                    "narrow": Cited(1.0, "assumption: a weight format of <= 8 bits the table "
                                         "does not list (a user's own) is widened to the FP8 "
                                         "datapath like TAI and FP4; " + FP8_RATE),
                    "wide": Cited(0.0, "assumption: an unlisted 16/32-bit float does not run"),
                },
                "unlisted_sparse": Cited(True, "assumption: as for the listed low-bit formats"),
                "sparsity_speedup": Cited(2.0, "derivation: 8:4 keeps half the weights; matches "
                                          "12 AI PFLOPS 'with sparsity' (" + DATASHEET + ")"),
                "latency_cycles": Cited(8, "assumption (not public)"),
                "accumulator_format": Cited("float32", "assumption (not public)"),
            },
            "on_chip_memory": {
                "l1i_bytes": Cited(64 * KIB, T16128),
                "l1d_bytes": Cited(64 * KIB, T16128),
                "l2_bytes": Cited(1 * MIB, T16128 + ": 1 MB L2 per core, 128 MB total"),
                "l2_reserved_bytes": Cited(0, "assumption: whole L2 usable for tiles"),
                "line_bytes": Cited(64, "assumption (not public)"),
                "l1d_bandwidth_bytes_per_cycle": Cited(256, "assumption: one 1024-bit load per "
                                                       "vector unit per cycle"),
                "l2_bandwidth_bytes_per_cycle": Cited(128, "assumption: two 64-B lines per cycle"),
                "l1d_latency_cycles": Cited(4, "assumption (not public)"),
                "l2_latency_cycles": Cited(20, "assumption (not public)"),
            },
        },
        "noc": {
            "topology": Cited("mesh", CHIPS),
            "rows": Cited(None, "derived from cores (most nearly square mesh)"),
            "cols": Cited(None, "derived from cores (most nearly square mesh)"),
            "hop_latency_cycles": Cited(2, "assumption (not public)"),
            "link_bandwidth_bytes_per_cycle": Cited(
                32, "assumption: 8x16 mesh bisection = 8 links x 32 B x 5.7 GHz = 11.7 Tb/s, the "
                    "order of the vendor's '10 Tb/s' mesh figure (" + CHIPS + ")"),
        },
        "memory": {
            "channels": Cited(16, T16128 + ": 16 DDR5 controllers"),
            "channel_width_bits": Cited(64, T16128 + ": 64-bit channels"),
            "capacity_bytes": Cited(8 * TIB, T16128 + ": up to 8 TB, read as 16 x 512 GiB"),
            "interleave_bytes": Cited(64, "assumption: cache-line interleave over the 32-bit "
                                      "subchannels (memory controllers not public)"),
            "dram": {
                "mapping": Cited("RoBaRaCoCh", "assumption: open-page, row-major inside a "
                                 "subchannel (the DDR5 model's default): a stream's lines stay in "
                                 "one row and many cores' streams spread over the banks; it serves "
                                 "128-core streams and multicast tiles best of the mappings "
                                 "studied (docs/dram.md, 'Address mapping on the chip'; memory "
                                 "controllers not public)"),
                "bank_group_xor": Cited(
                    True, "assumption: the bank group hashed with the low column bits, as server "
                          "controllers permute bank bits (Zhang et al., MICRO 2000; Pessl et al., "
                          "DRAMA, USENIX Security 2016): one core's stream alternates bank groups "
                          "(controllers not public)"),
                "org": Cited("DDR5_16Gb_x8", "assumption: the calibrated reference device "
                             "(DIMM organization not public)"),
                "timing": Cited(7200, T16128 + ": DDR5-7200; timings JESD79-5 7200AN "
                                "(prodigy_sim.dram presets)"),
                "controller": Cited(
                    {"scheduler": "row_hit_first", "read_queue_entries": 64,
                     "write_queue_entries": 64},
                    "assumption: typical server controller - FR-FCFS with row-hit priority, "
                    "64-entry read and write queues per subchannel, Ramulator 2 write "
                    "watermarks and refresh (scheduler not public)"),
            },
        },
    }


def _inherit(tree: dict, wrap: Callable[[str], str]) -> dict:
    """``tree`` with every cited source not already an assumption rewritten by ``wrap`` (for a
    preset that takes a value over from the T16128 without its own source)."""
    out: dict = {}
    for key, item in tree.items():
        if isinstance(item, Cited):
            keep = item.source.startswith("assumption") or item.source == "preset name" \
                or item.source.startswith("derived from cores")
            out[key] = item if keep else Cited(item.value, wrap(item.source))
        else:
            out[key] = _inherit(item, wrap)
    return out


def _prodigy_192() -> dict:
    tree = _inherit(_t16128(), lambda src: f"as the T16128, unchanged in the 192-core revision "
                                           f"({R192}; T16128: {src})")
    tree["name"] = Cited("prodigy-192", "preset name")
    tree["cores"] = Cited(192, R192)
    tree["frequency_hz"] = Cited(5.7e9, R192)
    tree["core"]["on_chip_memory"]["l2_bytes"] = Cited(1 * MIB, R192 + ": 192 MB L2 total")
    tree["memory"]["dram"]["timing"] = Cited(7200, R192 + ": 16 x DDR5-7200 (or 6400)")
    tree["memory"]["capacity_bytes"] = Cited(8 * TIB, "assumption: as the T16128 (8 TB)")
    return tree


def _prodigy_2nm_ultimate() -> dict:
    tree = _inherit(_t16128(), lambda src: f"assumption: as the T16128 ({src})")
    tree["name"] = Cited("prodigy-2nm-ultimate", "preset name")
    tree["cores"] = Cited(1024, U2NM + ": 4 chiplets x 256 (the 768-core part is not modelled)")
    tree["frequency_hz"] = Cited(6.0e9, U2NM + ": up to 6 GHz")
    vector = tree["core"]["vector_unit"]
    vector["count"] = Cited(4, U2NM + ": 4 issue/clk")
    vector["width_bits"] = Cited(512, U2NM + ": 512-bit datapaths")
    matrix = tree["core"]["matrix_unit"]
    for name in ("tile_m", "tile_n", "tile_k"):
        matrix[name] = Cited(16, "assumption: as the T16128 (the 2nm matrix units inside the "
                                 "vector units are not quantified; '>1000 PFLOPS' is not "
                                 "reproduced)")
    caches = tree["core"]["on_chip_memory"]
    caches["l1i_bytes"] = Cited(128 * KIB, U2NM)
    caches["l1d_bytes"] = Cited(64 * KIB, U2NM)
    caches["l2_bytes"] = Cited(1 * MIB, "assumption: 'up to 1 GB L2+L3' / 1024 cores")
    memory = tree["memory"]
    memory["channels"] = Cited(24, U2NM + ": 24 DDR5 channels")
    memory["channel_width_bits"] = Cited(64, U2NM + ": RDIMM (3.38 TB/s); 128-bit TDIMMs "
                                         "not modelled")
    memory["capacity_bytes"] = Cited(48 * TIB, U2NM + ": 48 TB, read as 24 x 2 TiB")
    tree["noc"]["topology"] = Cited("mesh", "assumption: as the T16128 (2nm network not public)")
    tree["noc"]["link_bandwidth_bytes_per_cycle"] = Cited(
        32, "assumption: as the T16128 (2nm network not public)")
    memory["dram"]["timing"] = Cited(
        scaled_ddr5_timing(17600).model_dump(),
        U2NM + ": DDR5-17600; beyond the JEDEC bins, so assumption: DDR5-7200 timings kept in ns, "
        "clock-defined ones in nCK (scaled_ddr5_timing)")
    return tree


PRESETS: dict[str, Callable[[], dict]] = {
    "prodigy-t16128": _t16128,
    "prodigy-192": _prodigy_192,
    "prodigy-2nm-ultimate": _prodigy_2nm_ultimate,
}
"""Preset name -> function building its cited tree."""

_DESCRIPTIONS = {
    "prodigy-t16128": "Prodigy T16128 (5 nm, 2022 spec): 128 cores at 5.7 GHz, 16 x DDR5-7200.",
    "prodigy-192": "Prodigy 192-core revision (2023): 192 cores at 5.7 GHz, 16 x DDR5-7200.",
    "prodigy-2nm-ultimate": "Prodigy 2nm Ultimate (Nov 2025 spec), 1024-core option: 6 GHz, "
                            "24 x DDR5-17600.",
}


def preset_names() -> tuple[str, ...]:
    """Names of the presets, the default first."""
    return tuple(PRESETS)


def _tree(name: str) -> dict:
    try:
        builder = PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown preset {name!r} (known: {', '.join(PRESETS)})") from None
    return builder()


def _split(tree: dict, values: dict, sources: dict, prefix: str = "") -> None:
    for key, item in tree.items():
        path = f"{prefix}{key}"
        if isinstance(item, Cited):
            values[key] = copy.deepcopy(item.value)
            sources[path] = item.source
        else:
            values[key] = {}
            _split(item, values[key], sources, path + ".")


def cited_values(name: str) -> tuple[dict, dict[str, str]]:
    """The field values of preset ``name`` as a nested dict, and the sources by dotted path."""
    values: dict = {}
    sources: dict[str, str] = {}
    _split(_tree(name), values, sources)
    return values, sources


def load_preset(name: str = DEFAULT_PRESET) -> ChipConfig:
    """Build the :class:`ChipConfig` of preset ``name`` (a new object each call)."""
    values, _ = cited_values(name)
    try:
        return ChipConfig.model_validate(values)
    except ValidationError as err:
        raise config_error_from_validation(err, source=f"preset {name!r}") from None


DERIVED_SOURCES = {
    "memory.dram.channels": "derived: 'memory.channel_width_bits' / 32 (subchannels per channel)",
}
"""Sources of the fields a validator fills in."""


def preset_sources(name: str) -> dict[str, str]:
    """Sources of preset ``name`` by dotted field path (e.g. ``'cores'``,
    ``'core.matrix_unit.relative_throughput.tai4'``). A path may cite a whole section
    (``'memory.dram.timing'``): use :func:`source_of` to look up any leaf."""
    return {**cited_values(name)[1], **DERIVED_SOURCES}


def source_of(path: str, sources: dict[str, str]) -> str:
    """The source of the field at dotted ``path``: its own entry or that of its nearest section."""
    parts = path.split(".")
    for n in range(len(parts), 0, -1):
        key = ".".join(parts[:n])
        if key in sources:
            return sources[key]
    raise ConfigError(f"no source recorded for field {path!r}")


def preset_description(name: str) -> str:
    """One-line description of preset ``name``."""
    _tree(name)
    return _DESCRIPTIONS[name]


def flatten(data: dict, prefix: str = "") -> dict[str, Any]:
    """Nested dict -> ``{dotted.path: leaf}`` (a mapping-valued field is split into its keys)."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, path + "."))
        else:
            out[path] = value
    return out
