"""Display units of configuration fields, read from their names (every field carries its unit in
its name: ``l2_bytes``, ``frequency_hz``, ``latency_cycles``)."""

from __future__ import annotations

__all__ = ["unit_of"]

_UNITS = (("_bytes_per_cycle", "B/cycle"), ("_bytes_per_s", "B/s"), ("_bytes", "B"),
          ("_bits", "bits"), ("_hz", "Hz"), ("_cycles", "cycles"), ("_mts", "MT/s"),
          ("_mbit", "Mbit"), ("_ps", "ps"), ("_entries", "requests"))


def unit_of(path: str) -> str:
    """Display unit of a field from its dotted path (the unit is part of every field name)."""
    parts = path.split(".")
    for part in reversed(parts):
        for suffix, unit in _UNITS:
            if part.endswith(suffix):
                return unit
    if "memory.dram.timing" in path and parts[-1].startswith("n") and parts[-1] != "name":
        return "cycles (nCK)"
    if "relative_throughput" in path or parts[-1] == "sparsity_speedup":
        return "x"
    return ""
