"""The socket: identical cores on a mesh, a clock, and DDR5 main memory.

Peak figures are derived here, never stored: FLOPS per format (matrix unit or vector units), DDR
bandwidth, on-chip capacity. A MAC counts as 2 FLOPs; bandwidths are in bytes per second.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field, model_validator

from prodigy_sim.errors import ConfigError, ProgramError
from prodigy_sim.hardware._base import Block
from prodigy_sim.hardware.core import CoreConfig
from prodigy_sim.hardware.memory import MemoryConfig
from prodigy_sim.hardware.noc import NocConfig

if TYPE_CHECKING:
    from prodigy_sim.numerics import FormatSpec

__all__ = ["ChipConfig", "check_fits"]

MIN_FREQUENCY_HZ, MAX_FREQUENCY_HZ = 1e6, 1e11
"""Range of a core clock (Hz): outside it times print as 0 or inf and mean nothing."""
MAX_CORES = 1 << 16
"""Most cores a socket may have (one SimPy process each in the timing model)."""


class ChipConfig(Block):
    """One Prodigy socket."""

    name: str = Field("custom", min_length=1, description="Name of this configuration.")
    cores: int = Field(128, ge=1, le=MAX_CORES, description="Cores per socket.")
    frequency_hz: float = Field(5.7e9, ge=MIN_FREQUENCY_HZ, le=MAX_FREQUENCY_HZ,
                                allow_inf_nan=False, description="Core clock (Hz), 1 MHz to "
                                "100 GHz.")
    core: CoreConfig = Field(default_factory=CoreConfig, description="Every core.")
    noc: NocConfig = Field(default_factory=NocConfig, description="The on-chip network.")
    memory: MemoryConfig = Field(default_factory=MemoryConfig, description="DDR5 main memory.")

    @model_validator(mode="after")
    def _check_mesh(self):
        rows, cols = self.noc.shape(self.cores)
        if rows * cols < self.cores:
            raise ValueError(f"'noc.rows' x 'noc.cols' = {rows} x {cols} = {rows * cols} routers "
                             f"cannot hold 'cores' = {self.cores}")
        line, burst = self.core.on_chip_memory.line_bytes, self.memory.dram.org.tx_bytes
        if line != burst:
            raise ValueError(f"'core.on_chip_memory.line_bytes' = {line} must equal the DDR5 "
                             f"burst of 'memory.dram.org' ({burst} bytes): the timing model "
                             "moves cache lines as whole bursts")
        return self

    # --- compute -------------------------------------------------------------------------------

    def peak_macs_per_cycle(self, fmt: str | FormatSpec, sparse: bool = False) -> float:
        """Matrix-unit MACs per cycle of the whole chip for weights in ``fmt``."""
        return self.cores * self.core.matrix_unit.peak_macs_per_cycle(fmt, sparse)

    def peak_matrix_flops(self, fmt: str | FormatSpec, sparse: bool = False) -> float:
        """Matrix-unit FLOPS of the chip: ``2 * MACs/cycle * cores * frequency_hz``."""
        return 2.0 * self.peak_macs_per_cycle(fmt, sparse) * self.frequency_hz

    def peak_vector_flops(self, fmt: str) -> float:
        """Vector-unit FMA FLOPS of the chip: ``2 * lanes * units * cores * frequency_hz``."""
        return self.core.vector_unit.peak_flops_per_cycle(fmt) * self.cores * self.frequency_hz

    def peak_flops(self, fmt: str, sparse: bool = False) -> float:
        """Peak FLOPS for ``fmt`` on the faster of the matrix unit and the vector units.

        ``sparse`` (8:4-sparse weights, counted as the dense FLOPs they replace) needs the matrix
        unit.
        """
        if sparse:
            return self.peak_matrix_flops(fmt, sparse=True)
        candidates = []
        if self.core.matrix_unit.relative_rate(fmt) > 0:
            candidates.append(self.peak_matrix_flops(fmt))
        if fmt in self.core.vector_unit.formats:
            candidates.append(self.peak_vector_flops(fmt))
        if not candidates:
            known = sorted(set(self.core.matrix_unit.relative_throughput)
                           | set(self.core.vector_unit.formats))
            raise ConfigError(f"format {fmt!r} is executed by no unit (known: {', '.join(known)})")
        return max(candidates)

    # --- memory --------------------------------------------------------------------------------

    @property
    def peak_ddr_bandwidth_bytes_per_s(self) -> float:
        """Peak DDR5 bandwidth of the socket (bytes/s)."""
        return self.memory.peak_bandwidth_bytes_per_s

    @property
    def total_l2_bytes(self) -> int:
        """L2 of all cores (the "virtual L3" pool) (bytes)."""
        return self.cores * self.core.on_chip_memory.l2_bytes

    @property
    def total_on_chip_bytes(self) -> int:
        """L1I + L1D + L2 of all cores (bytes)."""
        m = self.core.on_chip_memory
        return self.cores * (m.l1i_bytes + m.l1d_bytes + m.l2_bytes)

    @property
    def usable_tile_bytes_per_core(self) -> int:
        """Bytes of one core's L2 a program may fill with tiles."""
        return self.core.on_chip_memory.usable_tile_bytes

    # --- network -------------------------------------------------------------------------------

    @property
    def mesh_shape(self) -> tuple[int, int]:
        """``(rows, cols)`` of the on-chip mesh."""
        return self.noc.shape(self.cores)

    @property
    def noc_bisection_bandwidth_bytes_per_s(self) -> float:
        """Mesh bisection bandwidth, one direction (bytes/s)."""
        return self.noc.bisection_bandwidth_bytes_per_cycle(self.cores) * self.frequency_hz

    def derived(self) -> dict[str, float | int | str]:
        """The headline derived figures, keyed by name with the unit in the key."""
        out: dict[str, float | int | str] = {
            "mesh": "{} x {}".format(*self.mesh_shape),
            "matrix_macs_per_cycle_per_core_fp8": self.core.matrix_unit.macs_per_cycle,
        }
        for fmt in self.core.matrix_unit.relative_throughput:
            out[f"peak_matrix_flops_{fmt}_dense"] = self.peak_matrix_flops(fmt)
            if fmt in self.core.matrix_unit.sparse_formats:
                out[f"peak_matrix_flops_{fmt}_sparse"] = self.peak_matrix_flops(fmt, sparse=True)
        for fmt in self.core.vector_unit.formats:
            out[f"peak_vector_flops_{fmt}"] = self.peak_vector_flops(fmt)
        out.update({
            "ddr_subchannels_32bit": self.memory.subchannels,
            "ddr_transfer_rate_mts": self.memory.transfer_rate_mts,
            "peak_ddr_bandwidth_bytes_per_s": self.peak_ddr_bandwidth_bytes_per_s,
            "ddr_timing_model_peak_bytes_per_s":
                self.memory.timing_model_peak_bandwidth_bytes_per_s,
            "ddr_capacity_bytes": self.memory.capacity_bytes,
            "total_l2_bytes": self.total_l2_bytes,
            "total_on_chip_bytes": self.total_on_chip_bytes,
            "noc_bisection_bandwidth_bytes_per_s": self.noc_bisection_bandwidth_bytes_per_s,
        })
        return out


def check_fits(bytes_needed: int, config: ChipConfig, *, what: str = "tile",
               scope: str = "core") -> None:
    """Raise :class:`ProgramError` unless ``bytes_needed`` fit the usable on-chip memory.

    ``scope="core"``: one core's usable L2 (``core.on_chip_memory.l2_bytes - l2_reserved_bytes``);
    ``scope="chip"``: that of all cores together.
    """
    if scope not in ("core", "chip"):
        raise ValueError(f"scope must be 'core' or 'chip' (got {scope!r})")
    per_core = config.usable_tile_bytes_per_core
    capacity = per_core if scope == "core" else per_core * config.cores
    if bytes_needed > capacity:
        raise ProgramError(
            f"{what} needs {bytes_needed} bytes but the usable on-chip memory of one {scope} is "
            f"{capacity} bytes ('core.on_chip_memory.l2_bytes' - 'l2_reserved_bytes'"
            f"{' x cores' if scope == 'chip' else ''} in config {config.name!r})")
