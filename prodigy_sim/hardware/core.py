"""One Prodigy core: two vector units, one matrix unit and its private caches.

Figures per core and per clock cycle; the chip (:mod:`prodigy_sim.hardware.chip`) multiplies by the
core count and the clock. A multiply-accumulate (MAC) counts as two floating-point operations.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field, field_validator, model_validator

from prodigy_sim.errors import ConfigError, FormatError
from prodigy_sim.hardware._base import (
    KIB,
    MAX_BYTES,
    MAX_CYCLES,
    MIB,
    Block,
    FrozenFloatMap,
    FrozenIntMap,
    element_bits,
    format_name,
)

if TYPE_CHECKING:
    from prodigy_sim.numerics import FormatSpec

__all__ = ["MatrixUnitConfig", "VectorUnitConfig", "OnChipMemoryConfig", "CoreConfig"]

REFERENCE_FORMAT = "float8_e4m3fn"
"""The format whose matrix-unit throughput is the tile shape itself (relative throughput 1)."""
_MIN_FACTOR, _MAX_FACTOR = 2.0**-12, 64.0
"""Range of a relative matrix-unit throughput (float64 runs at 1/64 of FP8 on the presets)."""


def _unknown_format(fmt: str, known, unit: str) -> ConfigError:
    return ConfigError(f"format {fmt!r} is not executed by the {unit} "
                       f"(known: {', '.join(sorted(known))})")


class MatrixUnitConfig(Block):
    """The per-core matrix processor: one ``tile_m x tile_n x tile_k`` MAC block per cycle at FP8.

    A weight format runs at ``relative_throughput[fmt]`` times the FP8 rate. A format the table
    does not list (a user's own, say) takes the rate of its width class in
    ``unlisted_relative_throughput`` (``narrow`` = at most 8 bits, ``wide`` = the 16/32-bit
    floats; a class given 0 does not run). With 8:4 structured sparsity on the weights the unit
    skips the pruned half, ``sparsity_speedup`` times faster, for the ``sparse_formats`` and,
    if ``unlisted_sparse``, every unlisted narrow format.
    """

    tile_m: int = Field(16, ge=1, le=4096, description="Rows of the output tile per cycle at "
                        "FP8 (elements).")
    tile_n: int = Field(16, ge=1, le=4096, description="Columns of the output tile per cycle at "
                        "FP8 (elements).")
    tile_k: int = Field(16, ge=1, le=4096, description="Reduction depth per cycle at FP8 "
                        "(elements).")
    relative_throughput: FrozenFloatMap = Field(
        default_factory=lambda: {REFERENCE_FORMAT: 1.0},
        description="MACs per cycle of each executable format, relative to float8_e4m3fn (= 1). "
                    "A format absent from this mapping does not run on the matrix unit. For "
                    "mixed inputs the key is the weight format (activations in FP8).",
    )
    unlisted_relative_throughput: FrozenFloatMap = Field(
        default_factory=lambda: {"narrow": 1.0, "wide": 0.0},
        description="MACs per cycle, relative to float8_e4m3fn, of a weight format absent from "
                    "'relative_throughput', by width class: 'narrow' (<= 8 bits) and 'wide' "
                    "(16/32-bit floats); 0 = does not run.")
    sparsity_speedup: float = Field(2.0, ge=1.0, le=2.0, allow_inf_nan=False,
                                    description="Throughput factor with 8:4 structured-sparse "
                                    "weights (dimensionless; at most 2: the unit can skip at most "
                                    "the pruned half).")
    sparse_formats: tuple[str, ...] = Field(
        (REFERENCE_FORMAT,), description="Weight formats the 8:4 sparsity speedup applies to.")
    unlisted_sparse: bool = Field(True, description="Whether a narrow weight format absent from "
                                  "'relative_throughput' runs 8:4-sparse too.")
    latency_cycles: int = Field(8, ge=1, le=MAX_CYCLES, description="Pipeline latency of one "
                                "tile operation, issue to result (cycles).")
    accumulator_format: str = Field("float32", description="Format of the accumulators.")

    @field_validator("relative_throughput")
    @classmethod
    def _check_throughput(cls, value):
        if value.get(REFERENCE_FORMAT) != 1.0:
            raise ValueError(f"must map {REFERENCE_FORMAT!r} to 1.0, the reference rate "
                             f"(got {value.get(REFERENCE_FORMAT)!r})")
        bad = {k: v for k, v in value.items() if not _MIN_FACTOR <= v <= _MAX_FACTOR}
        if bad:
            raise ValueError(f"factors must be finite, in {_MIN_FACTOR:g}..{_MAX_FACTOR:g} "
                             f"(got {bad})")
        return value

    @field_validator("unlisted_relative_throughput")
    @classmethod
    def _check_unlisted(cls, value):
        if set(value) != {"narrow", "wide"}:
            raise ValueError(f"must give exactly 'narrow' and 'wide' (got {sorted(value)})")
        bad = {k: v for k, v in value.items() if not (v == 0 or _MIN_FACTOR <= v <= _MAX_FACTOR)}
        if bad:
            raise ValueError(f"factors must be 0 (does not run) or finite, in "
                             f"{_MIN_FACTOR:g}..{_MAX_FACTOR:g} (got {bad})")
        return value

    @model_validator(mode="after")
    def _check_sparse_formats(self):
        missing = [f for f in self.sparse_formats if f not in self.relative_throughput]
        if missing:
            raise ValueError(f"'sparse_formats' {missing} are not in 'relative_throughput' "
                             f"(known: {', '.join(self.relative_throughput)})")
        return self

    @property
    def macs_per_cycle(self) -> int:
        """Dense FP8 MACs per cycle: ``tile_m * tile_n * tile_k``."""
        return self.tile_m * self.tile_n * self.tile_k

    def relative_rate(self, fmt: str | FormatSpec) -> float:
        """MACs per cycle of weights in ``fmt`` relative to FP8 (0: does not run): the table's
        entry, else the rule for unlisted formats (see the class docstring)."""
        name = format_name(fmt)
        if name in self.relative_throughput:
            return self.relative_throughput[name]
        from prodigy_sim.numerics import NARROW_BITS  # numpy: only for a format not listed

        try:
            bits = element_bits(fmt)
        except FormatError:
            return 0.0
        return self.unlisted_relative_throughput["narrow" if bits <= NARROW_BITS else "wide"]

    def runs_sparse(self, fmt: str | FormatSpec) -> bool:
        """Whether 8:4-sparse weights in ``fmt`` get the sparsity speedup."""
        name = format_name(fmt)
        if name in self.relative_throughput:
            return name in self.sparse_formats
        from prodigy_sim.numerics import NARROW_BITS

        return (self.unlisted_sparse and self.relative_rate(fmt) > 0
                and element_bits(fmt) <= NARROW_BITS)

    def peak_macs_per_cycle(self, fmt: str | FormatSpec, sparse: bool = False) -> float:
        """MACs per cycle for weights in ``fmt`` (``sparse``: 8:4-sparse weights, counted as the
        dense MACs they replace). ConfigError if the format does not run (sparse)."""
        rate = self.relative_rate(fmt)
        if rate <= 0:
            raise _unknown_format(format_name(fmt), self.relative_throughput, "matrix unit")
        rate *= self.macs_per_cycle
        if not sparse:
            return rate
        if not self.runs_sparse(fmt):
            raise ConfigError(f"format {format_name(fmt)!r} has no sparse mode on the matrix "
                              f"unit ('core.matrix_unit.sparse_formats': "
                              f"{', '.join(self.sparse_formats)})")
        return rate * self.sparsity_speedup


OP_CLASSES = ("add", "mul", "fma", "convert", "div", "sqrt", "transcendental")
"""Vector operation classes with their own latency and issue interval."""


class VectorUnitConfig(Block):
    """The SIMD floating-point units of one core (``count`` identical units)."""

    count: int = Field(2, ge=1, le=64, description="Vector units per core.")
    width_bits: int = Field(1024, ge=32, le=65536, multiple_of=32,
                            description="Datapath width of one vector unit (bits).")
    formats: tuple[str, ...] = Field(("float64", "float32", "bfloat16"), min_length=1,
                                     description="Element formats with FMA support.")
    op_latency_cycles: FrozenIntMap = Field(
        default_factory=lambda: dict.fromkeys(OP_CLASSES, 4),
        description="Latency of each operation class, issue to result (cycles).")
    op_interval_cycles: FrozenIntMap = Field(
        default_factory=lambda: dict.fromkeys(OP_CLASSES, 1),
        description="Issue interval of each operation class per unit (cycles between two "
                    "independent operations; 1 = fully pipelined).")

    @field_validator("formats")
    @classmethod
    def _check_formats(cls, value):
        unknown = []
        for f in value:
            try:
                element_bits(f)
            except FormatError:
                unknown.append(f)
        if unknown:
            raise ValueError(f"unknown formats {unknown} (numerics formats, float64 or tf32)")
        return value

    @field_validator("op_latency_cycles", "op_interval_cycles")
    @classmethod
    def _check_ops(cls, value):
        if set(value) != set(OP_CLASSES):
            raise ValueError(f"must give exactly the operation classes {list(OP_CLASSES)} "
                             f"(got {sorted(value)})")
        bad = {k: v for k, v in value.items() if not 1 <= v <= MAX_CYCLES}
        if bad:
            raise ValueError(f"cycles must be in 1..{MAX_CYCLES} (got {bad})")
        return value

    def lanes(self, fmt: str) -> int:
        """Elements of ``fmt`` per vector unit per operation (``width_bits / element bits``)."""
        if fmt not in self.formats:
            raise _unknown_format(fmt, self.formats, "vector units")
        return self.width_bits // element_bits(fmt)

    @property
    def fp32_lanes(self) -> int:
        """FP32 lanes of one unit (``width_bits / 32``)."""
        return self.width_bits // 32

    def peak_flops_per_cycle(self, fmt: str) -> float:
        """FLOPs per cycle of all units of a core at full FMA issue (2 FLOPs per lane per FMA)."""
        return 2 * self.count * self.lanes(fmt) / self.op_interval_cycles["fma"]


class OnChipMemoryConfig(Block):
    """The private caches of one core. The L2 doubles as the tile store (scratchpad) of programs."""

    l1i_bytes: int = Field(64 * KIB, ge=1, le=MAX_BYTES,
                           description="L1 instruction cache (bytes).")
    l1d_bytes: int = Field(64 * KIB, ge=1, le=MAX_BYTES, description="L1 data cache (bytes).")
    l2_bytes: int = Field(1 * MIB, ge=1, le=MAX_BYTES,
                          description="L2 cache / scratchpad (bytes).")
    l2_reserved_bytes: int = Field(0, ge=0, le=MAX_BYTES,
                                   description="L2 bytes not available to program tiles (bytes).")
    line_bytes: int = Field(64, ge=1, le=MIB, description="Cache line (bytes).")
    l1d_bandwidth_bytes_per_cycle: int = Field(256, ge=1, le=MIB,
                                               description="L1D load bandwidth (bytes/cycle).")
    l2_bandwidth_bytes_per_cycle: int = Field(128, ge=1, le=MIB,
                                              description="L2 to core bandwidth (bytes/cycle).")
    l1d_latency_cycles: int = Field(4, ge=1, le=MAX_CYCLES,
                                    description="L1D load-to-use latency (cycles).")
    l2_latency_cycles: int = Field(20, ge=1, le=MAX_CYCLES,
                                   description="L2 hit latency (cycles).")

    @model_validator(mode="after")
    def _check_sizes(self):
        if self.l2_reserved_bytes >= self.l2_bytes:
            raise ValueError(f"'l2_reserved_bytes' must be < 'l2_bytes' = {self.l2_bytes} "
                             f"(got {self.l2_reserved_bytes})")
        for name in ("l1i_bytes", "l1d_bytes", "l2_bytes"):
            if getattr(self, name) % self.line_bytes:
                raise ValueError(f"'{name}' must be a multiple of 'line_bytes' = "
                                 f"{self.line_bytes} (got {getattr(self, name)})")
        return self

    @property
    def usable_tile_bytes(self) -> int:
        """Bytes of the L2 a program may fill with tiles (``l2_bytes - l2_reserved_bytes``)."""
        return self.l2_bytes - self.l2_reserved_bytes


class CoreConfig(Block):
    """One core: vector units, matrix unit, private on-chip memory."""

    vector_unit: VectorUnitConfig = Field(default_factory=VectorUnitConfig,
                                          description="The vector units.")
    matrix_unit: MatrixUnitConfig = Field(default_factory=MatrixUnitConfig,
                                          description="The matrix processor.")
    on_chip_memory: OnChipMemoryConfig = Field(default_factory=OnChipMemoryConfig,
                                               description="Private caches and scratchpad.")
