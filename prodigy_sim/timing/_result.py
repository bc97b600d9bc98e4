"""What a timing simulation reports: cycles, unit utilization, stalls, DDR traffic."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from prodigy_sim.timing._core import STALL_REASONS, UNITS

if TYPE_CHECKING:
    from prodigy_sim.dram.streams import SpeculationStats

__all__ = ["CoreResult", "SimulationResult"]


@dataclass(frozen=True)
class CoreResult:
    """One core: when it finished, busy cycles per unit, stall cycles per reason, counts."""

    core: int
    end_cycle: int
    busy_cycles: dict[str, int]
    stall_cycles: dict[str, int]
    instructions: dict[str, int]
    dma_bytes: int

    def utilization(self, cycles: int) -> dict[str, float]:
        """Busy fraction of every unit over ``cycles``."""
        return {u: (b / cycles if cycles else 0.0) for u, b in self.busy_cycles.items()}

    def to_dict(self, cycles: int) -> dict[str, object]:
        return {"core": self.core, "end_cycle": self.end_cycle, "busy_cycles": self.busy_cycles,
                "utilization": self.utilization(cycles), "stall_cycles": self.stall_cycles,
                "instructions": self.instructions, "dma_bytes": self.dma_bytes}


@dataclass(frozen=True)
class SimulationResult:
    """The outcome of :func:`~prodigy_sim.timing.simulate`.

    ``cycles`` are core-clock cycles from the start until the last core finished (its units idle
    and its DMAs complete). ``channel_bytes[k]`` counts the 64-B lines moved by DDR controller
    ``k`` (a 64-bit channel).
    """

    config_name: str
    ncores: int
    frequency_hz: float
    cycles: int
    cores: tuple[CoreResult, ...]
    channel_bytes: tuple[int, ...]
    dram_requests: int
    memory_batches: int
    l3_hit_bytes: int = 0
    """Bytes of loads the on-chip memory served (whole lines): L3 hits and resident tensors."""
    onchip_write_bytes: int = 0
    """Bytes of stores into the on-chip memory (whole lines): into resident tensors (kept on
    chip instead of DDR), and pieces of lines a store writes in part (merged in their home
    slices before the line goes to DDR once)."""
    multicasts: int = 0
    """Multicast (DMA.LDM) transfers: one DDR/L3 read each, delivered to every member."""
    ddr_method: str = "batched"
    """How DMA requests reached the DDR5 model (:data:`~prodigy_sim.timing.DDR_METHODS`)."""
    ddr_speculation: SpeculationStats | None = None
    """With the persistent DDR: every request's real completion against the one a waiting
    core was told (speculated); None with the batched DDR."""

    @property
    def seconds(self) -> float:
        """Simulated time (s)."""
        return self.cycles / self.frequency_hz

    @property
    def busy_cycles(self) -> dict[str, int]:
        """Busy cycles of every unit, summed over the cores."""
        return {u: sum(c.busy_cycles[u] for c in self.cores) for u in UNITS}

    @property
    def utilization(self) -> dict[str, float]:
        """Chip utilization of every unit: busy / (cycles x cores)."""
        denom = self.cycles * self.ncores
        return {u: (b / denom if denom else 0.0) for u, b in self.busy_cycles.items()}

    @property
    def stall_cycles(self) -> dict[str, int]:
        """Issue-stall cycles by reason, summed over the cores."""
        return {r: sum(c.stall_cycles[r] for c in self.cores) for r in STALL_REASONS}

    @property
    def instructions(self) -> dict[str, int]:
        """Executed instructions by mnemonic, summed over the cores."""
        out: dict[str, int] = {}
        for c in self.cores:
            for k, v in c.instructions.items():
                out[k] = out.get(k, 0) + v
        return dict(sorted(out.items()))

    @property
    def dram_bytes(self) -> int:
        """Bytes moved by the DDR controllers (whole 64-B lines)."""
        return sum(self.channel_bytes)

    @property
    def l3_hit_rate(self) -> float:
        """Fraction of the load lines that the L3 served instead of DDR."""
        total = self.l3_hit_bytes + self.dram_bytes
        return self.l3_hit_bytes / total if total else 0.0

    @property
    def channel_bandwidth_bytes_per_s(self) -> tuple[float, ...]:
        """Mean bandwidth of every controller over the run (bytes/s)."""
        s = self.seconds
        return tuple((b / s if s else 0.0) for b in self.channel_bytes)

    @property
    def dram_bandwidth_bytes_per_s(self) -> float:
        """Mean DDR bandwidth of the socket over the run (bytes/s)."""
        return self.dram_bytes / self.seconds if self.cycles else 0.0

    def to_dict(self, *, per_core: bool = True) -> dict[str, object]:
        """JSON-ready figures (cycles, seconds, bytes, bytes/s)."""
        out: dict[str, object] = {
            "config": self.config_name, "cores": self.ncores, "frequency_hz": self.frequency_hz,
            "cycles": self.cycles, "seconds": self.seconds, "busy_cycles": self.busy_cycles,
            "utilization": self.utilization, "stall_cycles": self.stall_cycles,
            "instructions": self.instructions, "dram_bytes": self.dram_bytes,
            "dram_requests": self.dram_requests,
            "dram_bandwidth_bytes_per_s": self.dram_bandwidth_bytes_per_s,
            "channel_bytes": list(self.channel_bytes),
            "channel_bandwidth_bytes_per_s": list(self.channel_bandwidth_bytes_per_s),
            "memory_batches": self.memory_batches, "l3_hit_bytes": self.l3_hit_bytes,
            "l3_hit_rate": self.l3_hit_rate, "multicasts": self.multicasts,
            "onchip_write_bytes": self.onchip_write_bytes,
        }
        if per_core:
            out["per_core"] = [c.to_dict(self.cycles) for c in self.cores]
        return out
